"""The deep-ensemble evaluator: member directories in, metrics.json / leaderboard.md / plot out.

Where it sits: data -> models -> training -> member directories -> **ensemble** -> report. A
member directory (DESIGN.md section 6) holds `model.keras` and `config.json`; this module

1. finds members (`find_members`: glob patterns, recursive, every directory holding a
   `model.keras`) and checks them (same number of classes, all softmax or all multilabel,
   loadable) before any long computation;
2. predicts each member's log-probabilities on each dataset once and caches them as
   `<output_dir>/predictions/<dataset>/<member>.npy` (float32 [N, K]) beside `labels.npy`, with a
   `<member>.json` sidecar holding the SHA-256 of the member's `model.keras`, of the labels and of
   the predictions, and the dataset, image size and batch size used: an entry is reused only
   while all of them match, so a retrained member is recomputed, a damaged file too (with a
   warning), and an interrupted evaluation resumes;
3. computes, with `het_ensembles.metrics`, every member's metrics, their mean and std, the
   ensemble's (mean of the member probabilities) with Gibbs NLL and diversity, optionally the
   mean and std over all size-M sub-ensembles, and for ImageNet-C the means over corruptions
   (cNLL, cA, cECE) and the mCE normalised by AlexNet;
4. writes `metrics.json`, `leaderboard.md` (uncertainty-baselines' ImageNet table) and
   `reliability_diagram.png`, all atomically.

From Python: `evaluate(members, datasets, output_dir, ...)`; from the shell:
`het-ensembles evaluate --members 'runs/het/*' --dataset imagenet2012 --corruptions all
--output_dir runs/eval/het` (`cli_main`).
"""

import argparse
import dataclasses
import glob
import hashlib
import itertools
import json
import math
import os
import re
import sys
import tempfile
import time
import warnings

import keras
import numpy as np
import tensorflow as tf
from matplotlib import figure
from matplotlib.backends import backend_agg
from tqdm import auto as tqdm

import het_ensembles.models  # noqa: F401  (registers custom layers, so model.keras loads)
from het_ensembles import data, metrics

MODEL_FILE = "model.keras"
CONFIG_FILE = "config.json"
LABELS_FILE = "labels.npy"
CACHE_FORMAT = 1  # bump when the sidecar or the cached arrays change meaning
CORRUPTED = "imagenet2012_corrupted"
SEVERITIES = (1, 2, 3, 4, 5)
# AlexNet's top-1 error per corruption, averaged over the 5 severities (Hendrycks & Dietterich
# 2019, as used by uncertainty-baselines and robustness-metrics for mCE).
ALEXNET_ERRORS = {
    "gaussian_noise": 0.886428,
    "shot_noise": 0.894468,
    "impulse_noise": 0.922640,
    "defocus_blur": 0.819880,
    "glass_blur": 0.826268,
    "motion_blur": 0.785948,
    "zoom_blur": 0.798360,
    "snow": 0.866816,
    "frost": 0.826572,
    "fog": 0.819324,
    "brightness": 0.564592,
    "contrast": 0.853204,
    "elastic_transform": 0.646056,
    "pixelate": 0.717840,
    "jpeg_compression": 0.606500,
}
CORRUPTIONS = tuple(ALEXNET_ERRORS)  # the 15 benchmark corruptions, in the usual order
TOP_K = 5
METRICS_CHUNK_VALUES = 2**23  # values in one [M, n, K] chunk of cached predictions (~64 MB f64)


@dataclasses.dataclass(frozen=True)
class Member:
    """One ensemble member directory.

    Attributes:
      name: short unique name (the path relative to the members' common parent, '/' -> '_');
        the cache file is `<name>.npy`.
      path: absolute path of the member directory.
      config: the contents of its `config.json` ({} if absent).
    """

    name: str
    path: str
    config: dict

    @property
    def model_path(self):
        return os.path.join(self.path, MODEL_FILE)

    @property
    def num_classes(self):
        return self.config.get("num_classes")

    @property
    def multilabel(self):
        return bool(self.config.get("multilabel", False))

    @property
    def head(self):
        return self.config.get("head")


def find_members(patterns):
    """Finds member directories: every directory holding a `model.keras`.

    Args:
      patterns: a glob pattern or a list of patterns / directories (`**` recurses). A matched
        directory that is not a member itself is searched recursively for members; matched
        files other than `model.keras` are ignored.

    Returns:
      The members, in sorted order of their paths, with unique names.

    Raises:
      ValueError: no pattern given, a pattern that matches nothing, a matched directory with no
        `model.keras` anywhere below it, duplicate names, or an unreadable `config.json`.
    """
    if isinstance(patterns, (str, os.PathLike)):
        patterns = [patterns]
    patterns = [os.path.expanduser(os.fspath(p)) for p in patterns]
    if not patterns:
        raise ValueError("No members given. Received: members=[]; allowed: glob patterns")
    paths = []
    for pattern in patterns:
        matches = sorted(glob.glob(pattern, recursive=True))
        if not matches:
            raise ValueError(
                f"No member directory matches the pattern. Received: members={pattern!r}; "
                f"allowed: a glob over directories that hold {MODEL_FILE}"
            )
        for match in matches:
            if os.path.isfile(match):
                if os.path.basename(match) == MODEL_FILE:
                    paths.append(os.path.dirname(os.path.abspath(match)))
                continue
            found = _member_dirs_under(match)
            if not found:
                raise ValueError(
                    f"{match} is not a member directory: it has no {MODEL_FILE}, nor has any "
                    f"directory below it (unfinished training?). Received: members={pattern!r}"
                )
            paths.extend(found)
    paths = sorted(set(paths))
    if not paths:
        raise ValueError(
            f"The patterns matched only files, no member directory. Received: members={patterns}"
        )
    names = _member_names(paths)
    return [Member(name, path, _read_config(path)) for name, path in zip(names, paths)]


