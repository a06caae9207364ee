"""Multi-label metrics (gAP, mAP, prec@1, label-wise ECE, NLL) against independent references.

References: a hand-ranked list; a from-scratch re-implementation of YouTube-8M's
`eval_util.calculate_gap` / `AveragePrecisionCalculator` (github.com/google/youtube-8m);
scikit-learn's `average_precision_score`; direct numpy formulas.
"""

import heapq
import random

import numpy as np
import pytest
from sklearn import metrics as sk_metrics

from het_ensembles import metrics


def _problem(seed, num_examples=60, num_classes=7, rate=0.3):
    rng = np.random.default_rng(seed)
    logits = rng.normal(scale=2.0, size=(num_examples, num_classes))
    labels = (rng.uniform(size=(num_examples, num_classes)) < rate).astype(np.float64)
    return labels, 1.0 / (1.0 + np.exp(-logits)), logits


def _youtube8m_gap(predictions, actuals, top_k=20):
    """YouTube-8M's calculate_gap, re-implemented from its source (eval_util.py at e6f6bf6).

    top_k_by_class keeps each video's top k (argpartition), groups them by class and counts
    every class's positives; the calculator pools the lists in a heap and `ap_at_n(n=None)`
    shuffles with random.seed(0), sorts by score and sums poscount / (i + 1) / numpos.
    """
    k = min(top_k, predictions.shape[1])
    heap, total_positives = [], 0.0
    for row, labels in zip(predictions, actuals):
        for index in np.argpartition(row, -k)[-k:]:
            heapq.heappush(heap, (row[index], labels[index]))
    total_positives = sum(np.sum(actuals[:, c]) for c in range(actuals.shape[1]))
    if not heap or total_positives == 0:
        return 0
    scores, labels = (np.array(x) for x in zip(*heap))
    random.seed(0)
    shuffled = random.sample(range(len(scores)), len(scores))
    scores, labels = scores[shuffled], labels[shuffled]
    order = sorted(range(len(scores)), key=lambda i: scores[i], reverse=True)
    ap, poscount = 0.0, 0.0
    for i, index in enumerate(order):
        if labels[index] > 0:
            poscount += 1
            ap += poscount / (i + 1) / total_positives
    return ap


class TestGlobalAveragePrecision:
    def test_hand_ranked_list(self):
        probs = np.array(
            [
                [0.90, 0.80, 0.10, 0.30],
                [0.20, 0.70, 0.60, 0.05],
                [0.40, 0.10, 0.95, 0.50],
            ]
        )
        labels = np.array([[1, 0, 0, 1], [0, 0, 1, 0], [0, 1, 1, 0]])
        # Top 2 per example, pooled and ranked: 0.95 (+), 0.90 (+), 0.80, 0.70, 0.60 (+), 0.50.
        # Precision at the positives: 1/1, 2/2, 3/5; 5 positives in all (two outside the top 2).
        expected = (1.0 + 1.0 + 3.0 / 5.0) / 5.0
        assert metrics.global_average_precision(probs, labels, top_k=2) == pytest.approx(expected)
        # top_k=1: 0.95 (+), 0.90 (+), 0.70 -> (1 + 1) / 5.
        assert metrics.global_average_precision(probs, labels, top_k=1) == pytest.approx(0.4)

    @pytest.mark.parametrize(
        "seed, num_classes, top_k", [(0, 7, 3), (1, 7, 20), (2, 30, 20), (3, 12, 1)]
    )
    def test_matches_youtube8m_algorithm(self, seed, num_classes, top_k):
        labels, probs, _ = _problem(seed, num_classes=num_classes)
        expected = _youtube8m_gap(probs, labels, top_k=top_k)
        assert metrics.global_average_precision(probs, labels, top_k=top_k) == pytest.approx(
            expected, rel=1e-12
        )

    def test_ties_form_one_threshold(self):
        # One positive and one negative tied at the top: the positive gets precision 1/2.
        probs = np.array([[0.5, 0.1], [0.5, 0.2]])
        labels = np.array([[1, 0], [0, 0]])
        assert metrics.global_average_precision(probs, labels, top_k=1) == pytest.approx(0.5)

    def test_all_classes_kept_is_sklearn_ap_of_the_pooled_pairs(self):
        labels, probs, _ = _problem(4, num_classes=5)
        probs = np.round(probs, 1)  # ties
        weights = np.random.default_rng(4).integers(0, 4, size=len(probs)).astype(float)
        expected = sk_metrics.average_precision_score(
            labels.ravel(), probs.ravel(), sample_weight=np.repeat(weights, 5)
        )
        ours = metrics.global_average_precision(probs, labels, top_k=5, sample_weight=weights)
        assert ours == pytest.approx(expected, rel=1e-12)

    def test_no_positive_is_zero_as_the_reference(self):
        assert metrics.global_average_precision(np.full((3, 4), 0.5), np.zeros((3, 4))) == 0.0


