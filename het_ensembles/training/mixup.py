"""Mixup training and the `+rescaling` predictions of a mixup-trained model.

Where it sits: config (`mixup_alpha`, ...) -> **mixup** -> trainer (mixed training batches, the
rescaling statistics, `test/*+rescaling`) and evaluator (`evaluation.rescaling`).

Copied from uncertainty-baselines at commit 163351d4:

- `mix_batch`: `uncertainty_baselines/datasets/augmix.py` `mixup` (no AugMix), as
  `baselines/imagenet/heteroscedastic.py` passes it `mixup_params` (`adaptive_mixup=False`):
  one weight `w ~ Beta(alpha, alpha)` per example (or one per batch with
  `same_mix_weight_per_batch`), replaced by `max(w, 1 - w)` with `use_truncated_beta` (the
  default), and the batch mixed with itself reversed (or randomly permuted with
  `use_random_shuffling`): `x = w x + (1 - w) x[pair]`, `y = w y + (1 - w) y[pair]` on one-hot
  labels. The draws here are stateless, keyed by the seed and the batch's position in the
  stream, so a run is repeatable (uncertainty-baselines draws from the global generator).
- `mean_truncated_beta`: the script's `mean_truncated_beta_distribution`,
  `1 - I_{1/2}(alpha + 1, alpha)`, the mean of `max(w, 1 - w)`.
- `rescaling_statistics`: the script's `moving_average_step` over `steps_per_epoch` batches of
  the training data without mixup (training crops, one-hot labels): the running mean of the
  batch means of the images and of the labels.
- `rescaled_model`: the script's test step "with rescaling" (Eq. 15 of Carratino et al., "On
  Mixup Regularization", 2020, the script's reference [3]): the model sees
  `theta x + (1 - theta) mean_image` and its logits become
  `logits / theta + (1 - 1 / theta) mean_label`, with `theta = mean_truncated_beta(alpha)`
  (also with `use_truncated_beta=False`, as the script does).

The statistics are saved in the member directory as `mixup_rescaling_stats.npz` (the script's
file name and keys `mean_labels`, `mean_images`, `mean_theta`; written with `np.savez`, so it
loads without pickle: the script `np.save`s a pickled list of pairs under that name).
"""

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from het_ensembles import data, member_dir
from het_ensembles.data import pipeline
from het_ensembles.training import callbacks

RESCALING_SUFFIX = "+rescaling"
# The metrics reported with the suffix (uncertainty-baselines logs nll, accuracy and ece).
RESCALED_METRICS = ("nll", "accuracy", "top5_accuracy", "ece", "brier")
STATS_KEYS = ("mean_labels", "mean_images", "mean_theta")
# Seed paths (`pipeline.derive_seed`) of the mix weights and of the statistics' data stream.
_MIX_SEED_PATH = 7
_STATS_SEED_PATH = 8


def enabled(config):
    """Whether `config` trains with mixup (`mixup_alpha > 0`)."""
    return config.mixup_alpha > 0


def mean_truncated_beta(alpha):
    """E[max(w, 1 - w)] for w ~ Beta(alpha, alpha): `1 - I_{1/2}(alpha + 1, alpha)` (the
    script's `mean_truncated_beta_distribution`, with `tf.math.betainc` for scipy's)."""
    value = tf.math.betainc(
        tf.constant(alpha + 1.0, tf.float64),
        tf.constant(alpha, tf.float64),
        tf.constant(0.5, tf.float64),
    )
    return float(1.0 - value.numpy())


def mix_weights_and_pairs(
    batch_size, seed, *, alpha, same_mix_weight_per_batch, use_random_shuffling, use_truncated_beta
):
    """The mix weights [B, 1] float32 and partner indices [B] of one batch.

    Args:
      batch_size: B (a scalar tensor or int).
      seed: a stateless seed [2] int64.
      alpha: the Beta(alpha, alpha) parameter (> 0).
      same_mix_weight_per_batch, use_random_shuffling, use_truncated_beta: the script's flags.
    """
    gamma_seed, other_seed, shuffle_seed = tf.unstack(
        tf.random.experimental.stateless_split(seed, 3)
    )
    draws = 1 if same_mix_weight_per_batch else batch_size
    # Beta(a, a) = G1 / (G1 + G2), G ~ Gamma(a); float64 so that small alphas do not underflow.
    g1 = tf.random.stateless_gamma([draws, 1], gamma_seed, alpha=alpha, dtype=tf.float64)
    g2 = tf.random.stateless_gamma([draws, 1], other_seed, alpha=alpha, dtype=tf.float64)
    weights = tf.cast(g1 / (g1 + g2), tf.float32)
    if same_mix_weight_per_batch:
        weights = tf.tile(weights, [batch_size, 1])
    if use_truncated_beta:
        weights = tf.maximum(weights, 1.0 - weights)
    if use_random_shuffling:
        pairs = tf.argsort(tf.random.stateless_uniform([batch_size], shuffle_seed))
    else:
        pairs = tf.reverse(tf.range(batch_size), axis=[0])
    return weights, pairs


