"""In-memory sets (`register_arrays`, `npz:<path>`): round trips, batching, validation errors."""

import numpy as np
import pytest

from het_ensembles import data
from het_ensembles.data import arrays


def _arrays(num_train=10, num_test=7, shape=(4, 4, 1), num_classes=3, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "x_train": rng.normal(size=(num_train, *shape)).astype(np.float32),
        "y_train": rng.integers(0, num_classes, num_train),
        "x_test": rng.normal(size=(num_test, *shape)).astype(np.float32),
        "y_test": rng.integers(0, num_classes, num_test),
    }


@pytest.fixture
def registered():
    """Registers sets under unique names and removes them afterwards."""
    names = []

    def register(name, fn):
        data.register_arrays(name, fn)
        names.append(name)
        return name

    yield register
    for name in names:
        arrays._REGISTRY.pop(name, None)
        arrays._CACHE.pop(name, None)


def _collect(dataset, num_batches=-1):
    batches = [(x.numpy(), y.numpy()) for x, y in dataset.take(num_batches)]
    return [x for x, _ in batches], [y for _, y in batches]


def test_fn_is_called_lazily_once(registered):
    calls = []

    def fn():
        calls.append(1)
        return _arrays()

    name = registered("lazy_set", fn)
    assert calls == []
    data.get_info(name)
    _collect(data.load(name, "test", batch_size=4, is_training=False))
    assert calls == [1]


