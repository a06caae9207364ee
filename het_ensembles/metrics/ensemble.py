"""Metrics of an ensemble (the mean of member probabilities) and of its members' diversity.

Member arrays have the member axis first: [M, N, K].
"""

import itertools
import math

import numpy as np

from het_ensembles.metrics.classification import (
    DEFAULT_NUM_BINS,
    ClassificationMetrics,
    WeightedMean,
    nll,
)
from het_ensembles.metrics.numerics import (
    as_member_array,
    check_labels_and_values,
    check_values,
    example_weights,
    label_log_likelihood,
    log1mexp,
    logsumexp,
    nonempty,
    xlogy,
)


def ensemble_log_probs(member_log_probs):
    """Log of the mean member probability: logsumexp_m(log p_m) - log M.

    The same formula serves softmax members (mean of the class distributions) and multilabel
    members (mean of each label's positive probability).

    Args:
      member_log_probs: [M, N, K] (or a list of M arrays [N, K]).

    Returns:
      float64 array [N, K].
    """
    member_log_probs = as_member_array(member_log_probs)
    num_members = member_log_probs.shape[0]
    return logsumexp(member_log_probs, axis=0) - math.log(num_members)


class SubEnsembleMetrics:
    """`EnsembleMetrics` of several sub-ensembles of the same members at once.

    The per-member work (probabilities, label likelihoods, entropies, top-1 predictions) is done
    once per batch and shared by all sub-ensembles, so e.g. the 70 size-4 sub-ensembles of 8
    members cost little more than 70 means of probabilities.

    Args:
      subsets: a list of member-index tuples, each non-empty and without repeats.
      multilabel: whether member log-probs are per-label sigmoid log-probabilities.
      num_bins: ECE bins.
      top_k: k of the second accuracy (softmax members).
      rank_metrics: multi-label members: see `ClassificationMetrics`.

    Attributes:
      ensembles: one `ClassificationMetrics` per subset, for the ensemble's own metrics
        (its ECE bins feed reliability diagrams).
    """

    def __init__(
        self, subsets, *, multilabel=False, num_bins=DEFAULT_NUM_BINS, top_k=5, rank_metrics=True
    ):
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
        self._options = {
            "multilabel": multilabel,
            "num_bins": num_bins,
            "top_k": top_k,
            "rank_metrics": rank_metrics,
        }
        self.reset_state()

    def reset_state(self):
        self.ensembles = [ClassificationMetrics(**self._options) for _ in self.subsets]
        self._gibbs_nll = [WeightedMean() for _ in self.subsets]
        self._disagreement = [WeightedMean() for _ in self.subsets]
        self._kl_to_ensemble = [WeightedMean() for _ in self.subsets]

    def update_state(self, labels, member_log_probs, sample_weight=None):
        """Adds a batch: labels [B] or [B, K], member_log_probs [M, B, K] of all members."""
        member_log_probs = as_member_array(member_log_probs)
        num_members = member_log_probs.shape[0]
        if max(max(subset) for subset in self.subsets) >= num_members:
            raise ValueError(
                f"`subsets` name members beyond the {num_members} given. Received: "
                f"member_log_probs.shape={member_log_probs.shape}, subsets={self.subsets}"
            )
        check_values(member_log_probs, "member_log_probs", kind="log_probs")
        labels, _ = check_labels_and_values(labels, member_log_probs[0], "member_log_probs[0]")
        weights = example_weights(sample_weight, member_log_probs.shape[1])
        probs = np.exp(member_log_probs)  # [M, B, K]
        log_lik = np.stack(
            [label_log_likelihood(labels, lp, self.multilabel) for lp in member_log_probs]
        )  # [M, B]
        neg_entropy = np.sum(xlogy(probs, member_log_probs), axis=2)  # [M, B]
        if self.multilabel:
            log_not = log1mexp(member_log_probs)
            neg_entropy += np.sum(xlogy(1.0 - probs, log_not), axis=2)
        predictions = np.argmax(member_log_probs, axis=2)  # [M, B]
        for i, subset in enumerate(self.subsets):
            members = list(subset)
            log_size = math.log(len(members))
            mean_probs = np.mean(probs[members], axis=0)  # [B, K]
            if self.multilabel:
                log_mean = logsumexp(member_log_probs[members], axis=0) - log_size
                log_mean_not = logsumexp(log_not[members], axis=0) - log_size
                ensemble_neg_entropy = np.sum(
                    xlogy(mean_probs, log_mean) + xlogy(1.0 - mean_probs, log_mean_not), axis=1
                )
            else:
                with np.errstate(divide="ignore"):
                    log_mean = np.log(mean_probs)
                ensemble_neg_entropy = np.sum(xlogy(mean_probs, log_mean), axis=1)
            if labels.ndim == 1:  # -logsumexp_m log p_m(y) + log M: exact far into the tails
                ensemble_log_lik = logsumexp(log_lik[members], axis=0) - log_size
            else:
                if not self.multilabel:
                    log_mean = logsumexp(member_log_probs[members], axis=0) - log_size
                ensemble_log_lik = label_log_likelihood(labels, log_mean, self.multilabel)
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
      top_k: k of the second accuracy (softmax members).
      rank_metrics: multi-label members: see `ClassificationMetrics`.
    """

    def __init__(self, *, multilabel=False, num_bins=DEFAULT_NUM_BINS, top_k=5, rank_metrics=True):
        self._options = {
            "multilabel": multilabel,
            "num_bins": num_bins,
            "top_k": top_k,
            "rank_metrics": rank_metrics,
        }
        self.reset_state()

    def reset_state(self):
        self._all = None  # a SubEnsembleMetrics over all members, made at the first batch

    def update_state(self, labels, member_log_probs, sample_weight=None):
        """Adds a batch: labels [B] or [B, K], member_log_probs [M, B, K]."""
        member_log_probs = as_member_array(member_log_probs)
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


def ensemble_nll(labels, member_log_probs, *, multilabel=False):
    """NLL of the mean member probability: mean_n [-logsumexp_m log p_m(y_n) + log M].

    For multilabel members the mixture is per label (the ensemble predicts each label's mean
    probability). member_log_probs [M, N, K].
    """
    return nll(labels, ensemble_log_probs(member_log_probs), multilabel=multilabel)


def gibbs_nll(labels, member_log_probs, *, multilabel=False):
    """Gibbs cross-entropy: the mean over members of each member's NLL. member_log_probs [M, N, K]."""
    member_log_probs = as_member_array(member_log_probs)
    return float(np.mean([nll(labels, lp, multilabel=multilabel) for lp in member_log_probs]))


