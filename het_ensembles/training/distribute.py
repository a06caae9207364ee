"""Where training runs: the `tf.distribute` strategy, who writes files, Keras multi-worker fixes."""

import contextlib
import os

import tensorflow as tf
from absl import logging


def make_strategy(config):
    """The `tf.distribute` strategy for this machine and config.

    `config.tpu` set: `TPUStrategy` (use "local" on a TPU VM). `TF_CONFIG` in the environment:
    `MultiWorkerMirroredStrategy`. Several GPUs: `MirroredStrategy`. Otherwise the default
    strategy (one device).
    """
    if config.tpu:
        logging.info("Strategy: TPUStrategy (tpu=%r).", config.tpu)
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=config.tpu)
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    if os.environ.get("TF_CONFIG"):
        logging.info("Strategy: MultiWorkerMirroredStrategy (TF_CONFIG is set).")
        return tf.distribute.MultiWorkerMirroredStrategy()
    num_gpus = len(tf.config.list_physical_devices("GPU"))
    if num_gpus > 1:
        logging.info("Strategy: MirroredStrategy over %d GPUs.", num_gpus)
        return tf.distribute.MirroredStrategy()
    logging.info("Strategy: default (one device).")
    return tf.distribute.get_strategy()


def drops_eval_remainder(strategy):
    """Whether evaluation drops the last partial batch."""
    # TPUs need static shapes, so there the last partial test batch is dropped.
    return isinstance(strategy, tf.distribute.TPUStrategy)


def is_chief(strategy):
    """Whether this task writes the member directory (always, unless multi-worker)."""
    if isinstance(strategy, tf.distribute.TPUStrategy):
        return True
    resolver = strategy.cluster_resolver
    if resolver is None or not resolver.task_type:
        return True
    if resolver.task_type == "chief":
        return True
    cluster = resolver.cluster_spec().as_dict()
    return resolver.task_type == "worker" and resolver.task_id == 0 and "chief" not in cluster


def barrier(strategy):
    """Returns once every worker of a multi-worker strategy has called it (else at once).

    Use it before a worker reads what the chief writes (the chief calls it after writing).
    """
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        strategy.reduce("SUM", strategy.run(lambda: tf.constant(1.0)), axis=None)


@contextlib.contextmanager
def multi_worker_fit_fixes(model):
    """Works around two bugs of Keras 3 `fit` under `MultiWorkerMirroredStrategy` (>= 2 workers).

    1. Before training, `fit` builds the metrics from one batch averaged across replicas with
       `strategy.reduce("MEAN", (x, y))`, which the multi-worker strategy cannot do for a nested
       structure ("Attempt to convert a value (PerReplica...) to a Tensor"). The build only
       needs shapes: this model builds from the first local replica's batch instead.
    2. Every step, `fit` reduces the (scalar) logs with `strategy.reduce("MEAN", v, axis=0)`
       ("Invalid reduction dimension 0 for input with 0 dimensions"). The logs are the same on
       every replica (synchronised metrics), so they are averaged with `axis=None` instead.

    Single-worker runs (and other strategies) are left untouched. Keras versions without these
    internals are left untouched too.
    """
    strategy = model.distribute_strategy
    try:
        from keras.src.backend.tensorflow import trainer as keras_tf_trainer

        multi_worker = keras_tf_trainer._collective_all_reduce_multi_worker(strategy)
        original_reduce = keras_tf_trainer.reduce_per_replica
    except (ImportError, AttributeError):
        multi_worker = False
    if not multi_worker:
        yield
        return

    def local(value):
        if isinstance(value, tf.distribute.DistributedValues):
            return strategy.experimental_local_results(value)[0]
        return value

    def build(iterator=None, data_batch=None):
        if iterator is not None:
            for _, _, batches in iterator:
                data_batch = tf.nest.map_structure(local, next(batches))
                break
        with strategy.scope():
            model._symbolic_build(data_batch=data_batch)

    def mean(value):
        if isinstance(value, tf.distribute.DistributedValues):
            return strategy.reduce("MEAN", value, axis=None)
        return value

    def reduce_per_replica(values, strategy, reduction="auto"):
        if reduction in ("auto", "mean") and keras_tf_trainer._collective_all_reduce_multi_worker(
            strategy
        ):
            return tf.nest.map_structure(mean, values)
        return original_reduce(values, strategy, reduction)

    model._maybe_symbolic_build = build
    keras_tf_trainer.reduce_per_replica = reduce_per_replica
    try:
        yield
    finally:
        keras_tf_trainer.reduce_per_replica = original_reduce
        del model._maybe_symbolic_build
