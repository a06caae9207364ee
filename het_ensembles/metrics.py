"""Classification metrics for members and ensembles: functions and streaming accumulators.

Where it sits: the trainer (`training.py`) and the evaluator (`ensemble.py`) both compute their
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
"""

import itertools
import math

import numpy as np

DEFAULT_NUM_BINS = 15  # robustness-metrics / uncertainty-baselines ECE default
# Slack for float32 rounding: log_softmax can land a hair above 0 and a softmax a hair above 1.
# Values beyond it are not probabilities (logits, or probabilities passed as log-probabilities).
ROUNDING_TOLERANCE = 1e-3


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
        out = logits - _logsumexp(logits, axis=-1, keepdims=True)
    return out.astype(np.float32)


def ensemble_log_probs(member_log_probs):
    """Log of the mean member probability: logsumexp_m(log p_m) - log M.

    The same formula serves softmax members (mean of the class distributions) and multilabel
    members (mean of each label's positive probability).

    Args:
      member_log_probs: [M, N, K] (or a list of M arrays [N, K]).

    Returns:
      float64 array [N, K].
    """
    member_log_probs = _as_member_array(member_log_probs)
    num_members = member_log_probs.shape[0]
    return _logsumexp(member_log_probs, axis=0) - math.log(num_members)


# ----------------------------------------------------------------------------------------------
# Streaming accumulators.


class _Streaming:
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


class Accuracy(_Streaming):
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
        labels, probs = _check_labels_and_values(labels, probs, "probs", kind="scores")
        self._update(labels, probs, _weights(sample_weight, len(probs)))

    def _update(self, labels, probs, weights):
        self._add(_top_k_correct(labels, probs, self.k), weights)


class NegativeLogLikelihood(_Streaming):
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
        labels, log_probs = _check_labels_and_values(
            labels, log_probs, "log_probs", kind="log_probs"
        )
        log_lik = _label_log_likelihood(labels, log_probs, self.multilabel)
        self._add(-log_lik, _weights(sample_weight, len(log_probs)))


