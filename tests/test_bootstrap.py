"""Paired bootstrap intervals against a direct resampling of the arrays."""

import numpy as np
import pytest
from scipy import special

from het_ensembles import metrics
from het_ensembles.metrics import bootstrap


def _problem(seed, n=200, k=5, sharpness=(1.0, 2.0)):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, k, n)
    base = rng.normal(size=(n, k))
    base[np.arange(n), labels] += 1.0
    return labels, *(special.log_softmax(s * base, axis=1) for s in sharpness)


def test_matches_scoring_each_resample_directly():
    labels, a, b = _problem(0)
    got = bootstrap.paired_bootstrap(labels, a, b, num_resamples=200, seed=3)
    # The same resamples, drawn the same way, scored by the one-shot metrics on copies.
    rng = np.random.default_rng(3)
    diffs = {"accuracy": [], "nll": [], "ece": []}
    for _ in range(200):
        idx = rng.integers(0, len(labels), len(labels))
        y = labels[idx]
        diffs["accuracy"].append(
            metrics.accuracy(y, np.exp(b[idx])) - metrics.accuracy(y, np.exp(a[idx]))
        )
        diffs["nll"].append(metrics.nll(y, b[idx]) - metrics.nll(y, a[idx]))
        diffs["ece"].append(
            metrics.expected_calibration_error(y, np.exp(b[idx]))
            - metrics.expected_calibration_error(y, np.exp(a[idx]))
        )
    for name, values in diffs.items():
        low, high = np.percentile(values, [2.5, 97.5])
        assert got[name]["low"] == pytest.approx(low, abs=1e-9)
        assert got[name]["high"] == pytest.approx(high, abs=1e-9)
    assert got["nll"]["difference"] == pytest.approx(
        metrics.nll(labels, b) - metrics.nll(labels, a)
    )


def test_identical_models_give_a_zero_interval_and_clear_differences_exclude_zero():
    labels, a, _ = _problem(1)
    same = bootstrap.paired_bootstrap(labels, a, a.copy(), num_resamples=100)
    for name in bootstrap.BOOTSTRAP_METRICS:
        assert same[name]["low"] == same[name]["high"] == same[name]["difference"] == 0.0
        assert same[name]["b_better"] == 0.0
    # B is A with the true class pushed up: better everywhere, on every resample.
    better = a.copy()
    better[np.arange(len(labels)), labels] += 3.0
    better = special.log_softmax(better, axis=1)
    result = bootstrap.paired_bootstrap(labels, a, better, num_resamples=100)
    assert result["nll"]["high"] < 0 and result["accuracy"]["low"] > 0
    assert result["nll"]["b_better"] == 1.0


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"num_resamples": 10}, "num_resamples must be an integer >= 100"),
        ({"confidence": 1.0}, r"confidence must be in \(0, 1\)"),
    ],
)
def test_bad_arguments(kwargs, message):
    labels, a, b = _problem(2, n=20)
    with pytest.raises(ValueError, match=message):
        bootstrap.paired_bootstrap(labels, a, b, **kwargs)
    with pytest.raises(ValueError, match="same examples"):
        bootstrap.paired_bootstrap(labels, a, b[:10])