class TestMeanAveragePrecision:
    @pytest.mark.parametrize("decimals", [None, 1])
    def test_per_class_ap_matches_sklearn(self, decimals):
        labels, probs, _ = _problem(5, num_examples=80, num_classes=6)
        labels[:, 2] = 0  # a class without positives: left out of the mean
        if decimals is not None:
            probs = np.round(probs, decimals)
        weights = np.random.default_rng(5).uniform(0.0, 2.0, size=80)
        for sample_weight in (None, weights):
            per_class = metrics.average_precision_per_class(
                probs, labels, sample_weight=sample_weight
            )
            present = [k for k in range(6) if k != 2]
            expected = [
                sk_metrics.average_precision_score(
                    labels[:, k], probs[:, k], sample_weight=sample_weight
                )
                for k in present
            ]
            np.testing.assert_allclose(per_class[present], expected, rtol=1e-12)
            assert np.isnan(per_class[2])
            ours = metrics.mean_average_precision(probs, labels, sample_weight=sample_weight)
            assert ours == pytest.approx(np.mean(expected), rel=1e-12)

    def test_no_class_with_a_positive_is_nan(self):
        assert np.isnan(metrics.mean_average_precision(np.full((3, 2), 0.5), np.zeros((3, 2))))


class TestPrecisionAtOne:
    def test_hand_computed(self):
        probs = np.array([[0.9, 0.2, 0.1], [0.3, 0.8, 0.4], [0.6, 0.6, 0.1], [0.2, 0.3, 0.9]])
        labels = np.array([[1, 0, 1], [0, 0, 1], [0, 1, 0], [0, 0, 0]])
        # Hits: row 0 yes (class 0); row 1 no (class 1); row 2 no (tie -> class 0); row 3 has
        # no positive and is left out, as uncertainty-baselines' JFT evaluation masks it.
        assert metrics.precision_at_1(probs, labels) == pytest.approx(1 / 3)
        assert metrics.precision_at_1(probs, labels, sample_weight=[1, 3, 0, 5]) == 0.25

    def test_equals_multi_hot_accuracy_when_every_example_has_a_positive(self):
        labels, probs, _ = _problem(6)
        labels[np.arange(len(labels)), np.arange(len(labels)) % 7] = 1
        assert metrics.precision_at_1(probs, labels) == pytest.approx(
            metrics.accuracy(labels, probs)
        )


def _numpy_labelwise_ece(labels, probs, num_bins=15):
    p, y = probs.ravel(), labels.ravel()
    edges = np.linspace(0.0, 1.0, num_bins + 1)
    bins = np.searchsorted(edges[1:-1], p, side="right")  # [0, 1/15) -> 0, ..., [14/15, 1] -> 14
    ece = 0.0
    for b in range(num_bins):
        inside = bins == b
        if inside.any():
            ece += inside.mean() * abs(y[inside].mean() - p[inside].mean())
    return ece


class TestCalibrationAndNll:
    def test_labelwise_ece_matches_numpy(self):
        labels, probs, _ = _problem(7, num_examples=200)
        assert metrics.multilabel_calibration_error(labels, probs) == pytest.approx(
            _numpy_labelwise_ece(labels, probs), rel=1e-12
        )
        assert metrics.multilabel_calibration_error(labels, probs, num_bins=4) == pytest.approx(
            _numpy_labelwise_ece(labels, probs, 4), rel=1e-12
        )

    def test_nll_is_summed_binary_cross_entropy(self):
        labels, probs, logits = _problem(8)
        expected = -np.mean(np.sum(labels * np.log(probs) + (1 - labels) * np.log1p(-probs), 1))
        log_probs = metrics.log_probs_from_logits(logits, multilabel=True)
        assert metrics.nll(labels, log_probs, multilabel=True) == pytest.approx(expected, 1e-6)