class BrierScore(_Streaming):
    """Mean over examples of sum_k (p_k - y_k)^2, y the one-hot (or multi-hot) target.

    Ranges over [0, 2] for softmax models (Brier 1950's multi-class score, as robustness-metrics).
    """

    def update_state(self, labels, probs, sample_weight=None):
        """Adds a batch: labels [B] or [B, K], probs [B, K]."""
        labels, probs = _check_labels_and_values(labels, probs, "probs", kind="probs")
        self._update(labels, probs, _weights(sample_weight, len(probs)))

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
        labels, probs = _check_labels_and_values(labels, probs, "probs", kind="probs")
        self._update(labels, probs, _weights(sample_weight, len(probs)))

    def _update(self, labels, probs, weights):
        confidence = np.max(probs, axis=1)
        with np.errstate(invalid="ignore"):  # a nan confidence lands in bin 0; the ECE is nan
            bins = np.floor(confidence * self.num_bins).astype(np.int64)
        bins = np.clip(bins, 0, self.num_bins - 1)
        correct = _top_k_correct(labels, probs, 1)
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

    Args:
      multilabel: whether `log_probs` are per-label sigmoid log-probabilities.
      num_bins: ECE bins.
      top_k: k of the second accuracy (`top{k}_accuracy`; 1.0 when k >= K).

    `result()` returns `{"accuracy", "top5_accuracy", "nll", "ece", "brier", "num_examples"}`.
    """

    def __init__(self, *, multilabel=False, num_bins=DEFAULT_NUM_BINS, top_k=5):
        self.multilabel = bool(multilabel)
        self.top_k = int(top_k)
        self.accuracy = Accuracy(1)
        self.top_k_accuracy = Accuracy(top_k)
        self.nll = NegativeLogLikelihood(multilabel=multilabel)
        self.ece = ExpectedCalibrationError(num_bins)
        self.brier = BrierScore()

    def reset_state(self):
        for metric in self._metrics():
            metric.reset_state()

    def update_state(self, labels, log_probs, sample_weight=None):
        """Adds a batch: labels [B] or [B, K], log_probs [B, K]."""
        labels, log_probs = _check_labels_and_values(
            labels, log_probs, "log_probs", kind="log_probs"
        )
        log_lik = _label_log_likelihood(labels, log_probs, self.multilabel)
        weights = _weights(sample_weight, len(log_probs))
        self._update(labels, np.exp(log_probs), log_lik, weights)

    def _update(self, labels, probs, log_lik, weights):
        """Checked inputs: probs [B, K], log_lik = log p(y | x) [B], weights [B]."""
        for metric in (self.accuracy, self.top_k_accuracy, self.ece, self.brier):
            metric._update(labels, probs, weights)
        self.nll._add(-log_lik, weights)

    def result(self):
        count = self.nll.count
        return {
            "accuracy": self.accuracy.result(),
            f"top{self.top_k}_accuracy": self.top_k_accuracy.result(),
            "nll": self.nll.result(),
            "ece": self.ece.result(),
            "brier": self.brier.result(),
            "num_examples": int(count) if float(count).is_integer() else count,
        }

    def _metrics(self):
        return (self.accuracy, self.top_k_accuracy, self.nll, self.ece, self.brier)


class SubEnsembleMetrics:
    """`EnsembleMetrics` of several sub-ensembles of the same members at once.

    The per-member work (probabilities, label likelihoods, entropies, top-1 predictions) is done
    once per batch and shared by all sub-ensembles, so e.g. the 70 size-4 sub-ensembles of 8
    members cost little more than 70 means of probabilities.

    Args:
      subsets: a list of member-index tuples, each non-empty and without repeats.
      multilabel: whether member log-probs are per-label sigmoid log-probabilities.
      num_bins: ECE bins.
      top_k: k of the second accuracy.

    Attributes:
      ensembles: one `ClassificationMetrics` per subset, for the ensemble's own metrics
        (its ECE bins feed reliability diagrams).
    """

    def __init__(self, subsets, *, multilabel=False, num_bins=DEFAULT_NUM_BINS, top_k=5):
        subsets = [tuple(int(i) for i in subset) for subset in subsets]
        if not subsets or any(
            not subset or len(set(subset)) != len(subset) or min(subset) < 0 for subset in subsets
        ):
            raise ValueError(
                "`subsets` must be a non-empty list of non-empty tuples of distinct member "
                f"indices >= 0. Received: subsets={subsets}"
            )
        self.subsets = subsets
        self.multilabel = bool(multilabel)
        self._options = {"multilabel": multilabel, "num_bins": num_bins, "top_k": top_k}
        self.reset_state()

    def reset_state(self):
        self.ensembles = [ClassificationMetrics(**self._options) for _ in self.subsets]
        self._gibbs_nll = [_Streaming() for _ in self.subsets]
        self._disagreement = [_Streaming() for _ in self.subsets]
        self._kl_to_ensemble = [_Streaming() for _ in self.subsets]

    def update_state(self, labels, member_log_probs, sample_weight=None):
        """Adds a batch: labels [B] or [B, K], member_log_probs [M, B, K] of all members."""
        member_log_probs = _as_member_array(member_log_probs)
        num_members = member_log_probs.shape[0]
        if max(max(subset) for subset in self.subsets) >= num_members:
            raise ValueError(
                f"`subsets` name members beyond the {num_members} given. Received: "
                f"member_log_probs.shape={member_log_probs.shape}, subsets={self.subsets}"
            )
        _check_values(member_log_probs, "member_log_probs", kind="log_probs")
        labels, _ = _check_labels_and_values(labels, member_log_probs[0], "member_log_probs[0]")
        weights = _weights(sample_weight, member_log_probs.shape[1])
        probs = np.exp(member_log_probs)  # [M, B, K]
        log_lik = np.stack(
            [_label_log_likelihood(labels, lp, self.multilabel) for lp in member_log_probs]
        )  # [M, B]
        neg_entropy = np.sum(_xlogy(probs, member_log_probs), axis=2)  # [M, B]
        if self.multilabel:
            log_not = _log1mexp(member_log_probs)
            neg_entropy += np.sum(_xlogy(1.0 - probs, log_not), axis=2)
        predictions = np.argmax(member_log_probs, axis=2)  # [M, B]
        for i, subset in enumerate(self.subsets):
            members = list(subset)
            log_size = math.log(len(members))
            mean_probs = np.mean(probs[members], axis=0)  # [B, K]
            if self.multilabel:
                log_mean = _logsumexp(member_log_probs[members], axis=0) - log_size
                log_mean_not = _logsumexp(log_not[members], axis=0) - log_size
                ensemble_neg_entropy = np.sum(
                    _xlogy(mean_probs, log_mean) + _xlogy(1.0 - mean_probs, log_mean_not), axis=1
                )
            else:
                with np.errstate(divide="ignore"):
                    log_mean = np.log(mean_probs)
                ensemble_neg_entropy = np.sum(_xlogy(mean_probs, log_mean), axis=1)
            if labels.ndim == 1:  # -logsumexp_m log p_m(y) + log M: exact far into the tails
                ensemble_log_lik = _logsumexp(log_lik[members], axis=0) - log_size
            else:
                if not self.multilabel:
                    log_mean = _logsumexp(member_log_probs[members], axis=0) - log_size
                ensemble_log_lik = _label_log_likelihood(labels, log_mean, self.multilabel)
            self.ensembles[i]._update(labels, mean_probs, ensemble_log_lik, weights)
            self._gibbs_nll[i]._add(-np.mean(log_lik[members], axis=0), weights)
            pairs = list(itertools.combinations(members, 2))
            differ = [predictions[a] != predictions[b] for a, b in pairs]
            self._disagreement[i]._add(
                np.mean(differ, axis=0) if pairs else np.zeros(len(weights)), weights
            )
            # Mean KL to the mean = entropy of the mean - mean entropy (mutual information).
            kl = np.mean(neg_entropy[members], axis=0) - ensemble_neg_entropy
            self._kl_to_ensemble[i]._add(kl, weights)

    def result(self):
        """A list with one `EnsembleMetrics.result()`-style dict per subset."""
        results = []
        for i, subset in enumerate(self.subsets):
            out = self.ensembles[i].result()
            out["gibbs_nll"] = self._gibbs_nll[i].result()
            out["disagreement"] = self._disagreement[i].result()
            out["kl_to_ensemble"] = self._kl_to_ensemble[i].result()
            out["ensemble_size"] = len(subset)
            results.append(out)
        return results


class EnsembleMetrics:
    """`ClassificationMetrics` of the ensemble (mean member probability) plus diversity.

    Extra keys in `result()`: `gibbs_nll` (mean member NLL, the Gibbs cross-entropy),
    `disagreement` (fraction of examples on which two members' top-1 predictions differ, averaged
    over member pairs), `kl_to_ensemble` (mean over members of KL(p_m || p_ensemble), which equals
    H(p_ensemble) - mean_m H(p_m), the ensemble's mutual information; summed over labels for
    multilabel members), and `ensemble_size`. `nll` is the ensemble NLL,
    mean_n [-logsumexp_m log p_m(y_n) + log M].

    Args:
      multilabel: whether member log-probs are per-label sigmoid log-probabilities.
      num_bins: ECE bins.
      top_k: k of the second accuracy.
    """

    def __init__(self, *, multilabel=False, num_bins=DEFAULT_NUM_BINS, top_k=5):
        self._options = {"multilabel": multilabel, "num_bins": num_bins, "top_k": top_k}
        self.reset_state()

    def reset_state(self):
        self._all = None  # a SubEnsembleMetrics over all members, made at the first batch

    def update_state(self, labels, member_log_probs, sample_weight=None):
        """Adds a batch: labels [B] or [B, K], member_log_probs [M, B, K]."""
        member_log_probs = _as_member_array(member_log_probs)
        num_members = member_log_probs.shape[0]
        if self._all is None:
            self._all = SubEnsembleMetrics([tuple(range(num_members))], **self._options)
        elif num_members != len(self._all.subsets[0]):
            raise ValueError(
                "The number of members changed between batches. Received: "
                f"member_log_probs.shape={member_log_probs.shape}, expected "
                f"{len(self._all.subsets[0])} members"
            )
        self._all.update_state(labels, member_log_probs, sample_weight)

    def result(self):
        if self._all is None:  # the same keys as after an update, every value NaN
            empty = {name: math.nan for name in ("gibbs_nll", "disagreement", "kl_to_ensemble")}
            return {
                **ClassificationMetrics(**self._options).result(),
                **empty,
                "ensemble_size": None,
            }
        return self._all.result()[0]


# ----------------------------------------------------------------------------------------------
# One-shot functions (the names of DESIGN.md section 3).


def accuracy(labels, probs, *, k=1):
    """Top-k accuracy (see `Accuracy`). labels [N] or [N, K], probs [N, K]."""
    metric = Accuracy(k)
    metric.update_state(labels, _nonempty(probs, "probs"))
    return metric.result()


def nll(labels, log_probs, *, multilabel=False):
    """Mean negative log-likelihood (see `NegativeLogLikelihood`). log_probs [N, K]."""
    metric = NegativeLogLikelihood(multilabel=multilabel)
    metric.update_state(labels, _nonempty(log_probs, "log_probs"))
    return metric.result()


def expected_calibration_error(labels, probs, *, num_bins=DEFAULT_NUM_BINS):
    """Top-1 ECE with equal-width bins (see `ExpectedCalibrationError`). probs [N, K]."""
    metric = ExpectedCalibrationError(num_bins)
    metric.update_state(labels, _nonempty(probs, "probs"))
    return metric.result()


def brier(labels, probs):
    """Mean multi-class Brier score, sum_k (p_k - y_k)^2 (see `BrierScore`). probs [N, K]."""
    metric = BrierScore()
    metric.update_state(labels, _nonempty(probs, "probs"))
    return metric.result()


def ensemble_nll(labels, member_log_probs, *, multilabel=False):
    """NLL of the mean member probability: mean_n [-logsumexp_m log p_m(y_n) + log M].

    For multilabel members the mixture is per label (the ensemble predicts each label's mean
    probability). member_log_probs [M, N, K].
    """
    return nll(labels, ensemble_log_probs(member_log_probs), multilabel=multilabel)


def gibbs_nll(labels, member_log_probs, *, multilabel=False):
    """Gibbs cross-entropy: the mean over members of each member's NLL. member_log_probs [M, N, K]."""
    member_log_probs = _as_member_array(member_log_probs)
    return float(np.mean([nll(labels, lp, multilabel=multilabel) for lp in member_log_probs]))


