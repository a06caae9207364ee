"""CIFAR-100-C from the user's files: the authors' `.npy` release and uncertainty-baselines'
TFRecords, checked against the definition (severity s is rows 10000 (s - 1) .. 10000 s of the
release; pixels / 255 normalised with the CIFAR-10 mean / std, as ub's
`Cifar100CorruptedDataset`), and the CIFAR-100 config's parameter count against a closed form."""

import numpy as np
import pytest

from het_ensembles import data
from het_ensembles.data import cifar100_c

MEAN = np.array([0.4914, 0.4822, 0.4465])  # ub datasets/cifar100_corrupted.py
STD = np.array([0.2470, 0.2435, 0.2616])
PER_SEVERITY = cifar100_c.EXAMPLES_PER_SEVERITY


def _release(directory, corruption="brightness", seed=0):
    """A release-shaped `<corruption>.npy` and `labels.npy` with different data per severity."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (5 * PER_SEVERITY, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, 100, 5 * PER_SEVERITY).astype(np.uint8)
    np.save(directory / f"{corruption}.npy", images)
    np.save(directory / "labels.npy", labels)
    return images, labels


def _all(dataset):
    xs, ys = zip(*[(np.asarray(x), np.asarray(y)) for x, y in dataset])
    return np.concatenate(xs), np.concatenate(ys)


def test_npy_release_reads_the_severity_rows_normalised_as_ub(tmp_path):
    images, labels = _release(tmp_path)
    x, y = _all(
        data.load(
            "cifar100_corrupted/brightness_2",
            "test",
            batch_size=1000,
            is_training=False,
            data_dir=str(tmp_path),
        )
    )
    rows = slice(PER_SEVERITY, 2 * PER_SEVERITY)
    np.testing.assert_array_equal(y, labels[rows])
    np.testing.assert_allclose(x, (images[rows] / 255.0 - MEAN) / STD, atol=1e-5)
    info = data.get_info("cifar100_corrupted/brightness_2")
    assert (info.num_classes, info.input_shape, info.num_examples) == (
        100,
        (32, 32, 3),
        {"test": PER_SEVERITY},
    )
    assert info.class_names[:2] == ("apple", "aquarium_fish")


def test_ub_tfrecords_parse_as_ub_writes_them(tmp_path):
    import tensorflow as tf

    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (7, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, 100, 7)
    with tf.io.TFRecordWriter(str(tmp_path / "fog-4.tfrecords")) as writer:
        for image, label in zip(images, labels):
            feature = {
                "image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[image.tobytes()])),
                "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[int(label)])),
            }
            example = tf.train.Example(features=tf.train.Features(feature=feature))
            writer.write(example.SerializeToString())
    x, y = _all(
        data.load(
            "cifar100_corrupted/fog_4",
            "test",
            batch_size=4,
            is_training=False,
            data_dir=str(tmp_path),
        )
    )
    np.testing.assert_array_equal(y, labels)
    np.testing.assert_allclose(x, (images / 255.0 - MEAN) / STD, atol=1e-5)


def test_names_follow_ub_corruption_list():
    # ub baselines/cifar/utils.py load_corrupted_test_info("cifar100"): 17 corruptions x 5.
    names = cifar100_c.names()
    assert len(names) == 85 and names[0] == "cifar100_corrupted/brightness_1"
    assert "cifar100_corrupted/motion_blur_1" not in names
    assert cifar100_c.parse("cifar100_corrupted/motion_blur_3") == ("motion_blur", 3)


@pytest.mark.parametrize(
    "name, data_dir, match",
    [
        ("cifar100_corrupted/blur_1", None, "corruption in"),
        ("cifar100_corrupted/fog_6", None, "severity in 1..5"),
        ("cifar100_corrupted/fog_1", None, "--cifar100_c_path"),
        ("cifar100_corrupted/fog_1", "EMPTY", "No CIFAR-100-C files for fog severity 1"),
    ],
)
def test_bad_names_and_missing_files_are_named(name, data_dir, match, tmp_path):
    data_dir = str(tmp_path) if data_dir == "EMPTY" else data_dir
    with pytest.raises(ValueError, match=match):
        data.load(name, "test", batch_size=2, is_training=False, data_dir=data_dir)


def test_files_of_the_wrong_shape_are_refused_by_name(tmp_path):
    np.save(tmp_path / "fog.npy", np.zeros((10, 32, 32, 3), np.uint8))
    np.save(tmp_path / "labels.npy", np.zeros(10, np.uint8))
    with pytest.raises(ValueError, match=r"fog\.npy is not a CIFAR-100-C image file"):
        data.load(
            "cifar100_corrupted/fog_1", "test", batch_size=2, is_training=False, data_dir=tmp_path
        )
    with pytest.raises(ValueError, match="has no 'train' split"):
        data.load("cifar100_corrupted/fog_1", "train", batch_size=2, is_training=False)


def test_cifar100_config_has_the_published_37m_parameters():
    """Published: 37M (ub baselines/cifar/README.md, CIFAR-100 "Heteroscedastic"), 148M for 4.

    Closed form: WRN-28-10's trainable trunk is 36,472,784 (the usual 36,479,194 of WRN-28-10
    on CIFAR-10 less its 640 x 10 + 10 dense top), plus Keras' non-trainable batch-norm moving
    mean and variance (8,976 channels: 16 + 160 + 3 x 320, 160 + 320 + 3 x 640, 320 + 640 +
    3 x 1280, 640), plus the head: location and diagonal-scale dense layers 2 x (640 x 100 +
    100) and the factor layer 640 x 600 + 600 (R = 6).
    """
    from het_ensembles import training
    from het_ensembles.training import trainer

    config = training.complete_config(
        training.load_config("configs/cifar/heteroscedastic_cifar100.py")
    )
    model = trainer.create_model(config, input_shape=(32, 32, 3), num_classes=100)
    head = 2 * (640 * 100 + 100) + 640 * 600 + 600
    assert model.count_params() == 36_472_784 + 2 * 8_976 + head == 37_003_536
    assert abs(model.count_params() - 37.0e6) < 0.1e6
    assert abs(4 * model.count_params() - 148e6) < 0.4e6