def corrupted_datasets(corruptions="all", severities=SEVERITIES):
    """`imagenet2012_corrupted/<corruption>_<severity>` names.

    Args:
      corruptions: "all" (the 15 benchmark corruptions) or a list of corruption names.
      severities: severities in 1..5.

    Returns:
      A list of dataset names, corruption-major.
    """
    if corruptions == "all":
        corruptions = CORRUPTIONS
    corruptions = list(corruptions)
    bad = [s for s in severities if s not in SEVERITIES]
    if bad:
        raise ValueError(f"Unknown severity. Received: severities={bad}; allowed: {SEVERITIES}")
    return [f"{CORRUPTED}/{c}_{s}" for c in corruptions for s in severities]


def evaluate(
    members,
    datasets,
    output_dir,
    *,
    ensemble_size=None,
    batch_size=256,
    num_bins=metrics.DEFAULT_NUM_BINS,
    data_dir=None,
    image_size=None,
    label_field=None,
    method=None,
    max_subsets=100,
    progress=True,
):
    """Evaluates members and their ensemble; writes metrics.json, leaderboard.md and a plot.

    Args:
      members: a glob pattern, a list of patterns / member directories (see `find_members`), or
        a list of `Member`.
      datasets: dataset names for `het_ensembles.data.load` (split "test"; `"<name>:<split>"`
        picks another split, e.g. "noisy_digits:test_clean"; `"imagenet2012_corrupted"` means all
        15 x 5 ImageNet-C sets and `"imagenet2012_corrupted/<corruption>"` its 5 severities), or
        a dict `{name: (x, y)}` of in-memory arrays (x [N, ...], y [N] or multi-hot [N, K]).
      output_dir: where predictions/, metrics.json, leaderboard.md and the plot go.
      ensemble_size: if set and smaller than the number of members, also report the mean and std
        over the size-`ensemble_size` sub-ensembles (all of them, or `max_subsets` drawn at
        random with a fixed seed when there are more).
      batch_size: prediction batch size. Part of the cache key: a heteroscedastic head's
        inference noise is fixed per position in the batch, so its predictions depend on it.
      num_bins: ECE bins.
      data_dir: TFDS data directory (default: each member's `config.json` `data_dir`).
      image_size: image side fed to the models (default: each member's `config.json`
        `image_size`, else the dataset's own).
      label_field: passed to `data.load` (cifar10_n).
      method: the leaderboard row name (default from the members' `head`).
      max_subsets: cap on the number of sub-ensembles.
      progress: show tqdm progress bars.

    Returns:
      The contents of metrics.json: `{dataset: {"ensemble": {...}, "member_mean": {...},
      "member_std": {...}, "members": {name: {...}}, ["ensemble_subsets": {...}]}}`, plus an
      `"imagenet2012_corrupted"` summary entry when ImageNet-C sets were evaluated.

    Raises:
      ValueError: for bad arguments or members (see `find_members`), members that disagree on
        the number of classes or on softmax vs multilabel, a member whose model cannot be loaded
        or whose output does not match, or a dataset whose classes do not match the members'.
    """
    # Cheap argument checks first: a usage error is reported before any member is loaded.
    _check_int("batch_size", batch_size, 1)
    _check_int("num_bins", num_bins, 1)
    _check_int("max_subsets", max_subsets, 1)
    if ensemble_size is not None:
        _check_int("ensemble_size", ensemble_size, 1)
    if isinstance(members, (str, os.PathLike)) or not all(isinstance(m, Member) for m in members):
        members = find_members(members)
    members = list(members)
    num_classes, multilabel = _check_members(members)
    if ensemble_size is not None and ensemble_size > len(members):
        raise ValueError(
            f"ensemble_size must be <= the number of members ({len(members)}). "
            f"Received: ensemble_size={ensemble_size}"
        )
    specs = _dataset_specs(datasets)
    predictor = _Predictor(
        members,
        num_classes=num_classes,
        multilabel=multilabel,
        batch_size=batch_size,
        data_dir=data_dir,
        image_size=image_size,
        label_field=label_field,
        progress=progress,
    )
    for spec in specs:
        predictor.check_dataset(spec)
    try:
        os.makedirs(output_dir, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=output_dir, prefix=".write_test_"):
            pass
    except OSError as e:
        raise ValueError(
            f"output_dir is not a writable directory ({e.strerror}). "
            f"Received: output_dir={output_dir!r}"
        ) from e
    model_sha256 = {m.name: _file_sha256(m.model_path) for m in members}
    caches = []
    for spec in specs:
        keys = {
            m.name: {
                "format": CACHE_FORMAT,
                "model_sha256": model_sha256[m.name],
                "dataset": predictor.fingerprint(spec, m),
            }
            for m in members
        }
        caches.append(_PredictionCache(output_dir, spec, keys))
    stale = {cache.spec.key: cache.stale_members(members) for cache in caches}
    # Load every model that has work to do now, so a broken member fails before hours of work.
    for member in members:
        if any(member in todo for todo in stale.values()):
            predictor.model(member)
    for cache in caches:
        if stale[cache.spec.key]:
            predictor.fill(cache, stale[cache.spec.key])

    subsets = _subsets(len(members), ensemble_size, max_subsets)
    rows = {}  # dataset key -> _Rows
    for cache in caches:
        rows[cache.spec.key] = _compute_rows(cache, members, subsets, multilabel, num_bins)
    results = {key: _format_rows(r, members, ensemble_size) for key, r in rows.items()}
    corrupted_rows = _corruption_rows(rows, members)
    if corrupted_rows is not None:
        results[CORRUPTED] = _format_rows(corrupted_rows, members, ensemble_size)

    _atomic_write_text(
        os.path.join(output_dir, "metrics.json"), json.dumps(results, indent=2) + "\n"
    )
    method = method or _default_method(members)
    _atomic_write_text(
        os.path.join(output_dir, "leaderboard.md"),
        _leaderboard(results, members, method=method, ensemble_size=ensemble_size),
    )
    _write_reliability_diagram(os.path.join(output_dir, "reliability_diagram.png"), rows)
    return results


