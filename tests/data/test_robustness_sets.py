"""ImageNet-A / -R / V2 and CIFAR-10-C on `tfds.testing.mock_data`, and the 200-class subsets.

The subsets are checked against their authors' own lists (hendrycks/imagenet-r eval.py's
`imagenet_r_wnids`, hendrycks/natural-adv-examples eval.py's `thousand_k_to_200`), the
renormalisation against probabilities divided by hand.
"""

import importlib.resources

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from het_ensembles import data
from het_ensembles.data import class_subsets, tfds_sets

ROBUSTNESS_SETS = [
    "imagenet_a",
    "imagenet_r",
    "imagenet_v2",
    "imagenet_v2/threshold-0.7",
    "cifar10_corrupted/frosted_glass_blur_3",
    "cifar10_corrupted/elastic_5",
]

# hendrycks/imagenet-r eval.py `imagenet_r_wnids` (the 200 WordNet ids of ImageNet-R).
IMAGENET_R_WNIDS = """
n01443537 n01484850 n01494475 n01498041 n01514859 n01518878 n01531178 n01534433 n01614925
n01616318 n01630670 n01632777 n01644373 n01677366 n01694178 n01748264 n01770393 n01774750
n01784675 n01806143 n01820546 n01833805 n01843383 n01847000 n01855672 n01860187 n01882714
n01910747 n01944390 n01983481 n01986214 n02007558 n02009912 n02051845 n02056570 n02066245
n02071294 n02077923 n02085620 n02086240 n02088094 n02088238 n02088364 n02088466 n02091032
n02091134 n02092339 n02094433 n02096585 n02097298 n02098286 n02099601 n02099712 n02102318
n02106030 n02106166 n02106550 n02106662 n02108089 n02108915 n02109525 n02110185 n02110341
n02110958 n02112018 n02112137 n02113023 n02113624 n02113799 n02114367 n02117135 n02119022
n02123045 n02128385 n02128757 n02129165 n02129604 n02130308 n02134084 n02138441 n02165456
n02190166 n02206856 n02219486 n02226429 n02233338 n02236044 n02268443 n02279972 n02317335
n02325366 n02346627 n02356798 n02363005 n02364673 n02391049 n02395406 n02398521 n02410509
n02423022 n02437616 n02445715 n02447366 n02480495 n02480855 n02481823 n02483362 n02486410
n02510455 n02526121 n02607072 n02655020 n02672831 n02701002 n02749479 n02769748 n02793495
n02797295 n02802426 n02808440 n02814860 n02823750 n02841315 n02843684 n02883205 n02906734
n02909870 n02939185 n02948072 n02950826 n02951358 n02966193 n02980441 n02992529 n03124170
n03272010 n03345487 n03372029 n03424325 n03452741 n03467068 n03481172 n03494278 n03495258
n03498962 n03594945 n03602883 n03630383 n03649909 n03676483 n03710193 n03773504 n03775071
n03888257 n03930630 n03947888 n04086273 n04118538 n04133789 n04141076 n04146614 n04147183
n04192698 n04254680 n04266014 n04275548 n04310018 n04325704 n04347754 n04389033 n04409515
n04465501 n04487394 n04522168 n04536866 n04552348 n04591713 n07614500 n07693725 n07695742
n07697313 n07697537 n07714571 n07714990 n07718472 n07720875 n07734744 n07742313 n07745940
n07749582 n07753275 n07753592 n07768694 n07873807 n07880968 n07920052 n09472597 n09835506
n10565667 n12267677
""".split()  # noqa: SIM905 (pasted as its source prints it)
# hendrycks/natural-adv-examples eval.py `thousand_k_to_200`: a few (1000-index: 200-index) pairs.
IMAGENET_A_SPOT_CHECKS = {6: 0, 11: 1, 207: 38, 301: 48, 496: 100, 701: 135, 959: 191, 988: 199}


def _collect(dataset):
    xs, ys = [], []
    for x, y in dataset:
        xs.append(x.numpy())
        ys.append(y.numpy())
    return xs, ys


