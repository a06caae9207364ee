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
  A rank-1 model's head (on its batch tiled M times, member-major; `models.rank1.MemberLogits`
  regroups the rows into [B, M, K]) gives each member's S samples the same way;
- anything else (multi-label models; several MC heads; an MC head whose output the model
  changes otherwise; sigmoid, segmentation or HetSNGP heads): no ENN samples, no joint NLL
  (None).

`ModelRunner(..., enn_samples=True)` asks `sampler` for the model once and, after every batch,
holds that batch's [S, B] ([S, B, M] for M heads) in `label_log_probs` (see `predict`).
"""

import functools

import numpy as np
import tensorflow as tf

from het_ensembles import mc
from het_ensembles.evaluation import members as members_lib
from het_ensembles.layers.base import MCHeteroscedasticBase
from het_ensembles.models.rank1 import MemberLogits


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
        members = self.model.members
        if members is None or not _class_ids(labels, log_probs.shape[-1]):
            return None
        labels = np.tile(np.asarray(labels), members)  # the rows of a member-major tiled batch
        samples = np.asarray(self._label_log_probs(features, tf.cast(labels, tf.int32)))
        if members == 1:
            return samples  # [S, B] or, for MultiHead's heads, [S, B, M]
        return samples.reshape(len(samples), members, -1).transpose(0, 2, 1)  # [S, B, M]


class _CapturingModel:
    """`model` called as `(logits, the head's inputs)` (see `MCHeadSamples`).

    `members`, known once traced: 1 if the head's output is the model's, M if a `MemberLogits`
    regroups it into the model's [B, M, K] (rank-1), None otherwise (no ENN samples).
    """

    def __init__(self, model, head):
        self.model, self.head = model, head
        self.inputs = getattr(model, "inputs", None)
        regroupers = [
            layer
            for layer in model._flatten_layers(include_self=False, recursive=True)
            if isinstance(layer, MemberLogits)
        ]
        self.regrouper = regroupers[0] if len(regroupers) == 1 else None
        self.members = None

    def __call__(self, x, training=False):
        caught = {}
        layers = [("head", self.head)] + ([("regroup", self.regrouper)] if self.regrouper else [])
        for name, layer in layers:
            layer.call = functools.partial(_catching_call, caught, name, layer.call)
        try:  # instance attributes: the classes' call stays
            logits = self.model(x, training=training)
        finally:
            for _, layer in layers:
                del layer.call
        head = caught.get("head")
        regroup = caught.get("regroup")
        self.members = None
        if head is not None and logits is head[1]:
            self.members = 1
        elif head is not None and regroup and regroup[0] is head[1] and logits is regroup[1]:
            self.members = self.regrouper.ensemble_size
        return logits, (head[0] if self.members else tf.zeros([0]))


def _catching_call(caught, name, call, inputs, *args, **kwargs):
    """A layer's call that records (inputs, output) under `name` in `caught`."""
    output = call(inputs, *args, **kwargs)
    caught[name] = (inputs, output)
    return output


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
