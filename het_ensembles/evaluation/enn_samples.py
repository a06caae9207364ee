"""A member's ENN samples for the joint NLL: the true label's log-probability under each sample.

The joint NLL (`het_ensembles.metrics.joint`, uncertainty-baselines' `test/joint_nll`) needs,
per test example, log p_s(y | x) for every sample s of the model's predictive distribution:

- a heteroscedastic Monte Carlo softmax head: its S test MC samples (uncertainty-baselines'
  `return_unaveraged_logits=True`), the same samples (seed, chunks) its averaged prediction
  uses; only the label's log-probability of each is kept, chunk by chunk
  (`mc.per_sample_label_log_probs`), never [B, S, K];
- a model without an MC head: one sample, its predictive distribution;
- anything else (multi-label models; an MC head that is not the model's output layer, a
  sigmoid, multi-head, segmentation or HetSNGP head; outputs [B, M, K]): no ENN samples, no
  joint NLL (None).

`ModelRunner(..., enn_samples=True)` asks `sampler` for the model once and, after every batch,
holds that batch's [S, B] in `label_log_probs` (see `predict`); a model of M heads without an
MC head gives [1, B, M] (each head one sample: the evaluator's head members).
"""

import functools

import keras
import numpy as np
import tensorflow as tf

from het_ensembles import mc
from het_ensembles.evaluation import members as members_lib
from het_ensembles.layers.base import MCHeteroscedasticBase


def sampler(model, *, multilabel=False):
    """The model's ENN sampler: `PredictiveSample`, `MCHeadSamples`, or None (no joint NLL)."""
    if multilabel:
        return None
    heads = members_lib.mc_heads(model)
    if not heads:
        return PredictiveSample()
    if len(heads) == 1 and _is_output_head(model, heads[0]):
        return MCHeadSamples(model, heads[0])
    return None


def _is_output_head(model, head):
    """True for a plain softmax MC head whose [B, K] logits are the model's one output."""
    plain = (
        isinstance(head, MCHeteroscedasticBase)
        and type(head).call is MCHeteroscedasticBase.call
        and type(head).unflatten is MCHeteroscedasticBase.unflatten
        and head.link == "softmax"
        and "heads" not in head.mc_options()
        and head.logits_only
        and not head.return_unaveraged_logits
    )
    try:
        outputs = model.outputs
        return plain and len(outputs) == 1 and outputs[0] is head.output
    except (AttributeError, ValueError):  # subclassed models: no graph to cut
        return False


class PredictiveSample:
    """One ENN sample: the model's own predictive distribution: [1, B] (a model of M heads,
    log-probabilities [B, M, K]: [1, B, M], one sample per head)."""

    model = None  # the runner keeps its plain forward pass

    def __call__(self, features, labels, log_probs):
        del features
        if not _class_ids(labels, log_probs.shape[-1]):
            return None
        labels = np.asarray(labels).reshape((-1,) + (1,) * (log_probs.ndim - 1))
        return np.take_along_axis(log_probs, labels, axis=-1)[None, ..., 0]


class MCHeadSamples:
    """The S test samples of the model's MC head, from the features its forward pass returns.

    `model`: the member's model with a second output, the head's input features, so the
    backbone runs once; `__call__` samples the head from them outside the timed forward pass.
    """

    def __init__(self, model, head):
        self.head = head
        self.model = keras.Model(model.inputs, [model.outputs[0], head.input])
        self._label_log_probs = tf.function(
            functools.partial(_label_log_probs, head), reduce_retracing=True
        )

    def __call__(self, features, labels, log_probs):
        if not _class_ids(labels, log_probs.shape[-1]):
            return None
        return np.asarray(self._label_log_probs(features, tf.cast(labels, tf.int32)))


def _class_ids(labels, num_classes):
    """True for [B] class indices in [0, K); other labels (the evaluator then refuses the
    dataset, after its pass) have no ENN label log-probabilities."""
    labels = np.asarray(labels)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        return False
    return labels.size == 0 or (labels.min() >= 0 and labels.max() < num_classes)


def _label_log_probs(head, features, labels):
    """[S, B] log p_s(label) of `head`'s inference samples (`MCHeteroscedasticBase.sampling`)."""
    loc, diag_scale, factors = head.noise_params(head._check_inputs(features))
    seed, kwargs = head.sampling(loc)
    return mc.per_sample_label_log_probs(
        loc, diag_scale, factors, head.temperature, seed, labels, **kwargs
    )
