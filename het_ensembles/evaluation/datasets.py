"""The datasets an evaluation runs on: names (or in-memory arrays) in, checked batches out.

`parse_datasets` turns what the user gave (`"noisy_digits:test_clean"`, `"imagenet2012_corrupted"`
for all 75 ImageNet-C sets, `{name: (x, y)}` arrays) into `EvalDataset`s; `batches` yields their
`(x, y)` batches and refuses non-finite inputs, which a model may silently map to finite logits
(CPU max/ReLU kernels can drop NaN), so the check cannot be left to the model.
"""

import dataclasses
import hashlib
import math
import os
import re

import numpy as np

from het_ensembles import data
from het_ensembles.data import cifar100_c, tfds_sets
from het_ensembles.evaluation import scoring
from het_ensembles.evaluation.scoring import (
    CIFAR10_CORRUPTED,
    CIFAR100_CORRUPTED,
    CORRUPTED,
    CORRUPTIONS,
    SEVERITIES,
)

# `het-ensembles evaluate --suite NAME`: every set of that leaderboard table TFDS has, plus
# ImageNet-R, reported beside the ImageNet table. ImageNet-Vid-Robust, YTBB-Robust and ObjectNet
# are not in TFDS; CIFAR-100-C is read from the user's files (`--cifar100_c_path`).
SUITES = {
    "imagenet": ("imagenet2012", CORRUPTED, "imagenet_a", "imagenet_v2", "imagenet_r"),
    "cifar10": ("cifar10", CIFAR10_CORRUPTED),
    "cifar100": ("cifar100", CIFAR100_CORRUPTED),
}
# Each suite's corrupted family (what `--corruptions` picks from).
SUITE_FAMILIES = {
    "imagenet": CORRUPTED,
    "cifar10": CIFAR10_CORRUPTED,
    "cifar100": CIFAR100_CORRUPTED,
}


@dataclasses.dataclass(frozen=True)
class EvalDataset:
    """A dataset to evaluate: a `data.load` name and split, or in-memory arrays.

    Attributes:
      key: its name in metrics.json (`"<name>"` or `"<name>:<split>"`).
      name: the `data.load` name; None for arrays.
      split: the split.
      arrays: `(x, y)` for in-memory data, else None.
      validation_fraction, validation_seed: for the `validation` split, the part of train the
        members held out (`members.validation_holdout`); 0 for other splits.
    """

    key: str
    name: str | None
    split: str
    arrays: tuple | None = dataclasses.field(default=None, compare=False, repr=False)
    validation_fraction: float = 0.0
    validation_seed: int = 0

    def info(self, label_field=None):
        """`data.get_info` of a named set, with its validation split when it has one."""
        return data.get_info(
            self.name, label_field=label_field, validation_fraction=self.validation_fraction
        )

    @property
    def is_corrupted(self):
        """An ImageNet-C, CIFAR-10-C or CIFAR-100-C set (also in-memory arrays named like one)."""
        return scoring.corruption_summary_of(self.key) is not None

    @property
    def cache_name(self):
        """Its directory under `<output_dir>/predictions/`."""
        kind = self.key.partition(":")[0]
        if kind in ("npz", "folder", "tfrecord", "webvision"):  # a path: stem + digest, flat
            location = self.key[len(kind) + 1 :].split("?")[0].split(":")[0].rstrip("/")
            stem = os.path.splitext(os.path.basename(location))[0]
            digest = hashlib.sha256(self.key.encode()).hexdigest()[:8]
            return re.sub(r"[^A-Za-z0-9._-]", "_", f"{kind}_{stem}_{self.split}_{digest}")
        name = re.sub(r"[^A-Za-z0-9._/-]", "_", self.key)
        return "/".join(p for p in name.split("/") if p not in ("", ".", ".."))

    def arrays_sha256(self):
        """SHA-256 of in-memory arrays (dtype, shape and bytes); part of the cache key."""
        digest = hashlib.sha256()
        for array in self.arrays:
            digest.update(str((array.dtype, array.shape)).encode())
            digest.update(np.ascontiguousarray(array).tobytes())
        return digest.hexdigest()


def corrupted_datasets(corruptions="all", severities=SEVERITIES, *, family=CORRUPTED):
    """`<family>/<corruption>_<severity>` names: ImageNet-C, CIFAR-10-C or CIFAR-100-C sets.

    Args:
      corruptions: "all" (the family's benchmark corruptions: 15, or CIFAR-100-C's 17 of
        uncertainty-baselines) or a list of corruption names.
      severities: severities in 1..5.
      family: `imagenet2012_corrupted` (ImageNet-C), `cifar10_corrupted` (CIFAR-10-C, TFDS
        corruption names) or `cifar100_corrupted` (CIFAR-100-C, the release's file names).

    Returns:
      A list of dataset names, corruption-major.
    """
    names_of = {
        CORRUPTED: (tfds_sets.corrupted_names, CORRUPTIONS),
        CIFAR10_CORRUPTED: (
            tfds_sets.cifar10_corrupted_names,
            tfds_sets.CIFAR10_C_BENCHMARK_CORRUPTIONS,
        ),
        CIFAR100_CORRUPTED: (cifar100_c.names, cifar100_c.BENCHMARK_CORRUPTIONS),
    }
    if family not in names_of:
        raise ValueError(
            f"Unknown corrupted family. Received: family={family!r}; allowed: {list(names_of)}"
        )
    names, benchmark = names_of[family]
    corruptions = list(benchmark if corruptions == "all" else corruptions)
    bad = [s for s in severities if s not in SEVERITIES]
    if bad:
        raise ValueError(f"Unknown severity. Received: severities={bad}; allowed: {SEVERITIES}")
    return names(corruptions, severities)