def cli_main(argv):
    """`het-ensembles evaluate ...`; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="het-ensembles evaluate",
        description="Evaluate ensemble members and their ensemble; write metrics.json, "
        "leaderboard.md and reliability_diagram.png to --output_dir.",
    )
    parser.add_argument(
        "--members",
        nargs="+",
        action="extend",
        required=True,
        help="glob(s) of member directories (quote them), e.g. 'runs/het/*'; recursive with **",
    )
    parser.add_argument(
        "--dataset",
        nargs="+",
        action="extend",
        default=[],
        help="dataset name(s) for het_ensembles.data, optionally '<name>:<split>' "
        "(e.g. noisy_digits:test_clean)",
    )
    parser.add_argument(
        "--output_dir", required=True, help="predictions cache, metrics.json, leaderboard.md, plot"
    )
    parser.add_argument(
        "--corruptions",
        default=None,
        help="also evaluate ImageNet-C: 'all' (15 benchmark corruptions) or a comma list",
    )
    parser.add_argument("--severities", default="1,2,3,4,5", help="ImageNet-C severities")
    parser.add_argument(
        "--ensemble_size",
        type=int,
        default=None,
        help="also report the mean +- std over all sub-ensembles of this size",
    )
    parser.add_argument("--batch_size", type=int, default=256, help="prediction batch size")
    parser.add_argument("--num_bins", type=int, default=metrics.DEFAULT_NUM_BINS, help="ECE bins")
    parser.add_argument("--data_dir", default=None, help="TFDS data dir (default: the members')")
    parser.add_argument(
        "--image_size", type=int, default=None, help="image side (default: the members' config)"
    )
    parser.add_argument("--label_field", default=None, help="cifar10_n label field")
    parser.add_argument(
        "--method", default=None, help="leaderboard row name (default: from the members' head)"
    )
    parser.add_argument(
        "--max_subsets", type=int, default=100, help="cap on the number of sub-ensembles"
    )
    parser.add_argument("--no_progress", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    datasets = list(args.dataset)
    try:
        if args.corruptions:
            corruptions = "all" if args.corruptions == "all" else args.corruptions.split(",")
            try:
                severities = [int(s) for s in args.severities.split(",")]
            except ValueError:
                raise ValueError(
                    "--severities must be comma-separated integers in 1..5. "
                    f"Received: --severities={args.severities!r}"
                ) from None
            datasets += corrupted_datasets(corruptions, severities)
        if not datasets:
            raise ValueError("No dataset. Received: --dataset=[]; allowed: one or more names")
        results = evaluate(
            args.members,
            datasets,
            args.output_dir,
            ensemble_size=args.ensemble_size,
            batch_size=args.batch_size,
            num_bins=args.num_bins,
            data_dir=args.data_dir,
            image_size=args.image_size,
            label_field=args.label_field,
            method=args.method,
            max_subsets=args.max_subsets,
            progress=not args.no_progress,
        )
    except ValueError as e:
        print(f"het-ensembles evaluate: error: {e}", file=sys.stderr)
        return 2
    print(_summary(results))
    print(
        f"Wrote {os.path.join(args.output_dir, 'metrics.json')}, leaderboard.md and "
        "reliability_diagram.png"
    )
    return 0


# ----------------------------------------------------------------------------------------------
# Members.


def _member_dirs_under(root):
    found = []
    for directory, subdirs, files in os.walk(root):
        subdirs.sort()
        if MODEL_FILE in files:
            found.append(os.path.abspath(directory))
            subdirs[:] = []  # a member's own subdirectories (checkpoints/) are not members
    return found


def _member_names(paths):
    if len(paths) == 1:
        return [os.path.basename(paths[0])]
    parent = os.path.commonpath(paths)
    names = []
    for path in paths:
        relative = os.path.relpath(path, parent)
        names.append(os.path.basename(path) if relative == "." else relative.replace(os.sep, "_"))
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates or "labels" in names:
        raise ValueError(
            f"Member names must be unique and not 'labels'. Received: members={paths} "
            f"(names {names})"
        )
    return names


def _read_config(path):
    config_path = os.path.join(path, CONFIG_FILE)
    if not os.path.exists(config_path):
        return {}
    try:
        with open(config_path) as f:
            config = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"Cannot read the member config {config_path}: {e}") from e
    if not isinstance(config, dict):
        raise ValueError(
            f"{config_path} must hold a JSON object. Received: {type(config).__name__}"
        )
    return config


def _check_members(members):
    """Same K and same kind (softmax / multilabel) for all; returns (K or None, multilabel)."""
    if not members:
        raise ValueError("No members. Received: members=[]")
    counts = {m.name: m.num_classes for m in members if m.num_classes is not None}
    if len(set(counts.values())) > 1:
        raise ValueError(
            "Members disagree on the number of classes (config.json num_classes). "
            f"Received: {counts}"
        )
    kinds = {m.name: m.multilabel for m in members}
    if len(set(kinds.values())) > 1:
        raise ValueError(
            "Members mix softmax and multilabel (sigmoid) models, which cannot be ensembled. "
            f"Received: multilabel={kinds}"
        )
    for member in members:
        if not os.path.isfile(member.model_path):
            raise ValueError(f"Member {member.name} has no {MODEL_FILE}: {member.model_path}")
    num_classes = next(iter(counts.values()), None)
    return num_classes, members[0].multilabel


def _default_method(members):
    heads = [m.head or "model" for m in members]
    if len(set(heads)) == 1:
        return heads[0].capitalize()
    parts = " + ".join(f"{heads.count(h)} {h}" for h in sorted(set(heads)))
    return f"Mixed ({parts})"


# ----------------------------------------------------------------------------------------------
# Datasets.


@dataclasses.dataclass(frozen=True)
class _DatasetSpec:
    """A dataset to evaluate: a `data.load` name and split, or in-memory arrays."""

    key: str  # the name in metrics.json
    name: str | None  # for data.load; None for arrays
    split: str
    arrays: tuple | None = dataclasses.field(default=None, compare=False, repr=False)  # (x, y)

    @property
    def is_corrupted(self):
        """An ImageNet-C set (also in-memory arrays named like one)."""
        return self.key.startswith(CORRUPTED + "/")

    @property
    def cache_name(self):
        if self.key.startswith("npz:"):
            stem = os.path.splitext(os.path.basename(self.key[4:].split(":")[0]))[0]
            digest = hashlib.sha256(self.key.encode()).hexdigest()[:8]
            return re.sub(r"[^A-Za-z0-9._-]", "_", f"npz_{stem}_{self.split}_{digest}")
        name = re.sub(r"[^A-Za-z0-9._/-]", "_", self.key)
        return "/".join(p for p in name.split("/") if p not in ("", ".", ".."))


def _dataset_specs(datasets):
    if isinstance(datasets, dict):
        specs = []
        for key, value in datasets.items():
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
            specs.append(_DatasetSpec(str(key), None, "test", (x, y)))
    else:
        if isinstance(datasets, str):
            datasets = [datasets]
        specs = []
        for entry in datasets:
            specs.extend(_named_specs(entry))
    if not specs:
        raise ValueError("No datasets. Received: datasets=[]")
    for field in ("key", "cache_name"):
        values = [getattr(s, field) for s in specs]
        if len(set(values)) != len(values):
            raise ValueError(f"Datasets repeat or collide. Received: {values}")
    return specs


def _named_specs(entry):
    if not isinstance(entry, str) or not entry:
        raise ValueError(f"Dataset names must be strings. Received: {entry!r}")
    name, split = entry, "test"
    head, _, tail = entry.rpartition(":")
    if head and tail in data.SPLITS:
        name, split = head, tail
    suffix = "" if split == "test" else f":{split}"
    if name == CORRUPTED:
        names = corrupted_datasets()
    elif name.startswith(CORRUPTED + "/") and not re.search(r"_\d+$", name):  # no severity
        names = corrupted_datasets([name.split("/", 1)[1]])
    else:
        names = [name]
    return [_DatasetSpec(n + suffix, n, split) for n in names]


# ----------------------------------------------------------------------------------------------
# Prediction cache.


class _PredictionCache:
    """`<output_dir>/predictions/<dataset>/`: labels.npy, <member>.npy and <member>.json."""

    def __init__(self, output_dir, spec, keys):
        """`keys`: member name -> what its entry depends on (format, model hash, dataset)."""
        self.spec = spec
        self.directory = os.path.join(output_dir, "predictions", spec.cache_name)
        self.keys = keys
        self.labels_path = os.path.join(self.directory, LABELS_FILE)

    def predictions_path(self, member):
        return os.path.join(self.directory, f"{member.name}.npy")

    def sidecar_path(self, member):
        return os.path.join(self.directory, f"{member.name}.json")

    def labels_sha256(self):
        """SHA-256 of labels.npy, or None if it is missing or unreadable (then warns)."""
        if not os.path.exists(self.labels_path):
            return None
        try:
            np.load(self.labels_path, mmap_mode="r")
        except (OSError, ValueError, EOFError) as e:
            warnings.warn(f"Ignoring a damaged cache file {self.labels_path} ({e}); recomputing.")
            return None
        return _file_sha256(self.labels_path)

    def stale_members(self, members):
        """The members whose cached predictions are missing, outdated or damaged."""
        labels_sha = self.labels_sha256()
        return [m for m in members if not self._is_fresh(m, labels_sha)]

    def _is_fresh(self, member, labels_sha):
        path, sidecar_path = self.predictions_path(member), self.sidecar_path(member)
        if labels_sha is None or not os.path.exists(sidecar_path):
            return False
        try:
            with open(sidecar_path) as f:
                sidecar = json.load(f)
            expected = {**self.keys[member.name], "labels_sha256": labels_sha}
            if any(sidecar.get(k) != v for k, v in expected.items()):
                return False  # the member or the data changed: recompute quietly
            if _file_sha256(path) != sidecar["predictions_sha256"]:
                raise ValueError("checksum mismatch")
            log_probs = np.load(path, mmap_mode="r")
            if log_probs.dtype != np.float32 or list(log_probs.shape) != sidecar["shape"]:
                raise ValueError(f"unexpected array {log_probs.dtype} {log_probs.shape}")
            return True
        except (OSError, ValueError, EOFError, KeyError, TypeError) as e:
            warnings.warn(
                f"Ignoring a damaged cache entry for member {member.name} on "
                f"{self.spec.key} ({path}: {e}); recomputing."
            )
            return False

    def store_labels(self, labels):
        os.makedirs(self.directory, exist_ok=True)
        _atomic_save_npy(self.labels_path, labels)
        return _file_sha256(self.labels_path)

    def store(self, member, log_probs, labels_sha, *, ms_per_example, num_params):
        """Writes <member>.npy, then its sidecar (whose presence vouches for the array)."""
        os.makedirs(self.directory, exist_ok=True)
        path = self.predictions_path(member)
        _atomic_save_npy(path, log_probs.astype(np.float32))
        sidecar = {
            **self.keys[member.name],
            "member_path": member.path,
            "labels_sha256": labels_sha,
            "predictions_sha256": _file_sha256(path),
            "shape": list(log_probs.shape),
            "ms_per_example": ms_per_example,
            "num_params": num_params,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        _atomic_write_text(self.sidecar_path(member), json.dumps(sidecar, indent=2) + "\n")

    def load(self, member):
        """(log_probs memory-mapped [N, K], sidecar dict)."""
        with open(self.sidecar_path(member)) as f:
            sidecar = json.load(f)
        return np.load(self.predictions_path(member), mmap_mode="r"), sidecar


def _file_sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _atomic_save_npy(path, array):
    _atomic_write(path, lambda f: np.save(f, array))


def _atomic_write_text(path, text):
    _atomic_write(path, lambda f: f.write(text.encode()))


def _atomic_write(path, write):
    """Calls `write(binary_file)` on a temporary file beside `path`, then renames it over `path`."""
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)), prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


# ----------------------------------------------------------------------------------------------
# Prediction.


class _Predictor:
    """Loads members lazily and runs them over datasets, one data pass per dataset."""

    def __init__(
        self,
        members,
        *,
        num_classes,
        multilabel,
        batch_size,
        data_dir,
        image_size,
        label_field,
        progress,
    ):
        self.members = members
        self.num_classes = num_classes
        self.multilabel = multilabel
        self.batch_size = batch_size
        self.data_dir = data_dir
        self.image_size = image_size
        self.label_field = label_field
        self.progress = progress
        self._models = {}
        self._infos = {}
        self._array_digests = {}

    def image_size_of(self, member):
        return self.image_size if self.image_size is not None else member.config.get("image_size")

    def fingerprint(self, spec, member):
        """What a member's cached predictions depend on besides its model (JSON-able)."""
        if spec.arrays is not None:
            if spec.key not in self._array_digests:
                digest = hashlib.sha256()
                for array in spec.arrays:
                    digest.update(str((array.dtype, array.shape)).encode())
                    digest.update(np.ascontiguousarray(array).tobytes())
                self._array_digests[spec.key] = digest.hexdigest()
            return {"arrays_sha256": self._array_digests[spec.key], "batch_size": self.batch_size}
        return {
            "name": spec.name,
            "split": spec.split,
            "image_size": self.image_size_of(member),
            "label_field": self.label_field,
            # A heteroscedastic head's inference noise is fixed per position in the batch.
            "batch_size": self.batch_size,
        }

    def check_dataset(self, spec):
        """ValueError if a named dataset's classes do not fit the members (arrays: later)."""
        if spec.arrays is not None:
            return
        info = self._info(spec)
        if self.num_classes is not None and info.num_classes != self.num_classes:
            raise ValueError(
                f"Dataset {spec.key} has {info.num_classes} classes; the members have "
                f"{self.num_classes}. Received: dataset={spec.key!r}"
            )
        if bool(info.multilabel) != self.multilabel:
            raise ValueError(
                f"Dataset {spec.key} multilabel={info.multilabel} but the members have "
                f"multilabel={self.multilabel}. Received: dataset={spec.key!r}"
            )

    def _info(self, spec):
        if spec.name not in self._infos:
            self._infos[spec.name] = data.get_info(spec.name, label_field=self.label_field)
        return self._infos[spec.name]

    def model(self, member):
        """The loaded Keras model of `member` (ValueError if it cannot be loaded or mismatches)."""
        if member.name not in self._models:
            try:
                model = keras.saving.load_model(member.model_path, compile=False)
            except Exception as e:  # Keras raises many types for a bad archive
                raise ValueError(
                    f"Cannot load member {member.name} from {member.model_path}: "
                    f"{type(e).__name__}: {e}"
                ) from e
            output_dim = _static_output_dim(member, model)
            expected = self.num_classes if self.num_classes is not None else output_dim
            if output_dim is not None and output_dim != expected:
                raise ValueError(
                    f"Member {member.name} outputs {output_dim} classes; expected {expected} "
                    f"(config.json num_classes or the other members). Received: "
                    f"{member.model_path}"
                )
            if self.num_classes is None:
                self.num_classes = output_dim
            self._models[member.name] = (model, _compiled_call(model))
        return self._models[member.name]

    def fill(self, cache, stale):
        """Predicts `stale` members on `cache.spec` and stores the results.

        Members that see the same images (same image_size) share one pass over the data. If the
        labels of a pass differ from labels.npy, the dataset changed since the cache was written:
        labels.npy is replaced and every other member is recomputed too.
        """
        labels_sha = cache.labels_sha256()
        todo, relabelled = list(stale), False
        while todo:
            image_size = self.image_size_of(todo[0])
            group = [m for m in todo if self.image_size_of(m) == image_size]
            todo = [m for m in todo if m not in group]
            labels, outputs = self._predict(cache.spec, group, image_size)
            if labels_sha is not None and not np.array_equal(labels, np.load(cache.labels_path)):
                if relabelled:
                    raise RuntimeError(
                        f"Two passes over {cache.spec.key} gave different labels: its "
                        "evaluation pipeline is not deterministic."
                    )
                warnings.warn(
                    f"The labels of {cache.spec.key} differ from the cached ones: the dataset "
                    "changed, so every member is recomputed on it."
                )
                relabelled, labels_sha = True, None
                todo = [m for m in self.members if m not in group]
            if labels_sha is None:
                labels_sha = cache.store_labels(labels)
            for member, (log_probs, ms_per_example) in zip(group, outputs):
                cache.store(
                    member,
                    log_probs,
                    labels_sha,
                    ms_per_example=ms_per_example,
                    num_params=int(self.model(member)[0].count_params()),
                )

    def _batches(self, spec, image_size):
        if spec.arrays is not None:
            x, y = spec.arrays
            total = math.ceil(len(x) / self.batch_size)
            batches = (
                (x[i : i + self.batch_size], y[i : i + self.batch_size])
                for i in range(0, len(x), self.batch_size)
            )
            return batches, total
        member_data_dir = self.data_dir or self.members[0].config.get("data_dir")
        dataset = data.load(
            spec.name,
            spec.split,
            batch_size=self.batch_size,
            is_training=False,
            image_size=image_size,
            data_dir=member_data_dir,
            label_field=self.label_field,
        )
        num_examples = self._info(spec).num_examples.get(spec.split)
        total = math.ceil(num_examples / self.batch_size) if num_examples else None
        return ((x, np.asarray(y)) for x, y in dataset), total

    def _predict(self, spec, group, image_size):
        """One pass over the data for every member of `group`: labels, [(log_probs, ms)]."""
        batches, total = self._batches(spec, image_size)
        calls = [self.model(m)[1] for m in group]
        outputs = [[] for _ in group]
        timers = [_Timer() for _ in group]
        labels = []
        bar = tqdm.tqdm(
            batches,
            total=total,
            desc=f"{spec.key} ({len(group)} member{'s' * (len(group) > 1)})",
            unit="batch",
            disable=not self.progress,
            leave=False,
        )
        for x, y in bar:
            labels.append(np.asarray(y))
            for member, call, timer, out in zip(group, calls, timers, outputs):
                logits = timer.run(call, x)
                out.append(self._log_probs(member, logits, len(y)))
        labels = np.concatenate(labels)
        self._check_labels(spec, labels)
        results = []
        for call, timer, out in zip(calls, timers, outputs):
            results.append((np.concatenate(out), timer.ms_per_example(call)))
        return labels, results

    def _log_probs(self, member, logits, batch_len):
        logits = np.asarray(logits)
        if self.num_classes is None and logits.ndim == 2:  # no config.json, no static shape
            self.num_classes = logits.shape[1]
        if (
            logits.ndim != 2
            or logits.shape[0] != batch_len
            or (self.num_classes is not None and logits.shape[1] != self.num_classes)
        ):
            raise ValueError(
                f"Member {member.name} must output logits [B, {self.num_classes}]. "
                f"Received: shape={logits.shape} for a batch of {batch_len}"
            )
        return metrics.log_probs_from_logits(logits, multilabel=self.multilabel)

    def _check_labels(self, spec, labels):
        k = self.num_classes
        if self.multilabel:
            ok = labels.ndim == 2 and labels.shape[1] == k
        else:
            ok = labels.ndim == 1 and (labels.size == 0 or (labels.min() >= 0 and labels.max() < k))
        if not ok:
            raise ValueError(
                f"The labels of {spec.key} do not fit {k} classes (multilabel="
                f"{self.multilabel}). Received: labels.shape={labels.shape}"
            )


