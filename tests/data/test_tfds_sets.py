"""TFDS pipelines on `tfds.testing.mock_data`: shapes, labels, preprocessing values, determinism.

Preprocessing is checked against independent numpy references: the eval crop against slicing
the fully decoded JPEG, the CIFAR train augmentation against an exhaustive search over the
padded crops and flips of the original image.
"""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from het_ensembles import data
from het_ensembles.data import tfds_sets

NUM_EXAMPLES = 10
CIFAR_FIELDS = (
    "label",
    "worse_label",
    "aggre_label",
    "random_label1",
    "random_label2",
    "random_label3",
)


def _cifar_examples():
    """Example i: a constant image of value 20 * i (so x identifies it) and label fields
    label = i % 10, worse_label = (i + 1) % 10, ..., random_label3 = (i + 5) % 10."""
    for i in range(NUM_EXAMPLES):
        example = {"image": np.full((32, 32, 3), 20 * i, np.uint8), "id": f"{i}"}
        for offset, field in enumerate(CIFAR_FIELDS):
            example[field] = np.int64((i + offset) % 10)
        yield example


def _cifar_as_dataset(builder, split, **kwargs):
    del split, kwargs
    names = [f for f in CIFAR_FIELDS if f in builder.info.features]
    return tf.data.Dataset.from_generator(
        lambda: ({k: ex[k] for k in ["image", *names]} for ex in _cifar_examples()),
        output_signature={
            "image": tf.TensorSpec((32, 32, 3), tf.uint8),
            **{k: tf.TensorSpec((), tf.int64) for k in names},
        },
    )


def _jpeg(height, width, seed):
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    # 4:4:4 chroma: no chroma upsampling, whose edge handling differs between decoding a crop
    # window and decoding the whole image (a libjpeg detail, not our crop geometry).
    return tf.io.encode_jpeg(pixels, quality=95, chroma_downsampling=False).numpy()


IMAGENET_SHAPES = [(64, 48), (48, 64), (56, 56), (40, 72)]
IMAGENET_JPEGS = [_jpeg(h, w, i) for i, (h, w) in enumerate(IMAGENET_SHAPES)]


def _imagenet_as_dataset(builder, split, **kwargs):
    del builder, split, kwargs  # JPEG bytes, as with SkipDecoding
    return tf.data.Dataset.from_tensor_slices(
        {"image": IMAGENET_JPEGS, "label": np.arange(len(IMAGENET_JPEGS), dtype=np.int64) * 7}
    )


def _collect(dataset, num_batches=None):
    xs, ys = [], []
    for x, y in dataset.take(-1 if num_batches is None else num_batches):
        xs.append(x.numpy())
        ys.append(y.numpy())
    return xs, ys


@pytest.mark.parametrize(
    "name",
    ["imagenet2012", "imagenet2012_corrupted/gaussian_noise_3", "cifar10", "cifar100", "cifar10_n"],
)
def test_eval_pipeline_shapes_dtypes_and_keeps_last_partial_batch(name):
    with tfds.testing.mock_data(num_examples=NUM_EXAMPLES):
        xs, ys = _collect(data.load(name, "test", batch_size=4, is_training=False, image_size=16))
    assert [len(y) for y in ys] == [4, 4, 2]  # every example once, last partial batch kept
    assert all(x.shape[1:] == (16, 16, 3) and x.dtype == np.float32 for x in xs)
    assert all(y.dtype == np.int32 for y in ys)
    assert all(np.isfinite(x).all() for x in xs)
    assert data.get_info(name, image_size=16).input_shape == (16, 16, 3)


@pytest.mark.parametrize("name", ["imagenet2012", "cifar100"])
def test_train_pipeline_repeats_with_full_batches(name):
    with tfds.testing.mock_data(num_examples=NUM_EXAMPLES):
        dataset = data.load(name, "train", batch_size=4, is_training=True, image_size=16)
        xs, ys = _collect(dataset, num_batches=6)  # 24 > 10 examples: repeats
    assert [x.shape for x in xs] == [(4, 16, 16, 3)] * 6
    assert all(y.dtype == np.int32 and y.shape == (4,) for y in ys)


