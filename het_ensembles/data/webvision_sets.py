"""`webvision:ROOT`: WebVision 1.0 (Li et al. 2017) in its own released layout.

What we assume of ROOT (the resized "small version" release, as the WebVision loaders of
DivideMix and ELR read it):

- `ROOT/info/train_filelist_google.txt` and `ROOT/info/train_filelist_flickr.txt`: lines
  `<path relative to ROOT> <label>`, e.g. `google/q0001/000000.jpg 0`; together (Google first,
  then Flickr, each in file order) they are our `train` split (2.4M images in the release);
- `ROOT/info/val_filelist.txt`: lines `<file name> <label>`, e.g. `val000001.jpg 0`, the images
  under `ROOT/val_images_256/`; WebVision's validation set is our `test` split (50,000);
- optional `ROOT/info/synsets.txt`: one line per class in label order (`n01440764 tench, ...`);
  the first word (the WordNet id) is the class name, as for `imagenet2012`.

A train file list may be missing (e.g. a Google-only subset), not both. K is `num_classes` when
given, else the number of synsets.txt lines, else the largest label + 1. Every listed image must
exist (checked once per process, with the labels' range); the listing is cached per process,
keyed by the list files' modification times.
"""

import os

from het_ensembles.data import listing

TRAIN_LISTS = ("train_filelist_google.txt", "train_filelist_flickr.txt")
VAL_LIST = "val_filelist.txt"
VAL_IMAGES = "val_images_256"
SYNSETS = "synsets.txt"

_CACHE = {}  # root -> (fingerprint, Listing)


def _read_list(path, image_dir):
    """(paths under `image_dir`, integer labels) of a `<relative path> <label>` file list."""
    paths, labels = [], []
    with open(path) as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            parts = line.rsplit(maxsplit=1)
            if len(parts) != 2 or not parts[1].lstrip("-").isdigit():
                raise ValueError(
                    f"{path} line {number} is {line.strip()!r}. Expected '<relative path> "
                    "<integer label>'."
                )
            paths.append(os.path.join(image_dir, parts[0]))
            labels.append(int(parts[1]))
    return paths, labels


def get_listing(spec):
    """The `listing.Listing` of `webvision:ROOT` (cached; see the module docstring).

    Raises:
      ValueError: no file list, a malformed line, a listed image that does not exist, a label
        outside [0, K), or a synsets.txt of another length than K.
    """
    root = os.path.abspath(os.path.expanduser(spec.location))
    info = os.path.join(root, "info")
    train_lists = [
        os.path.join(info, n) for n in TRAIN_LISTS if os.path.isfile(os.path.join(info, n))
    ]
    val_list = os.path.join(info, VAL_LIST)
    if not train_lists or not os.path.isfile(val_list):
        raise ValueError(
            f"{info} lacks WebVision's file lists. Expected {info}/{TRAIN_LISTS[0]} (and/or "
            f"{TRAIN_LISTS[1]}) and {info}/{VAL_LIST}. Received: {spec.name!r}"
        )
    synsets = os.path.join(info, SYNSETS)
    watched = [*train_lists, val_list] + ([synsets] if os.path.isfile(synsets) else [])
    key = (tuple((p, os.stat(p).st_mtime_ns) for p in watched), spec.get("num_classes"))
    cached = _CACHE.get(root)
    if cached is not None and cached[0] == key:
        return cached[1]
    lists = {path: _read_list(path, root) for path in train_lists}
    lists[val_list] = _read_list(val_list, os.path.join(root, VAL_IMAGES))
    for path, (paths, _) in lists.items():
        listing.check_files_exist(paths, path)
    train_paths = [p for path in train_lists for p in lists[path][0]]
    train_labels = [y for path in train_lists for y in lists[path][1]]
    test_paths, test_labels = lists[val_list]
    names = None
    if os.path.isfile(synsets):
        with open(synsets) as f:
            names = tuple(line.split()[0] for line in f if line.strip())
    num_classes = spec.get("num_classes") or (
        len(names) if names else max(train_labels + test_labels) + 1
    )
    if names is not None and len(names) != num_classes:
        raise ValueError(f"{synsets} names {len(names)} classes; expected K={num_classes}.")
    for path, (_, labels) in lists.items():
        listing.check_label_range(labels, num_classes, path)
    sources = {
        "train": listing.file_list_source(train_paths, train_labels),
        "test": listing.file_list_source(test_paths, test_labels),
    }
    result = listing.Listing(
        num_classes=num_classes,
        class_names=names,
        multilabel=False,
        sizes={"train": len(train_paths), "test": len(test_paths)},
        source=lambda split, *args, **kwargs: sources[split](split, *args, **kwargs),
        test_source=val_list,
    )
    _CACHE[root] = (key, result)
    return result
