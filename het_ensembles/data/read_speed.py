"""Images per second through the streaming pipelines: a folder of JPEGs vs the same JPEGs in
TFRecord shards. Not a test (timings vary with the machine); a measurement to run by hand.

  python -m het_ensembles.data.read_speed --images 2000 --shards 16 --work_dir /tmp/read_speed

It writes `images` JPEGs (random smooth colour fields, 300x400, about the size of an ImageNet
image after uncertainty-baselines' resize) once as `folder:` and once as `tfrecord:` shards,
then times `het_ensembles.data.load` training and eval pipelines at `image_size` 224 (decode,
crop, resize, normalise; batches of 64), after one warm-up pass, and prints one JSON line per
(set, mode).
"""

import argparse
import io
import json
import os
import time

import numpy as np
import tensorflow as tf
from PIL import Image

from het_ensembles import data


def _jpeg(rng):
    small = rng.integers(0, 256, size=(6, 8, 3), dtype=np.uint8)
    image = Image.fromarray(small).resize((400, 300), Image.BICUBIC)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def write_sets(work_dir, images, shards, seed=0):
    """Writes the folder and the TFRecord shards (skipped if present); returns their names."""
    folder, records = os.path.join(work_dir, "folder"), os.path.join(work_dir, "tfrecord")
    if not os.path.isdir(records):
        rng = np.random.default_rng(seed)
        encoded = [(_jpeg(rng), i % 10) for i in range(images)]
        for split, part in (("train", encoded), ("test", encoded[:64])):
            for i, (jpeg, label) in enumerate(part):
                path = os.path.join(folder, split, f"c{label}", f"{i:06d}.jpg")
                os.makedirs(os.path.dirname(path), exist_ok=True)
                with open(path, "wb") as f:
                    f.write(jpeg)
        os.makedirs(records + ".tmp", exist_ok=True)
        for prefix, part, count in (("train", encoded, shards), ("validation", encoded[:64], 1)):
            for shard, run in enumerate(np.array_split(np.arange(len(part)), count)):
                name = os.path.join(records + ".tmp", f"{prefix}-{shard:05d}-of-{count:05d}")
                with tf.io.TFRecordWriter(name) as writer:
                    for index in run:
                        writer.write(_example(*part[index]))
        os.replace(records + ".tmp", records)
    return f"folder:{folder}", f"tfrecord:{records}"


def _example(jpeg, label):
    feature = {
        "image/encoded": tf.train.Feature(bytes_list=tf.train.BytesList(value=[jpeg])),
        "image/class/label": tf.train.Feature(int64_list=tf.train.Int64List(value=[label])),
    }
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def images_per_second(name, *, is_training, batches, batch_size=64, image_size=224):
    stream = data.load(
        name, "train", batch_size=batch_size, is_training=is_training, image_size=image_size
    )
    if not is_training:
        stream = stream.repeat()
    iterator = iter(stream)
    for _ in range(batches):  # warm-up: file cache, autotune
        next(iterator)
    start = time.perf_counter()
    count = sum(int(next(iterator)[0].shape[0]) for _ in range(batches))
    return count / (time.perf_counter() - start)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--shards", type=int, default=16)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--work_dir", default="read_speed")
    args = parser.parse_args(argv)
    for name in write_sets(args.work_dir, args.images, args.shards):
        for is_training in (True, False):
            rate = images_per_second(name, is_training=is_training, batches=args.batches)
            mode = "train" if is_training else "eval"
            print(json.dumps({"set": name.split(":")[0], "mode": mode, "images_per_s": rate}))


if __name__ == "__main__":
    main()
