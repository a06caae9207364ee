"""In-memory datasets: the embedded sets (`noisy_digits`, `synthetic`) and `npz:<path>` files.

All of them go through one path. A set is a function returning a dict of numpy arrays
`x_train, y_train, x_test, y_test` (optional `y_test_clean`, optional `class_names`),
registered under a name with `register_arrays`; it is called lazily on first use, validated
and cached. `npz:<path>` names register themselves on first use from `np.load(path)`.

Inputs `x` are images [N, H, W, C] (a grayscale [N, H, W] gets a channel axis) or feature
vectors [N, D]; uint8 images are scaled to [0, 1], anything else is cast to float32 as is.
Labels are integers [N] in [0, K) (or multi-hot [N, K] for multilabel sets). K is
`len(class_names)` when given, else the largest label + 1.

A validation split is a seeded random subset of the train arrays (`holdout_indices`).
"""

import os
import zipfile

import numpy as np
import tensorflow as tf

from het_ensembles.data import pipeline

REQUIRED_KEYS = ("x_train", "y_train", "x_test", "y_test")
OPTIONAL_KEYS = ("y_test_clean", "class_names")
NPZ_PREFIX = "npz:"

_REGISTRY = {}  # name -> fn() -> dict of arrays
_FAMILIES = {}  # prefix -> fn(spec text) -> dict of arrays, for names "<prefix>:<spec>"
_CACHE = {}  # name -> (cache key, validated dict)


def register(name, fn):
    """Registers (or replaces) the in-memory set `name` (see `data.register_arrays`)."""
    if not isinstance(name, str) or not name or name.startswith(NPZ_PREFIX) or "/" in name:
        raise ValueError(
            "Expected a non-empty dataset name without '/' that does not start with "
            f"'{NPZ_PREFIX}'. Received: name={name!r}"
        )
    if not callable(fn):
        raise ValueError(f"Expected a callable returning a dict of arrays. Received: fn={fn!r}")
    _REGISTRY[name] = fn
    _CACHE.pop(name, None)


def register_family(prefix, fn):
    """Registers parametrised sets: `"<prefix>:<spec>"` names the arrays `fn(spec)` returns."""
    _FAMILIES[prefix] = fn


def parse_spec(family, text, parsers):
    """The fields of a variant spec `"<key>=<value>,<key>=<value>,..."` (any subset of keys).

    Args:
      family: the family's prefix, for messages (e.g. "noisy_digits").
      text: the spec after `"<family>:"`.
      parsers: `{key: fn(str) -> value}` for every allowed key, in the order messages list them.

    Returns:
      `{key: value}` for the keys present; the caller's dataclass checks the ranges.

    Raises:
      ValueError: naming the key that is unknown or whose value its parser rejects.
    """
    fields = {}
    for item in filter(None, text.split(",")):
        key, _, value = item.partition("=")
        if key not in parsers:
            raise ValueError(
                f"Unknown key {key!r} in the {family} spec. Received: {text!r}; allowed keys: "
                f"{', '.join(parsers)}"
            )
        try:
            fields[key] = parsers[key](value)
        except ValueError as error:
            raise ValueError(
                f"Malformed {key}={value!r} in the {family} spec {text!r}: {error}"
            ) from error
    return fields


def spec_name(family, fields):
    """The dataset name `"<family>:<key>=<value>,..."` of a variant's `{key: value}`.

    Floats are written in the shortest form that reads back exactly (`2`, `0.47`), so parsing
    the name gives the same spec and hence the same data.
    """

    def text(value):
        if isinstance(value, float):
            return np.format_float_positional(value, trim="-")
        return str(value)

    return f"{family}:" + ",".join(f"{key}={text(value)}" for key, value in fields.items())


def registered_names():
    return sorted(_REGISTRY) + [f"{prefix}:<spec>" for prefix in sorted(_FAMILIES)]


def _family_of(name):
    prefix, sep, _ = name.partition(":")
    return prefix if sep and prefix in _FAMILIES else None


def is_known(name):
    return name in _REGISTRY or name.startswith(NPZ_PREFIX) or _family_of(name) is not None


