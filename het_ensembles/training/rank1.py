"""Training a rank-1 BNN model: the annealed ELBO loss and the KL / ELBO figures it logs.

uncertainty-baselines' `baselines/imagenet/het_rank1_bnn.py` (commit 163351d4) trains on the
batch tiled M times and minimises, per step,

    loss = nll + l2 + kl_scale * kl,   kl = sum(KL of the rank-1 factors) / N_train,
    kl_scale = min(1, (step + 1) / (steps_per_epoch * kl_annealing_epochs)),

with nll the mean cross-entropy over the M * B tiled rows, and logs `train/kl`,
`train/kl_scale`, `train/elbo = -(nll + l2 + kl)` (the unannealed KL) beside `train/loss`,
`train/negative_log_likelihood` and `train/accuracy`; after each epoch, `test/kl` (the KL over
the test set size) and `test/elbo` with the ensemble's test NLL.

Here the model returns logits [B, M, K] (`het_ensembles.models.rank1`), so the nll is the
mean over members of each example's cross-entropy (`losses.CrossEntropy(heads="mean")`),
averaged over the batch: the same number.
The KL is computed from the rank-1 layers' variables (`layers.rank1.total_kl_divergence`)
inside the compiled loss, where the step is the optimizer's; the L2 term is `model.losses`
(Keras' regularizers), which Keras adds to the loss itself. Keras updates the metrics after
the step's update, so the logged `kl` and `elbo` read the updated factors (the script's, the
ones of the step's forward pass: one SGD step apart); `kl_scale` is the step's own. The metrics `nll`, `accuracy`,
`kl`, `kl_scale` and `elbo` reach the progress bar, TensorBoard and metrics.json as
`train/<name>` (`callbacks.EpochEnd`).
"""

import keras
import tensorflow as tf

from het_ensembles.layers.rank1 import rank1_layers, total_kl_divergence
from het_ensembles.training import losses

# The train metrics a rank-1 model logs beyond loss, nll and accuracy (`train/<name>`).
TRAIN_LOGS = ("kl", "kl_scale", "elbo")


def is_rank1(model):
    """Whether `model` holds rank-1 layers (its loss then has the KL term)."""
    return bool(rank1_layers(model))


def kl_scale(model, *, steps_per_epoch, kl_annealing_epochs, updated=False):
    """min(1, (step + 1) / (steps_per_epoch * kl_annealing_epochs)); 1 when annealing is 0.

    `step` is the optimizer's count before the step's update; `updated=True` (the metrics,
    which Keras updates after applying the gradients) reads it one higher.
    """
    if kl_annealing_epochs <= 0:
        return tf.constant(1.0, tf.float32)
    step = tf.cast(model.optimizer.iterations + (0 if updated else 1), tf.float32)
    return tf.minimum(1.0, step / float(steps_per_epoch * kl_annealing_epochs))


class Rank1Loss(keras.losses.Loss):
    """Per example: the members' mean cross-entropy plus kl_scale * KL / N_train.

    Args:
      model: the rank-1 model (its optimizer's step and rank-1 layers are read each call).
      cross_entropy: a `losses.CrossEntropy` with `heads="mean"` (label smoothing as the
        trainer's).
      num_train_examples: N_train, uncertainty-baselines' APPROX_IMAGENET_TRAIN_IMAGES.
      steps_per_epoch, kl_annealing_epochs: the annealing schedule (`kl_scale`).
    """

    def __init__(
        self, model, cross_entropy, *, num_train_examples, steps_per_epoch, kl_annealing_epochs
    ):
        super().__init__(name="loss")
        self.model = model
        self.cross_entropy = cross_entropy
        self.num_train_examples = float(num_train_examples)
        self.steps_per_epoch = int(steps_per_epoch)
        self.kl_annealing_epochs = int(kl_annealing_epochs)

    def call(self, y_true, y_pred):
        scale = kl_scale(
            self.model,
            steps_per_epoch=self.steps_per_epoch,
            kl_annealing_epochs=self.kl_annealing_epochs,
        )
        kl = total_kl_divergence(self.model) / self.num_train_examples
        return self.cross_entropy.call(y_true, y_pred) + scale * kl


def loss_and_metrics(model, config, *, num_classes, steps_per_epoch, num_train_examples):
    """The compiled loss and metrics of a rank-1 model (see the module docstring).

    Returns:
      `(loss, metrics)` for `model.compile`: metrics `nll`, `accuracy` (over the members'
      rows), `kl`, `kl_scale`, `elbo`, each a per-example mean.
    """
    nll = losses.CrossEntropy(num_classes, multilabel=config.multilabel, heads="mean")
    loss = Rank1Loss(
        model,
        losses.CrossEntropy(
            num_classes,
            multilabel=config.multilabel,
            label_smoothing=config.label_smoothing,
            heads="mean",
        ),
        num_train_examples=num_train_examples,
        steps_per_epoch=steps_per_epoch,
        kl_annealing_epochs=config.kl_annealing_epochs,
    )

    def per_example(value, y_pred):
        return tf.fill(tf.shape(y_pred)[:1], tf.cast(value, tf.float32))

    def kl(y_pred):
        return per_example(total_kl_divergence(model) / float(num_train_examples), y_pred)

    def elbo(y_true, y_pred):
        l2 = tf.add_n([tf.cast(x, tf.float32) for x in model.losses]) if model.losses else 0.0
        return -(nll.call(y_true, y_pred) + per_example(l2, y_pred) + kl(y_pred))

    def scale(y_pred):
        value = kl_scale(
            model,
            steps_per_epoch=steps_per_epoch,
            kl_annealing_epochs=config.kl_annealing_epochs,
            updated=True,
        )
        return per_example(value, y_pred)

    metrics = [
        losses.MeanOf(nll.call, name="nll"),
        losses.MeanOf(
            lambda y, p: losses.top1_correct(y, p, num_classes, multilabel=config.multilabel),
            name="accuracy",
        ),
        losses.MeanOf(lambda y, p: kl(p), name="kl"),
        losses.MeanOf(lambda y, p: scale(p), name="kl_scale"),
        losses.MeanOf(elbo, name="elbo"),
    ]
    return loss, metrics


def eval_terms(model, results, prefix):
    """`<prefix>/kl` (KL over the split's size, as the script's test/kl over 50,000) and
    `<prefix>/elbo` = -(nll + l2 + kl) from an eval pass's `results`; {} for a model without
    rank-1 layers."""
    count = results.get(f"{prefix}/num_examples")
    if not count or not is_rank1(model):
        return {}
    kl = float(total_kl_divergence(model)) / float(count)
    l2 = float(sum(float(x) for x in model.losses))
    return {f"{prefix}/kl": kl, f"{prefix}/elbo": -(results[f"{prefix}/nll"] + l2 + kl)}
