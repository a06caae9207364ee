"""OOD metrics against scikit-learn, scipy and hand-computed values."""

import numpy as np
import pytest
import scipy.special
import scipy.stats
import sklearn.metrics

from het_ensembles.metrics import ood


def _random_case(seed, n_in, n_out, ties):
    rng = np.random.default_rng(seed)
    scores = np.r_[rng.normal(1.0, 1.0, n_in), rng.normal(0.0, 1.0, n_out)]
    if ties:
        scores = np.round(scores * 2) / 2  # few distinct values: many ties across the classes
    labels = np.r_[np.ones(n_in, int), np.zeros(n_out, int)]
    perm = rng.permutation(len(labels))
    return labels[perm], scores[perm]


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_auroc_and_auprc_match_sklearn(seed, ties):
    labels, scores = _random_case(seed, 300, 200, ties)
    assert ood.auroc(labels, scores) == pytest.approx(
        sklearn.metrics.roc_auc_score(labels, scores), abs=1e-12
    )
    assert ood.auprc(labels, scores) == pytest.approx(
        sklearn.metrics.average_precision_score(labels, scores), abs=1e-12
    )


@pytest.mark.parametrize("ties", [False, True])
def test_fpr_at_tpr_matches_sklearn_roc_curve(ties):
    labels, scores = _random_case(3, 400, 300, ties)
    fpr, tpr, _ = sklearn.metrics.roc_curve(labels, scores, drop_intermediate=False)
    for target in (0.5, 0.8, 0.95, 1.0):
        expected = fpr[np.searchsorted(tpr, target, side="left")]
        assert ood.fpr_at_tpr(labels, scores, target) == pytest.approx(expected, abs=1e-12)


def test_fpr_at_95_tpr_by_hand():
    # 20 in-distribution scores 1..20: keeping 95% of them (19) puts the threshold at 2.
    # OOD scores 0.5, 1.5, 2, 2.5, 3, 10, 30: those >= 2 are 2, 2.5, 3, 10, 30 -> FPR 5/7.
    in_scores = np.arange(1.0, 21.0)
    out_scores = np.array([0.5, 1.5, 2.0, 2.5, 3.0, 10.0, 30.0])
    labels = np.r_[np.ones(20), np.zeros(7)]
    scores = np.r_[in_scores, out_scores]
    assert ood.fpr_at_tpr(labels, scores, 0.95) == pytest.approx(5 / 7)
    # AUROC by counting pairs: P(in > out) + P(in == out) / 2.
    pairs = in_scores[:, None] - out_scores[None, :]
    expected = (np.sum(pairs > 0) + 0.5 * np.sum(pairs == 0)) / pairs.size
    assert ood.auroc(labels, scores) == pytest.approx(expected)


def test_perfect_and_reversed_separation():
    labels = np.r_[np.ones(5), np.zeros(5)]
    scores = np.r_[np.linspace(2, 3, 5), np.linspace(0, 1, 5)]
    assert ood.auroc(labels, scores) == 1.0
    assert ood.auprc(labels, scores) == 1.0
    assert ood.fpr_at_tpr(labels, scores) == 0.0
    assert ood.auroc(labels, -scores) == 0.0
    assert ood.fpr_at_tpr(labels, -scores) == 1.0


def test_scores_are_max_probability_and_negative_entropy():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(50, 7)) * 3
    log_probs = scipy.special.log_softmax(logits, axis=1)
    scores = ood.ood_scores(log_probs.astype(np.float32))
    probs = scipy.special.softmax(logits, axis=1)
    np.testing.assert_allclose(scores["msp"], probs.max(axis=1), rtol=1e-5)
    np.testing.assert_allclose(scores["entropy"], -scipy.stats.entropy(probs, axis=1), atol=1e-5)


def test_multilabel_scores_use_bernoulli_entropies():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(40, 5)) * 4
    probs = scipy.special.expit(logits)
    scores = ood.ood_scores(np.log(probs), multilabel=True)
    bernoulli = scipy.stats.entropy(np.stack([probs, 1 - probs]), axis=0).sum(axis=1)
    np.testing.assert_allclose(scores["entropy"], -bernoulli, atol=1e-9)
    np.testing.assert_allclose(scores["msp"], probs.max(axis=1), rtol=1e-12)


def test_ood_metrics_keys_and_values():
    rng = np.random.default_rng(2)
    in_lp = scipy.special.log_softmax(rng.normal(size=(60, 4)) * 4, axis=1)
    out_lp = scipy.special.log_softmax(rng.normal(size=(40, 4)), axis=1)
    result = ood.ood_metrics(in_lp, out_lp)
    assert sorted(result) == sorted(
        f"{m}_{s}" for m in ("auroc", "auprc", "fpr@95tpr") for s in ("msp", "entropy")
    )
    labels = np.r_[np.ones(60), np.zeros(40)]
    msp = np.r_[np.exp(in_lp).max(1), np.exp(out_lp).max(1)]
    assert result["auroc_msp"] == pytest.approx(sklearn.metrics.roc_auc_score(labels, msp))
    assert result["auprc_msp"] == pytest.approx(
        sklearn.metrics.average_precision_score(labels, msp)
    )


@pytest.mark.parametrize(
    "labels, scores, match",
    [
        ([1, 1, 1], [0.1, 0.2, 0.3], "both in- and out-of-distribution"),
        ([1, 2, 0], [0.1, 0.2, 0.3], "must hold 0"),
        ([1, 0], [0.1, np.nan], "NaN"),
        ([1, 0, 1], [0.1, 0.2], "same length"),
    ],
)
def test_bad_inputs_name_the_problem(labels, scores, match):
    with pytest.raises(ValueError, match=match):
        ood.auroc(labels, scores)


def test_bad_tpr():
    with pytest.raises(ValueError, match="tpr"):
        ood.fpr_at_tpr([1, 0], [0.2, 0.1], tpr=1.5)