def get(name):
    """The validated arrays of set `name` (cached; an npz file is re-read when it changes)."""
    if name.startswith(NPZ_PREFIX):
        path = name[len(NPZ_PREFIX) :]
        if not os.path.isfile(path):
            raise ValueError(
                f"npz dataset file not found: {path!r}. Expected 'npz:<path to .npz>' holding "
                f"{list(REQUIRED_KEYS)}. Received: name={name!r}"
            )
        stat = os.stat(path)
        key = (stat.st_mtime_ns, stat.st_size)
        fn = _npz_reader(path)
    elif _family_of(name) is not None:
        spec = name.partition(":")[2]
        key, fn = None, lambda: _FAMILIES[_family_of(name)](spec)
    else:
        key, fn = None, _REGISTRY[name]
    cached = _CACHE.get(name)
    if cached is not None and cached[0] == key:
        return cached[1]
    arrays = validate(name, fn())
    _CACHE[name] = (key, arrays)
    return arrays


def _npz_reader(path):
    def read():
        if not zipfile.is_zipfile(path):  # np.load would guess another format and say so
            raise ValueError(
                f"{path} is not a NumPy .npz archive (numpy.savez writes one, holding x_train, "
                f"y_train, x_test, y_test). Received: npz:{path}"
            )
        with np.load(path, allow_pickle=False) as npz:
            return {key: npz[key] for key in npz.files}

    return read


def validate(name, arrays):
    """Checks shapes, dtypes and label ranges; returns a normalised copy of the dict.

    Raises:
      ValueError: naming the offending array, with what was received and what is allowed.
    """
    if not isinstance(arrays, dict):
        raise ValueError(f"{name}: expected a dict of numpy arrays. Received: {type(arrays)}")
    missing = [key for key in REQUIRED_KEYS if key not in arrays]
    if missing:
        raise ValueError(
            f"{name}: missing arrays {missing}; required {list(REQUIRED_KEYS)}, optional "
            f"{list(OPTIONAL_KEYS)}. Received keys: {sorted(arrays)}"
        )
    out = {key: np.asarray(arrays[key]) for key in REQUIRED_KEYS}
    for split in ("train", "test"):
        out[f"x_{split}"] = _checked_inputs(name, split, out[f"x_{split}"])
    if out["x_train"].shape[1:] != out["x_test"].shape[1:]:
        raise ValueError(
            f"{name}: x_train and x_test must have the same example shape. Received: "
            f"{out['x_train'].shape[1:]} and {out['x_test'].shape[1:]}"
        )
    label_keys = ["y_train", "y_test"]
    if arrays.get("y_test_clean") is not None:
        out["y_test_clean"] = np.asarray(arrays["y_test_clean"])
        label_keys.append("y_test_clean")
    multilabel = out["y_train"].ndim == 2
    _check_label_shapes(name, out, label_keys, multilabel)
    num_classes = _label_classes(name, out, label_keys, multilabel)
    class_names = arrays.get("class_names")
    if class_names is not None:
        class_names = tuple(str(c) for c in np.asarray(class_names).tolist())
        if len(class_names) < num_classes or (multilabel and len(class_names) != num_classes):
            raise ValueError(
                f"{name}: {len(class_names)} class_names for labels up to {num_classes - 1}."
            )
        num_classes = len(class_names)
    for key in label_keys:
        if not multilabel and (out[key].min(initial=0) < 0):
            raise ValueError(
                f"{name}: labels must lie in [0, {num_classes}). Received: min({key})="
                f"{out[key].min()}"
            )
    out["class_names"] = class_names
    out["num_classes"] = num_classes
    out["multilabel"] = multilabel
    return out


def _checked_inputs(name, split, x):
    """`x_<split>` checked (numeric, finite, not empty), grayscale [N, H, W] given a channel."""
    if x.ndim == 3:  # grayscale [N, H, W] -> [N, H, W, 1]
        x = x[..., None]
    if x.ndim not in (2, 4):
        raise ValueError(
            f"{name}: x_{split} must be images [N, H, W, C] or features [N, D]. "
            f"Received: x_{split}.shape={x.shape}"
        )
    if not (np.issubdtype(x.dtype, np.number) or x.dtype == bool):
        raise ValueError(f"{name}: x_{split} must be numeric. Received: dtype={x.dtype}")
    if len(x) == 0:
        raise ValueError(
            f"{name}: x_{split} holds no examples. Received: x_{split}.shape={x.shape}"
        )
    if np.issubdtype(x.dtype, np.inexact) and not np.all(np.isfinite(x)):
        raise ValueError(
            f"{name}: x_{split} must be finite (NaN or inf would make the loss NaN). "
            f"Received: {int(np.sum(~np.isfinite(x)))} non-finite values"
        )
    return x


