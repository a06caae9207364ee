"""Streaming sets read from files: `folder:`, `tfrecord:`, `tfds:`, `webvision:` names.

No split is ever loaded into memory: `get_info` lists files (or counts records, see each
kind's module), and `load` streams encoded images through `tf.data` and
`image_preprocessing.imagenet_image_any_format` (uncertainty-baselines' ImageNet crops at the
config's `image_size`, default 224). Names and options: `spec_options`.

Splits are cut by each example's position in its source split (`split_positions`):

- test carve-out (`test_fraction`, for sets with only a train split): `int(n * test_fraction)`
  positions of train, drawn by a permutation with a fixed seed (`TEST_CARVE_SEED`, not the
  validation seed), so every run and every member holds out the same test examples;
- validation (`validation_fraction` passed to `get_info` / `load`): `validation_size(m, f)` of
  the m positions left in train, drawn with `validation_seed` (`arrays.holdout_indices`, as
  for in-memory sets); `train` keeps the rest.

The three are disjoint, their union is the source train split, and the same arguments give
the same split in every process. A set with neither a test split nor `test_fraction` is
refused (ValueError naming the option).

Training reads files in a shuffled order (seeded, fresh each pass), interleaves them and
shuffles a buffer; eval reads once in order and keeps the last partial batch. Under a
`tf.distribute` strategy each input pipeline reads its own files when there are at least as
many files (or shards) as pipelines, else every n-th example.

`skip_corrupt=true`: examples whose bytes are not a complete image (`image_is_complete`) or
that fail to decode are dropped; a split then yields fewer examples than `num_examples` says,
and `DatasetInfo.skip_corrupt` tells callers to report the difference (`num_skipped`) rather
than stop. Without it such a file stops the pipeline with an error naming it.
"""

import functools

import numpy as np

from het_ensembles.data import (
    arrays,
    folder_sets,
    image_preprocessing,
    pipeline,
    spec_options,
    tfds_any,
    tfrecord_sets,
    webvision_sets,
)

DEFAULT_IMAGE_SIZE = 224
BIT_IMAGE_SIZE = 128  # BiT-HyperRule's crop for small images (bit_hyperrule.get_resolution)
# `preprocessing` option -> (encoded image -> model input, default image size).
PREPROCESSING = {
    "imagenet": (image_preprocessing.imagenet_image_any_format, DEFAULT_IMAGE_SIZE),
    "cifar": (image_preprocessing.cifar_image_any_format, image_preprocessing.CIFAR_IMAGE_SIZE),
    "bit": (image_preprocessing.bit_image, BIT_IMAGE_SIZE),
}
TEST_CARVE_SEED = 20210604  # fixed: the test carve-out never depends on a run's seeds
TRAIN_SHUFFLE_BUFFER = 16384  # uncertainty-baselines ImageNetDataset default (encoded examples)

is_streaming_name = spec_options.is_streaming_name
KNOWN_PATTERNS = (
    "folder:<dir>[?options]",
    "tfrecord:<dir>[?options]",
    "tfds:<name>[/<config>][?options]",
    "webvision:<root>[?options]",
)


def get_listing(name, data_dir=None):
    """The parsed spec and the `listing.Listing` of streaming-set `name`."""
    spec = spec_options.parse(name)
    if spec.kind == "tfds":
        return spec, tfds_any.get_listing(spec, data_dir)
    kinds = {"folder": folder_sets, "tfrecord": tfrecord_sets, "webvision": webvision_sets}
    return spec, kinds[spec.kind].get_listing(spec)


def test_carve_size(num_train, test_fraction, name):
    """`int(num_train * test_fraction)`; ValueError unless it leaves a test and a train example."""
    size = int(num_train * test_fraction)
    if not 1 <= size < num_train:
        raise ValueError(
            f"test_fraction={test_fraction!r} of {num_train} training examples carves out {size} "
            f"test examples from {name}; allowed: a fraction leaving at least one of each"
        )
    return size


def num_examples(spec, found):
    """`{"train": ..., "test": ...}` of a listing, after the test carve-out (before validation).

    Raises:
      ValueError: an empty split, no test split and no `test_fraction`, or `test_fraction` on
        a set that has a test split.
    """
    for split, size in found.sizes.items():
        if size == 0:
            raise ValueError(f"The {split} split of {spec.name} holds no example.")
    fraction = spec.get("test_fraction")
    if "test" in found.sizes:
        if fraction is not None:
            raise ValueError(
                f"{spec.name} has a test split ({found.test_source}); test_fraction carves one "
                f"out of sets without. Received: test_fraction={fraction}; allowed: no "
                "test_fraction"
            )
        return _first_train_examples(spec, dict(found.sizes))
    if fraction is None:
        raise ValueError(
            f"{spec.name} has no test split. Add the option test_fraction=<fraction> to the "
            f"name to hold one out of train, e.g. {spec.name}{'&' if '?' in spec.name else '?'}"
            "test_fraction=0.04"
        )
    carved = test_carve_size(found.sizes["train"], fraction, spec.name)
    return _first_train_examples(spec, {"train": found.sizes["train"] - carved, "test": carved})