@pytest.mark.parametrize("name", ROBUSTNESS_SETS)
def test_eval_pipeline_shapes_dtypes_and_keeps_last_partial_batch(name):
    with tfds.testing.mock_data(num_examples=10):
        xs, ys = _collect(data.load(name, "test", batch_size=4, is_training=False, image_size=16))
    assert [len(y) for y in ys] == [4, 4, 2]
    assert all(x.shape[1:] == (16, 16, 3) and x.dtype == np.float32 for x in xs)
    assert all(np.isfinite(x).all() for x in xs)
    info = data.get_info(name)
    assert all(y.dtype == np.int32 and (0 <= y).all() and (y < info.num_classes).all() for y in ys)


def test_info_of_the_robustness_sets():
    expected = {
        "imagenet_a": (1000, 7_500, class_subsets.IMAGENET_A_INDICES),
        "imagenet_r": (1000, 30_000, class_subsets.IMAGENET_R_INDICES),
        "imagenet_v2": (1000, 10_000, None),
        "cifar10_corrupted/fog_1": (10, 10_000, None),
    }
    for name, (num_classes, num_test, subset) in expected.items():
        info = data.get_info(name)
        assert (info.num_classes, info.num_examples, info.class_subset) == (
            num_classes,
            {"test": num_test},
            subset,
        )
    assert data.get_info("imagenet_a").input_shape == (224, 224, 3)
    assert data.get_info("imagenet_r").class_names[1] == "n01443537"
    assert data.get_info("cifar10_corrupted/fog_1").input_shape == (32, 32, 3)
    assert data.get_info("cifar10_corrupted/fog_1").class_names[0] == "airplane"
    assert tfds_sets.spec("imagenet_v2").tfds_name == "imagenet_v2/matched-frequency"
    names = tfds_sets.cifar10_corrupted_names()
    assert len(names) == 75 and names[0] == "cifar10_corrupted/gaussian_noise_1"
    for name in ("imagenet_a", "imagenet_r", "imagenet_v2", "cifar10_corrupted/<corruption>_"):
        assert any(known.startswith(name) for known in data.known_names())


def _jpeg(height, width, seed):
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return tf.io.encode_jpeg(pixels, quality=95, chroma_downsampling=False).numpy(), pixels


def test_imagenet_a_eval_is_the_central_crop_of_any_image_format():
    # 48 x 64 JPEG and a 64 x 40 PNG; image_size = the crop side (7/8 of the shorter side).
    jpeg, _ = _jpeg(48, 64, 0)
    png_pixels = np.random.default_rng(1).integers(0, 256, (64, 48, 3), dtype=np.uint8)
    png = tf.io.encode_png(png_pixels).numpy()
    images = [jpeg, png]

    def as_dataset(builder, split, **kwargs):
        del builder, split, kwargs
        return tf.data.Dataset.from_tensor_slices({"image": images, "label": np.array([6, 988])})

    with tfds.testing.mock_data(as_dataset_fn=as_dataset):
        dataset = data.load("imagenet_a", "test", batch_size=2, is_training=False, image_size=42)
        xs, ys = _collect(dataset)
    np.testing.assert_array_equal(ys[0], [6, 988])
    crop = 42  # int(0.875 * 48)
    for i, encoded in enumerate(images):
        full = tf.io.decode_image(encoded, channels=3).numpy().astype(np.float64)
        h, w = full.shape[:2]
        top, left = (h - crop + 1) // 2, (w - crop + 1) // 2
        expected = full[top : top + crop, left : left + crop] / 255.0
        expected = (expected - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225]
        np.testing.assert_allclose(xs[0][i], expected, atol=1e-4)


def test_cifar10_c_eval_is_exact_normalisation():
    pixels = np.arange(10, dtype=np.uint8)[:, None, None, None] * np.ones((1, 32, 32, 3), np.uint8)
    pixels = pixels * 25

    def as_dataset(builder, split, **kwargs):
        del builder, split, kwargs
        return tf.data.Dataset.from_tensor_slices({"image": pixels, "label": np.arange(10) % 10})

    with tfds.testing.mock_data(as_dataset_fn=as_dataset):
        xs, ys = _collect(
            data.load("cifar10_corrupted/snow_2", "test", batch_size=3, is_training=False)
        )
    x = np.concatenate(xs)
    expected = (pixels / 255.0 - np.array(tfds_sets.CIFAR10_MEAN)) / tfds_sets.CIFAR10_STD
    np.testing.assert_allclose(x, expected, atol=1e-5)
    np.testing.assert_array_equal(np.concatenate(ys), np.arange(10))