def disagreement(member_probs):
    """Fraction of examples where two members' top-1 predictions differ, mean over member pairs.

    Args:
      member_probs: [M, N, K] probabilities or log-probabilities (only the argmax is used).

    Returns:
      float in [0, 1]; 0.0 for a single member.
    """
    member_probs = _nonempty(_as_member_array(member_probs, "member_probs"), "member_probs", axis=1)
    predictions = np.argmax(member_probs, axis=2)  # [M, N]
    pairs = list(itertools.combinations(range(len(predictions)), 2))
    if not pairs:
        return 0.0
    return float(np.mean([predictions[i] != predictions[j] for i, j in pairs]))


def kl_to_ensemble(member_log_probs, *, multilabel=False):
    """Mean over members and examples of KL(p_m || p_ensemble), p_ensemble the mean member probs.

    For multilabel members, the sum over labels of the Bernoulli KLs. member_log_probs [M, N, K].
    """
    member_log_probs = _nonempty(_as_member_array(member_log_probs), "member_log_probs", axis=1)
    _check_values(member_log_probs, "member_log_probs", kind="log_probs")
    probs = np.exp(member_log_probs)  # [M, N, K]
    log_mean = ensemble_log_probs(member_log_probs)
    with np.errstate(invalid="ignore"):  # -inf - -inf where p_m = 0; _xlogy zeroes those terms
        kl = _xlogy(probs, member_log_probs - log_mean)
        if multilabel:
            log_not = _log1mexp(member_log_probs)
            kl = kl + _xlogy(1.0 - probs, log_not - _log1mexp(log_mean))
    return float(np.mean(np.sum(kl, axis=2)))