class TestStreaming:
    def test_classification_metrics_keys_and_values(self):
        labels, probs, logits = _problem(9, num_examples=90)
        log_probs = -np.logaddexp(0.0, -logits)
        accumulator = metrics.ClassificationMetrics(multilabel=True)
        rng = np.random.default_rng(9)
        cuts = np.sort(rng.choice(np.arange(1, 90), size=5, replace=False))
        for y, lp in zip(np.split(labels, cuts), np.split(log_probs, cuts)):
            accumulator.update_state(y, lp)
        result = accumulator.result()
        assert set(result) == {"gap", "map", "prec@1", "nll", "ece", "brier", "num_examples"}
        assert result["gap"] == pytest.approx(_youtube8m_gap(probs, labels), rel=1e-9)
        expected_map = np.mean(
            [sk_metrics.average_precision_score(labels[:, k], probs[:, k]) for k in range(7)]
        )
        assert result["map"] == pytest.approx(expected_map, rel=1e-9)
        assert result["prec@1"] == pytest.approx(metrics.precision_at_1(probs, labels))
        assert result["ece"] == pytest.approx(_numpy_labelwise_ece(labels, probs), rel=1e-9)
        assert result["brier"] == pytest.approx(np.mean(np.sum((probs - labels) ** 2, axis=1)))
        assert result["num_examples"] == 90

    @pytest.mark.parametrize("seed", [10, 11])
    def test_random_batch_splits_and_masks(self, seed):
        labels, probs, _ = _problem(seed, num_examples=70, num_classes=9)
        probs = np.round(probs, 2)  # ties across batches
        mask = (np.random.default_rng(seed).uniform(size=70) < 0.8).astype(float)
        one_shot = {
            "gap": metrics.global_average_precision(probs[mask > 0], labels[mask > 0], top_k=4),
            "map": metrics.mean_average_precision(probs[mask > 0], labels[mask > 0]),
            "prec@1": metrics.precision_at_1(probs[mask > 0], labels[mask > 0]),
            "ece": metrics.multilabel_calibration_error(labels[mask > 0], probs[mask > 0]),
        }
        streaming = {
            "gap": metrics.GlobalAveragePrecision(4),
            "map": metrics.MeanAveragePrecision(),
            "prec@1": metrics.PrecisionAtOne(),
            "ece": metrics.MultilabelCalibrationError(),
        }
        cuts = np.sort(np.random.default_rng(seed).choice(np.arange(1, 70), 6, replace=False))
        for start, stop in zip([0, *cuts], [*cuts, 70]):
            for metric in streaming.values():
                metric.update_state(
                    labels[start:stop], probs[start:stop], sample_weight=mask[start:stop]
                )
        for name, metric in streaming.items():
            assert metric.result() == pytest.approx(one_shot[name], rel=1e-12), name

    def test_map_beyond_its_memory_cap_is_none(self):
        labels, probs, _ = _problem(12, num_examples=10, num_classes=3)
        capped = metrics.MeanAveragePrecision(max_values=20)
        capped.update_state(labels[:5], probs[:5])
        assert capped.result() == pytest.approx(
            metrics.mean_average_precision(probs[:5], labels[:5])
        )
        capped.update_state(labels[5:], probs[5:])
        assert capped.result() is None
        accumulator = metrics.ClassificationMetrics(multilabel=True, rank_metrics=False)
        accumulator.update_state(labels, np.log(probs))
        result = accumulator.result()
        assert result["map"] is None and result["gap"] is None
        assert result["prec@1"] == pytest.approx(metrics.precision_at_1(probs, labels))


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: metrics.global_average_precision(np.ones((2, 3)) / 2, [0, 1]), "shape \\[N, K\\]"),
        (lambda: metrics.mean_average_precision(np.ones((2, 2)) / 2, [[0.5, 1], [0, 1]]), "0 or 1"),
        (lambda: metrics.GlobalAveragePrecision(0), "Received: top_k=0"),
        (lambda: metrics.MeanAveragePrecision(-1), "Received: max_values=-1"),
        (lambda: metrics.precision_at_1(np.zeros((0, 2)), np.zeros((0, 2))), "no examples"),
    ],
)
def test_bad_inputs(call, message):
    with pytest.raises(ValueError, match=message):
        call()
