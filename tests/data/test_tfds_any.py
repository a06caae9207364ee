"""`tfds:NAME[/CONFIG]` on TFDS mock data and on a small multi-label builder prepared here.

Labels are checked against TFDS's own reader of the same split, in the same order; K and class
names against the builder's ClassLabel.
"""

import numpy as np
import pytest
import tensorflow_datasets as tfds

from het_ensembles import data


@pytest.fixture
def mock():
    with tfds.testing.mock_data(num_examples=9):
        yield


@pytest.mark.parametrize("name, num_classes", [("mnist", 10), ("oxford_flowers102", 102)])
def test_mock_sets_follow_the_builder(mock, name, num_classes):
    info = data.get_info(f"tfds:{name}", image_size=16, validation_fraction=0.25)
    label = tfds.builder(name).info.features["label"]
    assert info.num_classes == num_classes == label.num_classes
    assert info.class_names == tuple(label.names) and not info.multilabel
    assert info.num_examples == {"train": 7, "test": 9, "validation": 2}  # int(9 * 0.25) = 2
    reference = [
        int(e["label"]) for e in tfds.as_numpy(tfds.builder(name).as_dataset(split="test"))
    ]
    loaded = data.load(f"tfds:{name}", "test", batch_size=4, is_training=False, image_size=16)
    labels, shapes = [], set()
    for x, y in loaded:
        labels += np.asarray(y).tolist()
        shapes.add(tuple(x.shape[1:]))
    assert labels == reference and shapes == {(16, 16, 3)}


def test_carve_outs_keep_tfds_positions(mock):
    reference = [
        int(e["label"]) for e in tfds.as_numpy(tfds.builder("mnist").as_dataset(split="train"))
    ]
    kwargs = {"validation_fraction": 0.34, "validation_seed": 1, "image_size": 8}
    got = {
        s: np.concatenate(
            [y for _, y in data.load("tfds:mnist", s, batch_size=9, is_training=False, **kwargs)]
        )
        for s in ("train", "validation")
    }
    assert len(got["train"]) == 6 and len(got["validation"]) == 3  # int(9 * 0.34)
    assert sorted(np.concatenate(list(got.values()))) == sorted(reference)


def test_bad_keys_and_names_say_what_exists(mock):
    with pytest.raises(ValueError, match=r"no a ClassLabel or Sequence\(ClassLabel\) feature 'x'"):
        data.get_info("tfds:mnist?label_key=x")
    with pytest.raises(ValueError, match=r"Unknown TFDS dataset 'no_such_set_here'"):
        data.get_info("tfds:no_such_set_here")
    with pytest.raises(ValueError, match=r"has a test split.*test_fraction"):
        data.get_info("tfds:mnist?test_fraction=0.5")


TAGS = {i: [t for t in range(3) if (i >> t) & 1] for i in range(12)}  # bits of the index


class TagsBuilder(tfds.core.GeneratorBasedBuilder):
    """8 train and 4 test images, each with a list of tags among 3 (a Sequence(ClassLabel))."""

    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
        return tfds.core.DatasetInfo(
            builder=self,
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Image(shape=(12, 10, 3)),
                    "tags": tfds.features.Sequence(tfds.features.ClassLabel(names=["a", "b", "c"])),
                    "other": tfds.features.ClassLabel(num_classes=2),
                }
            ),
        )

    def _split_generators(self, dl_manager):
        del dl_manager
        return {
            "train": self._generate_examples(range(8)),
            "test": self._generate_examples(range(8, 12)),
        }

    def _generate_examples(self, indices):
        for i in indices:
            image = np.full((12, 10, 3), 10 * i, np.uint8)
            yield i, {"image": image, "tags": TAGS[i], "other": i % 2}


def test_sequence_class_label_gives_multi_hot(tmp_path):
    TagsBuilder(data_dir=str(tmp_path)).download_and_prepare()
    with pytest.raises(ValueError, match=r"2 ClassLabel or Sequence.*label_key="):
        data.get_info("tfds:tags_builder", data_dir=str(tmp_path))
    name = "tfds:tags_builder?label_key=tags"
    info = data.get_info(name, data_dir=str(tmp_path))
    assert info.multilabel and info.num_classes == 3 and info.class_names == ("a", "b", "c")
    assert info.num_examples == {"train": 8, "test": 4}  # from the prepared split metadata
    loaded = data.load(
        name, "test", batch_size=3, is_training=False, image_size=8, data_dir=str(tmp_path)
    )
    hot = np.concatenate([y for _, y in loaded])
    levels = np.concatenate([(x[:, 4, 4, 0] * 0.229 + 0.485) * 255 for x, _ in loaded])
    indices = np.rint(levels / 10).astype(int)  # the image's grey level is 10 * index
    expected = np.zeros((4, 3), np.float32)
    for row, i in enumerate(indices):
        expected[row, TAGS[i]] = 1
    assert hot.dtype == np.float32 and sorted(indices) == [8, 9, 10, 11]
    np.testing.assert_array_equal(hot, expected)
