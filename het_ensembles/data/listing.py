"""What a streaming set knows without reading an image, and the reader of a list of image files.

Each streaming kind (`folder_sets`, `webvision_sets`, `tfrecord_sets`, `tfds_any`) turns its
`spec_options.Spec` into a `Listing`: per-split sizes, K, class names, whether labels are
multi-hot, and a `source` function that streams one split's encoded images. `streaming` then
cuts splits (carve-outs, validation) by position and builds the pipeline. Positions are each
example's global index in its source split: file-list order, or record order in the sorted
shards.
"""

import dataclasses
import os

import numpy as np
import tensorflow as tf

from het_ensembles.data import pipeline

# Seed-stream ids of `pipeline.derive_seed(seed, shard_index, ...)` (0 and 1 are the pipeline's).
FILE_ORDER_STREAM = 3


@dataclasses.dataclass(frozen=True)
class Listing:
    """A streaming set as far as it is known without reading images.

    Attributes:
      num_classes: K.
      class_names: names of the K classes, or None.
      multilabel: labels are multi-hot float32 [K] (else int32 scalars).
      sizes: `{"train": n}` or `{"train": n, "test": m}`: examples in each source split.
      source: `(split, positions, *, is_training, seed, shard_index, num_shards) ->
        tf.data.Dataset` of `{"image": encoded bytes, "label": ..., "where": path}` dicts of
        source split `split` ("train" or "test"), restricted to the sorted global `positions`
        (None: all), only input pipeline `shard_index` of `num_shards`'s share; training
        reads in a shuffled (seeded) order, eval in order.
      test_source: what the test split is (for messages), e.g. "DIR/val".
    """

    num_classes: int
    class_names: tuple | None
    multilabel: bool
    sizes: dict
    source: object
    test_source: str | None = None


def file_list_source(paths, labels):
    """The `Listing.source` of image files `paths` (sorted order) with integer `labels`.

    Every file is one example, so sharding the list over input pipelines is file-level
    sharding. Training shuffles the indices (seeded, a fresh order every pass) and reads files
    in parallel; eval reads in list order.
    """
    paths = np.asarray(paths, dtype=object).astype(str)
    labels = np.asarray(labels, dtype=np.int32)

    def source(split, positions, *, is_training, seed, shard_index, num_shards):
        del split  # one list per split: the caller picks it
        chosen_paths = paths if positions is None else paths[positions]
        chosen_labels = labels if positions is None else labels[positions]
        path_table = tf.constant(chosen_paths)
        label_table = tf.constant(chosen_labels)
        indices = tf.data.Dataset.range(len(chosen_paths))
        if num_shards > 1:
            indices = indices.shard(num_shards, shard_index)
        if is_training:
            indices = indices.shuffle(
                max(1, len(chosen_paths) // num_shards + 1),
                seed=pipeline.derive_seed(seed, shard_index, FILE_ORDER_STREAM),
                reshuffle_each_iteration=True,
            )

        def read(index):
            path = path_table[index]
            return {"image": tf.io.read_file(path), "label": label_table[index], "where": path}

        return indices.map(read, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)

    return source


def check_files_exist(paths, listed_in):
    """ValueError naming the first of `paths` that is not a file, and `listed_in`."""
    for path in paths:
        if not os.path.isfile(path):
            raise ValueError(
                f"Image file {path} listed in {listed_in} does not exist. Expected every "
                "listed image under the dataset's root."
            )


def check_label_range(labels, num_classes, where):
    """ValueError if an integer label lies outside [0, num_classes), naming `where`."""
    labels = np.asarray(labels)
    bad = (labels < 0) | (labels >= num_classes)
    if bad.any():
        first = int(np.argmax(bad))
        raise ValueError(
            f"Label {int(labels[first])} (example {first}) in {where} lies outside "
            f"[0, {num_classes}). Expected labels in [0, num_classes)."
        )


def read_class_names(path, num_classes, *, label_offset=0):
    """Class names from a text file, one per line (`"<label>:<name>"` lines as TF-slim's
    `labels.txt`, indexed by label minus `label_offset`); None if `path` does not exist.

    Raises:
      ValueError: if the file names fewer or more classes than `num_classes`.
    """
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        lines = [line.strip() for line in f if line.strip()]
    names = {}
    for position, line in enumerate(lines):
        label, colon, rest = line.partition(":")
        if colon and label.strip().isdigit():
            names[int(label) - label_offset] = rest.strip()
        else:
            names[position] = line
    if sorted(names) != list(range(num_classes)):
        raise ValueError(
            f"{path} names classes {min(names)}..{max(names)} ({len(names)} lines); the labels "
            f"have {num_classes} classes. Expected one line per class, in label order."
        )
    return tuple(names[i] for i in range(num_classes))
