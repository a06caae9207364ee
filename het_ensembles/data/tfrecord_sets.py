"""`tfrecord:DIR`: shards of `tf.train.Example`s in the TF-slim / TPU ImageNet layout.

Shards: `DIR/train-*` (train) and `DIR/validation-*`, else `DIR/test-*` (test), each read in
sorted name order; an example's position (for the validation and test carve-outs) is its
record's index in the concatenated sorted shards. Features: `image/encoded` (JPEG, PNG, BMP or
GIF bytes) and `image/class/label` (int64: one label, or a list of labels for multi-label
sets), optional `image/class/text`. Options (in the name, see `spec_options`):
`label_offset` is subtracted from every stored label (1 for TF-slim ImageNet, whose labels
start at 1); `num_classes` gives K; `multilabel` forces label lists to be multi-hot.

What `get_info` reads, never an image:

- record counts: each shard's 12-byte record headers (length + CRC), seeking over the data
  (no parsing), plus its first record, parsed to check that the two features are there;
- when `num_classes` is not given, a label scan: every record parsed for
  `image/class/label` and `image/class/text` only. It gives K (largest label + 1), whether the
  set is multi-label (some record has other than one label), class names (from the texts) and
  checks labels are >= 0 after the offset. With `num_classes` there is no scan (a 13M-example
  set is not read twice): labels are checked as they stream, naming shard and record.

Both are cached per process, keyed by every shard's path, size and modification time. Class
names come from `DIR/labels.txt` (one per line, or TF-slim's `<label>:<name>` lines) when it
exists, else from the scan's texts.
"""

import glob
import os
import struct

import numpy as np
import tensorflow as tf

from het_ensembles.data import listing, pipeline

ENCODED, LABEL, TEXT = "image/encoded", "image/class/label", "image/class/text"
TEST_PREFIXES = ("validation", "test")
INTERLEAVE_CYCLE = 16  # shards read at once while training
SCAN_BATCH = 4096

_COUNTS = {}  # (path, size, mtime) -> number of records
_SCANS = {}  # (shard stamps, label_offset) -> scan result


def _stamp(path):
    stat = os.stat(path)
    return (path, stat.st_size, stat.st_mtime_ns)


def count_records(path):
    """The number of records in TFRecord file `path`, from its record headers (cached).

    A record is `uint64 length, uint32 CRC, data[length], uint32 CRC` (TFRecord format); the
    walk reads 12 bytes per record and seeks over the rest. The first record is parsed to check
    that it has `image/encoded` and `image/class/label`.

    Raises:
      ValueError: a truncated file, or a first record without those features.
    """
    stamp = _stamp(path)
    if stamp in _COUNTS:
        return _COUNTS[stamp]
    count, size = 0, stamp[1]
    with open(path, "rb") as f:
        while f.tell() < size:
            header = f.read(12)
            if len(header) < 12:
                raise ValueError(f"{path} ends inside a record header: a truncated TFRecord file.")
            (length,) = struct.unpack("<Q", header[:8])
            if count == 0:
                _check_first_record(path, f.read(length))
                f.seek(4, os.SEEK_CUR)
            else:
                f.seek(length + 4, os.SEEK_CUR)
            count += 1
        if f.tell() != size:
            raise ValueError(f"{path} ends inside a record: a truncated TFRecord file.")
    _COUNTS[stamp] = count
    return count


def _check_first_record(path, record):
    try:
        example = tf.train.Example.FromString(record)
    except Exception as error:  # protobuf's DecodeError
        raise ValueError(
            f"{path}: its first record is not a tf.train.Example ({error})."
        ) from error
    present = set(example.features.feature)
    missing = [k for k in (ENCODED, LABEL) if k not in present]
    if missing:
        raise ValueError(
            f"{path}: its first record lacks {missing}. Expected tf.train.Examples with "
            f"{ENCODED!r} (encoded image) and {LABEL!r} (int64 label or label list). "
            f"Received features: {sorted(present)}"
        )


def _shards(directory, prefixes):
    for prefix in prefixes:
        found = sorted(
            p for p in glob.glob(os.path.join(directory, f"{prefix}-*")) if os.path.isfile(p)
        )
        if found:
            return found
    return []


def _scan(paths, label_offset):
    """Every record's labels (and texts) in shard order; cached per shard stamps and offset."""
    key = (tuple(_stamp(p) for p in paths), label_offset)
    if key in _SCANS:
        return _SCANS[key]
    features = {LABEL: tf.io.VarLenFeature(tf.int64), TEXT: tf.io.VarLenFeature(tf.string)}
    records = tf.data.TFRecordDataset(paths).batch(SCAN_BATCH)
    parsed = records.map(lambda r: tf.io.parse_example(r, features))
    lengths, labels, names = [], [], {}
    for batch in parsed:
        ragged = tf.RaggedTensor.from_sparse(batch[LABEL])  # one row per record
        lengths.append(ragged.row_lengths().numpy())
        labels.append(ragged.flat_values.numpy() - label_offset)
        texts = tf.RaggedTensor.from_sparse(batch[TEXT]).to_list()
        if any(texts):
            label_rows = ragged.to_list()
            for row_labels, row_texts in zip(label_rows, texts):
                for label, text in zip(row_labels, row_texts):
                    names.setdefault(int(label) - label_offset, text.decode())
    result = (np.concatenate(lengths), np.concatenate(labels), names)
    _SCANS[key] = result
    return result


