"""Datasets by name: TFDS sets with uncertainty-baselines preprocessing, embedded sets, npz.

Every dataset is reached through `get_info(name)` and `load(name, split, ...)`, so the trainer,
the evaluator and the demo never special-case one. Names:

- TFDS (`tfds_sets`): `imagenet2012`, `imagenet2012_corrupted/<corruption>_<severity>`,
  the robustness test sets `imagenet_a`, `imagenet_r`, `imagenet_v2` (matched-frequency;
  `imagenet_v2/<variant>`), `cifar10_corrupted/<corruption>_<severity>` (CIFAR-10-C), and
  `cifar10`, `cifar100`, `cifar10_n` (noisy label field chosen with `label_field`).
- From files the user downloaded (`cifar100_c`): `cifar100_corrupted/<corruption>_<severity>`
  (CIFAR-100-C, not in TFDS; `data_dir` is the folder of its files).
  ImageNet-A and ImageNet-R carry 1000-class labels but use 200 classes:
  `get_info(name).class_subset`, and `restrict_log_probs` / `subset_labels` to score a
  1000-way model on those 200 classes as their authors do (uncertainty-baselines' leaderboard,
  via robustness-metrics, scores ImageNet-A 1000-way: see `class_subsets`).
- Embedded (no download): `noisy_digits`, `synthetic`.
- Bring your own: `npz:<path>` with arrays `x_train, y_train, x_test, y_test` (optional
  `y_test_clean`, `class_names`).
- Streaming, from files, never loaded into memory (`streaming`; options after `?`, see
  `spec_options`): `folder:<dir>` (one sub-folder per class under `train/` and `test/`),
  `tfrecord:<dir>` (TF-slim / TPU ImageNet shards, single- or multi-label),
  `tfds:<name>[/<config>]` (any TFDS image classification set), `webvision:<root>`
  (WebVision 1.0's own layout), e.g. `tfrecord:/data/in21k?label_offset=1&test_fraction=0.04`.
  `test_fraction` carves a test split out of a set that has only train.

Embedded and npz sets share one in-memory path (`arrays`); `register_arrays(name, fn)` adds one.
The shared tf.data stages (shuffle, repeat, augmentation seeds, batching, prefetch, per-replica
batching) live in `pipeline`.

Splits: `train`, `test`, and `test_clean` (test inputs with clean labels) where a set has them
(`"test_clean" in get_info(name).num_examples`). For ImageNet and ImageNet-C, `test` is the TFDS
`validation` split. `validation` is held out of `train` when `validation_fraction > 0` is
passed to `get_info` and `load` (the same value to both): `validation_size(num_train, f)`
examples (uncertainty-baselines' `int(num_train * validation_percent)`), and `train` keeps the
rest. TFDS sets hold out the last examples of the TFDS train split (`train[:n]` /
`train[n:]`, as uncertainty-baselines' `train_proportion`); in-memory sets a random subset
fixed by `validation_seed` (a permutation of the train arrays; streaming sets: of the train
positions left after any test carve-out). Either way the two are
disjoint, their union is the original train split, and the same arguments give the same split
in every run. Validation labels are the training labels (for `cifar10_n` the noisy
`label_field`; for `noisy_digits` the noisy labels). Batches are `(x, y)`: x float32, y int32 [B] (or multi-hot [B, K] for
multilabel sets).

Batch size: `load(..., batch_size=...)` takes the *global* batch size. Under a `tf.distribute`
strategy each replica gets `batch_size // num_replicas_in_sync` examples per step, so the
caller (the trainer) passes `per_core_batch_size * strategy.num_replicas_in_sync`, as
uncertainty-baselines does.
"""

import dataclasses
import importlib.util
import numbers

from het_ensembles.data import arrays as _arrays
from het_ensembles.data import cifar100_c as _cifar100_c
from het_ensembles.data import streaming as _streaming
from het_ensembles.data import tfds_sets as _tfds_sets
from het_ensembles.data.class_subsets import IMAGENET_A_INDICES as IMAGENET_A_INDICES
from het_ensembles.data.class_subsets import IMAGENET_R_INDICES as IMAGENET_R_INDICES
from het_ensembles.data.class_subsets import restrict_log_probs as restrict_log_probs
from het_ensembles.data.class_subsets import subset_labels as subset_labels

