"""Classification metrics for members and ensembles: functions and streaming accumulators.

Where it sits: the trainer (`training`) and the evaluator (`evaluation`) both compute their
numbers here, so `test/nll` means the same thing in a member's `metrics.json` and in the ensemble
report.

Conventions (scikit-learn style): labels first, options keyword-only.

- `labels`: integer class ids [N], or 0/1 targets [N, K] (one-hot, or multi-hot for multilabel
  models). With [N, K] targets, "correct" means "the predicted class is one of the targets", so
  one-hot targets give the usual accuracy and multi-hot targets give precision@1.
- `probs` and `log_probs`: [N, K]. For softmax models `log_probs` are normalised log-probabilities
  (`log_softmax` of the logits). For multilabel (sigmoid) models they are the per-label
  log-probabilities of the positive outcome, `log_sigmoid(logits)`; pass `multilabel=True` to the
  likelihood-based metrics, which then also use log(1 - p), computed stably from log p.
- Ensemble metrics take member arrays with the member axis first: [M, N, K]. The ensemble predicts
  the mean of the member probabilities (per label for multilabel models).

Every function is a one-shot call of its streaming twin. The accumulators (`update_state` /
`result` / `reset_state`, like Keras metrics, but numpy on the host) keep float64 sums over batches,
optionally weighted by `sample_weight` (e.g. a 0/1 mask for padded batches), so feeding a dataset in
batches gives exactly the result over the whole array. The trainer uses `ClassificationMetrics`:

    test_metrics = metrics.ClassificationMetrics(multilabel=config.multilabel)
    for x, y in test_ds:
        logits = model(x, training=False)
        test_metrics.update_state(y, metrics.log_probs_from_logits(logits, multilabel=...))
    test_metrics.result()  # {"accuracy", "top5_accuracy", "nll", "ece", "brier", "num_examples"}

Multi-label (sigmoid) models report `{"gap", "map", "prec@1", "nll", "ece", "brier",
"num_examples"}` instead (`ClassificationMetrics(multilabel=True)`): global average precision as
YouTube-8M's `calculate_gap` (top 20 classes per example), mean per-class average precision,
precision@1 as uncertainty-baselines' JFT scripts, the per-example sum of the labels' binary
cross-entropies, and the ECE over all (example, class) pairs. The functions take
`(probs, labels)` in YouTube-8M's and uncertainty-baselines' order:

    metrics.global_average_precision(probs, labels, top_k=20)
    metrics.mean_average_precision(probs, labels)
    metrics.precision_at_1(probs, labels)

Modules: `classification` (one model), `multilabel` (the multi-label metrics), `ensemble`
(ensembles and diversity), `ood` (out-of-distribution detection: AUROC, AUPRC, FPR@95TPR),
`numerics` (the input checks and log-space helpers they share).
"""

from het_ensembles.metrics.classification import (
    DEFAULT_NUM_BINS,
    Accuracy,
    BrierScore,
    ClassificationMetrics,
    ExpectedCalibrationError,
    NegativeLogLikelihood,
    WeightedMean,
    accuracy,
    brier,
    expected_calibration_error,
    log_probs_from_logits,
    nll,
)
from het_ensembles.metrics.ensemble import (
    EnsembleMetrics,
    SubEnsembleMetrics,
    disagreement,
    ensemble_log_probs,
    ensemble_nll,
    gibbs_nll,
    kl_to_ensemble,
)
from het_ensembles.metrics.multilabel import (
    GAP_TOP_K,
    GlobalAveragePrecision,
    MeanAveragePrecision,
    MultilabelCalibrationError,
    PrecisionAtOne,
    average_precision_per_class,
    global_average_precision,
    mean_average_precision,
    multilabel_calibration_error,
    precision_at_1,
)

__all__ = [
    "DEFAULT_NUM_BINS",
    "GAP_TOP_K",
    "Accuracy",
    "BrierScore",
    "ClassificationMetrics",
    "EnsembleMetrics",
    "ExpectedCalibrationError",
    "GlobalAveragePrecision",
    "MeanAveragePrecision",
    "MultilabelCalibrationError",
    "NegativeLogLikelihood",
    "PrecisionAtOne",
    "SubEnsembleMetrics",
    "WeightedMean",
    "accuracy",
    "average_precision_per_class",
    "brier",
    "disagreement",
    "ensemble_log_probs",
    "ensemble_nll",
    "expected_calibration_error",
    "gibbs_nll",
    "global_average_precision",
    "kl_to_ensemble",
    "log_probs_from_logits",
    "mean_average_precision",
    "multilabel_calibration_error",
    "nll",
    "precision_at_1",
]
