"""MIMO training batches against het_mimo.py's construction written again in numpy.

`mimo_batches.head_indices` takes its shuffles as a function, so the numpy reference and the
TensorFlow code get the same permutations (drawn here with a fixed numpy seed) and must agree
index for index; the seeded (stateless TF) shuffles are checked for the properties the script's
construction guarantees.
"""

import numpy as np
import pytest
import tensorflow as tf
from ml_collections import ConfigDict

from het_ensembles.training import mimo_batches


def _numpy_head_indices(batch_size, ensemble_size, repetitions, probability, permutations):
    """het_mimo.py's train_step in numpy; `permutations[i]` is the i-th shuffle's order."""
    main = np.tile(np.arange(batch_size), repetitions)[permutations[0]]
    # The script: tf.cast(tf.cast(n, float32) * (1. - p), int32).
    to_shuffle = int(np.float32(len(main)) * np.float32(1.0 - probability))
    columns = []
    for m in range(ensemble_size):
        head = main[:to_shuffle][permutations[1 + m][:to_shuffle]]
        columns.append(np.concatenate([head, main[to_shuffle:]]))
    return np.stack(columns, axis=1), to_shuffle


@pytest.mark.parametrize(
    "batch_size,ensemble_size,repetitions,probability",
    [(64, 2, 2, 0.6), (10, 3, 1, 0.0), (7, 4, 3, 0.5), (16, 2, 4, 1.0)],
)
def test_indices_match_numpy_with_the_same_shuffles(
    batch_size, ensemble_size, repetitions, probability
):
    rng = np.random.default_rng(0)
    n = batch_size * repetitions
    to_shuffle = int(np.float32(n) * np.float32(1.0 - probability))
    orders = [rng.permutation(n)] + [rng.permutation(to_shuffle) for _ in range(ensemble_size)]

    def shuffle(values, i):
        return tf.gather(values, orders[i][: int(values.shape[0])])

    got = mimo_batches.head_indices(
        batch_size,
        ensemble_size=ensemble_size,
        batch_repetitions=repetitions,
        repetition_probability=probability,
        shuffle=shuffle,
    ).numpy()
    expected, _ = _numpy_head_indices(batch_size, ensemble_size, repetitions, probability, orders)
    np.testing.assert_array_equal(got, expected)


def test_float32_truncation_as_the_script():
    # 5 rows, p = 0.8: float32 gives 5 * 0.2 = 1.0000000298 -> 1 row reshuffled; float64 would
    # give 0.9999999999999998 -> 0. The script computes in float32.
    assert int(np.float32(5) * np.float32(1.0 - 0.8)) == 1 and int(5 * (1.0 - 0.8)) == 0
    seen = []

    def shuffle(values, i):
        seen.append(int(values.shape[0]))
        return values

    mimo_batches.head_indices(
        5, ensemble_size=2, batch_repetitions=1, repetition_probability=0.8, shuffle=shuffle
    )
    assert seen == [5, 1, 1]  # the main shuffle, then one row per head


def test_seeded_batches_keep_the_scripts_invariants():
    config = ConfigDict(
        {"ensemble_size": 3, "batch_repetitions": 2, "input_repetition_probability": 0.6}
    )
    images = tf.reshape(tf.range(16 * 2 * 2, dtype=tf.float32), [16, 2, 2, 1])
    labels = tf.range(16) * 10
    seed = tf.constant([7, 3], tf.int64)
    x, y = mimo_batches.global_mimo_batch(images, labels, seed=seed, num_replicas=2, config=config)
    x, y = x.numpy(), y.numpy()
    assert x.shape == (32, 3, 2, 2, 1) and y.shape == (32, 3)
    rows = x[:, :, 0, 0, 0].astype(int) // 4  # the source image of each (row, head)
    np.testing.assert_array_equal(y, rows * 10)  # labels follow their images
    to_shuffle = int(np.float32(16) * np.float32(0.4))  # per replica: 8 images x 2 = 16 rows
    for replica in range(2):
        part = rows[16 * replica : 16 * (replica + 1)]
        own = set(range(8 * replica, 8 * (replica + 1)))
        assert set(part.ravel()) == own  # each replica gathers only its share
        for head in range(3):  # every image twice per head
            np.testing.assert_array_equal(np.bincount(part[:, head] - 8 * replica), [2] * 8)
        assert np.all(part[to_shuffle:] == part[to_shuffle:, :1])  # same image for all heads
        assert np.any(part[:to_shuffle, 0] != part[:to_shuffle, 1])  # reshuffled per head
    again = mimo_batches.global_mimo_batch(images, labels, seed=seed, num_replicas=2, config=config)
    np.testing.assert_array_equal(again[1].numpy(), y)  # the same seed, the same batch
