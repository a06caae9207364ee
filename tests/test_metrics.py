"""Tests for het_ensembles.metrics against hand-computed values, numpy, scikit-learn, TF and TFP."""

import itertools
import math

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp
from scipy import special
from sklearn import metrics as sk_metrics

from het_ensembles import metrics

# The ECE check vector of edward2 / robustness-metrics' ECE tests.
CHECK_PROBS = np.array(
    [
        [0.31, 0.32, 0.27],
        [0.37, 0.33, 0.30],
        [0.30, 0.31, 0.39],
        [0.61, 0.38, 0.01],
        [0.10, 0.65, 0.25],
        [0.91, 0.05, 0.04],
    ]
)
CHECK_LABELS = np.array([1, 0, 0, 1, 0, 0])


def _random_problem(seed, num_examples=300, num_classes=7, num_members=None, scale=2.0):
    rng = np.random.default_rng(seed)
    shape = (
        (num_examples, num_classes)
        if num_members is None
        else (num_members, num_examples, num_classes)
    )
    logits = scale * rng.normal(size=shape)
    log_probs = logits - special.logsumexp(logits, axis=-1, keepdims=True)
    labels = rng.integers(0, num_classes, size=num_examples)
    return labels, log_probs


def _numpy_ensemble_nll(labels, member_log_probs):
    member_probs = np.exp(member_log_probs)
    return -np.mean(np.log(np.mean(member_probs[:, np.arange(len(labels)), labels], axis=0)))


class TestExpectedCalibrationError:
    def test_check_vector(self):
        ece = metrics.ExpectedCalibrationError(num_bins=10)
        ece.update_state(CHECK_LABELS, CHECK_PROBS)
        np.testing.assert_array_equal(ece.bin_counts, [0, 0, 0, 3, 0, 0, 2, 0, 0, 1])
        np.testing.assert_array_equal(ece.bin_correct, [0, 0, 0, 2, 0, 0, 0, 0, 0, 1])
        # By hand: 3/6 |2/3 - (.32+.37+.39)/3| + 2/6 |0 - (.61+.65)/2| + 1/6 |1 - .91|.
        expected = 0.5 * abs(2 / 3 - 0.36) + (1 / 3) * 0.63 + (1 / 6) * 0.09
        assert ece.result() == pytest.approx(expected, abs=1e-12)
        assert metrics.expected_calibration_error(
            CHECK_LABELS, CHECK_PROBS, num_bins=10
        ) == pytest.approx(expected, abs=1e-12)

    @pytest.mark.parametrize("num_bins", [1, 10, 15])
    def test_matches_tfp(self, num_bins):
        labels, log_probs = _random_problem(0, num_examples=500)
        expected = tfp.stats.expected_calibration_error(
            num_bins,
            logits=tf.constant(log_probs, tf.float32),
            labels_true=tf.constant(labels, tf.int32),
        )
        ours = metrics.expected_calibration_error(labels, np.exp(log_probs), num_bins=num_bins)
        assert ours == pytest.approx(float(expected), abs=1e-5)

    def test_bin_edges(self):
        # floor(conf * num_bins), clipped: 0.5 -> bin 5 of 10, 1.0 -> last bin.
        probs = np.array([[0.5, 0.5], [1.0, 0.0], [0.95, 0.05]])
        ece = metrics.ExpectedCalibrationError(num_bins=10)
        ece.update_state(np.array([0, 1, 0]), probs)
        np.testing.assert_array_equal(ece.bin_counts, [0, 0, 0, 0, 0, 1, 0, 0, 0, 2])
        np.testing.assert_array_equal(ece.bin_correct, [0, 0, 0, 0, 0, 1, 0, 0, 0, 1])
        np.testing.assert_allclose(ece.bin_confidence[[5, 9]], [0.5, 1.95])

    def test_streaming_equals_one_shot_and_mask_drops_padding(self):
        labels, log_probs = _random_problem(1, num_examples=250)
        probs = np.exp(log_probs)
        ece = metrics.ExpectedCalibrationError()
        for start in range(0, 250, 64):  # last batch partial, padded to 64 with a 0 mask
            batch_labels = np.zeros(64, np.int64)
            batch_probs = np.full((64, 7), 1 / 7)
            n = min(64, 250 - start)
            batch_labels[:n] = labels[start : start + n]
            batch_probs[:n] = probs[start : start + n]
            ece.update_state(batch_labels, batch_probs, sample_weight=np.arange(64) < n)
        assert np.sum(ece.bin_counts) == 250
        assert ece.result() == pytest.approx(
            metrics.expected_calibration_error(labels, probs), abs=1e-12
        )
        ece.reset_state()
        assert np.isnan(ece.result())

    def test_one_hot_labels_match_class_ids(self):
        labels, log_probs = _random_problem(2)
        probs = np.exp(log_probs)
        one_hot = np.eye(7)[labels]
        assert metrics.expected_calibration_error(one_hot, probs) == pytest.approx(
            metrics.expected_calibration_error(labels, probs), abs=1e-12
        )

    def test_bad_arguments(self):
        with pytest.raises(ValueError, match="num_bins"):
            metrics.ExpectedCalibrationError(num_bins=0)
        with pytest.raises(ValueError, match=r"labels.shape=\(5,\)"):
            metrics.expected_calibration_error(np.zeros(5, int), CHECK_PROBS)
        with pytest.raises(ValueError, match=r"labels.max\(\)=3"):
            metrics.expected_calibration_error(np.array([0, 1, 2, 3, 0, 0]), CHECK_PROBS)