# ----------------------------------------------------------------------------------------------
# Helpers.


def _as_member_array(member_values, name="member_log_probs"):
    member_values = np.asarray(member_values, dtype=np.float64)
    if member_values.ndim != 3 or member_values.shape[0] < 1:
        raise ValueError(
            "Member predictions must have shape [M, N, K] with M >= 1 (member axis first). "
            f"Received: shape={member_values.shape}"
        )
    _check_values(member_values, name)
    return member_values


def _nonempty(values, name, axis=0):
    """`values` as an array; ValueError if it holds no examples (a one-shot metric of nothing)."""
    values = np.asarray(values)
    if values.ndim > axis and values.shape[axis] == 0:
        raise ValueError(
            f"`{name}` holds no examples; a metric of an empty set is undefined. "
            f"Received: {name}.shape={values.shape}"
        )
    return values


def _check_values(values, name, kind="scores"):
    """ValueError for NaN anywhere, or values that cannot be `kind` ("probs" / "log_probs")."""
    if not values.size:
        return
    num_nan = int(np.count_nonzero(np.isnan(values)))
    if num_nan:
        raise ValueError(
            f"`{name}` contains NaN (a diverged model?). Received: {num_nan} NaN values in "
            f"{name}.shape={values.shape}"
        )
    tol = ROUNDING_TOLERANCE
    if kind == "probs" and (values.min() < -tol or values.max() > 1.0 + tol):
        raise ValueError(
            f"`{name}` must be probabilities in [0, 1] (log-probabilities or logits given?). "
            f"Received: {name}.min()={values.min():.6g}, {name}.max()={values.max():.6g}"
        )
    if kind == "log_probs" and values.max() > tol:
        raise ValueError(
            f"`{name}` must be log-probabilities <= 0 (probabilities or logits given? use "
            f"log_probs_from_logits). Received: {name}.max()={values.max():.6g}"
        )