def _first_train_examples(spec, sizes):
    """`sizes` with train cut to the `train_examples` option, if given.

    Raises:
      ValueError: naming the option when train holds fewer examples.
    """
    wanted = spec.get("train_examples")
    if wanted is None:
        return sizes
    if wanted > sizes["train"]:
        raise ValueError(
            f"{spec.name} has {sizes['train']} training examples (after any test carve-out). "
            f"Received: train_examples={wanted}; allowed: at most {sizes['train']}"
        )
    return {**sizes, "train": wanted}


def split_positions(
    source_sizes, split, *, test_fraction, holdout, name="the set", train_examples=None
):
    """Which source split a split reads, and which of its positions.

    Args:
      source_sizes: `Listing.sizes`.
      split: "train", "validation" or "test".
      test_fraction: the carve-out option, or None.
      holdout: None, or `(validation examples, validation seed)` for train and validation.
      name: for messages.
      train_examples: the option: train and validation come from the first this many of the
        positions left after the test carve-out (None: all of them).

    Returns:
      `(source split, sorted int64 positions or None for all of them)`.
    """
    if split == "test" and test_fraction is None:
        return "test", None
    positions = None
    if test_fraction is not None:
        total = source_sizes["train"]
        size = test_carve_size(total, test_fraction, name)
        positions, test = arrays.holdout_indices(total, size, TEST_CARVE_SEED)
        if split == "test":
            return "train", test
    if train_examples is not None:
        first = np.arange(train_examples, dtype=np.int64)
        positions = first if positions is None else positions[:train_examples]
    if holdout is not None:
        remaining = source_sizes["train"] if positions is None else len(positions)
        kept, held_out = arrays.holdout_indices(remaining, *holdout)
        chosen = kept if split == "train" else held_out
        positions = chosen if positions is None else positions[chosen]
    return "train", positions


def info_fields(name, *, data_dir, image_size):
    """The `DatasetInfo` fields of a streaming set (`num_examples` before validation)."""
    spec, found = get_listing(name, data_dir)
    _, default_size = PREPROCESSING[spec.get("preprocessing", "imagenet")]
    size = default_size if image_size is None else image_size
    return {
        "num_classes": found.num_classes,
        "input_shape": (size, size, 3),
        "num_examples": num_examples(spec, found),
        "class_names": found.class_names,
        "multilabel": found.multilabel,
        "skip_corrupt": bool(spec.get("skip_corrupt", False)),
    }


def load(
    name,
    split,
    *,
    batch_size,
    is_training,
    seed,
    image_size,
    data_dir,
    drop_remainder,
    strategy,
    holdout=None,
):
    """The pipeline of a streaming set; arguments already checked by `data.load`.

    Args:
      holdout: None, or `(validation examples, seed)` for the "train" and "validation" splits.
    """
    spec, found = get_listing(name, data_dir)
    skip = bool(spec.get("skip_corrupt", False))
    to_input, default_size = PREPROCESSING[spec.get("preprocessing", "imagenet")]
    size = default_size if image_size is None else image_size
    if spec.get("preprocessing") == "bit":
        to_input = _bit_input(spec, size)
    source_split, positions = split_positions(
        found.sizes,
        split,
        test_fraction=spec.get("test_fraction"),
        holdout=holdout,
        name=name,
        train_examples=spec.get("train_examples"),
    )
    count = found.sizes[source_split] if positions is None else len(positions)

    def make_source(shard_index, num_shards):
        examples = found.source(
            source_split,
            positions,
            is_training=is_training,
            seed=seed,
            shard_index=shard_index,
            num_shards=num_shards,
        )
        if skip:
            examples = examples.filter(lambda e: image_preprocessing.image_is_complete(e["image"]))
        return examples

    def preprocess(example, example_seed):
        image = example["image"]
        if not skip:
            image = image_preprocessing.assert_image(image, example["where"])
        return to_input(image, size, is_training, example_seed), example["label"]

    return pipeline.build(
        make_source,
        preprocess,
        batch_size=batch_size,
        is_training=is_training,
        seed=seed,
        drop_remainder=drop_remainder,
        shuffle_buffer=int(np.clip(count, 1, TRAIN_SHUFFLE_BUFFER)),
        strategy=strategy,
        shards_source=True,
        skip_errors=skip,
    )


def _bit_input(spec, size):
    """`image_preprocessing.bit_image` with the name's `bit_resize` and `flip` options.

    Raises:
      ValueError: naming `bit_resize` when it is smaller than the image size (the crop).
    """
    resize = spec.get("bit_resize", size)
    if resize < size:
        raise ValueError(
            f"bit_resize must be at least the image size (the random crop). Received: "
            f"bit_resize={resize}, image_size={size} in {spec.name!r}"
        )
    return functools.partial(
        image_preprocessing.bit_image, resize_size=resize, flip=spec.get("flip", True)
    )
