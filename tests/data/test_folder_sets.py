"""`folder:DIR` sets on real JPEG / PNG / BMP / GIF files the tests write (grey and colour, sizes).

Each image carries its index in its pixels (`image_files`), so labels and split membership are
checked against what was written. The carve-out tests use their own numbers (validation_size,
int(n * f)) and a second interpreter for "the same split in every process".
"""

import os

import console
import image_files
import numpy as np
import pytest

from het_ensembles import data

CLASSES = ("cat", "dog", "emu")  # sorted, as the loader sorts them


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """train: 8 + 6 + 7 images of the 3 classes; test ("val/"): 3 + 0 + 2 (no dog folder)."""
    root = str(tmp_path_factory.mktemp("folder"))
    train = {i: CLASSES[0] for i in range(8)}
    train.update({i: CLASSES[1] for i in range(8, 14)})
    train.update({i: CLASSES[2] for i in range(14, 21)})
    test = {21: "cat", 22: "cat", 23: "cat", 24: "emu", 25: "emu"}
    image_files.write_folder_split(os.path.join(root, "train"), train)
    image_files.write_folder_split(os.path.join(root, "val"), test)
    return root, train, test


def test_sizes_classes_and_every_label(folder):
    root, train, test = folder
    info = data.get_info(f"folder:{root}", image_size=16)
    assert info.num_classes == 3 and info.class_names == CLASSES
    assert info.num_examples == {"train": 21, "test": 5}
    assert info.input_shape == (16, 16, 3) and not info.multilabel
    assert data.get_info(f"folder:{root}").input_shape == (224, 224, 3)
    for split, written in (("train", train), ("test", test)):
        loaded = data.load(f"folder:{root}", split, batch_size=4, is_training=False, image_size=16)
        indices, labels = image_files.all_indices(loaded)
        assert sorted(indices) == sorted(written)  # every file once, in list order
        assert list(indices) == sorted(written)  # class-major, sorted paths: index order here
        assert [CLASSES[y] for y in labels] == [written[i] for i in indices]
        assert labels.dtype == np.int32


def test_training_stream_is_shuffled_repeated_and_seeded(folder):
    root, train, _ = folder

    def first_batches(seed):
        stream = data.load(
            f"folder:{root}", "train", batch_size=7, is_training=True, seed=seed, image_size=16
        )
        return [image_files.all_indices([batch])[0] for batch in stream.take(6)]

    batches = first_batches(0)
    epoch1, epoch2 = np.concatenate(batches[:3]), np.concatenate(batches[3:])
    assert sorted(epoch1) == sorted(train) == sorted(epoch2)  # 21 = 3 batches of 7 per epoch
    assert list(epoch1) != sorted(train) and list(epoch1) != list(epoch2)
    assert all(np.array_equal(a, b) for a, b in zip(batches, first_batches(0)))
    assert not all(np.array_equal(a, b) for a, b in zip(batches, first_batches(1)))


def _indices(name, split, **kwargs):
    loaded = data.load(name, split, batch_size=8, is_training=False, image_size=8, **kwargs)
    return image_files.all_indices(loaded)[0]


def test_test_carve_out_and_validation_are_disjoint_exact_and_reproducible(tmp_path):
    written = {i: CLASSES[i % 3] for i in range(40)}
    image_files.write_folder_split(str(tmp_path / "train"), written)
    name = f"folder:{tmp_path}?test_fraction=0.1"
    info = data.get_info(name, validation_fraction=0.25)
    # int(40 * 0.1) = 4 test; int(36 * 0.25) = 9 validation (uncertainty-baselines' rounding).
    assert info.num_examples == {"train": 27, "test": 4, "validation": 9}
    kwargs = {"validation_fraction": 0.25, "validation_seed": 3}
    splits = {s: _indices(name, s, **kwargs) for s in ("train", "validation", "test")}
    assert {s: len(v) for s, v in splits.items()} == {"train": 27, "validation": 9, "test": 4}
    union = np.concatenate(list(splits.values()))
    assert sorted(union) == list(range(40))  # disjoint and complete
    # Another validation seed: another validation set, the same test set.
    other = {s: _indices(name, s, validation_fraction=0.25, validation_seed=4) for s in splits}
    assert set(other["test"]) == set(splits["test"])
    assert set(other["validation"]) != set(splits["validation"])
    # Without a validation split the test carve-out is the same 4 examples.
    assert set(_indices(name, "test")) == set(splits["test"])
    # Another interpreter reads the same split.
    done = console.python(
        """
        import sys
        import numpy as np
        from het_ensembles import data
        for split in ("train", "validation", "test"):
            loaded = data.load(sys.argv[1], split, batch_size=64, is_training=False, image_size=8,
                               validation_fraction=0.25, validation_seed=3)
            x = np.concatenate([x for x, _ in loaded])
            level = (x[:, 4, 4, 0] * 0.229 + 0.485) * 255
            print(split, *np.rint((level - 10) / 6).astype(int))
        """,
        str(tmp_path),
        args=[name],
    )
    for line in done.stdout.strip().splitlines()[-3:]:
        split, *indices = line.split()
        assert [int(i) for i in indices] == list(splits[split])