def _static_output_dim(member, model):
    try:
        shape = model.output_shape
    except (AttributeError, ValueError):  # subclassed models have no static output shape
        return None
    if isinstance(shape, tuple) and len(shape) == 2 and isinstance(shape[1], int):
        return shape[1]
    raise ValueError(
        f"Member {member.name} must output logits [B, K]. Received: output_shape={shape}"
    )


def _compiled_call(model):
    """model(x, training=False) as float32, traced once per model where the input is known."""

    def call(x):
        return tf.cast(model(x, training=False), tf.float32)

    inputs = getattr(model, "inputs", None)
    if inputs and len(inputs) == 1:
        spec = tf.TensorSpec([None, *inputs[0].shape[1:]], inputs[0].dtype)
        traced = tf.function(call, input_signature=[spec])

        def checked(x):
            if not spec.shape[1:].is_compatible_with(x.shape[1:]):
                raise ValueError(
                    f"The member's model takes inputs of shape {tuple(spec.shape)}; does the "
                    "dataset (or image_size) match the member's? "
                    f"Received: x.shape={tuple(x.shape)}"
                )
            return traced(tf.cast(x, spec.dtype))

        return checked
    return tf.function(call, reduce_retracing=True)


class _Timer:
    """Test-time cost per example, excluding the calls that traced a new input shape."""

    def __init__(self):
        self.seconds = 0.0
        self.examples = 0
        self._shapes = set()
        self._last = None

    def run(self, call, x):
        start = time.perf_counter()
        out = call(x).numpy()
        elapsed = time.perf_counter() - start
        shape = tuple(x.shape)
        if shape in self._shapes:
            self.seconds += elapsed
            self.examples += shape[0]
        self._shapes.add(shape)
        self._last = x
        return out

    def ms_per_example(self, call):
        if not self.examples and self._last is not None:  # every batch traced: time one more
            start = time.perf_counter()
            call(self._last).numpy()
            self.seconds = time.perf_counter() - start
            self.examples = int(self._last.shape[0])
        return 1000.0 * self.seconds / self.examples if self.examples else None


