"""Mixup and the `+rescaling` metrics (het_ensembles.training.mixup) against independent numbers.

References: numpy (the mixing and the rescaling formulas written out), scipy.stats.beta (the
mix weights' distribution, the truncated-beta mean by numerical integration), scipy.special
(uncertainty-baselines' own `mean_truncated_beta_distribution` formula) and the set's plain
means (the running mean of one epoch of equal batches is the mean over the set).
"""

import json
import os

import console
import keras
import numpy as np
import pytest
import scipy.integrate
import scipy.special
import scipy.stats
import tensorflow as tf
import tiny_training

from het_ensembles import member_dir, training
from het_ensembles.training import losses, mixup, trainer

FLAGS = {
    "alpha": 0.4,
    "same_mix_weight_per_batch": False,
    "use_random_shuffling": False,
    "use_truncated_beta": True,
}
SEED = tf.constant([3, 5], tf.int64)
REPO_TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _weights(batch_size, **overrides):
    weights, pairs = mixup.mix_weights_and_pairs(batch_size, SEED, **{**FLAGS, **overrides})
    return weights.numpy()[:, 0], pairs.numpy()


@pytest.mark.parametrize("alpha", [0.1, 0.2, 1.0, 2.5])
def test_truncated_beta_mean_matches_integration_and_the_scripts_formula(alpha):
    density = scipy.stats.beta(alpha, alpha).pdf
    integral, _ = scipy.integrate.quad(lambda w: max(w, 1 - w) * density(w), 0, 1, points=[0.5])
    assert mixup.mean_truncated_beta(alpha) == pytest.approx(integral, abs=1e-6)
    # heteroscedastic.py's mean_truncated_beta_distribution.
    assert mixup.mean_truncated_beta(alpha) == pytest.approx(
        1.0 - scipy.special.betainc(alpha + 1, alpha, 0.5), abs=1e-10
    )


def test_untruncated_weights_follow_beta_alpha_alpha():
    weights, _ = _weights(20000, use_truncated_beta=False)
    assert scipy.stats.kstest(weights, scipy.stats.beta(0.4, 0.4).cdf).pvalue > 0.01
    assert weights.min() < 0.5 < weights.max()


def test_truncated_weights_are_the_max_of_w_and_one_minus_w():
    weights, _ = _weights(20000)
    assert weights.min() >= 0.5
    # max(W, 1 - W) <= t  <=>  1 - t <= W <= t.
    beta = scipy.stats.beta(0.4, 0.4)
    assert scipy.stats.kstest(weights, lambda t: beta.cdf(t) - beta.cdf(1 - t)).pvalue > 0.01
    stderr = weights.std() / np.sqrt(len(weights))
    assert abs(weights.mean() - mixup.mean_truncated_beta(0.4)) < 4 * stderr


def test_pairing_and_shared_weight_flags():
    weights, pairs = _weights(6)
    np.testing.assert_array_equal(pairs, [5, 4, 3, 2, 1, 0])  # the batch reversed
    assert len(set(weights.tolist())) == 6
    weights, _ = _weights(6, same_mix_weight_per_batch=True)
    assert len(set(weights.tolist())) == 1
    _, pairs = _weights(64, use_random_shuffling=True)
    assert sorted(pairs.tolist()) == list(range(64)) and pairs.tolist() != list(range(63, -1, -1))
    again, _ = _weights(6)
    assert len(set(again.tolist())) == 6 and np.array_equal(again, _weights(6)[0])  # stateless


