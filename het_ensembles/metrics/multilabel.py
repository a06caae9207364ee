"""Metrics of multi-label (sigmoid) models: gAP, mAP, prec@1 and the label-wise ECE; streaming.

Where it sits: `ClassificationMetrics(multilabel=True)` (the trainer's `test/*` and the
evaluator's rows) reports these beside the NLL; the functions are public for scripts.

Inputs are 0/1 targets `labels` [N, K] (multi-hot) and per-label probabilities `probs` [N, K]
(each label's sigmoid probability of being positive; the ranking metrics use only their order).

- `gap`, global average precision, as YouTube-8M's `eval_util.calculate_gap(predictions,
  actuals, top_k=20)` (github.com/google/youtube-8m, `eval_util.py` and
  `average_precision_calculator.py`): each example's `top_k` highest-scored classes are kept,
  all kept (score, label) pairs are pooled over examples and ranked by score, and the
  non-interpolated average precision of that one ranked list is taken with the number of
  positives of ALL (example, class) pairs as the denominator (`calculate_gap` passes
  `sum(num_positives)`, the positives of every class, including those outside the top k).
- `map`, mean average precision: the non-interpolated AP of each class's ranking of the
  examples (`sklearn.metrics.average_precision_score` per column), averaged over the classes
  with at least one positive.
- `prec@1`: the share of examples whose highest-scored class is a positive, over the examples
  with at least one positive (uncertainty-baselines `baselines/jft/deterministic.py`,
  `evaluation_fn`: `top1_correct = labels[argmax(logits)]`, with examples whose labels are all
  zero masked out). When every example has a positive it equals the multi-hot `accuracy` of
  `Accuracy`.
- `ece` of a multi-label model: `MultilabelCalibrationError`, the top-1 ECE's binning over all
  (example, class) pairs: each label's probability against its 0/1 target.

Ties. YouTube-8M shuffles the pooled list with a fixed seed (`random.seed(0)`) before a stable
sort, so tied scores get a pseudo-random order. Here tied scores form one threshold, as in
scikit-learn's `average_precision_score`: every positive of a tie group gets the precision at
the group's end (the result does not depend on the order of the examples, so streaming over any
batches gives the one-shot value). With distinct scores both agree exactly. When an example's
k-th and (k+1)-th scores tie, the lower class index is kept (a stable sort).
"""

import numpy as np

from het_ensembles.metrics.classification import (
    DEFAULT_NUM_BINS,
    ExpectedCalibrationError,
    WeightedMean,
)
from het_ensembles.metrics.numerics import check_labels_and_values, example_weights, nonempty

GAP_TOP_K = 20  # YouTube-8M eval_util.calculate_gap's top_k
# The most (example, class) scores `MeanAveragePrecision` keeps by default (~1 GiB of float64);
# beyond it `map` is None (the evaluator computes it per class from its prediction cache).
MAP_MAX_VALUES = 2**27


def check_multilabel(labels, values, values_name, kind="scores"):
    """Validated 0/1 targets [N, K] (float64) and values [N, K] (float64).

    Raises:
      ValueError: for labels that are not [N, K] or not all 0 or 1, or bad values (see
        `numerics.check_labels_and_values`).
    """
    labels, values = check_labels_and_values(labels, values, values_name, kind=kind)
    if labels.ndim != 2:
        raise ValueError(
            "Multi-label metrics need 0/1 targets of shape [N, K]. "
            f"Received: labels.shape={labels.shape}"
        )
    if labels.size and not np.all((labels == 0) | (labels == 1)):
        raise ValueError(
            "Multi-label targets must be 0 or 1. Received: values "
            f"{np.unique(labels)[:10].tolist()}"
        )
    return labels, values


