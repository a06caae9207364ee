"""Metrics of one model: accuracy, NLL, ECE (robustness-metrics' definition), Brier; streaming.

Each one-shot function (`accuracy`, `nll`, ...) is a call of its streaming twin (`Accuracy`,
`NegativeLogLikelihood`, ...); `ClassificationMetrics` runs them all over batches.
"""

import numpy as np

from het_ensembles.metrics.numerics import (
    check_labels_and_values,
    example_weights,
    label_log_likelihood,
    logsumexp,
    nonempty,
    top_k_correct,
)

DEFAULT_NUM_BINS = 15  # robustness-metrics / uncertainty-baselines ECE default


def log_probs_from_logits(logits, *, multilabel=False):
    """Model logits [N, K] -> log-probabilities [N, K] (float32).

    Args:
      logits: array-like (numpy or eager tensor) [N, K].
      multilabel: False: `log_softmax` (one class per example); True: `log_sigmoid` per label.

    Returns:
      float32 numpy array [N, K].
    """
    logits = np.asarray(logits, dtype=np.float64)
    if logits.ndim != 2:
        raise ValueError(f"`logits` must have shape [N, K]. Received: logits.shape={logits.shape}")
    bad = np.isnan(logits) | (logits == np.inf)
    if np.any(bad):
        raise ValueError(
            f"`logits` contain NaN or +inf (a diverged model?). Received: {int(np.sum(bad))} such "
            f"values in logits.shape={logits.shape}"
        )
    if multilabel:
        out = -np.logaddexp(0.0, -logits)
    else:
        out = logits - logsumexp(logits, axis=-1, keepdims=True)
    return out.astype(np.float32)


class WeightedMean:
    """Weighted running sums; `result()` divides by the total weight (nan before any update)."""

    def __init__(self):
        self.reset_state()

    def reset_state(self):
        self.total = 0.0  # sum of per-example values times weights
        self.count = 0.0  # sum of weights

    def _add(self, values, weights):
        self.total += float(np.dot(values, weights))
        self.count += float(np.sum(weights))

    def result(self):
        return self.total / self.count if self.count > 0 else float("nan")


class Accuracy(WeightedMean):
    """Top-k accuracy; with multi-hot labels, "some target is among the top k".

    Ties are broken towards the lower class index, as `np.argmax` does, so `k=1` is exactly
    `argmax(probs) == label`. With k >= K every example is a hit.

    Args:
      k: number of top predictions that count as a hit, >= 1.
    """

    def __init__(self, k=1):
        if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1:
            raise ValueError(f"`k` must be an integer >= 1. Received: k={k!r}")
        self.k = int(k)
        super().__init__()

    def update_state(self, labels, probs, sample_weight=None):
        """Adds a batch: labels [B] or [B, K], probs (or log-probs: only the order matters) [B, K]."""
        labels, probs = check_labels_and_values(labels, probs, "probs", kind="scores")
        self._update(labels, probs, example_weights(sample_weight, len(probs)))

    def _update(self, labels, probs, weights):
        self._add(top_k_correct(labels, probs, self.k), weights)


class NegativeLogLikelihood(WeightedMean):
    """Mean negative log-likelihood of the labels, -log p(y | x).

    Softmax: -log p_y (cross-entropy for [N, K] targets). Multilabel: the sigmoid cross-entropy
    summed over the K labels, -sum_k [y_k log p_k + (1 - y_k) log(1 - p_k)], averaged over examples.

    Args:
      multilabel: whether `log_probs` are per-label sigmoid log-probabilities.
    """

    def __init__(self, *, multilabel=False):
        self.multilabel = bool(multilabel)
        super().__init__()

    def update_state(self, labels, log_probs, sample_weight=None):
        """Adds a batch: labels [B] or [B, K], log_probs [B, K]."""
        labels, log_probs = check_labels_and_values(
            labels, log_probs, "log_probs", kind="log_probs"
        )
        log_lik = label_log_likelihood(labels, log_probs, self.multilabel)
        self._add(-log_lik, example_weights(sample_weight, len(log_probs)))