def _check_label_shapes(name, out, label_keys, multilabel):
    """Checks that each label array is integer, [N] or (multilabel) [N, K], one per example."""
    for key in label_keys:
        y = out[key]
        if not (np.issubdtype(y.dtype, np.integer) or y.dtype == bool):
            raise ValueError(f"{name}: {key} must hold integer labels. Received: dtype={y.dtype}")
        if y.ndim != (2 if multilabel else 1):
            raise ValueError(
                f"{name}: labels must all be integers [N] or all multi-hot [N, K]. "
                f"Received: {key}.shape={y.shape}, y_train.shape={out['y_train'].shape}"
            )
        x_key = "x_train" if key == "y_train" else "x_test"
        if len(y) != len(out[x_key]):
            raise ValueError(
                f"{name}: {key} has {len(y)} labels for {len(out[x_key])} examples in {x_key}."
            )


def _label_classes(name, out, label_keys, multilabel):
    """The number of classes the labels imply (multi-hot ones checked to be 0/1 of one width)."""
    if not multilabel:
        return int(max(out[key].max(initial=0) for key in label_keys)) + 1
    num_classes = out["y_train"].shape[1]
    for key in label_keys:
        y = out[key]
        if y.shape[1] != num_classes or not np.isin(y, (0, 1)).all():
            raise ValueError(
                f"{name}: multi-hot {key} must be 0/1 with {num_classes} columns. "
                f"Received: shape={y.shape}"
            )
    return num_classes


def holdout_indices(num_train, num_validation, seed):
    """Indices of the train arrays kept for training and held out for validation.

    The held-out ones are the first `num_validation` of a permutation of `range(num_train)`
    drawn with `np.random.default_rng(seed)`; both lists are returned sorted (the training
    pipeline shuffles anyway, the validation pipeline reads in order).

    Returns:
      `(train_indices, validation_indices)`: disjoint int64 arrays whose union is
      `range(num_train)`.
    """
    permutation = np.random.default_rng(seed).permutation(num_train)
    return np.sort(permutation[num_validation:]), np.sort(permutation[:num_validation])


def load(
    name,
    split,
    *,
    batch_size,
    is_training,
    seed,
    image_size,
    drop_remainder,
    strategy,
    holdout=None,
):
    """The pipeline for an in-memory set; arguments already validated by `data.load`.

    Args:
      holdout: None, or `(validation examples, seed)` for the "train" and "validation" splits
        of a set with a validation split (`holdout_indices`).
    """
    arrays = get(name)
    train_like = split in ("train", "validation")
    x = arrays["x_train" if train_like else "x_test"]
    y = arrays[{"test": "y_test", "test_clean": "y_test_clean"}.get(split, "y_train")]
    if holdout is not None:
        train_indices, validation_indices = holdout_indices(len(x), *holdout)
        indices = train_indices if split == "train" else validation_indices
        x, y = x[indices], y[indices]
    scale = 1.0 / 255.0 if x.dtype == np.uint8 else 1.0
    resize = x.ndim == 4 and image_size is not None and x.shape[1:3] != (image_size, image_size)

    def preprocess(example, example_seed):
        del example_seed  # no augmentation for in-memory sets
        features = tf.cast(example["x"], tf.float32) * scale
        if resize:
            features = tf.image.resize(features, [image_size, image_size])
        return features, tf.cast(example["y"], tf.int32)

    return pipeline.build(
        lambda: tf.data.Dataset.from_tensor_slices({"x": x, "y": y}),
        preprocess,
        batch_size=batch_size,
        is_training=is_training,
        seed=seed,
        drop_remainder=drop_remainder,
        shuffle_buffer=len(x),
        strategy=strategy,
    )
