"""`preprocessing=cifar` on streaming sets: uncertainty-baselines' CIFAR pipeline, by hand."""

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from het_ensembles import data
from het_ensembles.data import image_preprocessing

MEAN = np.array([0.4914, 0.4822, 0.4465])  # uncertainty-baselines datasets/cifar.py
STD = np.array([0.2470, 0.2435, 0.2616])
COLOURS = {"red": (200, 30, 10), "teal": (0, 128, 128)}


@pytest.fixture
def folder(tmp_path):
    for split, count in (("train", 4), ("test", 2)):
        for name, colour in COLOURS.items():
            directory = tmp_path / split / name
            directory.mkdir(parents=True)
            for i in range(count):  # uniform images of several sizes: resizing keeps the colour
                size = (40 + 8 * i, 36)
                Image.new("RGB", size, colour).save(directory / f"{i}.png")
    return tmp_path


def test_cifar_preprocessing_normalises_with_cifar_statistics(folder):
    name = f"folder:{folder}?preprocessing=cifar"
    info = data.get_info(name)
    assert info.input_shape == (32, 32, 3)
    xs, ys = [], []
    for x, y in data.load(name, "test", batch_size=8, is_training=False):
        xs.append(np.asarray(x))
        ys.append(np.asarray(y))
    x, y = np.concatenate(xs), np.concatenate(ys)
    assert x.shape == (4, 32, 32, 3)
    for image, label in zip(x, y):
        colour = np.array(COLOURS[info.class_names[label]]) / 255.0
        np.testing.assert_allclose(
            image, np.broadcast_to((colour - MEAN) / STD, image.shape), atol=1e-5
        )


def test_cifar_training_stream_pads_crops_and_flips(folder):
    name = f"folder:{folder}?preprocessing=cifar"
    x, _ = next(iter(data.load(name, "train", batch_size=8, is_training=True, seed=1)))
    x = np.asarray(x)
    assert x.shape == (8, 32, 32, 3)
    # A 4-pixel zero pad cropped back to 32: every image keeps its colour in the interior, and
    # padded border pixels (black before normalising) appear in some of the crops.
    black = (0.0 - MEAN) / STD
    assert any(
        np.allclose(img[0, :, :], black, atol=1e-5) or np.allclose(img[:, 0], black, atol=1e-5)
        for img in x
    )


def test_cifar_image_matches_the_tfds_cifar_path():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    encoded = tf.io.encode_png(image)
    ours = image_preprocessing.cifar_image_any_format(encoded, 32, False)
    expected = (image / 255.0 - MEAN) / STD
    np.testing.assert_allclose(np.asarray(ours), expected, atol=1e-5)


def test_unknown_preprocessing_is_named(folder):
    with pytest.raises(ValueError, match="preprocessing.*imagenet or cifar"):
        data.get_info(f"folder:{folder}?preprocessing=vgg")