def get_listing(spec):
    """The `listing.Listing` of `tfrecord:DIR` (see the module docstring).

    Raises:
      ValueError: no train shards, a shard without the expected features, a label below 0 after
        `label_offset`, a record with no label in a single-label set, or a labels.txt that
        does not name K classes.
    """
    directory = os.path.abspath(os.path.expanduser(spec.location))
    shards = {"train": _shards(directory, ("train",))}
    if not shards["train"]:
        raise ValueError(
            f"No shards {directory}/train-*. Expected TFRecord shards train-* (and "
            f"validation-* or test-*) of tf.train.Examples. Received: {spec.name!r}"
        )
    test = _shards(directory, TEST_PREFIXES)
    if test:
        shards["test"] = test
    counts = {split: [count_records(p) for p in paths] for split, paths in shards.items()}
    offset = spec.get("label_offset", 0)
    num_classes, multilabel, names = spec.get("num_classes"), spec.get("multilabel"), {}
    if num_classes is None:
        num_classes, scanned_multilabel, names = _scan_all(shards, counts, offset)
        multilabel = scanned_multilabel if multilabel is None else multilabel
    multilabel = bool(multilabel)
    class_names = listing.read_class_names(
        os.path.join(directory, "labels.txt"), num_classes, label_offset=offset
    )
    if class_names is None and sorted(names) == list(range(num_classes)):
        class_names = tuple(names[i] for i in range(num_classes))
    return listing.Listing(
        num_classes=num_classes,
        class_names=class_names,
        multilabel=multilabel,
        sizes={split: int(sum(c)) for split, c in counts.items()},
        source=_source(shards, counts, num_classes, offset, multilabel),
        test_source=(
            os.path.join(directory, os.path.basename(test[0]).split("-")[0] + "-*")
            if test
            else None
        ),
    )


def _scan_all(shards, counts, offset):
    """(K, multilabel, {label: text}) from the label scan of every split."""
    largest, multilabel, names = -1, False, {}
    for split, paths in shards.items():
        lengths, labels, split_names = _scan(paths, offset)
        where = np.repeat(np.arange(len(paths)), counts[split])
        if labels.size and labels.min() < 0:
            record = int(np.repeat(np.arange(len(lengths)), lengths)[np.argmax(labels < 0)])
            raise ValueError(
                f"Label {int(labels.min()) + offset} in shard {paths[where[record]]} lies below "
                f"label_offset={offset}. Expected labels >= {offset} (set label_offset=...)."
            )
        if (lengths == 0).all():
            raise ValueError(f"No record of {paths[0]}... has a {LABEL!r}.")
        multilabel |= bool((lengths != 1).any())
        largest = max(largest, int(labels.max(initial=-1)))
        names.update({k: v for k, v in split_names.items() if k not in names})
    return largest + 1, multilabel, names


def _source(shards, counts, num_classes, offset, multilabel):
    """The `Listing.source` of the shards: file-level sharding when each pipeline gets one."""
    features = {
        ENCODED: tf.io.FixedLenFeature([], tf.string, default_value=""),
        LABEL: tf.io.VarLenFeature(tf.int64),
    }

    def parse(path, start, index, record):
        where = tf.strings.join([path, " record ", tf.strings.as_string(index - start)])
        parsed = tf.io.parse_single_example(record, features)
        labels = parsed[LABEL].values - offset
        in_range = tf.reduce_all((labels >= 0) & (labels < num_classes))
        checks = [
            tf.debugging.Assert(
                in_range,
                [tf.strings.join(["A label of ", where, f" lies outside [0, {num_classes})"])],
            )
        ]
        if not multilabel:
            checks.append(
                tf.debugging.Assert(
                    tf.size(labels) == 1,
                    [tf.strings.join([where, " has other than one label (add multilabel=true)"])],
                )
            )
        with tf.control_dependencies(checks):
            if multilabel:
                hot = tf.one_hot(labels, num_classes, dtype=tf.float32)
                label = tf.minimum(tf.reduce_sum(hot, axis=0), 1.0)
            else:
                label = tf.cast(labels[0], tf.int32)
        return {"image": parsed[ENCODED], "label": label, "where": where}

    def source(split, positions, *, is_training, seed, shard_index, num_shards):
        paths = shards[split]
        starts = np.concatenate([[0], np.cumsum(counts[split])[:-1]]).astype(np.int64)
        files = tf.data.Dataset.from_tensor_slices((paths, starts))
        file_level = len(paths) >= num_shards
        if num_shards > 1 and file_level:
            files = files.shard(num_shards, shard_index)
        if is_training:
            files = files.shuffle(
                len(paths),
                seed=pipeline.derive_seed(seed, shard_index, listing.FILE_ORDER_STREAM),
                reshuffle_each_iteration=True,
            )

        def read(path, start):
            records = tf.data.TFRecordDataset(path).enumerate(start)
            return records.map(lambda index, record: (path, start, index, record))

        if is_training:
            cycle = min(INTERLEAVE_CYCLE, len(paths))
            records = files.interleave(
                read, cycle_length=cycle, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
            )
        else:
            records = files.flat_map(read)
        if positions is not None:
            keep = np.zeros(int(sum(counts[split])), bool)
            keep[positions] = True
            keep = tf.constant(keep)
            records = records.filter(lambda path, start, index, record: keep[index])
        if num_shards > 1 and not file_level:
            records = records.shard(num_shards, shard_index)
        return records.map(parse, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)

    return source
