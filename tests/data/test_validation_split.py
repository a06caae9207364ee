"""The validation split held out of train: counts, disjointness, determinism, TFDS slices.

In-memory sets are checked example by example (each training input carries its index); TFDS
sets by the split strings handed to `as_dataset` under `tfds.testing.mock_data`, against
uncertainty-baselines' `int(num_train * validation_percent)` tail slice computed by hand.
"""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from het_ensembles import data
from het_ensembles.data import arrays

NUM_TRAIN, NUM_TEST = 50, 7


@pytest.fixture
def indexed():
    """A registered set whose training input i is [i, 0] and label i % 3."""
    name = "validation_split_test_set"
    x_train = np.stack([np.arange(NUM_TRAIN), np.zeros(NUM_TRAIN)], 1).astype(np.float32)
    data.register_arrays(
        name,
        lambda: {
            "x_train": x_train,
            "y_train": np.arange(NUM_TRAIN) % 3,
            "x_test": np.zeros((NUM_TEST, 2), np.float32),
            "y_test": np.zeros(NUM_TEST, np.int64),
        },
    )
    yield name
    arrays._REGISTRY.pop(name, None)
    arrays._CACHE.pop(name, None)


def _read(name, split, fraction, seed=0):
    dataset = data.load(
        name,
        split,
        batch_size=4,  # does not divide 50 - 10 or 10: the last partial batch must count
        is_training=False,
        validation_fraction=fraction,
        validation_seed=seed,
    )
    xs, ys = zip(*[(x.numpy(), y.numpy()) for x, y in dataset])
    x, y = np.concatenate(xs), np.concatenate(ys)
    indices = x[:, 0].astype(int)
    np.testing.assert_array_equal(y, indices % 3)  # labels stay with their inputs
    return indices


def test_in_memory_split_partitions_train_and_is_fixed_by_the_seed(indexed):
    info = data.get_info(indexed, validation_fraction=0.2)
    assert info.num_examples == {"train": 40, "validation": 10, "test": NUM_TEST}
    assert data.get_info(indexed).num_examples == {"train": NUM_TRAIN, "test": NUM_TEST}

    train, validation = _read(indexed, "train", 0.2), _read(indexed, "validation", 0.2)
    assert (len(train), len(validation)) == (40, 10)  # every example once
    assert len(set(train)) == 40 and len(set(validation)) == 10
    assert not set(train) & set(validation)
    assert set(train) | set(validation) == set(range(NUM_TRAIN))
    # A random subset, not the tail: the same seed gives the same one, another seed another.
    assert set(validation) != set(range(40, NUM_TRAIN))
    np.testing.assert_array_equal(validation, _read(indexed, "validation", 0.2))
    np.testing.assert_array_equal(train, _read(indexed, "train", 0.2))
    assert set(validation) != set(_read(indexed, "validation", 0.2, seed=1))
    # Without a fraction, train is the whole set.
    np.testing.assert_array_equal(_read(indexed, "train", 0.0), np.arange(NUM_TRAIN))


def test_in_memory_training_stream_never_sees_validation_examples(indexed):
    stream = data.load(
        indexed, "train", batch_size=8, is_training=True, seed=3, validation_fraction=0.2
    )
    seen = {int(i) for x, _ in stream.take(20) for i in x.numpy()[:, 0]}  # 4 epochs
    assert seen == set(_read(indexed, "train", 0.2))


def test_holdout_indices_against_a_permutation():
    train, validation = arrays.holdout_indices(10, 3, seed=5)
    permutation = np.random.default_rng(5).permutation(10)
    np.testing.assert_array_equal(validation, np.sort(permutation[:3]))
    np.testing.assert_array_equal(np.sort(np.concatenate([train, validation])), np.arange(10))


@pytest.mark.parametrize(
    "name, fraction, num_train, tfds_train",
    [
        ("cifar10", 0.1, 50_000, "train"),
        ("cifar10_n", 0.02, 50_000, "train"),
        ("imagenet2012", 0.01, 1_281_167, "train"),
    ],
)
def test_tfds_sets_hold_out_the_tail_of_train(name, fraction, num_train, tfds_train):
    held_out = int(num_train * fraction)  # uncertainty-baselines get_validation_percent_split
    kept = num_train - held_out
    info = data.get_info(name, validation_fraction=fraction)
    assert info.num_examples["train"] == kept and info.num_examples["validation"] == held_out
    assert info.num_examples["test"] == data.get_info(name).num_examples["test"]

    asked = []

    def as_dataset(builder, split, **kwargs):
        del kwargs
        asked.append(split)
        labels = {f: np.zeros(2, np.int64) for f in ("label", "worse_label")}
        if builder.name == "imagenet2012":  # JPEG bytes, as with SkipDecoding
            jpeg = tf.io.encode_jpeg(np.zeros((8, 8, 3), np.uint8)).numpy()
            return tf.data.Dataset.from_tensor_slices({"image": [jpeg, jpeg], **labels})
        return tf.data.Dataset.from_tensor_slices(
            {"image": np.zeros((2, 32, 32, 3), np.uint8), **labels}
        )

    with tfds.testing.mock_data(as_dataset_fn=as_dataset):
        for split in ("train", "validation", "test"):
            data.load(
                name,
                split,
                batch_size=2,
                is_training=split == "train",
                validation_fraction=fraction,
                validation_seed=7,
            )
        data.load(name, "train", batch_size=2, is_training=True)
    test_split = "validation" if name == "imagenet2012" else "test"
    assert asked == [
        f"{tfds_train}[:{kept}]",
        f"{tfds_train}[{kept}:]",
        test_split,
        tfds_train,
    ]


def test_cifar10_n_validation_uses_the_training_label_field():
    def as_dataset(builder, split, **kwargs):
        del builder, split, kwargs
        return tf.data.Dataset.from_tensor_slices(
            {
                "image": np.zeros((3, 32, 32, 3), np.uint8),
                "label": np.zeros(3, np.int64),
                "aggre_label": np.full(3, 4, np.int64),
            }
        )

    with tfds.testing.mock_data(as_dataset_fn=as_dataset):
        dataset = data.load(
            "cifar10_n",
            "validation",
            batch_size=3,
            is_training=False,
            label_field="aggre_label",
            validation_fraction=0.1,
        )
        (_, y), *_ = list(dataset)
    np.testing.assert_array_equal(y.numpy(), [4, 4, 4])


@pytest.mark.parametrize(
    "name, split, fraction, match",
    [
        ("cifar10", "validation", 0.0, r"no 'validation' split \(pass validation_fraction"),
        ("cifar10", "train", 1.0, r"validation_fraction must be a float in \[0, 1\)"),
        ("cifar10", "train", -0.1, "validation_fraction must be"),
        ("cifar10", "train", True, "validation_fraction must be"),
        ("cifar10", "train", 1e-6, "holds out 0"),
        ("imagenet_a", "test", 0.1, "no train split"),
    ],
)
def test_bad_validation_arguments_raise_before_any_tfds_work(
    monkeypatch, name, split, fraction, match
):
    def forbidden(*args, **kwargs):
        raise AssertionError("TFDS was touched before the arguments were checked")

    monkeypatch.setattr(data._tfds_sets.tfds, "builder", forbidden)
    with pytest.raises(ValueError, match=match):
        data.load(name, split, batch_size=4, is_training=False, validation_fraction=fraction)
    with pytest.raises(ValueError, match="validation_seed"):
        data.load("cifar10", "train", batch_size=4, is_training=True, validation_seed=-1)
