"""`folder:DIR`: images in one sub-folder per class, as `keras.utils.image_dataset_from_directory`.

Layout: `DIR/train/<class>/...` and, for the test split, `DIR/test/<class>/...` (else
`DIR/validation/` or `DIR/val/`, the first that exists in that order). Classes are the sorted
sub-folder names of `train/`; a test folder may lack classes but not add any. Every file with
an image extension (`.jpg`, `.jpeg`, `.png`, `.bmp`, `.gif`, any case) under a class folder,
sub-folders included, is one example; hidden files (`.DS_Store`) and other extensions are
ignored, as Keras does. Examples are in sorted order (class, then path): that order is each
example's position for the validation and test carve-outs.

The listing (not the images) is cached per process, keyed by the split and class folders'
modification times, so a file added or removed is seen on the next `get_info`.
"""

import os

from het_ensembles.data import listing

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")
TEST_FOLDERS = ("test", "validation", "val")

_CACHE = {}  # directory -> (fingerprint, Listing)


def _class_dirs(split_dir):
    return sorted(e.name for e in os.scandir(split_dir) if e.is_dir() and e.name[0] != ".")


def _fingerprint(split_dirs):
    stamps = []
    for split_dir in split_dirs:
        for name in ["", *_class_dirs(split_dir)]:
            path = os.path.join(split_dir, name)
            stamps.append((path, os.stat(path).st_mtime_ns))
    return tuple(stamps)


def _images_of(class_dir):
    found = []
    for root, dirs, files in os.walk(class_dir):
        dirs[:] = sorted(d for d in dirs if d[0] != ".")
        found += [
            os.path.join(root, f)
            for f in files
            if f[0] != "." and f.lower().endswith(IMAGE_EXTENSIONS)
        ]
    return sorted(found)


def _list_split(split_dir, classes):
    """(paths, labels) of one split; ValueError for an empty class folder."""
    paths, labels = [], []
    for label, name in enumerate(classes):
        class_dir = os.path.join(split_dir, name)
        if not os.path.isdir(class_dir):
            continue  # a test folder may lack a class
        images = _images_of(class_dir)
        if not images:
            raise ValueError(
                f"Class folder {class_dir} holds no image. Expected files ending in "
                f"{', '.join(IMAGE_EXTENSIONS)} (or remove the folder)."
            )
        paths += images
        labels += [label] * len(images)
    return paths, labels


def get_listing(spec):
    """The `listing.Listing` of `folder:DIR` (cached; see the module docstring).

    Raises:
      ValueError: no `DIR/train`, a train folder without class folders, an empty class
        folder, or a test class absent from train.
    """
    directory = os.path.abspath(os.path.expanduser(spec.location))
    train_dir = os.path.join(directory, "train")
    if not os.path.isdir(train_dir):
        raise ValueError(
            f"{train_dir} is not a folder. Expected folder:DIR with DIR/train/<class>/<image> "
            f"(and DIR/test/<class>/<image>). Received: {spec.name!r}"
        )
    test_dirs = [os.path.join(directory, t) for t in TEST_FOLDERS]
    test_dir = next((t for t in test_dirs if os.path.isdir(t)), None)
    split_dirs = [train_dir] + ([test_dir] if test_dir else [])
    key = _fingerprint(split_dirs)
    cached = _CACHE.get(directory)
    if cached is not None and cached[0] == key:
        return cached[1]
    classes = _class_dirs(train_dir)
    if not classes:
        raise ValueError(f"{train_dir} has no class sub-folders. Expected train/<class>/<image>.")
    lists = {"train": _list_split(train_dir, classes)}
    if test_dir:
        extra = sorted(set(_class_dirs(test_dir)) - set(classes))
        if extra:
            raise ValueError(
                f"{test_dir} has class folders absent from {train_dir}: {extra}. Expected the "
                f"test classes to be among the training classes {classes}."
            )
        lists["test"] = _list_split(test_dir, classes)
    sources = {split: listing.file_list_source(*pair) for split, pair in lists.items()}
    result = listing.Listing(
        num_classes=len(classes),
        class_names=tuple(classes),
        multilabel=False,
        sizes={split: len(paths) for split, (paths, _) in lists.items()},
        source=lambda split, *args, **kwargs: sources[split](split, *args, **kwargs),
        test_source=test_dir,
    )
    _CACHE[directory] = (key, result)
    return result