class TestSingleModelMetrics:
    def test_accuracy_matches_sklearn(self):
        labels, log_probs = _random_problem(3, num_examples=400, num_classes=10)
        probs = np.exp(log_probs)
        assert metrics.accuracy(labels, probs) == pytest.approx(
            sk_metrics.accuracy_score(labels, np.argmax(probs, 1))
        )
        for k in (2, 5):
            assert metrics.accuracy(labels, probs, k=k) == pytest.approx(
                sk_metrics.top_k_accuracy_score(labels, probs, k=k, labels=np.arange(10))
            )
        assert metrics.accuracy(labels, probs, k=10) == 1.0
        assert metrics.accuracy(labels, probs, k=20) == 1.0

    def test_accuracy_ties_go_to_the_lower_index(self):
        probs = np.array([[0.4, 0.4, 0.2], [0.4, 0.4, 0.2], [0.2, 0.4, 0.4]])
        assert metrics.accuracy(np.array([0, 1, 2]), probs) == pytest.approx(1 / 3)
        # top-2 of row 3 is {1, 2}; of rows 1-2 {0, 1}.
        assert metrics.accuracy(np.array([2, 1, 0]), probs, k=2) == pytest.approx(1 / 3)

    def test_multi_hot_accuracy_is_precision_at_1_and_hit_at_k(self):
        probs = np.array([[0.9, 0.8, 0.1], [0.2, 0.1, 0.7], [0.3, 0.6, 0.5]])
        targets = np.array([[0, 1, 0], [0, 0, 1], [1, 0, 1]])
        assert metrics.accuracy(targets, probs) == pytest.approx(1 / 3)
        assert metrics.accuracy(targets, probs, k=2) == pytest.approx(1.0)

    def test_nll_and_brier_match_numpy(self):
        labels, log_probs = _random_problem(4)
        probs = np.exp(log_probs)
        one_hot = np.eye(7)[labels]
        assert metrics.nll(labels, log_probs) == pytest.approx(
            -np.mean(np.log(probs[np.arange(300), labels]))
        )
        assert metrics.nll(labels, log_probs) == pytest.approx(
            sk_metrics.log_loss(labels, probs, labels=np.arange(7))
        )
        assert metrics.nll(one_hot, log_probs) == pytest.approx(metrics.nll(labels, log_probs))
        expected_brier = np.mean(np.sum((probs - one_hot) ** 2, axis=1))
        assert metrics.brier(labels, probs) == pytest.approx(expected_brier)
        assert metrics.brier(one_hot, probs) == pytest.approx(expected_brier)

    def test_log_probs_from_logits_matches_tf(self):
        logits = np.array([[1e4, -1e4, 0.0], [2.0, 1.0, -3.0]])
        np.testing.assert_allclose(
            metrics.log_probs_from_logits(logits), tf.nn.log_softmax(logits).numpy(), rtol=1e-6
        )
        np.testing.assert_allclose(
            metrics.log_probs_from_logits(logits, multilabel=True),
            tf.math.log_sigmoid(logits).numpy(),
            rtol=1e-6,
        )
        assert np.all(np.isfinite(metrics.log_probs_from_logits(logits)))

    def test_multilabel_nll_matches_tf_sigmoid_cross_entropy(self):
        rng = np.random.default_rng(5)
        logits = rng.normal(scale=3.0, size=(50, 6))
        logits[0, :2] = [40.0, -40.0]  # p ~ 1 - 4e-18 and 4e-18: needs a stable log(1 - p)
        targets = (rng.uniform(size=(50, 6)) < 0.3).astype(np.float64)
        targets[0, :2] = [0.0, 1.0]
        expected = np.mean(
            np.sum(tf.nn.sigmoid_cross_entropy_with_logits(targets, logits).numpy(), axis=1)
        )
        log_probs = -np.logaddexp(0.0, -logits)  # float64 log_sigmoid
        ours = metrics.nll(targets, log_probs, multilabel=True)
        assert ours == pytest.approx(expected, rel=1e-9)

    def test_classification_metrics_streaming_matches_functions(self):
        labels, log_probs = _random_problem(6, num_examples=130)
        accumulator = metrics.ClassificationMetrics()
        for start in range(0, 130, 32):
            accumulator.update_state(labels[start : start + 32], log_probs[start : start + 32])
        result = accumulator.result()
        probs = np.exp(log_probs)
        assert result == pytest.approx(
            {
                "accuracy": metrics.accuracy(labels, probs),
                "top5_accuracy": metrics.accuracy(labels, probs, k=5),
                "nll": metrics.nll(labels, log_probs),
                "ece": metrics.expected_calibration_error(labels, probs),
                "brier": metrics.brier(labels, probs),
                "num_examples": 130,
            }
        )
        assert isinstance(result["num_examples"], int)

    def test_bad_arguments(self):
        with pytest.raises(ValueError, match="k"):
            metrics.Accuracy(k=0)
        with pytest.raises(ValueError, match=r"log_probs.shape=\(6,\)"):
            metrics.nll(CHECK_LABELS, np.zeros(6))
        with pytest.raises(ValueError, match="sample_weight"):
            metrics.BrierScore().update_state(CHECK_LABELS, CHECK_PROBS, sample_weight=np.ones(3))
        with pytest.raises(ValueError, match="integer class ids"):
            metrics.accuracy(CHECK_LABELS + 0.5, CHECK_PROBS)
        with pytest.raises(ValueError, match=r"\[N, K\]"):
            metrics.nll(CHECK_LABELS, np.log(CHECK_PROBS), multilabel=True)


