"""`webvision:ROOT` on a miniature of WebVision 1.0's layout written by the test.

Train images under `ROOT/google/...` and `ROOT/flickr/...` listed in
`info/train_filelist_{google,flickr}.txt`, validation images under `ROOT/val_images_256/` listed
in `info/val_filelist.txt`; each image carries its index (`image_files`), so the labels are
checked against the lists written here.
"""

import os

import image_files
import pytest

from het_ensembles import data

SYNSETS = image_files.WEBVISION_SYNSETS
_write = image_files.write_webvision


def test_layout_sizes_names_and_labels(tmp_path):
    labels = _write(tmp_path)
    info = data.get_info(f"webvision:{tmp_path}", image_size=16)
    assert info.num_examples == {"train": 10, "test": 4}
    assert info.num_classes == 3
    assert info.class_names == ("n01440764", "n01443537", "n01484850")
    for split, expected in (("train", range(10)), ("test", range(10, 14))):
        loaded = data.load(
            f"webvision:{tmp_path}", split, batch_size=3, is_training=False, image_size=16
        )
        indices, got = image_files.all_indices(loaded)
        assert list(indices) == list(expected)  # google list, then flickr, in file order
        assert list(got) == [labels[i] for i in indices]


def test_bad_lists_are_named(tmp_path):
    _write(tmp_path, synsets=False)
    assert data.get_info(f"webvision:{tmp_path}").class_names is None
    assert data.get_info(f"webvision:{tmp_path}?num_classes=1000").num_classes == 1000
    with pytest.raises(
        ValueError, match=r"Label 2 \(example 1\) in .*google.txt lies outside \[0, 2\)"
    ):
        data.get_info(f"webvision:{tmp_path}?num_classes=2")
    os.remove(tmp_path / "val_images_256" / "val000012.jpg")
    with pytest.raises(ValueError, match=r"val000012.jpg listed in .*val_filelist.txt does not"):
        data.get_info(f"webvision:{tmp_path}")
    (tmp_path / "info" / "val_filelist.txt").write_text("val000010.jpg\n")
    with pytest.raises(ValueError, match=r"val_filelist.txt line 1 is 'val000010.jpg'"):
        data.get_info(f"webvision:{tmp_path}")
    with pytest.raises(ValueError, match=r"lacks WebVision's file lists"):
        data.get_info(f"webvision:{tmp_path / 'info'}")
