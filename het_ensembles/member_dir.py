"""The member directory: its file names, its one atomic writer, and reading a member back.

Where it sits: training -> **member directory** -> evaluation, analysis, demo. One run of the
trainer writes one directory:

    <member>/config.json     the complete config, plus num_classes and multilabel
    <member>/metrics.json    final test metrics (`test/nll`, `test/accuracy`, ...; `val/...` and
                             `best_epoch` with a validation split / keep_best_epoch)
    <member>/mixup_rescaling_stats.npz
                             mixup members only (`mixup_alpha > 0`): the training set's mean
                             image and label and the mix weight's mean, for the `+rescaling`
                             predictions (`training.mixup`)
    <member>/model.keras     the Keras model, written last: its presence marks a finished member
    <member>/checkpoints/    `ckpt-<epoch>` checkpoints (resume after a kill); `best/` holds the
                             lowest-val/nll epoch's weights under keep_best_epoch
    <member>/logs/           TensorBoard scalars

Every file this project writes, in member directories and in evaluation or demo outputs, goes
through `atomic_write`: a temporary file beside the target, renamed over it, so a kill never
leaves a half-written file. The files get the permissions an ordinary `open()` would give them
(0666 minus the umask), so a team sharing a results directory can read each other's files.

This module does not import TensorFlow; `Member.load_model` imports Keras when called.
"""

import contextlib
import dataclasses
import glob
import json
import os
import tempfile
import warnings
import zipfile

import numpy as np

MODEL_FILE = "model.keras"
CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.json"
CHECKPOINTS_DIR = "checkpoints"
LOGS_DIR = "logs"
# uncertainty-baselines' name (baselines/imagenet/heteroscedastic.py), written by mixup members.
MIXUP_RESCALING_STATS_FILE = "mixup_rescaling_stats.npz"


def _umask():
    mask = os.umask(0)  # the only portable way to read it
    os.umask(mask)
    return mask


# Permissions of a newly created file, as `open(path, "w")` gives (mkstemp would give 0600).
FILE_MODE = 0o666 & ~_umask()


@contextlib.contextmanager
def atomic_path(path):
    """Yields a temporary path beside `path` (same suffix); renames it over `path` on success.

    For writers that want a path rather than a file object (Keras' `model.save` needs the
    `.keras` suffix). On an exception the temporary file is removed and `path` is untouched.
    """
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    suffix = os.path.splitext(path)[1]
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.", suffix=suffix)
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def atomic_write(path, write, *, binary=True):
    """Calls `write(file)` on a temporary file beside `path`, then renames it over `path`.

    Args:
      path: the file to (re)place; its directory is created if needed.
      write: a function of an open file object.
      binary: open the file in binary ("wb") or text ("w") mode.
    """
    with atomic_path(path) as tmp, open(tmp, "wb" if binary else "w") as f:
        write(f)


def write_json(path, value, *, sort_keys=True):
    """`value` as indented JSON, atomically (`sort_keys=False` keeps the dicts' order)."""
    text = json.dumps(value, indent=2, sort_keys=sort_keys) + "\n"
    atomic_write(path, lambda f: f.write(text), binary=False)


def write_text(path, text):
    atomic_write(path, lambda f: f.write(text), binary=False)


def write_npz(path, arrays):
    """`arrays` (name -> numpy array or scalar) as an uncompressed `.npz`, atomically."""
    atomic_write(path, lambda f: np.savez(f, **arrays))


def read_npz(path, *, what="file"):
    """The arrays of the `.npz` at `path`, as a dict (read without pickle).

    Raises:
      ValueError: naming `path` if it cannot be read or is not an `.npz` of plain arrays.
    """
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise ValueError(f"Cannot read the {what} {path}: {error}") from error


def read_json(path, *, what="file"):
    """The JSON object stored at `path`.

    Raises:
      ValueError: naming `path` if it cannot be read, is not JSON, or holds no JSON object.
    """
    try:
        with open(path) as f:
            value = json.load(f)
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"Cannot read the {what} {path}: {error}") from error
    if not isinstance(value, dict):
        raise ValueError(f"{path} must hold a JSON object. Received: {type(value).__name__}")
    return value


@dataclasses.dataclass(frozen=True)
class Member:
    """One member directory.

    Attributes:
      name: short unique name among the members evaluated together (see `find_members`).
      path: absolute path of the directory.
      config: the contents of its `config.json` ({} if absent).
      metrics: the contents of its `metrics.json` (None if absent: training did not finish).
      head_index: None for the whole model; i for head i of a model of `ensemble_size` heads,
        evaluated as one ensemble member (`evaluation.members.expand_heads`).
    """

    name: str
    path: str
    config: dict
    metrics: dict | None = dataclasses.field(default=None, compare=False, repr=False)
    head_index: int | None = None

    @property
    def model_path(self):
        return os.path.join(self.path, MODEL_FILE)

    @property
    def finished(self):
        """Whether training finished: `model.keras` is written last."""
        return os.path.isfile(self.model_path)

    @property
    def num_classes(self):
        return self.config.get("num_classes")

    @property
    def multilabel(self):
        return bool(self.config.get("multilabel", False))

    @property
    def head(self):
        return self.config.get("head")

    @property
    def ensemble_size(self):
        """M: the model's heads (config.json `ensemble_size`; 1 for members trained before it)."""
        return int(self.config.get("ensemble_size") or 1)

    def load_model(self):
        """The member's Keras model, uncompiled.

        Raises:
          ValueError: if the member is unfinished or its `model.keras` cannot be loaded.
        """
        if not self.finished:
            raise ValueError(
                f"Not a finished member directory (no {MODEL_FILE}: still training, or killed "
                f"before the end?). Received: member={self.path!r}"
            )
        import keras

        import het_ensembles.models  # noqa: F401  (registers the custom layers for loading)

        try:
            return keras.saving.load_model(self.model_path, compile=False)
        except Exception as error:  # Keras raises many types for a bad archive
            raise ValueError(
                f"Cannot load member {self.name} from {self.model_path}: "
                f"{type(error).__name__}: {error}"
            ) from error