class TestEnsembleMetrics:
    def test_ensemble_nll_matches_numpy(self):
        labels, member_log_probs = _random_problem(7, num_members=4)
        expected = _numpy_ensemble_nll(labels, member_log_probs)
        assert metrics.ensemble_nll(labels, member_log_probs) == pytest.approx(expected)
        # The design formula, -logsumexp_m log p_m(y) + log M, term by term.
        log_lik = member_log_probs[:, np.arange(300), labels]
        assert expected == pytest.approx(np.mean(-special.logsumexp(log_lik, 0) + np.log(4)))
        # The ensemble is at least as good as the average member (Jensen).
        assert expected <= metrics.gibbs_nll(labels, member_log_probs)

    def test_ensemble_nll_is_stable_for_very_negative_log_probs(self):
        member_log_probs = np.array([[[-1000.0, 0.0]], [[-1002.0, 0.0]]])
        expected = -(np.log(1 + np.exp(-2.0)) - 1000.0) + np.log(2)
        assert metrics.ensemble_nll(np.array([0]), member_log_probs) == pytest.approx(expected)

    def test_gibbs_nll_disagreement_and_kl(self):
        labels, member_log_probs = _random_problem(8, num_members=3)
        member_probs = np.exp(member_log_probs)
        expected_gibbs = np.mean(
            [-np.mean(np.log(p[np.arange(300), labels])) for p in member_probs]
        )
        assert metrics.gibbs_nll(labels, member_log_probs) == pytest.approx(expected_gibbs)
        predictions = np.argmax(member_probs, axis=2)
        expected_disagreement = np.mean(
            [
                np.mean(predictions[i] != predictions[j])
                for i, j in itertools.combinations(range(3), 2)
            ]
        )
        assert metrics.disagreement(member_probs) == pytest.approx(expected_disagreement)
        assert metrics.disagreement(member_log_probs) == pytest.approx(expected_disagreement)
        assert metrics.disagreement(member_probs[:1]) == 0.0
        # Mean KL to the mean is the mutual information: H(mean) - mean H.
        mean_probs = np.mean(member_probs, axis=0)
        entropy_of_mean = -np.sum(mean_probs * np.log(mean_probs), axis=1)
        mean_entropy = np.mean(-np.sum(member_probs * member_log_probs, axis=2), axis=0)
        assert metrics.kl_to_ensemble(member_log_probs) == pytest.approx(
            np.mean(entropy_of_mean - mean_entropy)
        )
        assert metrics.kl_to_ensemble(member_log_probs[:1]) == pytest.approx(0.0, abs=1e-12)

    def test_multilabel_ensemble(self):
        rng = np.random.default_rng(9)
        member_logits = rng.normal(scale=2.0, size=(3, 40, 5))
        targets = (rng.uniform(size=(40, 5)) < 0.4).astype(np.float64)
        member_log_probs = -np.logaddexp(0.0, -member_logits)
        mean_p = np.mean(1 / (1 + np.exp(-member_logits)), axis=0)
        expected_nll = -np.mean(
            np.sum(targets * np.log(mean_p) + (1 - targets) * np.log(1 - mean_p), axis=1)
        )
        ours = metrics.ensemble_nll(targets, member_log_probs, multilabel=True)
        assert ours == pytest.approx(expected_nll)
        p = 1 / (1 + np.exp(-member_logits))
        bernoulli_kl = p * np.log(p / mean_p) + (1 - p) * np.log((1 - p) / (1 - mean_p))
        assert metrics.kl_to_ensemble(member_log_probs, multilabel=True) == pytest.approx(
            np.mean(np.sum(bernoulli_kl, axis=2))
        )
        accumulator = metrics.EnsembleMetrics(multilabel=True)
        accumulator.update_state(targets, member_log_probs)
        result = accumulator.result()
        assert result["nll"] == pytest.approx(expected_nll)
        assert result["kl_to_ensemble"] == pytest.approx(np.mean(np.sum(bernoulli_kl, axis=2)))
        hits = targets[np.arange(40), np.argmax(mean_p, axis=1)]
        has_positive = targets.max(axis=1) > 0  # prec@1 leaves out examples without a positive
        assert result["prec@1"] == pytest.approx(np.mean(hits[has_positive]))

    def test_streaming_ensemble_metrics(self):
        labels, member_log_probs = _random_problem(10, num_examples=100, num_members=4)
        accumulator = metrics.EnsembleMetrics()
        for start in range(0, 100, 30):
            accumulator.update_state(
                labels[start : start + 30], member_log_probs[:, start : start + 30]
            )
        result = accumulator.result()
        mean_probs = np.mean(np.exp(member_log_probs), axis=0)
        assert result["nll"] == pytest.approx(_numpy_ensemble_nll(labels, member_log_probs))
        assert result["accuracy"] == pytest.approx(metrics.accuracy(labels, mean_probs))
        assert result["ece"] == pytest.approx(
            metrics.expected_calibration_error(labels, mean_probs)
        )
        assert result["gibbs_nll"] == pytest.approx(metrics.gibbs_nll(labels, member_log_probs))
        assert result["disagreement"] == pytest.approx(metrics.disagreement(member_log_probs))
        assert result["kl_to_ensemble"] == pytest.approx(metrics.kl_to_ensemble(member_log_probs))
        assert result["ensemble_size"] == 4
        assert result["num_examples"] == 100
        with pytest.raises(ValueError, match="number of members changed"):
            accumulator.update_state(labels[:5], member_log_probs[:2, :5])

    def test_member_axis_is_checked(self):
        with pytest.raises(ValueError, match=r"\[M, N, K\]"):
            metrics.ensemble_nll(CHECK_LABELS, np.log(CHECK_PROBS))


