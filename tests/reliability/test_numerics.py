"""Numerics at the edges: mixed precision and degenerate sizes stay finite and correct.

- bfloat16 and float16 mixed precision: the heteroscedastic ResNet-50 (one eager training step
  with gradients) and the small models (a short `fit`) keep a finite loss, finite gradients
  and weights, float32 logits from a float32 head, and normalised log-probabilities.
  (Not claimed: float16 *inference* of a ResNet-50 whose batch-norm moving statistics are
  still at their initial values -- it can overflow float16; see the ResNet test.)
- K=2, R=0, R=K, S=1 and batch size 1 work through the layers (values checked against numpy:
  normalised log-probabilities, diagonal / full-rank covariance) and a short fit.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from het_ensembles import layers, models, training
from het_ensembles.training import trainer

POLICIES = ["mixed_bfloat16", "mixed_float16"]


def _logsumexp(a):
    m = a.max(axis=-1, keepdims=True)
    return (m + np.log(np.sum(np.exp(a - m), axis=-1, keepdims=True)))[..., 0]


def _assert_normalised(logits, atol=1e-4):
    """Softmax-head logits are log-probabilities: logsumexp over classes is 0."""
    logits = np.asarray(logits, np.float64)
    assert np.isfinite(logits).all()
    np.testing.assert_allclose(_logsumexp(logits), 0.0, atol=atol)


@pytest.mark.parametrize("policy", POLICIES)
def test_heteroscedastic_resnet50_step_under_mixed_precision(policy):
    with trainer.dtype_policy(policy):
        model = models.build_model(
            "resnet50",
            input_shape=(32, 32, 3),
            num_classes=10,
            head={"type": "MCSoftmaxDenseFA", "num_factors": 3, "train_mc_samples": 4},
            l2=1e-4,
            seed=0,
        )
    assert model.get_layer("head").dtype_policy.name == "float32"
    assert any(layer.dtype_policy.name == policy for layer in model.layers)
    rng = np.random.default_rng(0)
    # Normalised images, as the data pipeline feeds them.
    x = tf.constant(rng.normal(size=(2, 32, 32, 3)), tf.float32)
    y = tf.constant([1, 7])
    # Gradients of the unscaled loss: float16 training would add dynamic loss scaling
    # (keras.optimizers.LossScaleOptimizer), which skips steps whose scaled gradients overflow.
    optimizer = keras.optimizers.SGD(0.1, momentum=0.9, nesterov=True)
    with tf.GradientTape() as tape:
        logits = model(x, training=True)
        nll = tf.nn.sparse_softmax_cross_entropy_with_logits(y, logits)
        loss = tf.reduce_mean(nll) + tf.add_n(model.losses)
    assert logits.dtype == tf.float32
    _assert_normalised(logits)
    grads = tape.gradient(loss, model.trainable_variables)
    assert all(np.isfinite(g.numpy()).all() for g in grads)
    optimizer.apply(grads, model.trainable_variables)
    assert all(np.isfinite(keras.ops.convert_to_numpy(w)).all() for w in model.weights)
    if policy == "mixed_bfloat16":  # bfloat16 has float32's range
        _assert_normalised(model(x, training=False))
    # float16 inference right after initialisation is not checked: batch norm then applies its
    # initial moving statistics (mean 0, variance 1), so nothing normalises the activations and
    # 50 layers of residual sums can exceed float16's range (65504) -- seen as NaN logits. It
    # is a property of float16, not of the head; the trainer offers bfloat16 (use_bfloat16).


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize(
    "architecture, input_shape, kwargs",
    [
        ("mlp", (6,), {"hidden_units": (16,)}),
        ("small_cnn", (8, 8, 1), {"filters": (4, 8), "hidden_units": 16}),
    ],
)
@pytest.mark.parametrize("head_class", ["MCSoftmaxDenseFA", "MCSigmoidDenseFA"])
def test_small_models_fit_under_mixed_precision(
    policy, architecture, input_shape, kwargs, head_class
):
    num_classes = 5
    multilabel = head_class == "MCSigmoidDenseFA"
    config = training.default_config()
    config.head = "heteroscedastic"
    config.head_class = head_class
    config.multilabel = multilabel
    config.num_factors = 2
    config.train_mc_samples = 8
    config.test_mc_samples = 8
    config.base_learning_rate = 0.5
    with trainer.dtype_policy(policy):
        model = models.build_model(
            architecture,
            input_shape=input_shape,
            num_classes=num_classes,
            head=training.head_kwargs(config),
            l2=1e-4,
            seed=1,
            **kwargs,
        )
    training.compile_model(
        model, config, num_classes=num_classes, steps_per_epoch=4, global_batch_size=4
    )
    rng = np.random.default_rng(1)
    x = (rng.normal(size=(16, *input_shape)) * 5).astype(np.float32)
    y = rng.integers(0, num_classes, 16)
    history = model.fit(x, y, batch_size=4, epochs=2, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    assert all(np.isfinite(keras.ops.convert_to_numpy(w)).all() for w in model.weights)
    logits = np.asarray(model(x[:4], training=False))
    assert logits.dtype == np.float32
    if multilabel:  # inverse sigmoid of probabilities in (0, 1): finite
        assert np.isfinite(logits).all()
    else:
        _assert_normalised(logits)


@pytest.mark.parametrize(
    "num_classes, head_class, num_factors",
    [(3, "MCSoftmaxDenseFA", 3), (2, "MCSoftmaxDense", 0)],  # R = K; K = 2 diagonal
)
def test_trainer_bfloat16_heteroscedastic_member(tmp_path, num_classes, head_class, num_factors):
    rng = np.random.default_rng(2)
    arrays = {
        "x_train": rng.normal(size=(32, 6)).astype(np.float32),
        "y_train": np.arange(32) % num_classes,
        "x_test": rng.normal(size=(7, 6)).astype(np.float32),
        "y_test": np.arange(7) % num_classes,
    }
    path = tmp_path / "d.npz"
    np.savez(path, **arrays)
    config = training.default_config()
    config.update(
        {
            "dataset": f"npz:{path}",
            "model": "mlp",
            "model_kwargs": {"hidden_units": (8,)},
            "head": "heteroscedastic",
            "head_class": head_class,
            "num_factors": num_factors,
            "train_mc_samples": 1,  # S = 1
            "test_mc_samples": 1,
            "per_core_batch_size": 1,  # batch size 1
            "steps_per_epoch": 4,
            "train_epochs": 1,
            "use_bfloat16": True,
        }
    )
    out = tmp_path / "member"
    results = training.train_and_evaluate(config, str(out))
    assert results["test/num_examples"] == 7
    assert results["train/steps"] == 4
    assert np.isfinite([results[k] for k in ("train/loss", "test/nll", "test/ece")]).all()
    # The member's logits are [B, K] log-probabilities, also for K = 2 with one sigmoid logit.
    model = keras.saving.load_model(str(out / "model.keras"))
    logits = model.predict(arrays["x_test"], batch_size=1, verbose=0)
    assert logits.shape == (7, num_classes)
    _assert_normalised(logits)
    nll = -np.mean(logits[np.arange(7), arrays["y_test"]])
    assert results["test/nll"] == pytest.approx(nll, rel=1e-4)


# ------------------------------------------------------------------------------------------------
# Degenerate sizes through the layers.

EDGE_CASES = [
    # (layer, K, R, S, batch, extra kwargs)
    ("MCSoftmaxDenseFA", 2, 1, 16, 4, {}),  # K = 2
    ("MCSoftmaxDenseFA", 4, 0, 16, 4, {}),  # R = 0: diagonal
    ("MCSoftmaxDenseFA", 3, 3, 16, 4, {}),  # R = K
    ("MCSoftmaxDenseFA", 3, 3, 16, 4, {"parameter_efficient": True}),  # PE with R = K
    ("MCSoftmaxDenseFA", 4, 2, 1, 4, {}),  # S = 1
    ("MCSoftmaxDenseFA", 4, 2, 16, 1, {}),  # batch 1
    ("MCSoftmaxDenseFA", 4, 2, 1, 1, {"share_samples_across_batch": True}),  # S = 1, batch 1
    ("MCSoftmaxDense", 2, 0, 1, 1, {}),  # diagonal, K = 2, S = 1, batch 1
    ("MCSigmoidDenseFA", 2, 2, 1, 1, {}),  # sigmoid, R = K = 2, S = 1, batch 1
    ("MCSigmoidDenseFA", 1, 0, 16, 3, {}),  # one sigmoid output, R = 0
]


def _layer(name, k, r, s, kwargs):
    factors = {} if name == "MCSoftmaxDense" else {"num_factors": r}
    return getattr(layers, name)(
        k, **factors, train_mc_samples=s, test_mc_samples=s, logits_only=True, seed=3, **kwargs
    )


EDGE_IDS = [
    f"{c[0]}-K{c[1]}-R{c[2]}-S{c[3]}-B{c[4]}{'-' + '-'.join(c[5]) if c[5] else ''}"
    for c in EDGE_CASES
]


@pytest.mark.parametrize("name, k, r, s, batch, kwargs", EDGE_CASES, ids=EDGE_IDS)
def test_edge_sizes_through_the_layer(name, k, r, s, batch, kwargs):
    rng = np.random.default_rng(4)
    x = rng.normal(size=(batch, 5)).astype(np.float32)
    layer = _layer(name, k, r, s, kwargs)
    one_sigmoid_logit = name == "MCSigmoidDenseFA" or (name == "MCSoftmaxDense" and k == 2)
    for training_mode in (False, True):
        logits = np.asarray(layer(x, training=training_mode))
        # edward2's MCSoftmaxDense returns one sigmoid logit for K = 2.
        assert logits.shape == (batch, 1 if name == "MCSoftmaxDense" and k == 2 else k)
        if one_sigmoid_logit:  # inverse sigmoid of a probability in (0, 1)
            assert np.isfinite(logits).all()
        else:
            _assert_normalised(logits)
    # Sigma(x) = diag(d^2) + V V^T: symmetric, positive definite (d >= 1e-3), diagonal exactly
    # when R = 0, with correlations when V is full rank.
    cov = np.asarray(layer.covariance(x), np.float64)
    size = layer.num_outputs
    assert cov.shape == (batch, size, size)
    np.testing.assert_allclose(cov, np.swapaxes(cov, 1, 2), atol=1e-6)
    assert (np.linalg.eigvalsh(cov) > 0).all()
    off_diagonal = cov * (1 - np.eye(size))
    if r == 0:
        assert (off_diagonal == 0).all()
    if r == k and k > 1:
        assert np.abs(off_diagonal).max() > 0


@pytest.mark.parametrize("name, k, r, s, batch, kwargs", EDGE_CASES, ids=EDGE_IDS)
def test_edge_sizes_in_a_short_fit(name, k, r, s, batch, kwargs):
    rng = np.random.default_rng(5)
    features = 5
    model = keras.Sequential(
        [keras.Input((features,)), keras.layers.Dense(8), _layer(name, k, r, s, kwargs)]
    )
    if name == "MCSigmoidDenseFA" or (name == "MCSoftmaxDense" and k == 2):
        loss = keras.losses.BinaryCrossentropy(from_logits=True)
        y = rng.integers(0, 2, (8, model.output_shape[-1])).astype(np.float32)
    else:
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        y = rng.integers(0, k, 8)
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss=loss)
    before = [w.copy() for w in model.get_weights()]
    x = rng.normal(size=(8, features)).astype(np.float32)
    history = model.fit(x, y, batch_size=batch, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    after = model.get_weights()
    assert all(np.isfinite(w).all() for w in after)
    assert any(not np.allclose(a, b) for a, b in zip(before, after, strict=True))
