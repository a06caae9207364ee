"""`tfds:NAME[/CONFIG]`: any TFDS image classification set, with ImageNet preprocessing.

The image and label features are read from the builder's features: the only
`tfds.features.Image`, and the only `ClassLabel` (single-label) or `Sequence(ClassLabel)`
(multi-label: multi-hot batches) among the top-level features; options `image_key` and
`label_key` pick others. K and class names come from that ClassLabel; the test split is TFDS
`test`, else `validation`. Sizes come from `builder.info.splits`; where the builder has no
split metadata (`tfds.testing.mock_data` without metadata files) the split is counted once per
process by reading its labels (images left encoded).

Images are kept encoded (`tfds.decode.SkipDecoding`) and go through
`image_preprocessing.imagenet_image_any_format`, as the other streaming sets. The validation
and test carve-outs read the TFDS split in order and keep the chosen positions; a split read
whole while training shuffles TFDS's files (seeded). The data directory is the `data_dir`
passed to `get_info` / `load` (config.data_dir), else TFDS's default (`$TFDS_DATA_DIR`).
"""

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from het_ensembles.data import listing, pipeline

TEST_SPLITS = ("test", "validation")

_COUNTS = {}  # (name, data_dir, split) -> number of examples


def _single(features, kinds, what, option, name):
    found = [key for key, feature in features.items() if kinds(feature)]
    if len(found) != 1:
        raise ValueError(
            f"TFDS set {name} has {len(found)} {what} features {found}; expected one. Pick one "
            f"with the option {option}=<feature>, e.g. tfds:{name}?{option}=... Received "
            f"features: {sorted(features)}"
        )
    return found[0]


def _is_class_label(feature):
    return isinstance(feature, tfds.features.ClassLabel)


def _is_label(feature):
    return _is_class_label(feature) or (
        isinstance(feature, tfds.features.Sequence) and _is_class_label(feature.feature)
    )


def get_listing(spec, data_dir):
    """The `listing.Listing` of `tfds:NAME[/CONFIG]` (see the module docstring).

    Raises:
      ValueError: an unknown TFDS name, no single image or label feature (or a given key that
        is not one), or no train, test or validation split.
    """
    name = spec.location
    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except Exception as error:  # DatasetNotFoundError, ConfigNotFoundError, ...
        raise ValueError(f"Unknown TFDS dataset {name!r} in {spec.name!r}: {error}") from error
    features = builder.info.features
    image_key = spec.get("image_key") or _single(
        features, lambda f: isinstance(f, tfds.features.Image), "Image", "image_key", name
    )
    label_key = spec.get("label_key") or _single(
        features, _is_label, "ClassLabel or Sequence(ClassLabel)", "label_key", name
    )
    for key, check, what in (
        (image_key, lambda f: isinstance(f, tfds.features.Image), "an Image"),
        (label_key, _is_label, "a ClassLabel or Sequence(ClassLabel)"),
    ):
        if key not in features or not check(features[key]):
            raise ValueError(
                f"TFDS set {name} has no {what} feature {key!r}. Received features: "
                f"{sorted(features)}"
            )
    label_feature = features[label_key]
    multilabel = not _is_class_label(label_feature)
    class_label = label_feature.feature if multilabel else label_feature
    known = list(builder.info.splits) or ["train", "test"]  # no metadata: assume train / test
    splits = {"train": "train"} if "train" in known else {}
    test = next((s for s in TEST_SPLITS if s in known), None)
    if test is not None:
        splits["test"] = test
    if not splits:
        raise ValueError(
            f"TFDS set {name} has splits {known}; expected train and/or test or validation."
        )
    decoders = {image_key: tfds.decode.SkipDecoding()}
    sizes = {
        split: _split_size(builder, name, data_dir, tfds_split, decoders)
        for split, tfds_split in splits.items()
    }
    num_classes = class_label.num_classes

    def to_example(example, where):
        labels = example[label_key]
        if multilabel:
            hot = tf.one_hot(labels, num_classes, dtype=tf.float32)
            label = tf.minimum(tf.reduce_sum(hot, axis=0), 1.0)
        else:
            label = tf.cast(labels, tf.int32)
        return {"image": example[image_key], "label": label, "where": where}

    def source(split, positions, *, is_training, seed, shard_index, num_shards):
        read_config = tfds.ReadConfig(
            shuffle_seed=pipeline.derive_seed(seed, shard_index, listing.FILE_ORDER_STREAM),
            try_autocache=False,
        )
        examples = builder.as_dataset(
            split=splits[split],
            decoders=decoders,
            shuffle_files=is_training and positions is None,
            read_config=read_config,
        )
        if positions is not None:
            keep = np.zeros(sizes[split], bool)
            keep[positions] = True
            keep = tf.constant(keep)
            examples = examples.enumerate().filter(lambda i, _: keep[i]).map(lambda _, e: e)
        if num_shards > 1:
            examples = examples.shard(num_shards, shard_index)
        where = f"TFDS {name} split {splits[split]}"
        return examples.map(
            lambda e: to_example(e, where), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
        )

    return listing.Listing(
        num_classes=num_classes,
        class_names=tuple(class_label.names),
        multilabel=multilabel,
        sizes=sizes,
        source=source,
        test_source=f"TFDS {name} split {test}" if test else None,
    )


def _split_size(builder, name, data_dir, tfds_split, decoders):
    info = builder.info.splits.get(tfds_split) if builder.info.splits else None
    if info is not None and info.num_examples:
        return int(info.num_examples)
    key = (name, data_dir, tfds_split)
    if key not in _COUNTS:
        examples = builder.as_dataset(split=tfds_split, decoders=decoders, shuffle_files=False)
        _COUNTS[key] = int(examples.reduce(np.int64(0), lambda count, _: count + 1))
    return _COUNTS[key]
