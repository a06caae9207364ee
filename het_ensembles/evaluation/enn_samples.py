"""A member's ENN samples for the joint NLL: the true label's log-probability under each sample.

The joint NLL (`het_ensembles.metrics.joint`, uncertainty-baselines' `test/joint_nll`) needs,
per test example, log p_s(y | x) for every sample s of the model's predictive distribution:

- a heteroscedastic Monte Carlo softmax head whose logits are the model's output: its S test
  MC samples (uncertainty-baselines' `return_unaveraged_logits=True`), the same samples (seed,
  chunks) its averaged prediction uses; only the label's log-probability of each is kept, chunk
  by chunk (`mc.per_sample_label_log_probs`), never [B, S, K]. A MIMO model's
  `MultiHeadMCSoftmaxDenseFA` (logits [B, M, K]) gives each head's S samples;
- a model without an MC head: one sample, its predictive distribution (one per head of a model
  of M heads);
- anything else (multi-label models; several MC heads; an MC head whose output the model
  changes, e.g. rank-1's reshape of its tiled batch; sigmoid, segmentation or HetSNGP heads):
  no ENN samples, no joint NLL (None).

`ModelRunner(..., enn_samples=True)` asks `sampler` for the model once and, after every batch,
holds that batch's [S, B] ([S, B, M] for M heads) in `label_log_probs` (see `predict`).
"""

import functools

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
    if len(heads) == 1 and _plain_softmax_head(heads[0]):
        return MCHeadSamples(model, heads[0])
    return None


def _plain_softmax_head(head):
    """A softmax MC head sampled by the base class's call (one head or MultiHead's M)."""
    return (
        isinstance(head, MCHeteroscedasticBase)
        and type(head).call is MCHeteroscedasticBase.call
        and (
            type(head).unflatten is MCHeteroscedasticBase.unflatten or "heads" in head.mc_options()
        )
        and head.link == "softmax"
        and head.logits_only
        and not head.return_unaveraged_logits
    )


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

    `model`: the member's model, returning (logits, the head's input features) so the backbone
    runs once: while it is traced, the head's `call` is wrapped to catch its inputs and output
    (nested models too, e.g. a MIMO member's tiling wrapper). If the head's output is not the
    model's output (the model changes it), the model has no ENN samples here (None).
    `__call__` then samples the head from the features, outside the timed forward pass.
    """

    def __init__(self, model, head):
        self.head = head
        self.model = _CapturingModel(model, head)
        self._label_log_probs = tf.function(
            functools.partial(_label_log_probs, head), reduce_retracing=True
        )

    def __call__(self, features, labels, log_probs):
        if not self.model.head_is_output or not _class_ids(labels, log_probs.shape[-1]):
            return None
        return np.asarray(self._label_log_probs(features, tf.cast(labels, tf.int32)))


class _CapturingModel:
    """`model` called as `(logits, the head's inputs)` (see `MCHeadSamples`)."""

    def __init__(self, model, head):
        self.model, self.head = model, head
        self.inputs = getattr(model, "inputs", None)
        self.head_is_output = None  # known once traced

    def __call__(self, x, training=False):
        caught = {}
        call = self.head.call

        def catching_call(inputs, *args, **kwargs):
            caught["inputs"], caught["output"] = inputs, call(inputs, *args, **kwargs)
            return caught["output"]

        self.head.call = catching_call  # an instance attribute: the class's call stays
        try:
            logits = self.model(x, training=training)
        finally:
            del self.head.call
        self.head_is_output = logits is caught.get("output")
        features = caught["inputs"] if self.head_is_output else tf.zeros([0])
        return logits, features


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