def test_imagenet_eval_is_central_crop_of_224_over_256_then_normalised():
    image_sizes = {int(0.875 * min(h, w)) for h, w in IMAGENET_SHAPES}
    with tfds.testing.mock_data(as_dataset_fn=_imagenet_as_dataset):
        for name in ("imagenet2012", "imagenet2012_corrupted/fog_1"):
            for image_size in image_sizes:
                xs, ys = _collect(
                    data.load(name, "test", batch_size=1, is_training=False, image_size=image_size)
                )
                for i, ((h, w), jpeg) in enumerate(zip(IMAGENET_SHAPES, IMAGENET_JPEGS)):
                    crop = int(0.875 * min(h, w))
                    assert ys[i][0] == 7 * i
                    if crop != image_size:
                        assert xs[i].shape == (1, image_size, image_size, 3)
                        continue
                    # Reference: decode everything, slice the centre, normalise.
                    full = tf.io.decode_jpeg(jpeg, channels=3).numpy().astype(np.float64)
                    top, left = (h - crop + 1) // 2, (w - crop + 1) // 2
                    expected = full[top : top + crop, left : left + crop] / 255.0
                    expected = (expected - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225]
                    np.testing.assert_allclose(xs[i][0], expected, atol=1e-4)


def test_imagenet_train_crops_are_random_flipped_and_seeded():
    with tfds.testing.mock_data(as_dataset_fn=_imagenet_as_dataset):

        def first_batches(seed):
            return _collect(
                data.load(
                    "imagenet2012",
                    "train",
                    batch_size=4,
                    is_training=True,
                    seed=seed,
                    image_size=24,
                ),
                num_batches=4,
            )

        xs, ys = first_batches(seed=5)
        xs_again, ys_again = first_batches(seed=5)
        xs_other, _ = first_batches(seed=6)
    for a, b in zip(xs + ys, xs_again + ys_again):
        np.testing.assert_array_equal(a, b)
    assert not all(np.array_equal(a, b) for a, b in zip(xs, xs_other))
    # Every epoch holds each of the 4 images once; the same image gets a new crop each epoch.
    for y in ys:
        assert sorted(y) == [0, 7, 14, 21]
    by_label = {}
    for x, y in zip(xs, ys):
        for image, label in zip(x, y):
            by_label.setdefault(int(label), []).append(image)
    assert all(not np.allclose(views[0], views[1]) for views in by_label.values())
    # Normalised [0, 1] pixels. Bicubic (Keys, a = -0.5) overshoots by at most
    # (sum |w|)^2 - 1) / 2 = (1.25^2 - 1) / 2 = 0.28125 of the range in 2D; the random mock
    # images reach that bound's neighbourhood for some crops, so the margin is that bound.
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    overshoot = (1.25**2 - 1) / 2
    low, high = (0 - overshoot - mean) / std, (1 + overshoot - mean) / std
    stacked = np.concatenate(xs)
    assert (stacked >= low - 1e-5).all() and (stacked <= high + 1e-5).all()


def _unnormalise_cifar(x):
    return np.rint((x * tfds_sets.CIFAR10_STD + tfds_sets.CIFAR10_MEAN) * 255.0)


def test_cifar_eval_is_exact_normalisation():
    with tfds.testing.mock_data(as_dataset_fn=_cifar_as_dataset):
        xs, ys = _collect(data.load("cifar10", "test", batch_size=3, is_training=False))
    x = np.concatenate(xs)
    expected = (
        np.arange(NUM_EXAMPLES)[:, None, None, None] * 20 / 255.0 - np.array(tfds_sets.CIFAR10_MEAN)
    ) / tfds_sets.CIFAR10_STD
    np.testing.assert_allclose(x, np.broadcast_to(expected, x.shape), atol=1e-5)
    np.testing.assert_array_equal(np.concatenate(ys), np.arange(NUM_EXAMPLES) % 10)


def test_cifar_train_augmentation_is_a_padded_crop_and_flip():
    rng = np.random.default_rng(0)
    originals = rng.integers(0, 256, (NUM_EXAMPLES, 32, 32, 3), dtype=np.uint8)

    def as_dataset(builder, split, **kwargs):
        del builder, split, kwargs
        return tf.data.Dataset.from_tensor_slices(
            {"image": originals, "label": np.arange(NUM_EXAMPLES, dtype=np.int64)}
        )

    with tfds.testing.mock_data(as_dataset_fn=as_dataset):
        xs, ys = _collect(
            data.load("cifar10", "train", batch_size=5, is_training=True, seed=1), num_batches=4
        )
    offsets = []
    for x, y in zip(np.concatenate(xs), np.concatenate(ys)):
        image = _unnormalise_cifar(x)
        padded = np.pad(originals[y].astype(np.float64), ((4, 4), (4, 4), (0, 0)))
        matches = [
            (dy, dx, flip)
            for dy in range(9)
            for dx in range(9)
            for flip in (False, True)
            if np.array_equal(
                image,
                padded[dy : dy + 32, dx : dx + 32][:, ::-1]
                if flip
                else padded[dy : dy + 32, dx : dx + 32],
            )
        ]
        assert matches, "output is not a padded 32x32 crop (optionally flipped) of its input"
        offsets.append(matches[0])
    assert len(set(offsets)) > 5  # the crops and flips vary