@pytest.mark.parametrize("shuffle", [False, True])
def test_mixed_batch_matches_numpy(shuffle):
    rng = np.random.default_rng(0)
    images = rng.normal(size=(8, 4, 4, 3)).astype(np.float32)
    labels = rng.integers(0, 5, 8)
    flags = {**FLAGS, "use_random_shuffling": shuffle}
    mixed_images, mixed_labels = mixup.mix_batch(
        tf.constant(images), tf.constant(labels), SEED, num_classes=5, **flags
    )
    weights, pairs = _weights(8, use_random_shuffling=shuffle)
    one_hot = np.eye(5)[labels]
    w = weights[:, None]
    expected_images = images * w[:, :, None, None] + images[pairs] * (1 - w[:, :, None, None])
    np.testing.assert_allclose(mixed_images.numpy(), expected_images, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(mixed_labels.numpy(), one_hot * w + one_hot[pairs] * (1 - w), 1e-6)
    np.testing.assert_allclose(mixed_labels.numpy().sum(axis=1), 1.0, rtol=1e-6)


def test_soft_target_loss_and_label_smoothing_match_numpy():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(4, 5)).astype(np.float32)
    targets = rng.dirichlet(np.ones(5), size=4).astype(np.float32)  # e.g. mixed one-hots
    log_softmax = logits - scipy.special.logsumexp(logits, axis=1, keepdims=True)
    for smoothing in (0.0, 0.1):
        loss = losses.CrossEntropy(5, label_smoothing=smoothing).call(
            tf.constant(targets), tf.constant(logits)
        )
        smoothed = (1 - smoothing) * targets + smoothing / 5
        np.testing.assert_allclose(loss.numpy(), -(smoothed * log_softmax).sum(1), rtol=1e-5)
    correct = losses.top1_correct(tf.constant(targets), tf.constant(logits), 5).numpy()
    np.testing.assert_array_equal(correct, logits.argmax(1) == targets.argmax(1))


def test_rescaled_model_matches_the_formula():
    rng = np.random.default_rng(2)
    inputs = keras.Input(shape=(3,))
    model = keras.Model(inputs, keras.layers.Dense(4)(inputs))
    kernel, bias = (w.numpy() for w in model.weights)
    stats = {
        "mean_images": rng.normal(size=3).astype(np.float32),
        "mean_labels": rng.dirichlet(np.ones(4)).astype(np.float32),
        "mean_theta": 0.8,
    }
    x = rng.normal(size=(5, 3)).astype(np.float32)
    out = mixup.rescaled_model(model, stats)(x).numpy()
    theta = 0.8
    logits = (theta * x + (1 - theta) * stats["mean_images"]) @ kernel + bias
    np.testing.assert_allclose(
        out, logits / theta + (1 - 1 / theta) * stats["mean_labels"], rtol=1e-5, atol=1e-5
    )


def test_statistics_of_one_epoch_are_the_set_means(npz):
    config = training.complete_config(tiny_training.tiny_config(npz, mixup_alpha=0.3))
    common = trainer.data_arguments(config, tiny_training.BATCH)
    steps = tiny_training.NUM_TRAIN // tiny_training.BATCH  # one epoch, each example once
    stats = mixup.rescaling_statistics(
        config, steps=steps, num_classes=tiny_training.NUM_CLASSES, common=common
    )
    arrays = np.load(npz)
    np.testing.assert_allclose(stats["mean_images"], arrays["x_train"].mean(0), atol=1e-5)
    frequencies = np.bincount(arrays["y_train"], minlength=4) / len(arrays["y_train"])
    np.testing.assert_allclose(stats["mean_labels"], frequencies, atol=1e-6)
    assert stats["mean_theta"] == pytest.approx(1 - scipy.special.betainc(1.3, 0.3, 0.5))