def precision_sums(scores, positives, weights):
    """Per column, the sum over its positives of the precision at their rank (ties grouped).

    Each column of `scores` is ranked from the highest score; a positive scored s gets the
    precision (weighted positives / weighted count) over all entries scored >= s. Divided by
    the column's (weighted) number of positives this is its non-interpolated average precision,
    `sklearn.metrics.average_precision_score`.

    Args:
      scores: [N, C] float scores.
      positives: [N, C] 0/1.
      weights: [N, C] (or broadcastable) non-negative weights of the entries.

    Returns:
      float64 [C].
    """
    scores = np.asarray(scores, dtype=np.float64)
    if scores.shape[0] == 0:
        return np.zeros(scores.shape[1])
    weights = np.broadcast_to(weights, scores.shape)
    order = np.argsort(-scores, axis=0, kind="stable")  # [N, C]
    ranked = np.take_along_axis(scores, order, axis=0)
    hits = np.take_along_axis(positives * weights, order, axis=0)
    true_positives = np.cumsum(hits, axis=0)
    counts = np.cumsum(np.take_along_axis(weights, order, axis=0), axis=0)
    # The last row of each tie group, then for every row the index of its group's last row.
    is_last = np.ones(ranked.shape, dtype=bool)
    is_last[:-1] = ranked[1:] != ranked[:-1]
    rows = np.arange(len(ranked))[:, None]
    group_end = np.flip(
        np.minimum.accumulate(np.flip(np.where(is_last, rows, len(ranked)), 0), axis=0), 0
    )
    tp_end = np.take_along_axis(true_positives, group_end, axis=0)
    count_end = np.take_along_axis(counts, group_end, axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(count_end > 0, tp_end / count_end, 0.0)
    return np.sum(hits * precision, axis=0)


def average_precision_per_class(probs, labels, *, sample_weight=None):
    """Each class's non-interpolated average precision over the examples; NaN without positives.

    Column by column, as `sklearn.metrics.average_precision_score(labels[:, k], probs[:, k])`
    (tied scores are one threshold). Memory O(N x K): for large sets call it on column chunks.

    Args:
      probs: [N, K] scores (probabilities; only their order matters).
      labels: [N, K] 0/1 targets.
      sample_weight: [N] optional example weights (as scikit-learn's `sample_weight`).

    Returns:
      float64 [K].
    """
    labels, probs = check_multilabel(labels, nonempty(probs, "probs"), "probs")
    weights = example_weights(sample_weight, len(probs))[:, None]
    num_positives = np.sum(labels * weights, axis=0)
    sums = precision_sums(probs, labels, weights)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(num_positives > 0, sums / num_positives, np.nan)


def mean_of_present_classes(per_class):
    """The mean of per-class APs over the classes that have a positive (NaN if none has)."""
    per_class = np.asarray(per_class, dtype=np.float64)
    present = ~np.isnan(per_class)
    return float(np.mean(per_class[present])) if np.any(present) else float("nan")


def mean_average_precision(probs, labels, *, sample_weight=None):
    """mAP: the mean over classes with a positive of each class's average precision.

    Args:
      probs: [N, K] per-label probabilities.
      labels: [N, K] 0/1 targets.
      sample_weight: [N] optional example weights.

    Returns:
      float; NaN when no class has a positive.
    """
    return mean_of_present_classes(
        average_precision_per_class(probs, labels, sample_weight=sample_weight)
    )


def global_average_precision(probs, labels, top_k=GAP_TOP_K, *, sample_weight=None):
    """gAP as YouTube-8M's `calculate_gap` (see the module docstring; ties grouped).

    Args:
      probs: [N, K] per-label probabilities.
      labels: [N, K] 0/1 targets.
      top_k: classes kept per example (all K when top_k >= K).
      sample_weight: [N] optional example weights.

    Returns:
      float in [0, 1]; 0.0 when no label is positive (as the reference's `peek_ap_at_n`).
    """
    metric = GlobalAveragePrecision(top_k)
    metric.update_state(labels, nonempty(probs, "probs"), sample_weight)
    return metric.result()


def precision_at_1(probs, labels, *, sample_weight=None):
    """prec@1: share of examples (with a positive) whose top-scored class is a positive.

    Args:
      probs: [N, K] per-label probabilities.
      labels: [N, K] 0/1 targets.
      sample_weight: [N] optional example weights.

    Returns:
      float; NaN when no example has a positive.
    """
    metric = PrecisionAtOne()
    metric.update_state(labels, nonempty(probs, "probs"), sample_weight)
    return metric.result()


def multilabel_calibration_error(labels, probs, *, num_bins=DEFAULT_NUM_BINS):
    """ECE over all (example, class) pairs (see `MultilabelCalibrationError`). probs [N, K]."""
    metric = MultilabelCalibrationError(num_bins)
    metric.update_state(labels, nonempty(probs, "probs"))
    return metric.result()


class PrecisionAtOne(WeightedMean):
    """prec@1, streaming: examples without a positive are left out (ties -> lower class index)."""

    def update_state(self, labels, probs, sample_weight=None):
        """Adds a batch: labels [B, K] 0/1, probs (or log-probs: only the order matters) [B, K]."""
        labels, probs = check_multilabel(labels, probs, "probs")
        self._update(labels, probs, example_weights(sample_weight, len(probs)))

    def _update(self, labels, probs, weights):
        top = np.argmax(probs, axis=1)[:, None]
        hit = np.take_along_axis(labels, top, axis=1)[:, 0]
        has_positive = np.max(labels, axis=1, initial=0.0) > 0
        self._add(hit[has_positive], weights[has_positive])


class GlobalAveragePrecision:
    """gAP, streaming: keeps each example's `top_k` scores and labels (memory N x top_k).

    Args:
      top_k: classes kept per example, an integer >= 1 (YouTube-8M's default 20).
      keep: False keeps nothing and `result()` is None (for callers that compute gAP
        themselves, one model at a time).
    """

    def __init__(self, top_k=GAP_TOP_K, *, keep=True):
        if not isinstance(top_k, (int, np.integer)) or isinstance(top_k, bool) or top_k < 1:
            raise ValueError(f"`top_k` must be an integer >= 1. Received: top_k={top_k!r}")
        self.top_k = int(top_k)
        self.keep = bool(keep)
        self.reset_state()

    def reset_state(self):
        self._scores, self._positives, self._weights = [], [], []
        self.num_positives = 0.0  # weighted positives of all pairs, in or out of the top k

    def update_state(self, labels, probs, sample_weight=None):
        """Adds a batch: labels [B, K] 0/1, probs [B, K]."""
        labels, probs = check_multilabel(labels, probs, "probs")
        self._update(labels, probs, example_weights(sample_weight, len(probs)))

    def _update(self, labels, probs, weights):
        if not self.keep:
            return
        top = np.argsort(-probs, axis=1, kind="stable")[:, : self.top_k]  # [B, k]
        self._scores.append(np.take_along_axis(probs, top, axis=1).reshape(-1))
        self._positives.append(np.take_along_axis(labels, top, axis=1).reshape(-1))
        self._weights.append(np.repeat(weights, top.shape[1]))
        self.num_positives += float(np.dot(weights, np.sum(labels, axis=1)))

    def result(self):
        if not self.keep:
            return None
        if self.num_positives <= 0:
            return 0.0
        scores = np.concatenate(self._scores)[:, None]
        positives = np.concatenate(self._positives)[:, None]
        weights = np.concatenate(self._weights)[:, None]
        return float(precision_sums(scores, positives, weights)[0] / self.num_positives)


class MeanAveragePrecision:
    """mAP, streaming: keeps every score and label (memory N x K) up to `max_values` of them.

    Each class's AP needs the whole column ranked, so nothing smaller than the scores can be
    kept. Past `max_values` scores the accumulator stops keeping them and `result()` is None;
    `max_values=0` never keeps any (for callers that compute mAP themselves, e.g. per class
    over a prediction cache).

    Args:
      max_values: the most (example, class) scores kept, >= 0.
    """

    def __init__(self, max_values=MAP_MAX_VALUES):
        if not isinstance(max_values, (int, np.integer)) or isinstance(max_values, bool):
            raise ValueError(f"`max_values` must be an integer. Received: {max_values!r}")
        if max_values < 0:
            raise ValueError(f"`max_values` must be >= 0. Received: max_values={max_values}")
        self.max_values = int(max_values)
        self.reset_state()

    def reset_state(self):
        self._scores, self._labels, self._weights = [], [], []
        self._num_values = 0
        self.overflowed = False

    def update_state(self, labels, probs, sample_weight=None):
        """Adds a batch: labels [B, K] 0/1, probs [B, K]."""
        labels, probs = check_multilabel(labels, probs, "probs")
        self._update(labels, probs, example_weights(sample_weight, len(probs)))

    def _update(self, labels, probs, weights):
        self._num_values += probs.size
        if self._num_values > self.max_values:
            self.overflowed = True
            self._scores, self._labels, self._weights = [], [], []
        if not self.overflowed:
            self._scores.append(probs)
            self._labels.append(labels)
            self._weights.append(weights)

    def result(self):
        """The mAP; None when more than `max_values` scores were given; NaN before any."""
        if self.overflowed:
            return None
        if not self._scores:
            return float("nan")
        return mean_average_precision(
            np.concatenate(self._scores),
            np.concatenate(self._labels),
            sample_weight=np.concatenate(self._weights),
        )


class MultilabelCalibrationError(ExpectedCalibrationError):
    """ECE of a multi-label model over all (example, class) pairs.

    Every label is one binary prediction: its probability p_k is the confidence and its 0/1
    target the outcome. Binned as `ExpectedCalibrationError` (robustness-metrics' equal-width
    bins, `clip(floor(p * num_bins), 0, num_bins - 1)`), so `ECE = sum_b n_b / (N K) *
    |positives_b / n_b - mean p_b|`; `bin_correct` holds each bin's (weighted) positives, so a
    reliability diagram of these bins plots the fraction of positives against the probability.

    Args:
      num_bins: number of equal-width probability bins, >= 1.
    """

    def update_state(self, labels, probs, sample_weight=None):
        """Adds a batch: labels [B, K] 0/1, probs [B, K]."""
        labels, probs = check_multilabel(labels, probs, "probs", kind="probs")
        self._update(labels, probs, example_weights(sample_weight, len(probs)))

    def _update(self, labels, probs, weights):
        self._add_to_bins(probs.reshape(-1), labels.reshape(-1), np.repeat(weights, probs.shape[1]))