@pytest.mark.parametrize(
    "label_field",
    [
        "worse_label",
        "aggre_label",
        "random_label1",
        "random_label2",
        "random_label3",
        "label",
        None,
    ],
)
def test_cifar10_n_trains_on_label_field_and_tests_on_clean_label(label_field):
    offset = CIFAR_FIELDS.index(label_field or "worse_label")
    with tfds.testing.mock_data(as_dataset_fn=_cifar_as_dataset):
        train = data.load(
            "cifar10_n", "train", batch_size=5, is_training=True, label_field=label_field
        )
        xs, ys = _collect(train, num_batches=4)
        for x, y in zip(np.concatenate(xs), np.concatenate(ys)):
            index = int(_unnormalise_cifar(x)[16, 16, 0]) // 20  # centre pixel survives crops
            assert y == (index + offset) % 10
        for split in ("test", "test_clean"):
            _, ys = _collect(
                data.load(
                    "cifar10_n", split, batch_size=4, is_training=False, label_field=label_field
                )
            )
            np.testing.assert_array_equal(np.concatenate(ys), np.arange(NUM_EXAMPLES) % 10)


def test_same_seed_same_batches_different_seed_different_order():
    with tfds.testing.mock_data(num_examples=20):

        def batches(seed):
            return _collect(
                data.load("cifar10", "train", batch_size=4, is_training=True, seed=seed),
                num_batches=5,
            )

        first, second, other = batches(3), batches(3), batches(4)
    for a, b in zip(first[0] + first[1], second[0] + second[1]):
        np.testing.assert_array_equal(a, b)
    assert not all(np.array_equal(a, b) for a, b in zip(first[0], other[0]))


def test_info_for_tfds_sets():
    info = data.get_info("imagenet2012")
    assert (info.num_classes, info.input_shape) == (1000, (224, 224, 3))
    assert info.num_examples == {"train": 1_281_167, "test": 50_000}
    assert len(info.class_names) == 1000 and info.class_names[0] == "n01440764"
    corrupted = data.get_info("imagenet2012_corrupted/jpeg_compression_5")
    assert corrupted.num_examples == {"test": 50_000}
    assert data.get_info("cifar100").class_names[:3] == ("apple", "aquarium_fish", "baby")
    assert len(set(data.get_info("cifar100").class_names)) == 100
    assert data.get_info("cifar10_n").num_examples == {
        "train": 50_000,
        "test": 10_000,
        "test_clean": 10_000,
    }
    assert len(tfds_sets.corrupted_names()) == 75


@pytest.mark.parametrize(
    "name, split, kwargs, match",
    [
        ("imagenet", "test", {}, "Unknown dataset"),
        ("mnist", "train", {}, "Unknown dataset"),
        ("imagenet2012", "validation", {}, "no .validation. split \\(pass validation_fraction"),
        ("imagenet2012", "test_clean", {}, "no 'test_clean' split"),
        ("cifar10", "test_clean", {}, "no 'test_clean' split"),
        ("imagenet2012_corrupted/gaussian_noise_1", "train", {}, "no 'train' split"),
        ("imagenet2012_corrupted/gaussian_noise_6", "test", {}, "severity"),
        ("imagenet2012_corrupted/rain_1", "test", {}, "corruption"),
        ("imagenet2012_corrupted/fog", "test", {}, "corruption"),
        ("cifar10_n", "train", {"label_field": "noisy"}, "label_field"),
        ("cifar10", "train", {"label_field": "worse_label"}, "label_field"),
        ("cifar10", "train", {"batch_size": 0}, "batch_size"),
        ("cifar10", "train", {"seed": -1}, "seed"),
        ("cifar10", "train", {"image_size": 0}, "image_size"),
    ],
)
def test_bad_arguments_raise_before_any_tfds_work(monkeypatch, name, split, kwargs, match):
    def forbidden(*args, **kwargs):
        raise AssertionError("TFDS was touched before the arguments were checked")

    monkeypatch.setattr(tfds_sets.tfds, "builder", forbidden)
    arguments = {"batch_size": 4, "is_training": split == "train", **kwargs}
    with pytest.raises(ValueError, match=match):
        data.load(name, split, **arguments)