class TestSubEnsembleMetrics:
    def test_each_subset_matches_the_one_shot_functions(self):
        labels, member_log_probs = _random_problem(11, num_examples=90, num_members=4)
        subsets = [(0, 1), (1, 2, 3), (2,)]
        accumulator = metrics.SubEnsembleMetrics(subsets)
        for start in range(0, 90, 40):
            accumulator.update_state(
                labels[start : start + 40], member_log_probs[:, start : start + 40]
            )
        for subset, result in zip(subsets, accumulator.result()):
            chosen = member_log_probs[list(subset)]
            mean_probs = np.mean(np.exp(chosen), axis=0)
            assert result["nll"] == pytest.approx(_numpy_ensemble_nll(labels, chosen))
            assert result["top5_accuracy"] == pytest.approx(
                metrics.accuracy(labels, mean_probs, k=5)
            )
            assert result["brier"] == pytest.approx(metrics.brier(labels, mean_probs))
            assert result["gibbs_nll"] == pytest.approx(metrics.gibbs_nll(labels, chosen))
            assert result["disagreement"] == pytest.approx(metrics.disagreement(chosen))
            assert result["kl_to_ensemble"] == pytest.approx(
                metrics.kl_to_ensemble(chosen), abs=1e-12
            )
            assert result["ensemble_size"] == len(subset)

    def test_one_hot_labels_take_the_full_path(self):
        labels, member_log_probs = _random_problem(12, num_members=3)
        by_id, by_one_hot = metrics.EnsembleMetrics(), metrics.EnsembleMetrics()
        by_id.update_state(labels, member_log_probs)
        by_one_hot.update_state(np.eye(7)[labels], member_log_probs)
        assert by_one_hot.result() == pytest.approx(by_id.result())

    def test_result_before_any_update_has_every_key(self):
        # The same keys SubEnsembleMetrics returns with no data, each NaN (no examples yet).
        empty = metrics.EnsembleMetrics().result()
        labels, member_log_probs = _random_problem(12, num_members=2)
        full = metrics.EnsembleMetrics()
        full.update_state(labels, member_log_probs)
        assert set(empty) == set(full.result())
        for key in ("gibbs_nll", "disagreement", "kl_to_ensemble"):
            assert math.isnan(empty[key]), key

    def test_bad_subsets(self):
        with pytest.raises(ValueError, match="subsets"):
            metrics.SubEnsembleMetrics([(0, 0)])
        with pytest.raises(ValueError, match="subsets"):
            metrics.SubEnsembleMetrics([])
        _, member_log_probs = _random_problem(13, num_members=2)
        with pytest.raises(ValueError, match="beyond the 2"):
            metrics.SubEnsembleMetrics([(0, 2)]).update_state(CHECK_LABELS, member_log_probs)