def mix_batch(images, labels, seed, *, num_classes, **flags):
    """One mixup batch: `(w x + (1 - w) x[pairs], w y + (1 - w) y[pairs])`.

    Args:
      images: [B, ...] float.
      labels: integer labels [B] (made one-hot) or one-hot targets [B, K].
      seed: a stateless seed [2] int64.
      num_classes: K.
      **flags: `mix_weights_and_pairs`' keyword arguments (alpha and the three flags).

    Returns:
      `(mixed images [B, ...], mixed targets [B, K] float32)`.
    """
    if labels.shape.rank == 1:
        labels = tf.one_hot(tf.cast(labels, tf.int32), num_classes)
    labels = tf.cast(labels, tf.float32)
    weights, pairs = mix_weights_and_pairs(tf.shape(images)[0], seed, **flags)
    image_weights = tf.cast(
        tf.reshape(
            weights,
            tf.concat([tf.shape(weights)[:1], tf.ones([images.shape.rank - 1], tf.int32)], 0),
        ),
        images.dtype,
    )
    mixed_images = images * image_weights + tf.gather(images, pairs) * (1.0 - image_weights)
    mixed_labels = labels * weights + tf.gather(labels, pairs) * (1.0 - weights)
    return mixed_images, mixed_labels


def mixup_flags(config):
    """`mix_weights_and_pairs`' keyword arguments from a config."""
    return {
        "alpha": float(config.mixup_alpha),
        "same_mix_weight_per_batch": bool(config.same_mix_weight_per_batch),
        "use_random_shuffling": bool(config.use_random_shuffling),
        "use_truncated_beta": bool(config.use_truncated_beta),
    }