SPLITS = ("train", "validation", "test", "test_clean")


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """What a model and the evaluator need to know about a dataset.

    Attributes:
      name: the dataset name as given to `load`.
      num_classes: number of classes K.
      input_shape: shape of one example, e.g. (224, 224, 3) or (64,).
      num_examples: split name -> number of examples.
      class_names: optional names of the K classes (used by the covariance analysis).
      multilabel: whether labels are multi-hot [K] instead of one integer.
      class_subset: None, or the sorted class indices the labels can take when the set uses
        only some of the K classes (ImageNet-A / ImageNet-R: 200 of 1000).
      skip_corrupt: a streaming set named with `skip_corrupt=true`: corrupt images are
        skipped, so a split may yield fewer examples than `num_examples`; callers report the
        difference as `num_skipped`.
    """

    name: str
    num_classes: int
    input_shape: tuple
    num_examples: dict
    class_names: tuple | None = None
    multilabel: bool = False
    class_subset: tuple | None = None
    skip_corrupt: bool = False


def register_arrays(name, fn):
    """Registers an in-memory dataset, loaded lazily.

    Args:
      name: the dataset name for `get_info` / `load` (no '/', not starting with 'npz:').
      fn: `() -> dict` of numpy arrays `x_train, y_train, x_test, y_test` and optionally
        `y_test_clean` and `class_names`. Called on first use; the result is validated and
        cached. Registering a name again replaces the set.

    Raises:
      ValueError: if `name` or `fn` is malformed.
    """
    _arrays.register(name, fn)


def known_names():
    """The dataset names `load` accepts (ImageNet-C and npz names as patterns)."""
    return [
        "imagenet2012",
        "imagenet2012_corrupted/<corruption>_<severity>",
        "imagenet_a",
        "imagenet_r",
        "imagenet_v2",
        "imagenet_v2/<variant>",
        "cifar10_corrupted/<corruption>_<severity>",
        "cifar100_corrupted/<corruption>_<severity>",
        "cifar10",
        "cifar100",
        "cifar10_n",
        "npz:<path>",
        *_streaming.KNOWN_PATTERNS,
        *_arrays.registered_names(),
    ]


def _check_name(name):
    if isinstance(name, str) and _streaming.is_streaming_name(name):
        _streaming.spec_options.parse(name)  # checks the options
        return
    if _cifar100_c.is_name(name):
        _cifar100_c.parse(name)  # checks corruption and severity
        return
    if not isinstance(name, str) or not (_tfds_sets.is_tfds_name(name) or _arrays.is_known(name)):
        raise ValueError(f"Unknown dataset. Received: name={name!r}; allowed: {known_names()}")
    if _tfds_sets.is_tfds_name(name):
        _tfds_sets.spec(name)  # checks corruption, severity and ImageNetV2 variant


def validation_size(num_train, validation_fraction):
    """How many of `num_train` training examples are held out for validation.

    `int(num_train * validation_fraction)`, as uncertainty-baselines' `validation_percent`
    (`1 - train_proportion`); 0 for a fraction of 0.

    Raises:
      ValueError: for a fraction outside [0, 1), or one that leaves no validation or no
        training example.
    """
    fraction = validation_fraction
    if (
        isinstance(fraction, bool)
        or not isinstance(fraction, numbers.Real)
        or not 0 <= fraction < 1
    ):
        raise ValueError(
            "validation_fraction must be a float in [0, 1). Received: "
            f"validation_fraction={fraction!r}"
        )
    size = int(num_train * float(fraction))
    if fraction > 0 and not 1 <= size < num_train:
        raise ValueError(
            f"validation_fraction={fraction!r} of {num_train} training examples holds out "
            f"{size}; allowed: a fraction leaving at least one validation and one training "
            "example"
        )
    return size