class BrierScore(WeightedMean):
    """Mean over examples of sum_k (p_k - y_k)^2, y the one-hot (or multi-hot) target.

    Ranges over [0, 2] for softmax models (Brier 1950's multi-class score, as robustness-metrics).
    """

    def update_state(self, labels, probs, sample_weight=None):
        """Adds a batch: labels [B] or [B, K], probs [B, K]."""
        labels, probs = check_labels_and_values(labels, probs, "probs", kind="probs")
        self._update(labels, probs, example_weights(sample_weight, len(probs)))

    def _update(self, labels, probs, weights):
        if labels.ndim == 1:
            p_label = np.take_along_axis(probs, labels[:, None], axis=1)[:, 0]
            values = np.sum(probs**2, axis=1) - 2.0 * p_label + 1.0
        else:
            values = np.sum((probs - labels) ** 2, axis=1)
        self._add(values, weights)


class ExpectedCalibrationError:
    """Expected calibration error of the top-1 prediction, as robustness-metrics computes it.

    Confidence is the top-1 probability; bin index `clip(floor(conf * num_bins), 0, num_bins - 1)`
    over `num_bins` equal-width bins; `ECE = sum_b n_b / N * |acc_b - conf_b|` over non-empty bins,
    with bin counts, hits and confidence sums accumulated over batches.

    Args:
      num_bins: number of equal-width confidence bins, >= 1.

    Attributes:
      bin_counts: [num_bins] (weighted) number of examples per bin.
      bin_correct: [num_bins] (weighted) number of correct top-1 predictions per bin.
      bin_confidence: [num_bins] (weighted) sum of the top-1 confidences per bin.
    """

    def __init__(self, num_bins=DEFAULT_NUM_BINS):
        if (
            not isinstance(num_bins, (int, np.integer))
            or isinstance(num_bins, bool)
            or num_bins < 1
        ):
            raise ValueError(f"`num_bins` must be an integer >= 1. Received: num_bins={num_bins!r}")
        self.num_bins = int(num_bins)
        self.reset_state()

    def reset_state(self):
        self.bin_counts = np.zeros(self.num_bins)
        self.bin_correct = np.zeros(self.num_bins)
        self.bin_confidence = np.zeros(self.num_bins)

    def update_state(self, labels, probs, sample_weight=None):
        """Adds a batch: labels [B] or [B, K], probs [B, K]."""
        labels, probs = check_labels_and_values(labels, probs, "probs", kind="probs")
        self._update(labels, probs, example_weights(sample_weight, len(probs)))

    def _update(self, labels, probs, weights):
        self._add_to_bins(np.max(probs, axis=1), top_k_correct(labels, probs, 1), weights)

    def _add_to_bins(self, confidence, correct, weights):
        """Bins predictions: confidence [n] in [0, 1], correct [n] 0/1, weights [n]."""
        with np.errstate(invalid="ignore"):  # a nan confidence lands in bin 0; the ECE is nan
            bins = np.floor(confidence * self.num_bins).astype(np.int64)
        bins = np.clip(bins, 0, self.num_bins - 1)
        self.bin_counts += np.bincount(bins, weights=weights, minlength=self.num_bins)
        self.bin_correct += np.bincount(bins, weights=weights * correct, minlength=self.num_bins)
        self.bin_confidence += np.bincount(
            bins, weights=weights * confidence, minlength=self.num_bins
        )

    def result(self):
        total = np.sum(self.bin_counts)
        if total <= 0:
            return float("nan")
        full = self.bin_counts > 0
        counts = self.bin_counts[full]
        gap = np.abs(self.bin_correct[full] / counts - self.bin_confidence[full] / counts)
        return float(np.sum(counts / total * gap))


