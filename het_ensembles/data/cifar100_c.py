"""CIFAR-100-C (Hendrycks & Dietterich, ICLR 2019), read from files the user downloaded.

CIFAR-100-C is not in TFDS. uncertainty-baselines evaluates it from a folder given by its
`--cifar100_c_path` flag (`baselines/cifar/utils.py`); so do we (`het-ensembles evaluate
--cifar100_c_path DIR`, `data.load(name, ..., data_dir=DIR)`). The folder holds either

- the authors' release (https://zenodo.org/record/3555552, `CIFAR-100-C.tar` extracted):
  `<corruption>.npy`, uint8 [50000, 32, 32, 3], the 10000 CIFAR-100 test images at
  severity 1, then 2, ..., 5, and `labels.npy` [50000]; or
- uncertainty-baselines' TFRecord files `<corruption>-<severity>.tfrecords` (its
  `datasets/cifar100_corrupted.py`: a `tf.train.Example` per image, `image` the raw uint8
  bytes of a 32x32x3 image and `label` an int64).

Names: `cifar100_corrupted/<corruption>_<severity>` with the 17 corruptions uncertainty-baselines
evaluates (`load_corrupted_test_info("cifar100")`: the released files less `motion_blur` and
`snow`, which ub leaves out; they load too, but `--suite cifar100` and the cNLL / cA / cCE summary
use the 17). Each set has a "test" split of 10000 images with 100-class labels, preprocessed as
the CIFAR test set (`image_preprocessing.cifar_image`: [0, 1], then the CIFAR-10 mean / std, as
ub's `Cifar100CorruptedDataset` with `normalize=True`).
"""

import os

import numpy as np
import tensorflow as tf

from het_ensembles.data import image_preprocessing, pipeline

PREFIX = "cifar100_corrupted/"
FAMILY = "cifar100_corrupted"
# uncertainty-baselines baselines/cifar/utils.py load_corrupted_test_info("cifar100").
BENCHMARK_CORRUPTIONS = (
    "brightness",
    "contrast",
    "defocus_blur",
    "elastic_transform",
    "fog",
    "frost",
    "glass_blur",
    "gaussian_blur",
    "gaussian_noise",
    "impulse_noise",
    "jpeg_compression",
    "pixelate",
    "saturate",
    "shot_noise",
    "spatter",
    "speckle_noise",
    "zoom_blur",
)
EXTRA_CORRUPTIONS = ("motion_blur", "snow")  # in the release, not in ub's list
SEVERITIES = (1, 2, 3, 4, 5)
NUM_CLASSES = 100
IMAGE_SIZE = 32
EXAMPLES_PER_SEVERITY = 10_000
RELEASE_URL = "https://zenodo.org/record/3555552"


def is_name(name):
    return isinstance(name, str) and name.startswith(PREFIX)


def names(corruptions=BENCHMARK_CORRUPTIONS, severities=SEVERITIES):
    """`cifar100_corrupted/<corruption>_<severity>` names, corruption-major."""
    return [f"{PREFIX}{c}_{s}" for c in corruptions for s in severities]


def parse(name):
    """`(corruption, severity)` of a name.

    Raises:
      ValueError: a malformed name, an unknown corruption or a severity outside 1..5.
    """
    corruption, _, severity = name[len(PREFIX) :].rpartition("_")
    allowed = BENCHMARK_CORRUPTIONS + EXTRA_CORRUPTIONS
    if corruption not in allowed or severity not in {str(s) for s in SEVERITIES}:
        raise ValueError(
            f"Expected a name '{PREFIX}<corruption>_<severity>' with corruption in "
            f"{list(allowed)} and severity in 1..5. Received: name={name!r}"
        )
    return corruption, int(severity)


