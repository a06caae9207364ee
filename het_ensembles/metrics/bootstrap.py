"""Paired bootstrap intervals: is model B better than model A on this test set, and by how much?

Both models are scored on the same resampled examples (a paired bootstrap, Efron & Tibshirani
1993), so the interval of the difference B - A reflects the test set's sampling noise without
the noise of comparing two independent draws. A resample is the test set drawn with replacement;
drawing example i c_i times is the same as weighting it by c_i, so each resample is scored with
the streaming accumulators' `sample_weight`: the metrics are exactly `ClassificationMetrics`'.
Cost: O(num_resamples x N x K).
"""

import numpy as np

from het_ensembles.cli.arguments import check_int
from het_ensembles.metrics.classification import DEFAULT_NUM_BINS, ClassificationMetrics

BOOTSTRAP_METRICS = ("accuracy", "nll", "ece")
HIGHER_IS_BETTER = {"accuracy": True, "nll": False, "ece": False}


def paired_bootstrap(
    labels,
    log_probs_a,
    log_probs_b,
    *,
    num_resamples=1000,
    confidence=0.95,
    num_bins=DEFAULT_NUM_BINS,
    seed=0,
):
    """The difference B - A in accuracy, NLL and ECE with its percentile bootstrap interval.

    Args:
      labels: [N] integer labels.
      log_probs_a: [N, K] log-probabilities of model A (e.g. an ensemble's).
      log_probs_b: [N, K] log-probabilities of model B, on the same examples.
      num_resamples: bootstrap resamples, >= 100.
      confidence: the interval's coverage, in (0, 1).
      num_bins: ECE bins.
      seed: the resampling seed (the same seed gives the same interval).

    Returns:
      `{metric: {"a", "b", "difference", "low", "high", "b_better"}}` for accuracy, nll and
      ece: the full-set values, B - A, the interval's bounds and the fraction of resamples in
      which B is better (higher accuracy, lower NLL / ECE).

    Raises:
      ValueError: for mismatched shapes or arguments out of range.
    """
    labels = np.asarray(labels)
    log_probs_a, log_probs_b = np.asarray(log_probs_a), np.asarray(log_probs_b)
    if log_probs_a.shape != log_probs_b.shape or log_probs_a.ndim != 2:
        raise ValueError(
            "log_probs_a and log_probs_b must both be [N, K] on the same examples. Received: "
            f"{log_probs_a.shape} and {log_probs_b.shape}"
        )
    if labels.shape != (len(log_probs_a),):
        raise ValueError(
            f"labels must be [N] integer labels. Received: labels.shape={labels.shape} for "
            f"N={len(log_probs_a)}"
        )
    check_int("num_resamples", num_resamples, 100)
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1). Received: confidence={confidence!r}")

    def scores(log_probs, weights):
        accumulator = ClassificationMetrics(num_bins=num_bins)
        accumulator.update_state(labels, log_probs, sample_weight=weights)
        result = accumulator.result()
        return np.array([result[name] for name in BOOTSTRAP_METRICS])

    full_a, full_b = scores(log_probs_a, None), scores(log_probs_b, None)
    rng = np.random.default_rng(seed)
    num_examples = len(labels)
    differences = np.empty((num_resamples, len(BOOTSTRAP_METRICS)))
    for i in range(num_resamples):
        weights = np.bincount(rng.integers(0, num_examples, num_examples), minlength=num_examples)
        weights = weights.astype(np.float64)
        differences[i] = scores(log_probs_b, weights) - scores(log_probs_a, weights)
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(differences, [tail, 100 - tail], axis=0)
    out = {}
    for j, name in enumerate(BOOTSTRAP_METRICS):
        better = differences[:, j] > 0 if HIGHER_IS_BETTER[name] else differences[:, j] < 0
        out[name] = {
            "a": float(full_a[j]),
            "b": float(full_b[j]),
            "difference": float(full_b[j] - full_a[j]),
            "low": float(low[j]),
            "high": float(high[j]),
            "b_better": float(np.mean(better)),
        }
    return out
