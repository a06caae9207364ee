"""`tfrecord:DIR` sets on real TFRecord shards the tests write (tf.io.TFRecordWriter).

Each record's image carries its index (`image_files`), so every label and every split is
checked against what was written; record counts against tf.data's own reader.
"""

import os

import image_files
import numpy as np
import pytest
import tensorflow as tf

from het_ensembles import data
from het_ensembles.data import spec_options, tfrecord_sets

NAMES = ("n01", "n02", "n03", "n04")


@pytest.fixture(scope="module")
def slim(tmp_path_factory):
    """TF-slim layout: labels start at 1; 30 train records in 4 shards, 6 validation in 1."""
    directory = str(tmp_path_factory.mktemp("slim"))
    labels = {i: 1 + (i * 7) % 4 for i in range(36)}
    records = [image_files.example(i, [labels[i]], text=[NAMES[labels[i] - 1]]) for i in labels]
    counts = image_files.write_shards(directory, "train", records[:30], 4)
    image_files.write_shards(directory, "validation", records[30:], 1)
    return directory, labels, counts


def test_counts_from_record_headers_match_tf_data(slim):
    directory, _, counts = slim
    for index, count in enumerate(counts):
        path = os.path.join(directory, f"train-{index:05d}-of-00004")
        by_tf = sum(1 for _ in tf.data.TFRecordDataset(path))
        assert tfrecord_sets.count_records(path) == by_tf == count


def test_sizes_classes_offset_and_every_label(slim):
    directory, labels, _ = slim
    name = f"tfrecord:{directory}?label_offset=1"
    info = data.get_info(name, image_size=16)
    assert info.num_examples == {"train": 30, "test": 6}
    assert info.num_classes == 4 and not info.multilabel
    assert info.class_names == NAMES  # from image/class/text
    for split, expected in (("train", range(30)), ("test", range(30, 36))):
        loaded = data.load(name, split, batch_size=4, is_training=False, image_size=16)
        indices, got = image_files.all_indices(loaded)
        assert list(indices) == list(expected)  # one pass, in shard order
        assert list(got) == [labels[i] - 1 for i in indices]


def test_labels_txt_names_classes(slim, tmp_path):
    directory = slim[0]
    for name in os.listdir(directory):
        os.symlink(os.path.join(directory, name), tmp_path / name)
    (tmp_path / "labels.txt").write_text("".join(f"{i + 1}:class {i}\n" for i in range(4)))
    info = data.get_info(f"tfrecord:{tmp_path}?label_offset=1")
    assert info.class_names == ("class 0", "class 1", "class 2", "class 3")


def test_training_reads_every_shard_shuffled_and_seeded(slim):
    directory, labels, _ = slim
    name = f"tfrecord:{directory}?label_offset=1"

    def take(seed):
        stream = data.load(name, "train", batch_size=10, is_training=True, seed=seed, image_size=8)
        return [image_files.all_indices([b]) for b in stream.take(6)]

    first = take(0)
    indices = np.concatenate([i for i, _ in first])
    assert sorted(indices[:30]) == list(range(30)) == sorted(indices[30:])
    assert list(indices[:30]) != list(range(30))
    assert all(list(y) == [labels[i] - 1 for i in x] for x, y in first)
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(first, take(0)))


def test_carve_out_and_validation_by_record_position(slim):
    directory = slim[0]
    # Only the train shards: no test split without test_fraction.
    name = f"tfrecord:{directory}?label_offset=1"
    with pytest.raises(ValueError, match="has a test split"):
        data.get_info(name + "&test_fraction=0.2")
    train_only = os.path.join(directory, "train_only")
    os.makedirs(train_only, exist_ok=True)
    for shard in sorted(os.listdir(directory)):
        if shard.startswith("train-"):
            os.symlink(os.path.join(directory, shard), os.path.join(train_only, shard))
    with pytest.raises(ValueError, match=r"no test split.*\?label_offset=1&test_fraction=0.04"):
        data.get_info(f"tfrecord:{train_only}?label_offset=1")
    name = f"tfrecord:{train_only}?label_offset=1&test_fraction=0.2"
    info = data.get_info(name, validation_fraction=0.25)
    assert info.num_examples == {"train": 18, "test": 6, "validation": 6}  # 30*0.2, 24*0.25
    got = {}
    for split in ("train", "validation", "test"):
        loaded = data.load(
            name, split, batch_size=7, is_training=False, image_size=8, validation_fraction=0.25
        )
        got[split] = image_files.all_indices(loaded)[0]
    assert {s: len(v) for s, v in got.items()} == {"train": 18, "validation": 6, "test": 6}
    assert sorted(np.concatenate(list(got.values()))) == list(range(30))


