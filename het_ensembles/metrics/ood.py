"""Out-of-distribution detection: AUROC, AUPRC and FPR at 95% TPR from per-example scores.

The convention is uncertainty-baselines' (`baselines/cifar/hetsngp.py`, `sngp.py`: the OOD
metrics are updated with `is_in_distribution` as the label and the max softmax probability as
the score): in-distribution examples are the positives, and a higher score means "more in
distribution". `ood_scores` turns predictions into such scores: the max probability (`msp`)
and the negative predictive entropy (`entropy`); a head with its own uncertainty (the SNGP's GP
variance) gives its negative variance.

All three metrics are exact, from one sort of the scores with ties handled as one threshold
(as scikit-learn's `roc_auc_score`, `average_precision_score` and `roc_curve`, which the tests
compare against). uncertainty-baselines computes them with `tf.keras.metrics.AUC(num_thresholds=
2000)` (trapezoids over 2,000 fixed thresholds in [0, 1]) and `SpecificityAtSensitivity(0.95)`,
so its figures approximate these; its key `ood/fpr@95tpr_*` in `hetsngp.py` holds that
specificity, 1 - FPR (its `ood_utils.py` names the same number `(1-fpr)@95tpr`). Our
`fpr@95tpr` is the false positive rate itself: lower is better.
"""

import numpy as np

from het_ensembles.metrics.multilabel import average_precision_per_class
from het_ensembles.metrics.numerics import check_values, log1mexp, logsumexp, xlogy

DEFAULT_TPR = 0.95  # Hendrycks & Gimpel 2017; uncertainty-baselines' `tpr_list=(0.95,)`
SCORES = ("msp", "entropy")


def ood_scores(log_probs, *, multilabel=False):
    """Per-example in-distribution scores (higher = more in distribution) from log-probabilities.

    Args:
      log_probs: [N, K] normalised log-probabilities of a softmax model (or an ensemble's), or
        per-label sigmoid log-probabilities with `multilabel=True`.
      multilabel: score a sigmoid model: `msp` is its largest label probability and `entropy`
        the negative sum of the labels' Bernoulli entropies.

    Returns:
      `{"msp": [N], "entropy": [N]}` float64 arrays: the max probability, and the negative
      predictive entropy `sum_k p_k log p_k`.
    """
    log_probs = np.asarray(log_probs, dtype=np.float64)
    if log_probs.ndim != 2:
        raise ValueError(f"`log_probs` must have shape [N, K]. Received: shape={log_probs.shape}")
    check_values(log_probs, "log_probs", kind="log_probs")
    log_probs = np.minimum(log_probs, 0.0)
    if not multilabel:
        # Renormalise so that float32 rounding in cached log-probs does not shift the scores.
        log_probs = log_probs - logsumexp(log_probs, axis=1, keepdims=True)
    probs = np.exp(log_probs)
    neg_entropy = np.sum(xlogy(probs, log_probs), axis=1)
    if multilabel:
        neg_entropy += np.sum(xlogy(1.0 - probs, log1mexp(log_probs)), axis=1)
    return {"msp": np.exp(np.max(log_probs, axis=1)), "entropy": neg_entropy}


def _checked(is_in_distribution, scores):
    """The inputs as arrays, [N] 0/1 labels and [N] float64 scores; ValueError if malformed."""
    labels = np.asarray(is_in_distribution)
    scores = np.asarray(scores, dtype=np.float64)
    if labels.ndim != 1 or scores.shape != labels.shape:
        raise ValueError(
            "`is_in_distribution` and `scores` must be 1-D of the same length. Received: "
            f"shapes {labels.shape} and {scores.shape}"
        )
    if not np.all(np.isin(labels, (0, 1))):
        raise ValueError(
            "`is_in_distribution` must hold 0 (out of distribution) or 1 (in distribution). "
            f"Received: values {np.unique(labels)[:10].tolist()}"
        )
    check_values(scores, "scores")
    positives = int(np.sum(labels))
    if positives in (0, len(labels)):
        raise ValueError(
            "OOD metrics need both in- and out-of-distribution examples. Received: "
            f"{positives} in distribution of {len(labels)}"
        )
    return labels.astype(np.float64), scores