def mixup_dataset(dataset, config, *, num_classes, seed):
    """`dataset` of global `(x, y)` batches with every batch mixed (`mix_batch`).

    Args:
      dataset: a plain `tf.data.Dataset` of global batches (mixup pairs examples across the
        whole batch, as the script mixes the batch before the strategy splits it).
      config: the complete config (its mixup fields).
      num_classes: K.
      seed: the stream's seed; batch i's draws use `fold_in(derive_seed(seed, 7), i)`.
    """
    key = tf.constant([pipeline.derive_seed(seed, _MIX_SEED_PATH), 0], tf.int64)
    flags = mixup_flags(config)

    def mix(position, batch):
        images, labels = batch
        return mix_batch(
            images,
            labels,
            tf.random.experimental.stateless_fold_in(key, position),
            num_classes=num_classes,
            **flags,
        )

    return dataset.enumerate().map(mix, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def load_train_dataset(config, *, strategy, seed, common, num_classes):
    """The mixup training stream: global batches from `data.load`, mixed, then distributed.

    Args:
      config: the complete config.
      strategy: the training strategy (None: a plain dataset).
      seed: the stream's seed (the trainer's, derived for resumed runs).
      common: the `data.load` keyword arguments the trainer passes (`trainer.data_arguments`:
        the global batch size, image size, ...).
      num_classes: K (the labels are made one-hot).
    """
    train = data.load(config.dataset, "train", is_training=True, seed=seed, **common)
    train = mixup_dataset(train, config, num_classes=num_classes, seed=seed)
    return train if strategy is None else strategy.experimental_distribute_dataset(train)


def rescaling_statistics(config, *, steps, num_classes, common):
    """The script's `moving_average_step` statistics over `steps` training batches (no mixup).

    The running mean `m_t = b_t / t + (t - 1) / t * m_{t-1}` of the batch means `b_t` of the
    images and of the one-hot labels, as the script accumulates them (float32).

    Args:
      config: the complete config.
      steps: the number of batches (the script's `steps_per_epoch`).
      num_classes: K.
      common: the `data.load` keyword arguments the trainer passes (`trainer.data_arguments`,
        with the global batch size: the script's).

    Returns:
      `{"mean_labels": [K] float32, "mean_images": [H, W, C] float32, "mean_theta": float}`.
    """
    train = data.load(
        config.dataset,
        "train",
        is_training=True,
        seed=pipeline.derive_seed(config.seed, _STATS_SEED_PATH),
        **common,
    ).take(steps)
    image_shape = train.element_spec[0].shape[1:]
    start = (
        tf.constant(0.0),
        tf.zeros(image_shape, tf.float32),
        tf.zeros([num_classes], tf.float32),
    )

    def step(state, batch):
        count, mean_images, mean_labels = state
        images, labels = batch
        count = count + 1.0
        labels = tf.one_hot(tf.cast(labels, tf.int32), num_classes)
        batch_labels = tf.reduce_mean(labels, axis=0)
        batch_images = tf.reduce_mean(tf.cast(images, tf.float32), axis=0)
        mean_labels = batch_labels / count + (count - 1.0) / count * mean_labels
        mean_images = batch_images / count + (count - 1.0) / count * mean_images
        return count, mean_images, mean_labels

    _, mean_images, mean_labels = train.reduce(start, step)  # `steps` of an endless stream
    return {
        "mean_labels": mean_labels.numpy(),
        "mean_images": mean_images.numpy(),
        "mean_theta": np.float64(mean_truncated_beta(config.mixup_alpha)),
    }


def check_statistics(stats, *, path, input_shape=None, num_classes=None):
    """`stats` as float arrays; ValueError naming `path` for missing keys or wrong shapes."""
    missing = [key for key in STATS_KEYS if key not in stats]
    if missing:
        raise ValueError(
            f"{path} lacks the mixup rescaling statistics {missing}. Received keys: "
            f"{sorted(stats)}; allowed: {list(STATS_KEYS)}"
        )
    out = {key: np.asarray(stats[key], np.float32) for key in ("mean_labels", "mean_images")}
    out["mean_theta"] = float(np.asarray(stats["mean_theta"]))
    if not 0.5 <= out["mean_theta"] <= 1.0:
        raise ValueError(
            f"{path}: mean_theta must be in [0.5, 1] (the mean of max(w, 1 - w)). Received: "
            f"mean_theta={out['mean_theta']}"
        )
    if input_shape is not None and tuple(out["mean_images"].shape) != tuple(input_shape):
        raise ValueError(
            f"{path}: mean_images must have the model's input shape {tuple(input_shape)}. "
            f"Received: shape={out['mean_images'].shape}"
        )
    if num_classes is not None and out["mean_labels"].shape != (num_classes,):
        raise ValueError(
            f"{path}: mean_labels must have shape ({num_classes},). Received: "
            f"shape={out['mean_labels'].shape}"
        )
    return out


def read_statistics(path, **expected):
    """The statistics saved at `path` (`check_statistics` with `expected` shapes)."""
    stats = member_dir.read_npz(path, what="mixup rescaling statistics")
    return check_statistics(stats, path=path, **expected)


def member_statistics(config, files, *, steps, num_classes, common, chief):
    """The member's statistics: read back when a resumed run already wrote them, else computed
    (`rescaling_statistics`) and, on the chief, saved atomically before `model.keras`."""
    path = files["mixup_rescaling_stats"]
    try:
        return read_statistics(path, num_classes=num_classes)
    except ValueError:
        pass  # absent (the usual case) or damaged: recompute
    logging.info("Computing the mixup rescaling statistics over %d training batches.", steps)
    stats = rescaling_statistics(config, steps=steps, num_classes=num_classes, common=common)
    if chief:
        member_dir.write_npz(path, stats)
    return check_statistics(stats, path=path, num_classes=num_classes)


def rescaled_model(model, stats):
    """A functional model of `model` with the script's rescaling (module docstring), logits out.

    Args:
      model: a Keras model with one image input, logits [B, K] out.
      stats: `check_statistics`' dict.
    """
    theta = stats["mean_theta"]
    inputs = keras.Input(shape=model.inputs[0].shape[1:], dtype=model.inputs[0].dtype)
    images = inputs * theta + (1.0 - theta) * keras.ops.convert_to_tensor(stats["mean_images"])
    logits = keras.ops.cast(model(images), "float32")
    mean_labels = keras.ops.convert_to_tensor(stats["mean_labels"])
    outputs = logits / theta + (1.0 - 1.0 / theta) * mean_labels
    return keras.Model(inputs, outputs, name=f"{model.name}_mixup_rescaled")


def rescaled_test_metrics(model, test_pass, stats):
    """`test/<metric>+rescaling` of `RESCALED_METRICS`: `test_pass` (a `callbacks.EvalPass`)
    repeated with `rescaled_model(model, stats)`."""
    rescaled = callbacks.EvalPass(
        rescaled_model(model, stats),
        test_pass.dataset,
        strategy=test_pass.strategy,
        multilabel=test_pass.multilabel,
        num_classes=test_pass.num_classes,
        num_bins=test_pass.num_bins,
        expected_examples=test_pass.expected_examples,
        split=test_pass.split,
    )()
    names = {f"{test_pass.prefix}/{name}" for name in RESCALED_METRICS}
    return {key + RESCALING_SUFFIX: value for key, value in rescaled.items() if key in names}