def test_shard_level_and_example_level_sharding_cover_every_record_once(slim):
    directory = slim[0]
    spec = spec_options.parse(f"tfrecord:{directory}?label_offset=1")
    listing = tfrecord_sets.get_listing(spec)
    for num_shards in (2, 5):  # 4 shards: per file for 2 pipelines, per example for 5
        seen = []
        for index in range(num_shards):
            source = listing.source(
                "train", None, is_training=False, seed=0, shard_index=index, num_shards=num_shards
            )
            seen.append([str(e["where"].numpy().decode()) for e in source])
        flat = [w for part in seen for w in part]
        assert len(flat) == len(set(flat)) == 30
        if num_shards == 2:  # file level: each pipeline reads whole shards
            files = [{w.split(" record ")[0] for w in part} for part in seen]
            assert not files[0] & files[1]


@pytest.fixture(scope="module")
def multilabel(tmp_path_factory):
    """Label lists of 0 to 3 labels among 5 classes (class 4 only in the test shard)."""
    directory = str(tmp_path_factory.mktemp("multilabel"))
    rng = np.random.default_rng(0)
    lists = {i: sorted(rng.choice(4, size=i % 4, replace=False).tolist()) for i in range(20)}
    lists[20], lists[21] = [4, 0], [2]
    records = [image_files.example(i, lists[i]) for i in range(22)]
    image_files.write_shards(directory, "train", records[:20], 2)
    image_files.write_shards(directory, "test", records[20:], 1)
    return directory, lists


def test_label_lists_give_multi_hot_float_labels(multilabel):
    directory, lists = multilabel
    info = data.get_info(f"tfrecord:{directory}")
    assert info.multilabel and info.num_classes == 5  # largest label 4 (test shard) + 1
    for split in ("train", "test"):
        loaded = data.load(f"tfrecord:{directory}", split, batch_size=8, is_training=False)
        indices, hot = image_files.all_indices(loaded)
        assert hot.dtype == np.float32 and hot.shape == (len(indices), 5)
        expected = np.zeros_like(hot)
        for row, i in enumerate(indices):
            expected[row, lists[i]] = 1
        np.testing.assert_array_equal(hot, expected)
    # num_classes: no scan, K as given; multilabel must then be said.
    given = data.get_info(f"tfrecord:{directory}?num_classes=7&multilabel=true")
    assert given.num_classes == 7 and given.multilabel


def test_labels_outside_the_classes_are_refused_naming_the_shard(multilabel, slim):
    directory = slim[0]
    with pytest.raises(ValueError, match=r"Label 1 in shard .*train-00000-of-00004.*label_offset"):
        data.get_info(f"tfrecord:{directory}?label_offset=2")
    # With num_classes there is no scan: the stream checks each record and names it (record 1
    # holds label 4, i.e. 3 after the offset).
    loaded = data.load(
        f"tfrecord:{directory}?label_offset=1&num_classes=3",
        "train",
        batch_size=4,
        is_training=False,
        image_size=8,
    )
    with pytest.raises(
        tf.errors.InvalidArgumentError, match=r"train-00000-of-00004 record 1 .*\[0, 3\)"
    ):
        list(loaded)
    loaded = data.load(
        f"tfrecord:{multilabel[0]}?num_classes=5", "train", batch_size=4, is_training=False
    )
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"record 0 has other than one label"):
        list(loaded)


def test_a_shard_without_the_features_is_refused(tmp_path):
    record = tf.train.Example(
        features=tf.train.Features(
            feature={"image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"x"]))}
        )
    ).SerializeToString()
    image_files.write_shards(str(tmp_path), "train", [record], 1)
    with pytest.raises(ValueError, match=r"train-00000-of-00001: its first record lacks"):
        data.get_info(f"tfrecord:{tmp_path}?test_fraction=0.5")
    with pytest.raises(ValueError, match=r"No shards .*/train-\*"):
        data.get_info(f"tfrecord:{tmp_path / 'elsewhere'}")


def test_a_truncated_image_in_a_record_is_named_or_skipped(tmp_path):
    good = [image_files.example(i, [i % 2]) for i in range(5)]
    broken = image_files.example(5, [1], fmt="PNG")
    cut = tf.train.Example.FromString(broken)
    encoded = cut.features.feature["image/encoded"].bytes_list.value[0]
    cut.features.feature["image/encoded"].bytes_list.value[0] = encoded[:-30]
    image_files.write_shards(str(tmp_path), "train", good + [cut.SerializeToString()], 2)
    name = f"tfrecord:{tmp_path}?test_fraction=0.2"  # test: 1 of 6
    stream = data.load(name, "train", batch_size=8, is_training=False, image_size=8)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"train-00001-of-00002 record 2"):
        list(stream)
    skip = name + "&skip_corrupt=true"
    info = data.get_info(skip)
    counted = sum(
        len(x)
        for split in ("train", "test")
        for x, _ in data.load(skip, split, batch_size=8, is_training=False, image_size=8)
    )
    assert info.skip_corrupt and sum(info.num_examples.values()) - counted == 1
