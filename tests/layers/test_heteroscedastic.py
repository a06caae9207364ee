"""Tests of the heteroscedastic layers: Keras round trip, edward2 parity, moments, errors."""

import math
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from het_ensembles import layers, mc

D = 6
VARIANTS = {
    "fa": (layers.MCSoftmaxDenseFA, {"num_classes": 5, "num_factors": 2}),
    "pe": (
        layers.MCSoftmaxDenseFA,
        {"num_classes": 5, "num_factors": 2, "parameter_efficient": True},
    ),
    "diag": (layers.MCSoftmaxDense, {"num_classes": 5}),
    "sigmoid_fa": (layers.MCSigmoidDenseFA, {"num_outputs": 5, "num_factors": 2}),
    "sigmoid_diag": (layers.MCSigmoidDenseFA, {"num_outputs": 5}),
}
# Dense sublayers (kernel + bias each) per variant: FA/sigmoid_fa 3, PE 4, diagonal 2.
NUM_WEIGHTS = {"fa": 6, "pe": 8, "diag": 4, "sigmoid_fa": 6, "sigmoid_diag": 4}


def _inputs(batch=4, scale=1.0, seed=0):
    return tf.constant(scale * np.random.RandomState(seed).randn(batch, D), tf.float32)


def _make(variant, **kwargs):
    cls, base = VARIANTS[variant]
    return cls(**base, **kwargs)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_config_round_trip_and_weight_count(variant):
    layer = _make(
        variant,
        temperature=1.7,
        train_mc_samples=30,
        test_mc_samples=40,
        seed=3,
        kernel_regularizer="l2",
        mc_chunk_size=8,
    )
    layer(_inputs())
    config = layer.get_config()
    clone = type(layer).from_config(config)
    assert clone.get_config() == config
    assert len(layer.get_weights()) == NUM_WEIGHTS[variant]
    assert config["temperature"] == 1.7 and config["test_mc_samples"] == 40
    assert len(layer.losses) == NUM_WEIGHTS[variant] // 2  # one L2 term per Dense kernel


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_saved_model_reloads_with_identical_outputs(variant, tmp_path):
    model = keras.Sequential(
        [keras.Input((D,)), _make(variant, logits_only=True, test_mc_samples=50, seed=5)]
    )
    x = _inputs()
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_array_equal(model.predict(x, verbose=0), loaded.predict(x, verbose=0))
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_functional_model_trains_with_fit():
    x = np.random.RandomState(0).randn(64, D).astype("float32")
    y = (x[:, 0] > 0).astype("int32") + 2 * (x[:, 1] > 0)
    inputs = keras.Input((D,))
    logits = layers.MCSoftmaxDenseFA(
        4, 2, logits_only=True, train_mc_samples=20, test_mc_samples=20, seed=0
    )(inputs)
    model = keras.Model(inputs, logits)
    model.compile(
        keras.optimizers.Adam(0.05), keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    history = model.fit(x, y, epochs=15, batch_size=16, verbose=0)
    losses = history.history["loss"]
    assert np.all(np.isfinite(losses)) and losses[-1] < 0.6 * losses[0]


def test_training_noise_differs_per_step_and_is_reproducible():
    x = _inputs()

    def two_steps():
        layer = layers.MCSoftmaxDenseFA(5, 2, train_mc_samples=10, seed=9)
        layer.build(x.shape)
        layer.set_weights([np.full(w.shape, 0.3, "float32") for w in layer.get_weights()])
        return [layer(x, training=True)[0].numpy() for _ in range(2)]

    first, second = two_steps()
    assert np.abs(first - second).max() > 1e-3
    again = two_steps()
    np.testing.assert_array_equal(first, again[0])
    np.testing.assert_array_equal(second, again[1])


def _edward2():
    sys.modules.setdefault("edward2.numpy", None)  # its NumPy backend breaks with recent SciPy
    import edward2

    return edward2


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_parity_with_edward2(variant):
    """Same weights as edward2 0.0.2 -> same predictive within MC error (S = 20000 each)."""
    ed = _edward2()
    cls, base = VARIANTS[variant]
    kwargs = dict(base, temperature=1.3, test_mc_samples=20000, compute_pred_variance=True)
    theirs = getattr(ed.layers, cls.__name__)(**kwargs)
    x = _inputs(batch=4)
    tf.random.set_seed(0)
    _, _, p_theirs, var_theirs = theirs(x, training=False, seed=1)
    ours = cls(**kwargs, seed=2)
    ours.build(x.shape)
    ours.set_weights(theirs.get_weights())
    _, _, p_ours, var_ours = ours(x, training=False)
    diff = np.abs(p_ours.numpy() - p_theirs.numpy())
    stderr = np.sqrt((var_ours.numpy() + var_theirs.numpy()) / 20000)
    assert diff.max() < 0.01, diff.max()
    assert np.all(diff <= 5 * stderr + 1e-6), (diff / stderr).max()


@pytest.mark.parametrize("variant", ["fa", "pe", "sigmoid_diag"])
def test_noise_samples_match_tfp_moments(variant):
    layer = _make(variant, seed=0)
    x = _inputs(batch=2)
    layer(x)
    num_samples = 100_000
    loc, diag_scale, factors = layer.noise_params(x)
    u = mc.sample_latents(
        loc, diag_scale, factors, tf.constant([1, 2]), num_samples=num_samples
    ).numpy()  # [B, S, K]
    dist = layer.noise_distribution(x)
    mean, cov = dist.mean().numpy(), dist.covariance().numpy()
    sample_mean = u.mean(axis=1)
    centred = u - sample_mean[:, None]
    sample_cov = np.einsum("bsi,bsj->bij", centred, centred) / (num_samples - 1)
    var = np.diagonal(cov, axis1=1, axis2=2)
    # Standard errors: of the mean sqrt(S_ii / n); of a covariance sqrt((S_ii S_jj + S_ij^2) / n).
    assert np.all(np.abs(sample_mean - mean) < 5 * np.sqrt(var / num_samples))
    cov_se = np.sqrt((var[:, :, None] * var[:, None, :] + cov**2) / num_samples)
    assert np.all(np.abs(sample_cov - cov) < 5 * cov_se)


def _softplus(z):
    return np.logaddexp(0.0, z)


@pytest.mark.parametrize("variant", ["fa", "pe", "diag"])
def test_covariance_is_diag_plus_low_rank_of_sublayer_outputs(variant):
    layer = _make(variant)
    x = _inputs(batch=3)
    layer(x)
    xn = x.numpy()
    dense = lambda sub: xn @ sub.kernel.numpy() + sub.bias.numpy()
    d = _softplus(dense(layer.diag_layer)) + layers.MIN_SCALE
    want = np.stack([np.diag(di**2) for di in d])
    if variant == "fa":
        v = dense(layer.scale_layer).reshape(3, 5, 2)
        want += v @ v.transpose(0, 2, 1)
    elif variant == "pe":
        shared = layer.scale_homoscedastic_layer.kernel.numpy().T  # [K, R]
        v = dense(layer.scale_heteroscedastic_layer)[:, :, None] * shared[None]
        want += v @ v.transpose(0, 2, 1)
    np.testing.assert_allclose(layer.covariance(x).numpy(), want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        layer.noise_distribution(x).covariance().numpy(), want, rtol=1e-4, atol=1e-5
    )


def test_noise_distribution_is_the_covariance_parameterisation():
    import tensorflow_probability as tfp

    dist = _make("fa").noise_distribution(_inputs())
    assert isinstance(dist, tfp.distributions.MultivariateNormalDiagPlusLowRankCovariance)


def test_learned_temperature_moves_toward_generating_value():
    """Labels drawn from the model with tau* = 2.5; only tau is trained, starting at 1."""
    true_tau, n = 2.5, 4000
    gen = layers.MCSoftmaxDenseFA(4, 1, seed=0)
    x = tf.constant(np.random.RandomState(1).randn(n, D), tf.float32)
    gen.build(x.shape)
    gen.set_weights([3 * w for w in gen.get_weights()])
    loc, diag_scale, factors = gen.noise_params(x)
    u = mc.sample_latents(loc, diag_scale, factors, tf.constant([3, 4]), num_samples=1)[:, 0]
    y = tf.random.stateless_categorical(u / true_tau, 1, seed=[5, 6])[:, 0]

    layer = layers.MCSoftmaxDenseFA(
        4, 1, learn_temperature=True, logits_only=True, train_mc_samples=64, seed=1
    )
    layer.build(x.shape)
    # The layer's own weight (raw temperature) comes first, then the edward2-ordered sublayers.
    layer.set_weights([layer.raw_temperature.numpy()] + gen.get_weights())
    for sub in (layer.loc_layer, layer.diag_layer, layer.scale_layer):
        sub.trainable = False
    assert layer.trainable_weights == [layer.raw_temperature]
    inputs = keras.Input((D,))
    model = keras.Model(inputs, layer(inputs))
    model.compile(
        keras.optimizers.Adam(0.05), keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    model.fit(x, y, epochs=6, batch_size=200, verbose=0)
    learned = float(layer.temperature)
    assert abs(learned - true_tau) < 0.5 * abs(1.0 - true_tau), learned


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_stable_for_huge_inputs(variant):
    layer = _make(variant, test_mc_samples=200, seed=0)
    logits, log_probs, probs, _ = layer(_inputs(scale=1e4))
    for t in (logits, log_probs, probs):
        assert np.all(np.isfinite(t.numpy()))
    if VARIANTS[variant][0] is not layers.MCSigmoidDenseFA:
        np.testing.assert_allclose(probs.numpy().sum(-1), 1.0, atol=1e-5)


def test_two_class_diagonal_softmax_uses_one_sigmoid_output_like_edward2():
    logits, _log_probs, probs, _ = layers.MCSoftmaxDense(2, seed=0)(_inputs())
    assert probs.shape == (4, 1)
    np.testing.assert_allclose(tf.sigmoid(logits).numpy(), probs.numpy(), rtol=1e-4)


def test_head_stays_float32_under_mixed_bfloat16():
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        inputs = keras.Input((D,))
        hidden = keras.layers.Dense(8)(inputs)
        layer = layers.MCSoftmaxDenseFA(5, 2, logits_only=True, train_mc_samples=10, seed=0)
        model = keras.Model(inputs, layer(hidden))
        assert hidden.dtype == "bfloat16"
        out = model(_inputs(), training=True)
        assert out.dtype == tf.float32 and np.all(np.isfinite(out.numpy()))
    finally:
        keras.mixed_precision.set_global_policy("float32")


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: layers.MCSoftmaxDenseFA(1, 0), "num_classes"),
        (lambda: layers.MCSoftmaxDense(1), "num_classes"),
        (lambda: layers.MCSigmoidDenseFA(0), "num_outputs"),
        (lambda: layers.MCSoftmaxDenseFA(5, -1), "num_factors"),
        (lambda: layers.MCSoftmaxDenseFA(5, 6), "num_factors"),
        (lambda: layers.MCSoftmaxDenseFA(5, 2, temperature=0.0), "temperature"),
        (lambda: layers.MCSoftmaxDenseFA(5, 2, temperature=-1.0), "temperature"),
        (lambda: layers.MCSoftmaxDenseFA(5, 2, temperature="hot"), "temperature"),
        (lambda: layers.MCSoftmaxDenseFA(5, 2, train_mc_samples=0), "train_mc_samples"),
        (lambda: layers.MCSoftmaxDenseFA(5, 2, test_mc_samples=0), "test_mc_samples"),
        (lambda: layers.MCSoftmaxDenseFA(5, 2, mc_chunk_size=0), "mc_chunk_size"),
        (lambda: layers.MCSoftmaxDenseFA(5, 2, mc_memory_budget=-1), "mc_memory_budget"),
        (lambda: layers.MCSoftmaxDenseFA(5, 2, mc_memory_budget="1G"), "mc_memory_budget"),
        (lambda: layers.MCSoftmaxDenseFA(5, 0, parameter_efficient=True), "num_factors"),
        (lambda: layers.MCSoftmaxDenseFA(5, 2)(tf.zeros([2, 3, 4])), "rank 2"),
        (lambda: layers.MCSoftmaxDenseFA(5, 2)(tf.zeros([2], tf.float32)), "rank 2"),
        (lambda: layers.MCSoftmaxDenseFA(5, 2)(tf.zeros([2, 3], tf.int32)), "floating-point"),
    ],
)
def test_bad_arguments_raise_value_error_naming_them(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_edward2_migration_snippet_uses_same_arguments():
    # The migration guide's example: constructor keywords of edward2 work unchanged.
    layer = layers.MCSoftmaxDenseFA(
        num_classes=10,
        num_factors=3,
        temperature=1.5,
        parameter_efficient=False,
        train_mc_samples=100,
        test_mc_samples=100,
        compute_pred_variance=False,
        share_samples_across_batch=True,
        logits_only=True,
        eps=1e-7,
        dtype=None,
        kernel_regularizer=None,
        bias_regularizer=None,
        name="het_head",
    )
    out = layer(_inputs())
    assert out.shape == (4, 10)
    assert math.isclose(float(tf.reduce_sum(tf.exp(out[0]))), 1.0, rel_tol=1e-5)


def test_inference_does_not_depend_on_batch_size_or_position():
    layer = layers.MCSoftmaxDenseFA(5, 2, test_mc_samples=30, seed=4)
    x = _inputs(batch=6)
    full = layer(x)[2].numpy()
    np.testing.assert_allclose(layer(x[3:5])[2].numpy(), full[3:5], rtol=1e-6)
    np.testing.assert_allclose(layer(x[::-1])[2].numpy(), full[::-1], rtol=1e-6)


@pytest.mark.parametrize(
    "make",
    [
        lambda: layers.MCSoftmaxDenseFA(2, 2, train_mc_samples=1, test_mc_samples=1, seed=1),
        lambda: layers.MCSoftmaxDenseFA(2, 0, train_mc_samples=2, seed=1),
        lambda: layers.MCSigmoidDenseFA(3, 3, parameter_efficient=True, train_mc_samples=1),
        lambda: layers.MCSoftmaxDenseFA(
            5, 5, share_samples_across_batch=True, train_mc_samples=3, mc_chunk_size=2
        ),
    ],
    ids=["K=2,R=K,S=1", "R=0", "sigmoid-PE,R=K", "shared,odd-chunks"],
)
def test_edge_shapes_give_finite_outputs_and_gradients(make):
    layer = make()
    x = _inputs(batch=1)
    with tf.GradientTape() as tape:
        logits = layer(x, training=True)[0]
        loss = tf.reduce_sum(logits)
    grads = tape.gradient(loss, layer.trainable_weights)
    assert np.all(np.isfinite(logits.numpy()))
    assert all(np.all(np.isfinite(g.numpy())) for g in grads)


def test_fit_with_static_batch_of_one():
    """Regression: a static batch size must not turn into an unknown one inside the MC loop."""
    model = keras.Sequential(
        [
            keras.Input((D,), batch_size=1),
            layers.MCSoftmaxDenseFA(3, 1, logits_only=True, train_mc_samples=2, seed=0),
        ]
    )
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x = np.random.RandomState(0).randn(4, D).astype("float32")
    history = model.fit(x, np.array([0, 1, 2, 0]), batch_size=1, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_initial_weights_follow_the_layer_seed(variant):
    def initial(seed):
        layer = _make(variant, seed=seed)
        layer.build((None, D))
        return layer.get_weights()

    first, again, other = initial(7), initial(7), initial(8)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b) for a, b in zip(first, other))