def test_a_set_without_test_split_needs_test_fraction(tmp_path):
    image_files.write_folder_split(str(tmp_path / "train"), {0: "a", 1: "b"})
    with pytest.raises(ValueError, match=r"no test split.*test_fraction=<fraction>"):
        data.get_info(f"folder:{tmp_path}")
    image_files.write_folder_split(str(tmp_path / "test"), {2: "a"})
    with pytest.raises(ValueError, match=r"has a test split.*test_fraction"):
        data.get_info(f"folder:{tmp_path}?test_fraction=0.5")


@pytest.mark.parametrize(
    "layout, match",
    [
        ({"test/a/img000.jpg": 0}, r"train is not a folder"),
        ({"train/a/img000.jpg": 0, "train/b/": None, "test/a/img001.jpg": 1}, r"train/b holds"),
        ({"train/a/img000.jpg": 0, "test/a/img001.jpg": 1, "test/z/img002.jpg": 2}, r"\['z'\]"),
    ],
    ids=["no train folder", "empty class folder", "test class absent from train"],
)
def test_bad_layouts_name_the_folder(tmp_path, layout, match):
    for relative, index in layout.items():
        if index is None:
            os.makedirs(tmp_path / relative)
        else:
            image_files.write_file(str(tmp_path / relative), index)
    with pytest.raises(ValueError, match=match):
        data.get_info(f"folder:{tmp_path}")


def test_bad_options_name_the_option(folder):
    root = folder[0]
    with pytest.raises(ValueError, match=r"Unknown option 'label_offset=1'.*test_fraction"):
        data.get_info(f"folder:{root}?label_offset=1")
    with pytest.raises(ValueError, match=r"skip_corrupt='maybe'; allowed: true or false"):
        data.get_info(f"folder:{root}?skip_corrupt=maybe")


@pytest.fixture(scope="module")
def damaged(tmp_path_factory):
    """8 good train images, one truncated JPEG and one text file named .png; 4 test images."""
    root = tmp_path_factory.mktemp("damaged")
    image_files.write_folder_split(str(root / "train"), {i: CLASSES[i % 2] for i in range(8)})
    image_files.write_folder_split(str(root / "test"), {i: CLASSES[i % 2] for i in range(8, 12)})
    truncated = image_files.image_bytes(30, size=(64, 64))
    (root / "train" / "cat" / "truncated.jpg").write_bytes(truncated[: len(truncated) // 2])
    (root / "train" / "dog" / "notes.png").write_text("not an image\n" * 20)
    return root


@pytest.mark.parametrize("bad", ["truncated.jpg", "notes.png", "empty.gif", "half.bmp"])
def test_a_corrupt_file_stops_with_its_path(tmp_path, bad):
    image_files.write_folder_split(str(tmp_path / "train"), {0: "a", 1: "b"})
    image_files.write_folder_split(str(tmp_path / "test"), {2: "a", 3: "b"})
    fmt = {"jpg": "JPEG", "png": "PNG", "gif": "GIF", "bmp": "BMP"}[bad[-3:]]
    encoded = image_files.image_bytes(30, fmt=fmt, size=(64, 64))
    contents = {
        "truncated.jpg": encoded[: len(encoded) // 2],
        "notes.png": b"not an image\n" * 20,
        "empty.gif": b"",
        "half.bmp": encoded[: len(encoded) // 2],
    }[bad]
    path = tmp_path / "test" / "b" / bad
    path.write_bytes(contents)
    stream = data.load(f"folder:{tmp_path}", "test", batch_size=2, is_training=False, image_size=8)
    with pytest.raises(Exception, match=r"Not a complete JPEG, PNG, BMP or GIF image") as error:
        list(stream)
    assert str(path) in str(error.value) and "skip_corrupt=true" in str(error.value)


def test_skip_corrupt_skips_and_counts(damaged):
    name = f"folder:{damaged}?skip_corrupt=true"
    info = data.get_info(name)
    assert info.skip_corrupt and info.num_examples == {"train": 10, "test": 4}
    indices, _ = image_files.all_indices(
        data.load(name, "train", batch_size=3, is_training=False, image_size=8)
    )
    assert sorted(indices) == list(range(8))  # the 2 bad files skipped: 10 listed - 8 = 2
    stream = data.load(name, "train", batch_size=4, is_training=True, image_size=8)
    seen = np.concatenate([image_files.all_indices([b])[0] for b in stream.take(6)])
    assert set(seen) == set(range(8))  # training skips them too, forever