def test_npz_round_trip_in_order_with_clean_labels(tmp_path):
    values = _arrays(shape=(6, 5, 2))
    values["x_test"] = np.random.default_rng(1).integers(0, 256, (7, 6, 5, 2), dtype=np.uint8)
    values["x_train"] = values["x_train"].astype(np.uint8)
    values["y_test_clean"] = (values["y_test"] + 1) % 3
    values["class_names"] = np.array(["a", "b", "c", "d"])
    path = tmp_path / "set.npz"
    np.savez(path, **values)
    name = f"npz:{path}"

    info = data.get_info(name)
    assert info.num_classes == 4 and info.class_names == ("a", "b", "c", "d")
    assert info.input_shape == (6, 5, 2) and not info.multilabel
    assert info.num_examples == {"train": 10, "test": 7, "test_clean": 7}
    xs, ys = _collect(data.load(name, "test", batch_size=3, is_training=False))
    assert [len(y) for y in ys] == [3, 3, 1]  # last partial batch kept
    assert xs[0].dtype == np.float32 and ys[0].dtype == np.int32
    np.testing.assert_allclose(np.concatenate(xs), values["x_test"] / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(np.concatenate(ys), values["y_test"])
    _, ys = _collect(data.load(name, "test_clean", batch_size=3, is_training=False))
    np.testing.assert_array_equal(np.concatenate(ys), values["y_test_clean"])


def test_npz_is_reread_when_the_file_changes(tmp_path):
    path = tmp_path / "set.npz"
    np.savez(path, **_arrays(num_test=7))
    assert data.get_info(f"npz:{path}").num_examples["test"] == 7
    np.savez(path, **_arrays(num_test=5))
    assert data.get_info(f"npz:{path}").num_examples["test"] == 5


def test_feature_vectors_and_grayscale_images(registered):
    features = registered("features_set", lambda: _arrays(shape=(5,)))
    info = data.get_info(features, image_size=32)  # image_size does not apply to vectors
    assert info.input_shape == (5,)
    xs, _ = _collect(data.load(features, "train", batch_size=2, is_training=False))
    np.testing.assert_array_equal(np.concatenate(xs), _arrays(shape=(5,))["x_train"])

    gray = registered("gray_set", lambda: _arrays(shape=(4, 4)))
    assert data.get_info(gray).input_shape == (4, 4, 1)
    xs, _ = _collect(data.load(gray, "test", batch_size=7, is_training=False))
    assert xs[0].shape == (7, 4, 4, 1)


def test_image_size_resizes_images(registered):
    name = registered("resize_set", lambda: _arrays(shape=(4, 4, 1)))
    assert data.get_info(name, image_size=8).input_shape == (8, 8, 1)
    xs, _ = _collect(data.load(name, "test", batch_size=7, is_training=False, image_size=8))
    assert xs[0].shape == (7, 8, 8, 1)
    # Bilinear upsampling of a 4x4 image keeps its mean up to edge effects.
    original = _arrays(shape=(4, 4, 1))["x_test"]
    np.testing.assert_allclose(xs[0].mean(axis=(1, 2, 3)), original.mean(axis=(1, 2, 3)), atol=0.35)


def test_training_epochs_are_seeded_permutations_keeping_pairs(registered):
    values = _arrays(num_train=12, shape=(3,))
    values["x_train"][:, 0] = np.arange(12)  # x identifies the example
    name = registered("perm_set", lambda: values)

    def epochs(seed):
        return _collect(
            data.load(name, "train", batch_size=4, is_training=True, seed=seed), num_batches=6
        )

    xs, ys = epochs(seed=7)
    assert all(len(y) == 4 for y in ys)
    for epoch in (slice(0, 3), slice(3, 6)):  # 12 examples = 3 batches per epoch
        index = np.concatenate(xs[epoch])[:, 0].astype(int)
        assert sorted(index) == list(range(12))
        np.testing.assert_array_equal(np.concatenate(ys[epoch]), values["y_train"][index])
    first = np.concatenate(xs[0:3])[:, 0]
    second = np.concatenate(xs[3:6])[:, 0]
    assert not np.array_equal(first, second)  # reshuffled each epoch
    again, _ = epochs(seed=7)
    other, _ = epochs(seed=8)
    np.testing.assert_array_equal(np.concatenate(xs), np.concatenate(again))
    assert not np.array_equal(np.concatenate(xs), np.concatenate(other))


def test_multilabel_sets(registered):
    values = _arrays(shape=(3,))
    rng = np.random.default_rng(2)
    values["y_train"] = rng.integers(0, 2, (10, 4))
    values["y_test"] = rng.integers(0, 2, (7, 4))
    name = registered("multilabel_set", lambda: values)
    info = data.get_info(name)
    assert info.multilabel and info.num_classes == 4
    _, ys = _collect(data.load(name, "test", batch_size=7, is_training=False))
    assert ys[0].shape == (7, 4) and ys[0].dtype == np.int32
    np.testing.assert_array_equal(ys[0], values["y_test"])


def _broken(**changes):
    values = _arrays()
    values.update(changes)
    return {k: v for k, v in values.items() if v is not None}


@pytest.mark.parametrize(
    "values, match",
    [
        (_broken(y_test=None), "missing arrays"),
        (_broken(y_train=np.zeros(9, int)), "9 labels for 10 examples"),
        (_broken(x_train=np.zeros(10)), r"images \[N, H, W, C\] or features"),
        (_broken(x_test=np.zeros((7, 4, 4, 2))), "same example shape"),
        (_broken(y_train=np.zeros(10)), "integer labels"),
        (_broken(y_train=-np.ones(10, int)), "labels must lie in"),
        (_broken(y_test_clean=np.zeros(6, int)), "6 labels for 7 examples"),
        (_broken(class_names=np.array(["a"])), "class_names"),
        (_broken(y_train=np.full((10, 2), 3)), "multi-hot"),
    ],
)
def test_malformed_arrays_raise(registered, values, match):
    name = registered("broken_set", lambda: values)
    with pytest.raises(ValueError, match=match):
        data.get_info(name)


def test_errors_for_names_splits_and_label_field(registered, tmp_path):
    with pytest.raises(ValueError, match="not found"):
        data.get_info(f"npz:{tmp_path}/missing.npz")
    for name, content in (("text.npz", b"x_train,y_train\n1,2\n"), ("array.npz", None)):
        path = tmp_path / name
        if content is None:  # a single .npy array saved under an .npz name
            with open(path, "wb") as f:
                np.save(f, np.zeros(3))
        else:
            path.write_bytes(content)
        with pytest.raises(ValueError, match=rf"{name} is not a NumPy \.npz archive"):
            data.get_info(f"npz:{path}")
    with pytest.raises(ValueError, match="Unknown dataset"):
        data.get_info("never_registered")
    name = registered("plain_set", _arrays)
    with pytest.raises(ValueError, match="no 'test_clean' split"):
        data.load(name, "test_clean", batch_size=2, is_training=False)
    with pytest.raises(ValueError, match="label_field"):
        data.load(name, "train", batch_size=2, is_training=True, label_field="worse_label")
    with pytest.raises(ValueError, match="without '/'"):
        data.register_arrays("a/b", _arrays)
    with pytest.raises(ValueError, match="npz"):
        data.register_arrays("npz:x", _arrays)
    with pytest.raises(ValueError, match="callable"):
        data.register_arrays("not_callable", 3)
