"""The training loss and the metrics Keras reports during `fit`."""

import keras
import tensorflow as tf

HEAD_REDUCTIONS = ("sum", "mean")  # how `CrossEntropy` combines the heads of a multi-head model


class CrossEntropy(keras.losses.Loss):
    """Per-example NLL of integer labels [B] (or targets [B, K]) given logits [B, K].

    Targets [B, K] may be soft: one-hot rows mixed by mixup (`training.mixup`) give
    `-sum_k y_k log p_k`, uncertainty-baselines' `categorical_crossentropy` of mixed labels.

    Softmax cross-entropy, or with `multilabel=True` the sigmoid cross-entropy summed over the
    K labels (the NLL of the target vector under independent Bernoullis; `metrics.nll` with
    `multilabel=True` is the same number). Optional label smoothing as Keras':
    softmax targets `(1 - s) y + s / K`, sigmoid targets `(1 - s) y + s / 2`.

    A model of M heads (logits [B, M, K]) takes labels [B, M] (one per head, MIMO) or [B] (the
    same for every head); its per-example loss is the heads' cross-entropies summed
    (`heads="sum"`, uncertainty-baselines' het_mimo.py / mimo.py) or averaged (`"mean"`).
    """

    def __init__(
        self, num_classes, *, multilabel=False, label_smoothing=0.0, heads="sum", name="nll"
    ):
        super().__init__(name=name)
        if heads not in HEAD_REDUCTIONS:
            raise ValueError(f"heads must be one of {HEAD_REDUCTIONS}. Received: {heads=!r}")
        self.num_classes = int(num_classes)
        self.multilabel = bool(multilabel)
        self.label_smoothing = float(label_smoothing)
        self.heads = heads

    def call(self, y_true, y_pred):
        logits = tf.cast(y_pred, tf.float32)
        targets = _targets(y_true, self.num_classes, logits)
        if self.multilabel:
            targets = targets * (1.0 - self.label_smoothing) + 0.5 * self.label_smoothing
            per_label = tf.nn.sigmoid_cross_entropy_with_logits(labels=targets, logits=logits)
            return tf.reduce_sum(per_label, axis=-1)
        targets = targets * (1.0 - self.label_smoothing) + self.label_smoothing / self.num_classes
        loss = tf.nn.softmax_cross_entropy_with_logits(labels=targets, logits=logits)
        if logits.shape.rank == 3:  # [B, M]: one value per head
            reduce = tf.reduce_sum if self.heads == "sum" else tf.reduce_mean
            loss = reduce(loss, axis=1)
        return loss

    def get_config(self):
        return {
            "num_classes": self.num_classes,
            "multilabel": self.multilabel,
            "label_smoothing": self.label_smoothing,
            "heads": self.heads,
            "name": self.name,
        }


class MeanOf(keras.metrics.Mean):
    """Mean over examples of `fn(y_true, y_pred)` [B] (Keras' wrapper would reshape labels)."""

    def __init__(self, fn, name):
        super().__init__(name=name)
        self._fn = fn

    def update_state(self, y_true, y_pred, sample_weight=None):
        return super().update_state(self._fn(y_true, y_pred), sample_weight)


def top1_correct(y_true, y_pred, num_classes, *, multilabel=False):
    """1.0 where the top-scored class is right, per example [B].

    Softmax: the target's largest entry (the label; for a mixup target the class with the larger
    mix weight, as uncertainty-baselines' `train/accuracy` takes `argmax` of mixed labels).
    Multi-label: any positive label. A model of M heads: [B, M], one value per head.
    """
    targets = _targets(y_true, num_classes, y_pred)
    if not multilabel:
        same = tf.equal(tf.argmax(y_pred, axis=-1), tf.argmax(targets, axis=-1))
        return tf.cast(same, "float32")
    predicted = tf.one_hot(tf.argmax(y_pred, axis=-1), num_classes)
    return tf.cast(tf.reduce_sum(predicted * targets, axis=-1) > 0, "float32")


def _targets(y_true, num_classes, y_pred=None):
    """Integer labels [B] -> one-hot [B, K]; targets [B, K] (0/1 or mixed) pass through.

    With logits [B, M, K] of M heads (`y_pred`): integer labels [B, M] (one per head) or [B]
    (the same for every head) -> one-hot [B, M, K].
    """
    if y_pred is not None and y_pred.shape.rank == 3:
        labels = tf.cast(y_true, tf.int32)
        if labels.shape.rank == 1:  # [B] -> [B, M]
            labels = labels[:, None] + tf.zeros(tf.shape(y_pred)[:2], tf.int32)
        return tf.one_hot(labels, num_classes)
    if y_true.shape.rank == 1:
        return tf.one_hot(tf.cast(y_true, tf.int32), num_classes)
    return tf.cast(y_true, tf.float32)