def get_info(name, *, data_dir=None, label_field=None, image_size=None, validation_fraction=0.0):
    """Describes dataset `name` without building a pipeline.

    Args:
      name: a dataset name (see module docstring).
      data_dir: TFDS data directory, read by `tfds:` names (the fixed TFDS names use the
        published sizes).
      label_field: for `cifar10_n`, the noisy training label field.
      image_size: the `image_size` that will be passed to `load` (sets `input_shape`).
      validation_fraction: the fraction of `train` held out as `validation` (see the module
        docstring); 0 (default): no validation split.

    Returns:
      A `DatasetInfo`; `num_examples` has a key for every split the set has (with a
      validation fraction, `validation` and the reduced `train`).

    Raises:
      ValueError: unknown name, a `label_field` that does not apply, a bad `image_size` or
        `validation_fraction` (or one for a set without a train split), or malformed arrays of
        an in-memory set.
    """
    _check_name(name)
    _check_image_size(image_size)
    if _streaming.is_streaming_name(name):
        _check_no_label_field(name, label_field)
        fields = _streaming.info_fields(name, data_dir=data_dir, image_size=image_size)
        fields["num_examples"] = _with_validation(name, fields["num_examples"], validation_fraction)
        return DatasetInfo(name=name, **fields)
    if _cifar100_c.is_name(name):
        _check_no_label_field(name, label_field)
        size = _cifar100_c.IMAGE_SIZE if image_size is None else image_size
        return DatasetInfo(
            name=name,
            num_classes=_cifar100_c.NUM_CLASSES,
            input_shape=(size, size, 3),
            num_examples=_with_validation(
                name, {"test": _cifar100_c.EXAMPLES_PER_SEVERITY}, validation_fraction
            ),
            class_names=_tfds_sets.CIFAR100_CLASS_NAMES,
        )
    if _tfds_sets.is_tfds_name(name):
        _tfds_sets.check_label_field(name, label_field)
        spec = _tfds_sets.spec(name)
        return DatasetInfo(
            name=name,
            num_classes=spec.num_classes,
            input_shape=_tfds_sets.input_shape(name, image_size),
            num_examples=_with_validation(name, spec.num_examples, validation_fraction),
            class_names=_tfds_sets.class_names(name),
            class_subset=spec.class_subset,
        )
    _check_no_label_field(name, label_field)
    data = _arrays.get(name)
    shape = data["x_train"].shape[1:]
    if len(shape) == 3 and image_size is not None:
        shape = (image_size, image_size, shape[2])
    num_examples = {"train": len(data["x_train"]), "test": len(data["x_test"])}
    if "y_test_clean" in data:
        num_examples["test_clean"] = len(data["x_test"])
    return DatasetInfo(
        name=name,
        num_classes=data["num_classes"],
        input_shape=tuple(int(d) for d in shape),
        num_examples=_with_validation(name, num_examples, validation_fraction),
        class_names=data["class_names"],
        multilabel=data["multilabel"],
    )