def _check_labels_and_values(labels, values, values_name, kind="scores"):
    """Validates and converts: labels -> int64 [N] or float64 [N, K]; values -> float64 [N, K].

    `kind` says what the values must be: "probs" in [0, 1], "log_probs" <= 0, "scores" anything
    but NaN (only their order is used).
    """
    values = np.asarray(values, dtype=np.float64)
    labels = np.asarray(labels)
    if not (np.issubdtype(labels.dtype, np.number) or labels.dtype == np.bool_):
        raise ValueError(
            f"`labels` must be numeric (class ids or 0/1 targets). Received: "
            f"labels.dtype={labels.dtype}"
        )
    if values.ndim != 2:
        raise ValueError(
            f"`{values_name}` must have shape [N, K]. Received: {values_name}.shape={values.shape}"
        )
    num_examples, num_classes = values.shape
    if (
        labels.shape[:1] != (num_examples,)
        or labels.ndim not in (1, 2)
        or (labels.ndim == 2 and labels.shape[1] != num_classes)
    ):
        raise ValueError(
            f"`labels` must have shape [{num_examples}] (class ids) or [{num_examples}, "
            f"{num_classes}] (0/1 targets) to match `{values_name}`. "
            f"Received: labels.shape={labels.shape}, {values_name}.shape={values.shape}"
        )
    _check_values(values, values_name, kind)
    if labels.ndim == 2:
        labels = labels.astype(np.float64)
        if labels.size and not (np.all(labels >= 0) and np.all(labels <= 1)):
            raise ValueError(
                "`labels` [N, K] must be targets in [0, 1] (one-hot or multi-hot). Received: "
                f"labels.min()={np.min(labels)}, labels.max()={np.max(labels)}"
            )
        return labels, values
    if (
        labels.size
        and not np.issubdtype(labels.dtype, np.integer)
        and not np.all(np.mod(labels, 1) == 0)
    ):
        raise ValueError(f"`labels` [N] must be integer class ids. Received: {labels[:5]}...")
    labels = labels.astype(np.int64)
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(
            f"`labels` must be class ids in [0, {num_classes}). Received: labels.min()="
            f"{labels.min()}, labels.max()={labels.max()}"
        )
    return labels, values


