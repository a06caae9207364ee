"""MIMO training batches: each of the M heads gets its own shuffle of a repeated batch.

uncertainty-baselines' `baselines/imagenet/het_mimo.py` (and mimo.py) `train_step`, per replica:
a batch of b images is tiled `batch_repetitions` times and shuffled (`main_shuffle`, n = b x
repetitions indices); for each of the M heads, the first `to_shuffle = int(n (1 -
input_repetition_probability))` positions of it are shuffled again and the rest kept, so with
probability about `input_repetition_probability` all heads see the same image in a row. The
images are gathered to [n, M, H, W, C] and the labels to [n, M].

Here the loader reads global batches of `global_batch / batch_repetitions` distinct images;
each replica's share is built as the script builds one replica's batch, and the global batch
of n = global_batch rows is then split across replicas in that order
(`strategy.experimental_distribute_dataset`). Shuffles are seeded by (seed, batch number)
(`tf.random.stateless_*`), so a run's batches are reproducible.
"""

import tensorflow as tf

from het_ensembles import data


def head_indices(batch_size, *, ensemble_size, batch_repetitions, repetition_probability, shuffle):
    """The rows of a b-image batch each head reads: int32 [b x batch_repetitions, M].

    Args:
      batch_size: b, the distinct images of one replica's batch.
      ensemble_size: M.
      batch_repetitions: times each image appears in a head's column.
      repetition_probability: `input_repetition_probability`.
      shuffle: `(tensor, i) -> tensor` shuffling a 1-D tensor; i = 0 is the main shuffle,
        i = 1 + m head m's (seeded shuffles here; a test passes its own).
    """
    main = shuffle(tf.tile(tf.range(batch_size), [batch_repetitions]), 0)
    # As the script: float32 product, truncated.
    fraction = tf.constant(1.0 - repetition_probability, tf.float32)
    to_shuffle = tf.cast(tf.cast(tf.shape(main)[0], tf.float32) * fraction, tf.int32)
    columns = [
        tf.concat([shuffle(main[:to_shuffle], 1 + m), main[to_shuffle:]], axis=0)
        for m in range(ensemble_size)
    ]
    return tf.stack(columns, axis=1)


def seeded_shuffle(seed):
    """A `shuffle` for `head_indices` drawing shuffle i from `seed` folded with i (hashed: no
    shuffle of one batch repeats another batch's, as sums of step and index would)."""

    def shuffle(values, i):
        key = tf.random.experimental.stateless_fold_in(seed, i)
        keys = tf.random.stateless_uniform(tf.shape(values), seed=key)
        return tf.gather(values, tf.argsort(keys))

    return shuffle


def mimo_batch(images, labels, indices):
    """(images [n, M, ...], labels [n, M]) gathered with `head_indices`' rows."""
    return tf.gather(images, indices), tf.gather(labels, indices)


def global_mimo_batch(images, labels, *, seed, num_replicas, config):
    """One global MIMO batch from `num_replicas` replicas' shares of a batch of distinct images.

    Args:
      images, labels: the loader's global batch (b x num_replicas distinct images).
      seed: int64 [2], this batch's stateless seed.
      num_replicas: replicas the global batch is split across.
      config: the complete config (`ensemble_size`, `batch_repetitions`,
        `input_repetition_probability`).
    """
    per_replica = tf.shape(images)[0] // num_replicas
    out_images, out_labels = [], []
    for replica in range(num_replicas):
        rows = tf.range(replica * per_replica, (replica + 1) * per_replica)
        indices = head_indices(
            per_replica,
            ensemble_size=config.ensemble_size,
            batch_repetitions=config.batch_repetitions,
            repetition_probability=config.input_repetition_probability,
            shuffle=seeded_shuffle(tf.random.experimental.stateless_fold_in(seed, replica)),
        )
        x, y = mimo_batch(tf.gather(images, rows), tf.gather(labels, rows), indices)
        out_images.append(x)
        out_labels.append(y)
    return tf.concat(out_images, 0), tf.concat(out_labels, 0)


def load_train_dataset(config, *, strategy, seed, common):
    """The MIMO training stream: global batches of distinct images, built into MIMO batches of
    `common["batch_size"]` rows, then distributed.

    Args:
      config: the complete config (a MIMO model, `models.mimo`).
      strategy: the training strategy (None: a plain dataset).
      seed: the stream's seed (the trainer's, derived for resumed runs).
      common: the `data.load` keyword arguments (`trainer.data_arguments`, with the global
        batch size: the rows the model sees per step).
    """
    num_replicas = 1 if strategy is None else strategy.num_replicas_in_sync
    distinct = {**common, "batch_size": common["batch_size"] // config.batch_repetitions}
    train = data.load(config.dataset, "train", is_training=True, seed=seed, **distinct)

    def build(step, batch):
        images, labels = batch
        batch_seed = tf.random.experimental.stateless_fold_in(
            tf.constant([seed, 0], tf.int64), step
        )
        return global_mimo_batch(
            images, labels, seed=batch_seed, num_replicas=num_replicas, config=config
        )

    train = train.enumerate().map(build, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    train = train.prefetch(tf.data.AUTOTUNE)
    return train if strategy is None else strategy.experimental_distribute_dataset(train)