def load(
    name,
    split,
    *,
    batch_size,
    is_training,
    seed=0,
    image_size=None,
    data_dir=None,
    label_field=None,
    drop_remainder=None,
    strategy=None,
    validation_fraction=0.0,
    validation_seed=0,
):
    """A `tf.data` pipeline of `(x, y)` batches for one split of dataset `name`.

    Args:
      name: a dataset name (see module docstring).
      split: "train", "validation" (with `validation_fraction > 0`), "test" or "test_clean"
        (where the set has clean labels).
      batch_size: the global batch size (see module docstring for strategies).
      is_training: shuffle (deterministic given `seed`), augment and repeat forever; otherwise
        one pass in order with the last partial batch kept, so every example counts once.
      seed: non-negative int; the shuffle order and augmentations depend on it only.
      image_size: side of the square images the model sees (default: the set's native size,
        224 for ImageNet). Small values make smoke tests cheap. Ignored for feature vectors.
      data_dir: TFDS data directory; for `cifar100_corrupted/...`, the folder of the
        CIFAR-100-C files (`cifar100_c`).
      label_field: for `cifar10_n`, the training label field ("worse_label" (default),
        "aggre_label", "random_label1".."random_label3", or the clean "label").
      drop_remainder: drop the last partial batch; default `is_training`.
      strategy: optional `tf.distribute.Strategy`; then the result is a distributed dataset of
        per-replica batches (`keras.Model.fit` accepts it).
      validation_fraction: the fraction of `train` held out as `validation`; with it, `train`
        reads only the rest (see the module docstring). Pass the same value for both splits.
      validation_seed: non-negative int; which examples of an in-memory or streaming set are
        held out (the fixed TFDS names hold out the last ones, whatever the seed).

    Returns:
      A `tf.data.Dataset` (or distributed dataset) of `(x float32 [B, ...], y int32 [B])`.

    Raises:
      ValueError: for an unknown name or split, a bad label_field, batch_size, seed,
        image_size, validation_fraction or validation_seed, or a batch size not divisible by the number of replicas. Raised before
        any TensorFlow work.
    """
    _check_name(name)
    if split not in SPLITS:
        raise ValueError(f"Unknown split. Received: split={split!r}; allowed: {list(SPLITS)}")
    if not isinstance(batch_size, numbers.Integral) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1. Received: batch_size={batch_size}")
    if not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0. Received: seed={seed!r}")
    if not isinstance(validation_seed, numbers.Integral) or validation_seed < 0:
        raise ValueError(
            f"validation_seed must be an integer >= 0. Received: validation_seed={validation_seed!r}"
        )
    _check_image_size(image_size)
    if strategy is not None and batch_size % strategy.num_replicas_in_sync:
        raise ValueError(
            "batch_size is the global batch size and must be divisible by the number of "
            f"replicas ({strategy.num_replicas_in_sync}). Received: batch_size={batch_size}"
        )
    available = get_info(
        name, data_dir=data_dir, label_field=label_field, validation_fraction=validation_fraction
    ).num_examples
    if split not in available:
        hint = " (pass validation_fraction > 0 for one)" if split == "validation" else ""
        raise ValueError(
            f"Dataset {name} has no {split!r} split{hint}. Received: split={split!r}; allowed: "
            f"{sorted(available)}"
        )
    holdout = None  # (validation examples, seed): where `train` and `validation` are cut
    if "validation" in available and split in ("train", "validation"):
        holdout = (available["validation"], int(validation_seed))
    if drop_remainder is None:
        drop_remainder = bool(is_training)
    common = {
        "batch_size": int(batch_size),
        "is_training": bool(is_training),
        "seed": int(seed),
        "image_size": image_size,
        "drop_remainder": drop_remainder,
        "strategy": strategy,
        "holdout": holdout,
    }
    if _tfds_sets.is_tfds_name(name):
        return _tfds_sets.load(name, split, data_dir=data_dir, label_field=label_field, **common)
    if _streaming.is_streaming_name(name):
        return _streaming.load(name, split, data_dir=data_dir, **common)
    if _cifar100_c.is_name(name):
        return _cifar100_c.load(name, split, data_dir=data_dir, **common)
    return _arrays.load(name, split, **common)


def _with_validation(name, num_examples, validation_fraction):
    """`num_examples` with `validation` held out of `train` (unchanged for a fraction of 0)."""
    num_examples = dict(num_examples)
    if validation_fraction == 0 and not isinstance(validation_fraction, bool):
        return num_examples
    if "train" not in num_examples:
        raise ValueError(
            f"Dataset {name} has no train split to hold a validation split out of. Received: "
            f"validation_fraction={validation_fraction!r}; allowed: 0"
        )
    size = validation_size(num_examples["train"], validation_fraction)
    num_examples["train"] -= size
    num_examples["validation"] = size
    return num_examples


def _check_image_size(image_size):
    if image_size is not None and (not isinstance(image_size, numbers.Integral) or image_size < 1):
        raise ValueError(
            f"image_size must be None or an integer >= 1. Received: image_size={image_size!r}"
        )


def _check_no_label_field(name, label_field):
    if label_field is not None:
        raise ValueError(
            f"label_field applies only to cifar10_n; {name} has one training label. "
            f"Received: label_field={label_field!r}"
        )


# The embedded sets register themselves at import (written by the demo helper; imported only
# once their modules exist so that this package works before they land).
for _module in ("noisy_digits", "synthetic", "multilabel_digits"):
    if importlib.util.find_spec(f"het_ensembles.data.{_module}") is not None:
        importlib.import_module(f"het_ensembles.data.{_module}")