def disagreement(member_probs):
    """Fraction of examples where two members' top-1 predictions differ, mean over member pairs.

    Args:
      member_probs: [M, N, K] probabilities or log-probabilities (only the argmax is used).

    Returns:
      float in [0, 1]; 0.0 for a single member.
    """
    member_probs = nonempty(as_member_array(member_probs, "member_probs"), "member_probs", axis=1)
    predictions = np.argmax(member_probs, axis=2)  # [M, N]
    pairs = list(itertools.combinations(range(len(predictions)), 2))
    if not pairs:
        return 0.0
    return float(np.mean([predictions[i] != predictions[j] for i, j in pairs]))


def kl_to_ensemble(member_log_probs, *, multilabel=False):
    """Mean over members and examples of KL(p_m || p_ensemble), p_ensemble the mean member probs.

    For multilabel members, the sum over labels of the Bernoulli KLs. member_log_probs [M, N, K].
    """
    member_log_probs = nonempty(as_member_array(member_log_probs), "member_log_probs", axis=1)
    check_values(member_log_probs, "member_log_probs", kind="log_probs")
    probs = np.exp(member_log_probs)  # [M, N, K]
    log_mean = ensemble_log_probs(member_log_probs)
    with np.errstate(invalid="ignore"):  # -inf - -inf where p_m = 0; _xlogy zeroes those terms
        kl = xlogy(probs, member_log_probs - log_mean)
        if multilabel:
            log_not = log1mexp(member_log_probs)
            kl = kl + xlogy(1.0 - probs, log_not - log1mexp(log_mean))
    return float(np.mean(np.sum(kl, axis=2)))