class ClassificationMetrics:
    """Everything the trainer and the evaluator report for one model, from log-probabilities.

    Softmax models: `{"accuracy", "top5_accuracy", "nll", "ece", "brier", "num_examples"}`.
    Multi-label (sigmoid) models: `{"gap", "map", "prec@1", "nll", "ece", "brier",
    "num_examples"}` (`metrics.multilabel`): the ranking metrics replace the accuracies
    (`prec@1` is the multi-hot top-1 accuracy over examples with a positive), `ece` is over all
    (example, class) pairs and `brier` is the sum over labels of (p_k - y_k)^2.

    Args:
      multilabel: whether `log_probs` are per-label sigmoid log-probabilities.
      num_bins: ECE bins.
      top_k: k of the second accuracy (`top{k}_accuracy`; 1.0 when k >= K); softmax only.
      gap_top_k: classes kept per example for `gap` (multi-label only).
      rank_metrics: multi-label only: compute `gap` and `map` here, keeping N x gap_top_k and
        N x K scores (`map` is None past `multilabel.MAP_MAX_VALUES` of them); False: both are
        None, for callers that compute them with bounded memory (the evaluator, per model
        over its prediction cache).
    """

    def __init__(
        self,
        *,
        multilabel=False,
        num_bins=DEFAULT_NUM_BINS,
        top_k=5,
        gap_top_k=None,
        rank_metrics=True,
    ):
        # Imported here: metrics.multilabel builds on this module's classes.
        from het_ensembles.metrics import multilabel as multilabel_lib

        self.multilabel = bool(multilabel)
        self.top_k = int(top_k)
        self.nll = NegativeLogLikelihood(multilabel=multilabel)
        self.brier = BrierScore()
        self._check_targets = multilabel_lib.check_multilabel if self.multilabel else None
        if self.multilabel:
            self.ece = multilabel_lib.MultilabelCalibrationError(num_bins)
            top_k = multilabel_lib.GAP_TOP_K if gap_top_k is None else gap_top_k
            self.ranking = {
                "gap": multilabel_lib.GlobalAveragePrecision(top_k, keep=rank_metrics),
                "map": multilabel_lib.MeanAveragePrecision(
                    multilabel_lib.MAP_MAX_VALUES if rank_metrics else 0
                ),
                "prec@1": multilabel_lib.PrecisionAtOne(),
            }
        else:
            self.ece = ExpectedCalibrationError(num_bins)
            self.ranking = {"accuracy": Accuracy(1), f"top{self.top_k}_accuracy": Accuracy(top_k)}

    def reset_state(self):
        for metric in self._metrics():
            metric.reset_state()

    def update_state(self, labels, log_probs, sample_weight=None):
        """Adds a batch: labels [B] or [B, K] (multi-label: 0/1 [B, K]), log_probs [B, K]."""
        labels, log_probs = check_labels_and_values(
            labels, log_probs, "log_probs", kind="log_probs"
        )
        log_lik = label_log_likelihood(labels, log_probs, self.multilabel)
        weights = example_weights(sample_weight, len(log_probs))
        self._update(labels, np.exp(log_probs), log_lik, weights)

    def _update(self, labels, probs, log_lik, weights):
        """Checked inputs: probs [B, K], log_lik = log p(y | x) [B], weights [B]."""
        if self._check_targets is not None:
            self._check_targets(labels, probs, "probs")
        for metric in (*self.ranking.values(), self.ece, self.brier):
            metric._update(labels, probs, weights)
        self.nll._add(-log_lik, weights)

    def result(self):
        count = self.nll.count
        return {
            **{name: metric.result() for name, metric in self.ranking.items()},
            "nll": self.nll.result(),
            "ece": self.ece.result(),
            "brier": self.brier.result(),
            "num_examples": int(count) if float(count).is_integer() else count,
        }

    def _metrics(self):
        return (*self.ranking.values(), self.nll, self.ece, self.brier)


def accuracy(labels, probs, *, k=1):
    """Top-k accuracy (see `Accuracy`). labels [N] or [N, K], probs [N, K]."""
    metric = Accuracy(k)
    metric.update_state(labels, nonempty(probs, "probs"))
    return metric.result()


def nll(labels, log_probs, *, multilabel=False):
    """Mean negative log-likelihood (see `NegativeLogLikelihood`). log_probs [N, K]."""
    metric = NegativeLogLikelihood(multilabel=multilabel)
    metric.update_state(labels, nonempty(log_probs, "log_probs"))
    return metric.result()


def expected_calibration_error(labels, probs, *, num_bins=DEFAULT_NUM_BINS):
    """Top-1 ECE with equal-width bins (see `ExpectedCalibrationError`). probs [N, K]."""
    metric = ExpectedCalibrationError(num_bins)
    metric.update_state(labels, nonempty(probs, "probs"))
    return metric.result()


def brier(labels, probs):
    """Mean multi-class Brier score, sum_k (p_k - y_k)^2 (see `BrierScore`). probs [N, K]."""
    metric = BrierScore()
    metric.update_state(labels, nonempty(probs, "probs"))
    return metric.result()