def paths(directory):
    """`{"model", "config", "metrics", "checkpoints", "logs", "mixup_rescaling_stats"}` -> path
    inside `directory`."""
    names = {
        "model": MODEL_FILE,
        "config": CONFIG_FILE,
        "metrics": METRICS_FILE,
        "checkpoints": CHECKPOINTS_DIR,
        "logs": LOGS_DIR,
        "mixup_rescaling_stats": MIXUP_RESCALING_STATS_FILE,
    }
    return {key: os.path.join(directory, name) for key, name in names.items()}


def read_member(directory, *, name=None):
    """The `Member` in `directory`, finished or not (check `member.finished`).

    Args:
      directory: a member directory.
      name: the member's name (default: the directory's base name).

    Raises:
      ValueError: if `directory` is not a directory, or its config.json cannot be read (an
        unreadable metrics.json gives a warning and `metrics=None`).
    """
    path = os.path.abspath(os.fspath(directory))
    if not os.path.isdir(path):
        raise ValueError(
            f"Not a member directory: no such directory, so no {MODEL_FILE}. "
            f"Received: member={os.fspath(directory)!r}"
        )
    files = paths(path)
    config = {}
    if os.path.exists(files["config"]):
        config = read_json(files["config"], what="member config")
    metrics = None
    if os.path.exists(files["metrics"]):
        try:
            metrics = read_json(files["metrics"], what="member metrics")
        except ValueError as error:  # only reports read it; the trainer rewrites it on resume
            warnings.warn(f"{error}; treating the member's metrics as missing.", stacklevel=2)
    return Member(name or os.path.basename(path), path, config, metrics)


def find_members(patterns):
    """Finds finished member directories: every directory holding a `model.keras`.

    Args:
      patterns: a glob pattern or a list of patterns / directories (`**` recurses). A matched
        directory that is not a member itself is searched recursively for members; matched
        files other than `model.keras` are ignored.

    Returns:
      The members, in sorted order of their paths. Names are the paths relative to the members'
      common parent with '/' -> '_' (the base name for a single member), unique.

    Raises:
      ValueError: no pattern given, a pattern that matches nothing, a matched directory with no
        `model.keras` anywhere below it, duplicate names, or an unreadable `config.json`.
    """
    if isinstance(patterns, (str, os.PathLike)):
        patterns = [patterns]
    patterns = [os.path.expanduser(os.fspath(p)) for p in patterns]
    if not patterns:
        raise ValueError("No members given. Received: members=[]; allowed: glob patterns")
    found = []
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
                    found.append(os.path.dirname(os.path.abspath(match)))
                continue
            below = _member_dirs_under(match)
            if not below:
                raise ValueError(
                    f"{match} is not a member directory: it has no {MODEL_FILE}, nor has any "
                    f"directory below it (unfinished training?). Received: members={pattern!r}"
                )
            found.extend(below)
    found = sorted(set(found))
    if not found:
        raise ValueError(
            f"The patterns matched only files, no member directory. Received: members={patterns}"
        )
    return [read_member(path, name=name) for name, path in zip(member_names(found), found)]


def _member_dirs_under(root):
    found = []
    for directory, subdirs, files in os.walk(root):
        subdirs.sort()
        if MODEL_FILE in files:
            found.append(os.path.abspath(directory))
            subdirs[:] = []  # a member's own subdirectories (checkpoints/) are not members
    return found


def member_names(member_paths):
    """Unique short names of member directories: paths relative to their common parent."""
    if not member_paths:
        return []
    if len(member_paths) == 1:
        return [os.path.basename(member_paths[0])]
    parent = os.path.commonpath(member_paths)
    names = []
    for path in member_paths:
        relative = os.path.relpath(path, parent)
        names.append(os.path.basename(path) if relative == "." else relative.replace(os.sep, "_"))
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates or "labels" in names:
        raise ValueError(
            f"Member names must be unique and not 'labels'. Received: members={member_paths} "
            f"(names {names})"
        )
    return names


def check_writable_dir(path, *, argument="output_dir"):
    """Creates directory `path` if needed and checks that a file can be written there.

    Raises:
      ValueError: naming `argument` if it is empty or not a writable directory.
    """
    if not path:
        raise ValueError(f"{argument} is required. Received: {argument}={path!r}")
    try:
        os.makedirs(path, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write_test_"):
            pass
    except OSError as error:
        raise ValueError(
            f"{argument} is not a writable directory ({error.strerror}). "
            f"Received: {argument}={path!r}"
        ) from error