def parse_datasets(datasets):
    """`EvalDataset`s of names, a name, or `{name: (x, y)}` arrays (checked here, finite too).

    Raises:
      ValueError: for an empty or malformed argument, arrays of different lengths or with
        non-finite values, or datasets whose names or cache directories collide.
    """
    if isinstance(datasets, dict):
        parsed = [_array_dataset(key, value) for key, value in datasets.items()]
    else:
        if isinstance(datasets, str):
            datasets = [datasets]
        parsed = [d for entry in datasets for d in _named_datasets(entry)]
    if not parsed:
        raise ValueError("No datasets. Received: datasets=[]")
    for field in ("key", "cache_name"):
        values = [getattr(d, field) for d in parsed]
        if len(set(values)) != len(values):
            raise ValueError(f"Datasets repeat or collide. Received: {values}")
    return parsed


def _array_dataset(key, value):
    if not (isinstance(value, (tuple, list)) and len(value) == 2):
        raise ValueError(
            f"In-memory datasets must map a name to (x, y). Received: {key!r}: "
            f"{type(value).__name__}"
        )
    x, y = np.asarray(value[0]), np.asarray(value[1])
    if len(x) != len(y) or len(x) == 0:
        raise ValueError(
            f"x and y of dataset {key!r} must have the same non-zero length. "
            f"Received: len(x)={len(x)}, len(y)={len(y)}"
        )
    check_finite(x, dataset=str(key))
    return EvalDataset(str(key), None, "test", (x, y))


def _named_datasets(entry):
    if not isinstance(entry, str) or not entry:
        raise ValueError(f"Dataset names must be strings. Received: {entry!r}")
    name, split = entry, "test"
    head, _, tail = entry.rpartition(":")
    if head and tail in data.SPLITS:
        name, split = head, tail
    suffix = "" if split == "test" else f":{split}"
    family = name.split("/", 1)[0]
    if family in SUITE_FAMILIES.values() and name == family:  # all its benchmark sets
        names = corrupted_datasets(family=family)
    elif family in SUITE_FAMILIES.values() and not re.search(r"_\d+$", name):  # no severity
        names = corrupted_datasets([name.split("/", 1)[1]], family=family)
    else:
        names = [name]
    return [EvalDataset(n + suffix, n, split) for n in names]


def num_skipped(dataset, counted):
    """How many examples a `skip_corrupt=true` set skipped: listed minus `counted`, else None."""
    if dataset.arrays is not None:
        return None
    info = dataset.info()
    if not info.skip_corrupt:
        return None
    return int(info.num_examples[dataset.split]) - int(counted)


def check_finite(x, *, dataset, offset=0):
    """ValueError naming `dataset` and the count if inputs `x` hold NaN or inf values.

    Args:
      x: an input batch (or all inputs).
      dataset: the dataset's key, for the message.
      offset: index of x's first example in the dataset, for the message.
    """
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.floating):
        return
    bad = ~np.isfinite(x.reshape(len(x), -1)).all(axis=1)
    if bad.any():
        first = offset + int(np.argmax(bad))
        raise ValueError(
            f"The inputs of dataset {dataset} contain NaN or inf values (at least "
            f"{int(bad.sum())} example(s), the first at index {first}). Received: "
            f"dataset={dataset!r}"
        )


def batches(dataset, *, batch_size, image_size=None, data_dir=None, label_field=None):
    """`(x, y)` numpy batches of `dataset` in order, each checked finite, and their number.

    Returns:
      `(iterator, total)`; `total` is None when the split's size is unknown.
    """
    if dataset.arrays is not None:
        x, y = dataset.arrays  # checked finite by parse_datasets
        starts = range(0, len(x), batch_size)
        return ((x[i : i + batch_size], y[i : i + batch_size]) for i in starts), len(starts)
    loaded = data.load(
        dataset.name,
        dataset.split,
        batch_size=batch_size,
        is_training=False,
        image_size=image_size,
        data_dir=data_dir,
        label_field=label_field,
        validation_fraction=dataset.validation_fraction,
        validation_seed=dataset.validation_seed,
    )
    num_examples = dataset.info(label_field).num_examples.get(dataset.split)
    total = math.ceil(num_examples / batch_size) if num_examples else None

    def checked():
        seen = 0
        for x, y in loaded:
            x = np.asarray(x)
            check_finite(x, dataset=dataset.key, offset=seen)
            seen += len(x)
            yield x, np.asarray(y)

    return checked(), total