def _weights(sample_weight, num_examples):
    if sample_weight is None:
        return np.ones(num_examples)
    weights = np.asarray(sample_weight, dtype=np.float64).reshape(-1)
    if weights.shape != (num_examples,):
        raise ValueError(
            f"`sample_weight` must have shape [{num_examples}]. "
            f"Received: sample_weight.shape={np.shape(sample_weight)}"
        )
    if weights.size and not (np.all(np.isfinite(weights)) and np.min(weights) >= 0):
        raise ValueError(
            "`sample_weight` must be finite and >= 0. Received: "
            f"sample_weight.min()={np.min(weights)}, sample_weight.max()={np.max(weights)}"
        )
    return weights


def _top_k_correct(labels, probs, k):
    """1.0 where a target is among the k highest probabilities (ties -> lower index first)."""
    if labels.ndim == 2:
        if k == 1:
            top = np.argmax(probs, axis=1)[:, None]
        else:
            top = np.argsort(-probs, axis=1, kind="stable")[:, :k]
        return (np.max(np.take_along_axis(labels, top, axis=1), axis=1) > 0).astype(np.float64)
    if k == 1:
        return (np.argmax(probs, axis=1) == labels).astype(np.float64)
    p_label = np.take_along_axis(probs, labels[:, None], axis=1)  # [N, 1]
    before = np.arange(probs.shape[1])[None, :] < labels[:, None]
    rank = np.sum(probs > p_label, axis=1) + np.sum((probs == p_label) & before, axis=1)
    return (rank < k).astype(np.float64)


def _logsumexp(values, axis, keepdims=False):
    """log(sum(exp(values))) along `axis`, shifted by the max (all -inf -> -inf).

    Plain numpy: scipy.special.logsumexp is ~20x slower on [M, N, K] arrays (array-API path).
    """
    shift = np.max(values, axis=axis, keepdims=True)
    shift = np.where(np.isfinite(shift), shift, 0.0)
    with np.errstate(divide="ignore"):
        out = np.log(np.sum(np.exp(values - shift), axis=axis, keepdims=True)) + shift
    return out if keepdims else np.squeeze(out, axis=axis)


def _log1mexp(log_p):
    """log(1 - exp(a)) for a <= 0, stable at both ends (Maechler 2012)."""
    with np.errstate(divide="ignore"):
        return np.where(
            log_p > -math.log(2.0),
            np.log(-np.expm1(np.minimum(log_p, 0.0))),
            np.log1p(-np.exp(np.minimum(log_p, -math.log(2.0)))),
        )


def _xlogy(x, log_y):
    """x * log_y with 0 * (-inf) = 0."""
    with np.errstate(invalid="ignore"):
        return np.where(x == 0, 0.0, x * log_y)


def _label_log_likelihood(labels, log_probs, multilabel):
    """log p(y_n | x_n) [N] for class ids, soft/one-hot targets, or multilabel targets."""
    if multilabel:
        if labels.ndim != 2:
            raise ValueError(
                "Multilabel metrics need 0/1 targets of shape [N, K]. "
                f"Received: labels.shape={labels.shape}"
            )
        log_not = _log1mexp(log_probs)
        return np.sum(_xlogy(labels, log_probs) + _xlogy(1.0 - labels, log_not), axis=1)
    if labels.ndim == 1:
        return np.take_along_axis(log_probs, labels[:, None], axis=1)[:, 0]
    return np.sum(_xlogy(labels, log_probs), axis=1)