@pytest.mark.parametrize(
    "name, split, match",
    [
        ("imagenet_a", "train", "no 'train' split"),
        ("imagenet_v2", "train", "no 'train' split"),
        ("imagenet_v2/matched_frequency", "test", "variant"),
        ("cifar10_corrupted/glass_blur_1", "test", "frosted_glass_blur"),
        ("cifar10_corrupted/fog_6", "test", "severity"),
        ("cifar10_corrupted/fog", "test", "corruption"),
        ("imagenet_c", "test", "Unknown dataset"),
    ],
)
def test_bad_names_and_splits_raise_before_any_tfds_work(monkeypatch, name, split, match):
    def forbidden(*args, **kwargs):
        raise AssertionError("TFDS was touched before the arguments were checked")

    monkeypatch.setattr(tfds_sets.tfds, "builder", forbidden)
    with pytest.raises(ValueError, match=match):
        data.load(name, split, batch_size=4, is_training=split == "train")


def test_imagenet_r_indices_are_its_authors_wnids_in_imagenet_label_order():
    path = importlib.resources.files("tensorflow_datasets") / "datasets/imagenet2012/labels.txt"
    wnids = [line for line in path.read_text().split("\n") if line]  # ImageNet label order
    assert len(IMAGENET_R_WNIDS) == len(set(IMAGENET_R_WNIDS)) == 200
    expected = tuple(i for i, wnid in enumerate(wnids) if wnid in set(IMAGENET_R_WNIDS))
    assert data.IMAGENET_R_INDICES == expected


@pytest.mark.parametrize("indices", [data.IMAGENET_A_INDICES, data.IMAGENET_R_INDICES])
def test_subsets_are_200_sorted_distinct_imagenet_classes(indices):
    assert len(indices) == len(set(indices)) == 200
    assert list(indices) == sorted(indices) and 0 <= indices[0] and indices[-1] < 1000


def test_imagenet_a_indices_match_its_authors_map():
    for index_1k, index_200 in IMAGENET_A_SPOT_CHECKS.items():
        assert data.IMAGENET_A_INDICES[index_200] == index_1k


def test_restrict_log_probs_renormalises_over_the_subset_by_hand():
    probs = np.array([[0.1, 0.2, 0.3, 0.4], [0.25, 0.25, 0.25, 0.25]])
    # Keep classes 1 and 3: [0.2, 0.4] / 0.6 = [1/3, 2/3]; [0.25, 0.25] / 0.5 = [1/2, 1/2].
    expected = np.log([[1 / 3, 2 / 3], [0.5, 0.5]])
    np.testing.assert_allclose(data.restrict_log_probs(np.log(probs), [1, 3]), expected)
    # Logits (log-probs up to a per-row constant) give the same: softmax over the kept logits.
    logits = np.log(probs) + np.array([[7.0], [-3.0]])
    np.testing.assert_allclose(data.restrict_log_probs(logits, (1, 3)), expected)
    # Order follows `indices`; huge logits stay finite.
    np.testing.assert_allclose(data.restrict_log_probs(np.log(probs), [3, 1]), expected[:, ::-1])
    big = data.restrict_log_probs(np.array([[1e4, 0.0, 1e4 - np.log(3.0)]]), [0, 2])
    np.testing.assert_allclose(big, np.log([[0.75, 0.25]]))


def test_subset_labels_maps_1000_class_labels_to_subset_positions():
    labels = data.subset_labels([988, 6, 207], data.IMAGENET_A_INDICES)
    np.testing.assert_array_equal(labels, [199, 0, 38])
    with pytest.raises(ValueError, match=r"labels outside the class subset.*\[0\]"):
        data.subset_labels([0, 6], data.IMAGENET_A_INDICES)


@pytest.mark.parametrize(
    "log_probs, indices, match",
    [
        (np.zeros(4), [0], "log_probs must be"),
        (np.zeros((2, 4)), [0, 4], "indices"),
        (np.zeros((2, 4)), [1, 1], "indices"),
        (np.zeros((2, 4)), [], "indices"),
        (np.zeros((2, 4)), [0.5], "indices"),
    ],
)
def test_restrict_log_probs_bad_arguments(log_probs, indices, match):
    with pytest.raises(ValueError, match=match):
        data.restrict_log_probs(log_probs, indices)
