"""Real image files and TFRecord shards for the streaming-set tests, with the index in the pixels.

Example `i` of a written set is a solid image of grey level `level(i) = 10 + 6 * i` (colour
images put it in the red channel; green and blue vary), so after decoding, cropping, resizing and
normalising, `indices_of(x)` reads `i` back from the red channel: the tests check each
example's label and split membership against what they wrote, not against the loader's own
bookkeeping. At most `MAX_EXAMPLES` examples per set (JPEG keeps a solid level within +-2).
"""

import io
import os

import numpy as np
import tensorflow as tf
from PIL import Image

MAX_EXAMPLES = 40
FORMATS = ("JPEG", "PNG", "BMP", "GIF")
EXTENSIONS = {"JPEG": ".jpg", "PNG": ".png", "BMP": ".bmp", "GIF": ".gif"}
MEAN, STD = 0.485, 0.229  # ImageNet red channel (uncertainty-baselines datasets/imagenet.py)


def level(i):
    if not 0 <= i < MAX_EXAMPLES:
        raise ValueError(f"index {i} outside [0, {MAX_EXAMPLES})")
    return 10 + 6 * i


def image_bytes(i, *, fmt="JPEG", size=(24, 32), grey=False):
    """Encoded bytes of example `i`'s solid image (`size` = (height, width))."""
    if grey:
        image = Image.fromarray(np.full(size, level(i), np.uint8), "L")
    else:
        pixel = (level(i), 255 - level(i), (37 * i) % 256)
        image = Image.fromarray(np.full((*size, 3), pixel, np.uint8), "RGB")
    buffer = io.BytesIO()
    # 4:4:4 chroma at quality 95 keeps a solid colour's red channel within +-2.
    image.save(buffer, fmt, **({"quality": 95, "subsampling": 0} if fmt == "JPEG" else {}))
    return buffer.getvalue()


def indices_of(x):
    """The example indices encoded in normalised images x [B, H, W, 3] (centre pixel, red)."""
    x = np.asarray(x)
    grey = (x[:, x.shape[1] // 2, x.shape[2] // 2, 0] * STD + MEAN) * 255
    return np.rint((grey - 10) / 6).astype(int)


def write_file(path, i, **kwargs):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(image_bytes(i, **kwargs))


def variety(i):
    """Format, size and colour mode of example `i`: every format, grey and colour, sizes."""
    return {
        "fmt": FORMATS[i % len(FORMATS)],
        "size": (20 + 3 * (i % 5), 18 + 5 * (i % 3)),
        "grey": i % 3 == 1,
    }


def write_folder_split(split_dir, labels_by_index):
    """Writes `{index: class name}` as `split_dir/<class>/img<index>.<ext>`; returns paths."""
    paths = {}
    for i, class_name in labels_by_index.items():
        kind = variety(i)
        path = os.path.join(split_dir, class_name, f"img{i:03d}{EXTENSIONS[kind['fmt']]}")
        write_file(path, i, **kind)
        paths[i] = path
    return paths


def example(i, labels, *, text=None, fmt="JPEG"):
    """A serialised tf.train.Example of image `i` with int64 label list `labels`."""
    feature = {
        "image/encoded": tf.train.Feature(
            bytes_list=tf.train.BytesList(value=[image_bytes(i, **{**variety(i), "fmt": fmt})])
        ),
        "image/class/label": tf.train.Feature(int64_list=tf.train.Int64List(value=list(labels))),
    }
    if text is not None:
        feature["image/class/text"] = tf.train.Feature(
            bytes_list=tf.train.BytesList(value=[t.encode() for t in text])
        )
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def write_shards(directory, prefix, records, num_shards):
    """Writes serialised `records` round-robin-free: consecutive runs into `num_shards` files
    `<prefix>-0000i-of-0000n`; returns the per-shard record counts."""
    os.makedirs(directory, exist_ok=True)
    runs = np.array_split(np.arange(len(records)), num_shards)
    for shard, run in enumerate(runs):
        path = os.path.join(directory, f"{prefix}-{shard:05d}-of-{num_shards:05d}")
        with tf.io.TFRecordWriter(path) as writer:
            for index in run:
                writer.write(records[index])
    return [len(run) for run in runs]


def all_indices(dataset):
    """(indices decoded from every batch's images, labels) of a finite `(x, y)` dataset."""
    indices, labels = [], []
    for x, y in dataset:
        indices.append(indices_of(x))
        labels.append(np.asarray(y))
    return np.concatenate(indices), np.concatenate(labels)


WEBVISION_SYNSETS = (
    "n01440764 tench, Tinca tinca",
    "n01443537 goldfish",
    "n01484850 great white shark",
)


def write_webvision(root, *, synsets=True):
    """A miniature WebVision 1.0 layout under `root` (a pathlib.Path): 10 train images in
    google/ and flickr/, 4 validation images; returns {image index: label}."""
    info = root / "info"
    info.mkdir(parents=True, exist_ok=True)
    lists = {"train_filelist_google.txt": range(6), "train_filelist_flickr.txt": range(6, 10)}
    labels = {i: (i * 2) % 3 for i in range(14)}
    for list_name, indices in lists.items():
        source = list_name.split("_")[-1][:-4]
        lines = []
        for i in indices:
            relative = f"{source}/q{labels[i]:04d}/{i:06d}.jpg"
            write_file(str(root / relative), i, **{**variety(i), "fmt": "JPEG"})
            lines.append(f"{relative} {labels[i]}\n")
        (info / list_name).write_text("".join(lines))
    val_lines = []
    for i in range(10, 14):
        write_file(str(root / "val_images_256" / f"val{i:06d}.jpg"), i, fmt="JPEG")
        val_lines.append(f"val{i:06d}.jpg {labels[i]}\n")
    (info / "val_filelist.txt").write_text("".join(val_lines))
    if synsets:
        (info / "synsets.txt").write_text("\n".join(WEBVISION_SYNSETS) + "\n")
    return labels