def test_member_reports_rescaled_test_metrics_computed_from_its_saved_statistics(npz, tmp_path):
    config = tiny_training.tiny_config(npz, mixup_alpha=0.3, use_random_shuffling=True)
    results = training.train_and_evaluate(config, str(tmp_path))
    stats = member_dir.read_npz(str(tmp_path / member_dir.MIXUP_RESCALING_STATS_FILE))
    assert sorted(stats) == ["mean_images", "mean_labels", "mean_theta"]
    arrays = np.load(npz)
    np.testing.assert_allclose(stats["mean_images"], arrays["x_train"].mean(0), atol=1e-5)
    # The rescaled predictions in numpy from the saved model and statistics.
    model = keras.saving.load_model(tmp_path / "model.keras")
    theta, x, y = float(stats["mean_theta"]), arrays["x_test"], arrays["y_test"]
    logits = model.predict(theta * x + (1 - theta) * stats["mean_images"], verbose=0)
    logits = logits / theta + (1 - 1 / theta) * stats["mean_labels"]
    log_probs = logits - scipy.special.logsumexp(logits, axis=1, keepdims=True)
    nll = -log_probs[np.arange(len(y)), y].mean()
    assert results["test/nll+rescaling"] == pytest.approx(nll, rel=1e-5)
    assert results["test/accuracy+rescaling"] == pytest.approx((logits.argmax(1) == y).mean())
    with open(tmp_path / "metrics.json") as f:
        saved = json.load(f)
    assert {k for k in saved if k.endswith("+rescaling")} == {
        f"test/{m}+rescaling" for m in mixup.RESCALED_METRICS
    }
    plain = training.train_and_evaluate(tiny_training.tiny_config(npz), str(tmp_path / "plain"))
    assert not any(k.endswith("+rescaling") for k in plain)
    assert not os.path.exists(tmp_path / "plain" / member_dir.MIXUP_RESCALING_STATS_FILE)


@pytest.mark.parametrize(
    "field, value, allowed",
    [
        ("mixup_alpha", -0.1, "a finite float >= 0"),
        ("mixup_alpha", float("nan"), "a finite float >= 0"),
        ("same_mix_weight_per_batch", 1, "True or False"),
        ("use_random_shuffling", "yes", "True or False"),
        ("use_truncated_beta", None, "True or False"),
    ],
)
def test_bad_mixup_values_are_refused(field, value, allowed):
    with pytest.raises(ValueError, match=f"config.{field}. Received: {field}=") as error:
        training.validate_config(training.complete_config({field: value}))
    # A value of the field's type reaches the range check, which says what is allowed.
    assert allowed in str(error.value) or "Wrong type" in str(error.value)


@pytest.mark.parametrize(
    "overrides",
    [
        {"head": "sngp"},
        {"head_class": "MCSigmoidDenseFA", "multilabel": True},
        {"ensemble_size": 2},
    ],
)
def test_mixup_needs_a_softmax_head_it_was_published_with(overrides):
    config = training.default_config()
    config.update({"head": "heteroscedastic", "mixup_alpha": 0.2, **overrides})
    with pytest.raises(ValueError, match="config.mixup_alpha.*Received: mixup_alpha=0.2"):
        training.validate_config(config)


def test_damaged_statistics_file_is_named(tmp_path):
    path = tmp_path / member_dir.MIXUP_RESCALING_STATS_FILE
    path.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="mixup rescaling statistics .*mixup_rescaling_stats"):
        mixup.read_statistics(str(path))
    member_dir.write_npz(str(path), {"mean_labels": np.ones(3)})
    with pytest.raises(ValueError, match="lacks the mixup rescaling statistics"):
        mixup.read_statistics(str(path))


def test_mixup_member_trains_on_two_replicas(npz, tmp_path):
    # The global batch is mixed, then split by the strategy (as the script's TPU runs do).
    code = f"""
        import json, tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        import tiny_training
        from het_ensembles import training
        config = tiny_training.tiny_config({npz!r}, mixup_alpha=0.3)
        strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
        results = training.train_and_evaluate(config, "member", strategy=strategy)
        print(json.dumps(results))
    """
    done = console.python(code, tmp_path, env={"PYTHONPATH": REPO_TESTS})
    results = console.last_json(done.stdout)
    assert results["train/devices"] == "2 CPU replicas"
    assert results["train/steps"] == 2 * tiny_training.NUM_TRAIN // (2 * tiny_training.BATCH)
    assert np.isfinite(results["test/nll+rescaling"])
    stats = member_dir.read_npz(str(tmp_path / "member" / member_dir.MIXUP_RESCALING_STATS_FILE))
    np.testing.assert_allclose(stats["mean_images"], np.load(npz)["x_train"].mean(0), atol=1e-5)
