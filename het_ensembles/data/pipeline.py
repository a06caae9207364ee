"""The tf.data stages every dataset shares: shard, shuffle, repeat, augment, batch, distribute.

TFDS sets (`tfds_sets`) and in-memory arrays (`arrays`) only say where examples come from and
how one example is preprocessed; this module turns that into the batched, prefetched pipeline
that `het_ensembles.data.load` returns.

Determinism: the shuffle order and every random augmentation are functions of `seed` only.
The shuffle uses an op-level seed; augmentations use stateless ops keyed by
`fold_in(seed, position in the stream)`, so the same seed gives the same batches in every run,
and each epoch still sees fresh crops (the position keeps counting across epochs).
"""

import numpy as np
import tensorflow as tf


def derive_seed(seed, *path):
    """A 31-bit integer seed derived from `seed` and `path` by hashing (np.random.SeedSequence).

    Neighbouring seeds (0, 1, 2, ... for ensemble members) give unrelated streams, unlike
    `seed + i`.
    """
    return int(np.random.SeedSequence([seed, *path]).generate_state(1)[0] >> 1)


def build(
    make_source,
    preprocess,
    *,
    batch_size,
    is_training,
    seed,
    drop_remainder,
    shuffle_buffer,
    strategy=None,
    cache_source=False,
    shards_source=False,
    skip_errors=False,
):
    """Builds the batched pipeline, per replica when a `tf.distribute` strategy is given.

    Args:
      make_source: `() -> tf.data.Dataset` of raw examples, in a fixed order.
      preprocess: `(example, seed) -> (x, y)`; `seed` is a stateless seed [2] int64 unique to
        this example's position in the stream.
      batch_size: the *global* batch size. With a strategy each replica receives
        `batch_size // strategy.num_replicas_in_sync` examples per step; the caller multiplies
        the per-core batch size by the number of replicas (as uncertainty-baselines does).
      is_training: shuffle (seeded), repeat forever and let `preprocess` augment; otherwise one
        pass in order.
      seed: non-negative int.
      drop_remainder: whether to drop the last partial batch.
      shuffle_buffer: shuffle buffer size (training only).
      strategy: optional `tf.distribute.Strategy`.
      cache_source: cache the raw examples in memory after the first pass (small sets).
      shards_source: `make_source` takes `(shard_index, num_shards)` and returns only that
        input pipeline's examples (the streaming sets shard at file level that way); by default
        the examples are sharded here, one per pipeline in turn.
      skip_errors: drop examples whose `preprocess` fails (`skip_corrupt=true` sets) instead of
        stopping with the error.

    Returns:
      A `tf.data.Dataset`, or with a strategy a distributed dataset from
      `strategy.distribute_datasets_from_function` (accepted by `keras.Model.fit`).
    """
    kwargs = {
        "make_source": make_source,
        "preprocess": preprocess,
        "is_training": is_training,
        "seed": seed,
        "drop_remainder": drop_remainder,
        "shuffle_buffer": shuffle_buffer,
        "cache_source": cache_source,
        "shards_source": shards_source,
        "skip_errors": skip_errors,
    }
    if strategy is None:
        return _pipeline(batch_size=batch_size, shard_index=0, num_shards=1, **kwargs)

    def dataset_fn(context):
        return _pipeline(
            batch_size=context.get_per_replica_batch_size(batch_size),
            shard_index=context.input_pipeline_id,
            num_shards=context.num_input_pipelines,
            **kwargs,
        )

    return strategy.distribute_datasets_from_function(dataset_fn)


def _pipeline(
    *,
    make_source,
    preprocess,
    batch_size,
    is_training,
    seed,
    drop_remainder,
    shuffle_buffer,
    cache_source,
    shards_source,
    skip_errors,
    shard_index,
    num_shards,
):
    dataset = make_source(shard_index, num_shards) if shards_source else make_source()
    if cache_source:
        dataset = dataset.cache()
    if num_shards > 1 and not shards_source:
        # One shard per host (input pipeline): every example is seen by exactly one host, so
        # multi-host evaluation counts each example once.
        dataset = dataset.shard(num_shards, shard_index)
    if is_training:
        dataset = dataset.shuffle(
            shuffle_buffer,
            seed=derive_seed(seed, shard_index, 0),
            reshuffle_each_iteration=True,
        )
        dataset = dataset.repeat()
    # The position in the (repeated) stream keys the per-example augmentation seed.
    dataset = dataset.enumerate()
    augment_key = tf.constant([derive_seed(seed, shard_index, 1), 0], tf.int64)

    def parse(position, example):
        return preprocess(example, tf.random.experimental.stateless_fold_in(augment_key, position))

    dataset = dataset.map(parse, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if skip_errors:
        dataset = dataset.ignore_errors()
    dataset = dataset.batch(
        batch_size,
        drop_remainder=drop_remainder,
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
    dataset = dataset.prefetch(tf.data.AUTOTUNE)
    options = tf.data.Options()
    options.deterministic = True
    return dataset.with_options(options)