def _files(directory, corruption, severity):
    """`("npy", images, labels)` or `("tfrecord", path)` for one set in `directory`.

    Raises:
      ValueError: no folder given, or the folder holds neither format.
    """
    if not directory:
        raise ValueError(
            "CIFAR-100-C is not in TFDS: point to the folder of its files with "
            "--cifar100_c_path DIR (data.load(..., data_dir=DIR)): the authors' release "
            f"({RELEASE_URL}, '<corruption>.npy' + 'labels.npy') or uncertainty-baselines' "
            "'<corruption>-<severity>.tfrecords'. Received: cifar100_c_path=None"
        )
    npy = os.path.join(directory, f"{corruption}.npy")
    labels = os.path.join(directory, "labels.npy")
    tfrecord = os.path.join(directory, f"{corruption}-{severity}.tfrecords")
    if os.path.exists(npy) and os.path.exists(labels):
        return ("npy", npy, labels)
    if os.path.exists(tfrecord):
        return ("tfrecord", tfrecord)
    raise ValueError(
        f"No CIFAR-100-C files for {corruption} severity {severity} in {directory}: expected "
        f"{npy} and {labels} (the authors' release, {RELEASE_URL}) or {tfrecord} "
        f"(uncertainty-baselines' format). Received: cifar100_c_path={directory!r}"
    )


def read_npy(images_path, labels_path, severity):
    """The 10000 images and labels of one severity from the authors' `.npy` files.

    Raises:
      ValueError: files whose shapes or dtypes are not the release's (named in the message).
    """
    images = np.load(images_path, mmap_mode="r")
    labels = np.load(labels_path, mmap_mode="r")
    expected = (EXAMPLES_PER_SEVERITY * len(SEVERITIES), IMAGE_SIZE, IMAGE_SIZE, 3)
    if images.shape != expected or images.dtype != np.uint8:
        raise ValueError(
            f"{images_path} is not a CIFAR-100-C image file. Received: shape {images.shape}, "
            f"dtype {images.dtype}; expected: shape {expected}, dtype uint8"
        )
    if labels.shape != expected[:1]:
        raise ValueError(
            f"{labels_path} is not CIFAR-100-C's labels file. Received: shape {labels.shape}; "
            f"expected: {expected[:1]}"
        )
    rows = slice(EXAMPLES_PER_SEVERITY * (severity - 1), EXAMPLES_PER_SEVERITY * severity)
    chunk_labels = np.asarray(labels[rows]).astype(np.int64)
    if chunk_labels.min() < 0 or chunk_labels.max() >= NUM_CLASSES:
        raise ValueError(
            f"{labels_path} holds labels outside [0, {NUM_CLASSES}). Received: "
            f"min {chunk_labels.min()}, max {chunk_labels.max()}"
        )
    return np.ascontiguousarray(images[rows]), chunk_labels.astype(np.int32)


def _parse_tfrecord(record):
    """uncertainty-baselines' `Cifar100CorruptedDataset` example parser: raw bytes, int64."""
    features = tf.io.parse_single_example(
        record,
        {
            "image": tf.io.FixedLenFeature([], tf.string),
            "label": tf.io.FixedLenFeature([], tf.int64),
        },
    )
    image = tf.reshape(tf.io.decode_raw(features["image"], tf.uint8), [IMAGE_SIZE, IMAGE_SIZE, 3])
    return {"image": image, "label": tf.cast(features["label"], tf.int32)}


def load(name, split, *, batch_size, image_size, data_dir, drop_remainder, strategy, **unused):
    """The test pipeline of one CIFAR-100-C set (arguments validated by `data.load`).

    Args:
      data_dir: the folder of the CIFAR-100-C files (see the module docstring).

    Raises:
      ValueError: no folder, missing or malformed files.
    """
    del split, unused  # "test" (checked by `data.load`); is_training, seed, holdout
    corruption, severity = parse(name)
    found = _files(data_dir, corruption, severity)
    if found[0] == "npy":
        images, labels = read_npy(found[1], found[2], severity)

        def make_source():
            return tf.data.Dataset.from_tensor_slices({"image": images, "label": labels})

    else:

        def make_source():
            return tf.data.TFRecordDataset(found[1]).map(_parse_tfrecord)

    size = IMAGE_SIZE if image_size is None else image_size

    def preprocess(example, example_seed):
        image = image_preprocessing.cifar_image(
            example["image"], IMAGE_SIZE, size, False, example_seed
        )
        return image, example["label"]

    return pipeline.build(
        make_source,
        preprocess,
        batch_size=batch_size,
        is_training=False,
        seed=0,
        drop_remainder=drop_remainder,
        shuffle_buffer=1,
        strategy=strategy,
    )
