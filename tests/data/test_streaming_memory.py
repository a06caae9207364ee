"""Streaming sets do not load a split into memory: peak RSS does not grow with the data.

Two folders of small JPEGs, 60 and 1,200 (20x more), each read by a fresh interpreter that
iterates the training pipeline for the same number of batches (more than one pass over the
small set) and reports its peak RSS (`resource.getrusage(RUSAGE_SELF).ru_maxrss`). Anything
that held the split (decoded images: 1,200 x 96 x 96 x 3 float32 = 133 MB; or cached them) would
push the larger run's peak up by far more than `MARGIN_MB`. What legitimately grows: the
file-path table and the shuffle buffer of encoded bytes (1,200 x ~1 KB) -- about 2 MB. This is a
memory check, not a timing one.
"""

import console
import image_files

MARGIN_MB = 40
STEPS, BATCH = 40, 16

_CHILD = """
import resource, sys
from het_ensembles import data
stream = data.load("folder:" + sys.argv[1], "train", batch_size=int(sys.argv[2]),
                   is_training=True, image_size=96)
for _ in zip(range(int(sys.argv[3])), stream):
    pass
print("peak_kb", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def _peak_mb(tmp_path, count):
    root = tmp_path / f"n{count}"
    root.mkdir()
    image = image_files.image_bytes(5, size=(120, 100))
    for split, n in (("train", count), ("test", 2)):
        for i in range(n):
            path = root / split / f"c{i % 4}" / f"{i:05d}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(image)
    done = console.python(_CHILD, str(tmp_path), args=[str(root), BATCH, STEPS])
    line = [x for x in done.stdout.splitlines() if x.startswith("peak_kb")][-1]
    print(f"{count} images: peak RSS {int(line.split()[1]) / 1024:.0f} MB")
    return int(line.split()[1]) / 1024


def test_peak_memory_does_not_grow_with_the_number_of_images(tmp_path):
    small, large = _peak_mb(tmp_path, 60), _peak_mb(tmp_path, 1200)
    assert large - small < MARGIN_MB, (small, large)
