"""`as_dataset_fn`s for `console.run(..., mock_tfds=dict(as_dataset_fn="<this file>:<name>"))`.

Loaded by the subprocess's sitecustomize from this file's path, not imported by the tests.
`IMAGENET_SUBSET_MOCK` is the `mock_tfds` argument that uses `imagenet_subset_labels`.
"""

import os

IMAGENET_SUBSET_MOCK = {
    "as_dataset_fn": os.path.join(os.path.dirname(os.path.abspath(__file__)), "mock_sets.py")
    + ":imagenet_subset_labels"
}

IMAGES = 8


def imagenet_subset_labels(builder, split, **kwargs):
    """8 random JPEG images for every ImageNet set, labelled with classes of both 200-class
    subsets: ImageNet-A and -R hold only those classes, which TFDS's random mock labels ignore
    (the evaluator then rightly refuses them)."""
    del builder, split, kwargs
    import numpy as np
    import tensorflow as tf

    from het_ensembles.data import class_subsets

    labels = sorted(set(class_subsets.IMAGENET_A_INDICES) & set(class_subsets.IMAGENET_R_INDICES))
    rng = np.random.default_rng(0)
    images = [
        tf.io.encode_jpeg(rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)).numpy()
        for _ in range(IMAGES)
    ]
    return tf.data.Dataset.from_tensor_slices(
        {"image": images, "label": np.array(labels[:IMAGES], np.int64)}
    )