# ----------------------------------------------------------------------------------------------
# Metrics over the cached predictions.


@dataclasses.dataclass
class _Rows:
    """Metric dicts of one dataset (or of the ImageNet-C summary)."""

    members: dict  # member name -> metrics
    ensemble: dict
    subsets: list  # metrics of each sub-ensemble
    # ECE bins (counts, correct, confidence sums) for the plot: member name -> bins, and the
    # ensemble's.
    member_bins: dict | None = None
    ensemble_bins: tuple | None = None
    is_corrupted: bool = False


def _subsets(num_members, ensemble_size, max_subsets):
    if ensemble_size is None or ensemble_size >= num_members:
        return []
    total = math.comb(num_members, ensemble_size)
    if total <= max_subsets:
        return list(itertools.combinations(range(num_members), ensemble_size))
    rng = np.random.default_rng(0)
    chosen = set()
    while len(chosen) < max_subsets:
        chosen.add(tuple(sorted(rng.choice(num_members, ensemble_size, replace=False).tolist())))
    return sorted(chosen)


def _compute_rows(cache, members, subsets, multilabel, num_bins):
    labels = np.load(cache.labels_path)
    loaded = [cache.load(m) for m in members]
    arrays = [a for a, _ in loaded]
    num_examples, num_classes = arrays[0].shape
    if any(a.shape != (num_examples, num_classes) for a in arrays) or len(labels) != num_examples:
        raise ValueError(
            f"Cached predictions of {cache.spec.key} disagree in shape: "
            f"{[a.shape for a in arrays]}, labels {labels.shape}"
        )
    kwargs = {"multilabel": multilabel, "num_bins": num_bins, "top_k": TOP_K}
    member_metrics = [metrics.ClassificationMetrics(**kwargs) for _ in members]
    # The full ensemble first, then the sub-ensembles, sharing the per-member work.
    ensembles = metrics.SubEnsembleMetrics([tuple(range(len(members))), *subsets], **kwargs)
    chunk = max(1, METRICS_CHUNK_VALUES // (len(members) * num_classes))
    for start in range(0, num_examples, chunk):
        y = labels[start : start + chunk]
        stacked = np.stack([a[start : start + chunk] for a in arrays])  # [M, n, K]
        for accumulator, log_probs in zip(member_metrics, stacked):
            accumulator.update_state(y, log_probs)
        ensembles.update_state(y, stacked)

    member_rows = {}
    for member, accumulator, (_, sidecar) in zip(members, member_metrics, loaded):
        row = accumulator.result()
        row["ms_per_example"] = sidecar.get("ms_per_example")
        row["num_params"] = sidecar.get("num_params")
        member_rows[member.name] = row
    costs = [(r["ms_per_example"], r["num_params"]) for r in member_rows.values()]

    def with_costs(row, indices):
        ms = [costs[i][0] for i in indices]
        params = [costs[i][1] for i in indices]
        row["ms_per_example"] = None if None in ms else float(sum(ms))
        row["num_params"] = None if None in params else int(sum(params))
        return row

    ensemble_result, *subset_results = ensembles.result()
    ensemble_row = with_costs(ensemble_result, range(len(members)))
    subset_rows = [with_costs(r, s) for r, s in zip(subset_results, subsets)]
    for row in [*member_rows.values(), ensemble_row, *subset_rows]:
        if row["num_examples"] != num_examples:
            raise RuntimeError(f"Counted {row['num_examples']} examples of {num_examples}.")
    return _Rows(
        member_rows,
        ensemble_row,
        subset_rows,
        is_corrupted=cache.spec.is_corrupted,
        member_bins={name: _bins(a.ece) for name, a in zip(member_rows, member_metrics)},
        ensemble_bins=_bins(ensembles.ensembles[0].ece),
    )


def _bins(ece):
    return ece.bin_counts.copy(), ece.bin_correct.copy(), ece.bin_confidence.copy()


def _corruption_rows(rows, members):
    """ImageNet-C summary per row: cNLL, cA, cECE (means), CE per corruption and mCE."""
    by_corruption = {}
    for key, r in rows.items():
        if not r.is_corrupted:
            continue
        corruption = key.split("/", 1)[1].rpartition("_")[0]
        if corruption in ALEXNET_ERRORS:
            by_corruption.setdefault(corruption, []).append(r)
    if not by_corruption:
        return None
    all_rows = [r for group in by_corruption.values() for r in group]

    def summarise(pick):
        per_set = [pick(r) for r in all_rows]
        out = {
            "nll": float(np.mean([p["nll"] for p in per_set])),
            "accuracy": float(np.mean([p["accuracy"] for p in per_set])),
            "ece": float(np.mean([p["ece"] for p in per_set])),
        }
        for corruption, group in by_corruption.items():
            error = np.mean([1.0 - pick(r)["accuracy"] for r in group])
            out[f"ce/{corruption}"] = float(error / ALEXNET_ERRORS[corruption])
        out["mce"] = float(np.mean([out[f"ce/{c}"] for c in by_corruption]))
        out["num_datasets"] = len(all_rows)
        times = [p["ms_per_example"] for p in per_set]
        out["ms_per_example"] = None if None in times else float(np.mean(times))
        out["num_params"] = per_set[0]["num_params"]  # the same model on every set
        return out

    member_rows = {m.name: summarise(lambda r, n=m.name: r.members[n]) for m in members}
    ensemble_row = summarise(lambda r: r.ensemble)
    num_subsets = len(all_rows[0].subsets)
    subset_rows = [summarise(lambda r, i=i: r.subsets[i]) for i in range(num_subsets)]
    return _Rows(member_rows, ensemble_row, subset_rows)


def _format_rows(rows, members, ensemble_size):
    member_rows = [rows.members[m.name] for m in members]
    out = {
        "ensemble": rows.ensemble,
        "member_mean": _mean(member_rows),
        "member_std": _std(member_rows),
        "members": rows.members,
    }
    if rows.subsets:
        out["ensemble_subsets"] = {
            "ensemble_size": ensemble_size,
            "num_subsets": len(rows.subsets),
            "mean": _mean(rows.subsets),
            "std": _std(rows.subsets),
        }
    return out


def _numeric_keys(rows):
    return [k for k, v in rows[0].items() if isinstance(v, (int, float))]


def _mean(rows):
    return {
        k: float(np.mean([r[k] for r in rows]))
        for k in _numeric_keys(rows)
        if all(r[k] is not None for r in rows)
    }


def _std(rows):
    """Sample standard deviation (ddof=1) over rows; 0 for a single row."""
    ddof = 1 if len(rows) > 1 else 0
    return {
        k: float(np.std([r[k] for r in rows], ddof=ddof))
        for k in _numeric_keys(rows)
        if all(r[k] is not None for r in rows)
    }


# ----------------------------------------------------------------------------------------------
# Reports.


def _leaderboard(results, members, *, method, ensemble_size):
    """uncertainty-baselines' ImageNet table: one single-model row and one ensemble row."""
    summary = results.get(CORRUPTED)
    clean = [k for k in results if k != CORRUPTED and not k.startswith(CORRUPTED + "/")]
    lines = [
        "# Leaderboard rows",
        "",
        f"Members ({len(members)}): " + ", ".join(f"`{m.path}`" for m in members),
        "",
    ]
    header = (
        "| Method | NLL | Accuracy | ECE | cNLL/cA/cCE | mCE | test ms/example | # params |\n"
        "|---|---|---|---|---|---|---|---|"
    )
    tables = clean or ([CORRUPTED] if summary else [])
    for key in tables:
        result = results.get(key) if key != CORRUPTED else None
        with_corruptions = summary is not None and key in ("imagenet2012", CORRUPTED)
        single = _table_row(
            method,
            result["member_mean"] if result else None,
            summary["member_mean"] if with_corruptions else None,
        )
        source = result or summary
        if "ensemble_subsets" in source:
            subsets = source["ensemble_subsets"]
            name = (
                f"{method} ensemble (size={subsets['ensemble_size']}, mean over "
                f"{subsets['num_subsets']} subsets of the {len(members)} members)"
            )
        else:
            name = f"{method} ensemble (size={len(members)})"
        ensemble = _table_row(
            name,
            _ensemble_row(result) if result else None,
            _ensemble_row(summary) if with_corruptions else None,
        )
        lines += [f"## {key}", "", header, single, ensemble, ""]
        if with_corruptions:
            count, full = summary["ensemble"]["num_datasets"], len(CORRUPTIONS) * len(SEVERITIES)
            lines.append(
                f"cNLL/cA/cCE: means over {count} ImageNet-C sets; mCE: corruption errors "
                "normalised by AlexNet's (Hendrycks & Dietterich 2019)"
                + (
                    f". Only {count} of the {full} sets: not comparable to published rows."
                    if count < full
                    else "."
                )
            )
            lines.append("")
        if result and len(members) > 1:
            std = result["member_std"]
            lines.append(
                f"Single-model row: mean over {len(members)} members (std: NLL "
                f"{std['nll']:.3f}, accuracy {100 * std['accuracy']:.1f}%, ECE "
                f"{std['ece']:.4f}). Ensemble: mean of the member probabilities; its "
                "test ms/example and # params are the members' sums."
            )
            lines.append("")
    return "\n".join(lines)


def _ensemble_row(result):
    """The sub-ensembles' mean when --ensemble_size asked for them, else the full ensemble."""
    if "ensemble_subsets" in result:
        return result["ensemble_subsets"]["mean"]
    return result["ensemble"]


def _table_row(name, clean, corrupted):
    def fmt(row, key, spec):
        if row is None or row.get(key) is None:
            return "-"
        value = row[key]
        return f"{100 * value:.1f}%" if spec == "%" else format(value, spec)

    if corrupted is None:
        corruption_cells = "- | -"
    else:
        corruption_cells = (
            f"{fmt(corrupted, 'nll', '.2f')} / {fmt(corrupted, 'accuracy', '%')} / "
            f"{fmt(corrupted, 'ece', '.3f')} | {fmt(corrupted, 'mce', '%')}"
        )
    cost = clean or corrupted
    params = "-" if cost is None or cost.get("num_params") is None else _params(cost["num_params"])
    return (
        f"| {name} | {fmt(clean, 'nll', '.3f')} | {fmt(clean, 'accuracy', '%')} | "
        f"{fmt(clean, 'ece', '.4f')} | {corruption_cells} | {fmt(cost, 'ms_per_example', '.3g')} "
        f"| {params} |"
    )


def _params(count):
    for scale, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if count >= scale:
            return f"{count / scale:.1f}{suffix}"
    return str(int(count))


def _summary(results):
    lines = [f"{'dataset':<44} {'row':<14} {'nll':>8} {'accuracy':>9} {'ece':>8}"]
    for key, result in results.items():
        if key.startswith(CORRUPTED + "/"):
            continue
        for row in ("member_mean", "ensemble"):
            r = result[row]
            lines.append(
                f"{key:<44} {row:<14} {r['nll']:>8.4f} {r['accuracy']:>9.4f} {r['ece']:>8.4f}"
            )
    return "\n".join(lines)


def _write_reliability_diagram(path, rows):
    """Accuracy vs confidence per bin, a panel per clean dataset: members thin, ensemble bold."""
    keys = [k for k, r in rows.items() if not r.is_corrupted] or list(rows)[:1]
    columns = min(3, len(keys))
    fig = figure.Figure(figsize=(4.2 * columns, 4.2 * math.ceil(len(keys) / columns)))
    backend_agg.FigureCanvasAgg(fig)
    for index, key in enumerate(keys):
        ax = fig.add_subplot(math.ceil(len(keys) / columns), columns, index + 1)
        ax.plot([0, 1], [0, 1], "k--", linewidth=1, label="perfect calibration")
        curves = [*rows[key].member_bins.items(), (None, rows[key].ensemble_bins)]
        for name, (counts, correct, confidence) in curves:
            full = counts > 0
            is_ensemble = name is None
            ax.plot(
                confidence[full] / counts[full],
                correct[full] / counts[full],
                marker="o",
                markersize=4 if is_ensemble else 2,
                linewidth=2.5 if is_ensemble else 1,
                alpha=1.0 if is_ensemble else 0.5,
                color="C3" if is_ensemble else "C0",
                label=(
                    f"ensemble (ECE {rows[key].ensemble['ece']:.3f})"
                    if is_ensemble
                    else f"member {name} (ECE {rows[key].members[name]['ece']:.3f})"
                ),
            )
        ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence", ylabel="accuracy", title=key)
        handles, labels = ax.get_legend_handles_labels()
        if len(handles) > 6:  # many members: one legend entry for them
            keep = [0, len(handles) - 1, 1]
            handles = [handles[i] for i in keep]
            labels = [labels[0], labels[-1], f"{len(rows[key].members)} members"]
        ax.legend(handles, labels, fontsize=7, loc="upper left")
    fig.tight_layout()
    _atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=100))


def _check_int(name, value, low):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}. Received: {name}={value!r}")