def _ranked(is_in_distribution, scores):
    """Counts of positives and negatives above each distinct threshold, highest score first.

    Returns:
      `(tps, fps)`: cumulative true and false positives [T] at each of the T distinct scores,
      taking every example with a score >= that threshold as in distribution.
    """
    labels, scores = _checked(is_in_distribution, scores)
    order = np.argsort(-scores, kind="stable")
    scores, labels = scores[order], labels[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(scores)), len(scores) - 1]
    tps = np.cumsum(labels)[last_of_tie]
    fps = (last_of_tie + 1) - tps
    return tps, fps


def auroc(is_in_distribution, scores):
    """Area under the ROC curve: P(score of an in-distribution example > of an OOD one).

    Ties count one half (the trapezoid over each tie group), as `sklearn.metrics.roc_auc_score`.

    Args:
      is_in_distribution: [N] 1 for in-distribution, 0 for OOD examples.
      scores: [N] higher = more in distribution (see `ood_scores`).
    """
    tps, fps = _ranked(is_in_distribution, scores)
    tpr = np.r_[0.0, tps / tps[-1]]
    fpr = np.r_[0.0, fps / fps[-1]]
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2.0))


def auprc(is_in_distribution, scores):
    """Area under the precision-recall curve of the in-distribution class, non-interpolated.

    `sum_t (R_t - R_{t-1}) P_t` over distinct thresholds t, as
    `sklearn.metrics.average_precision_score`.
    """
    labels, scores = _checked(is_in_distribution, scores)
    per_class = average_precision_per_class(scores[:, None], labels[:, None])
    return float(per_class[0])


def fpr_at_tpr(is_in_distribution, scores, tpr=DEFAULT_TPR):
    """False positive rate at the highest threshold whose true positive rate is >= `tpr`.

    The share of OOD examples taken as in distribution when the threshold keeps `tpr` of the
    in-distribution ones (Hendrycks & Gimpel 2017's FPR at 95% TPR; lower is better).
    """
    if not 0.0 < tpr <= 1.0:
        raise ValueError(f"`tpr` must be in (0, 1]. Received: tpr={tpr!r}")
    tps, fps = _ranked(is_in_distribution, scores)
    first = int(np.searchsorted(tps / tps[-1], tpr, side="left"))
    return float(fps[first] / fps[-1])


def ood_metrics(in_log_probs, ood_log_probs, *, multilabel=False, tpr=DEFAULT_TPR):
    """AUROC, AUPRC and FPR@TPR of each score of `ood_scores`, in-distribution vs OOD.

    Args:
      in_log_probs: [N, K] log-probabilities on the in-distribution test set.
      ood_log_probs: [M, K] on the out-of-distribution set.
      multilabel: sigmoid log-probabilities.
      tpr: the true positive rate of `fpr@{100 tpr}tpr`.

    Returns:
      `{"auroc_msp", "auprc_msp", "fpr@95tpr_msp", "auroc_entropy", ...}` (the TPR in the key
      as a whole percentage).
    """
    in_scores = ood_scores(in_log_probs, multilabel=multilabel)
    out_scores = ood_scores(ood_log_probs, multilabel=multilabel)
    labels = np.r_[np.ones(len(in_log_probs)), np.zeros(len(ood_log_probs))]
    out = {}
    for name in SCORES:
        scores = np.r_[in_scores[name], out_scores[name]]
        out[f"auroc_{name}"] = auroc(labels, scores)
        out[f"auprc_{name}"] = auprc(labels, scores)
        out[f"fpr@{round(100 * tpr)}tpr_{name}"] = fpr_at_tpr(labels, scores, tpr)
    return out
