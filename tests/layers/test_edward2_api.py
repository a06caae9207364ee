"""edward2's whole TF heteroscedastic API here: parity, call convention, saving, errors.

Parity: the same weights as an edward2 0.0.2 layer give the same predictive within 5 Monte Carlo
standard errors (both sides sampled, S = 20000 each); where edward2 0.0.2 lacks the class or
argument (edward2 main only), the reference is edward2 0.0.2's math on the same weights
(segmentation = its FA head on every pixel; tune_temperature = its head at the temperature the
sigmoid parametrisation gives) or a closed form.
"""

import math
import sys
import types

import keras
import numpy as np
import pytest
import tensorflow as tf
from scipy import special, stats

from het_ensembles import layers

D = 6
S = 20000


@pytest.fixture(autouse=True)
def _seeded():
    # edward2's layers draw their initial weights from the global RNG: fix it, so every run
    # compares the same weights.
    keras.utils.set_random_seed(0)


def _edward2():
    sys.modules.setdefault("edward2.numpy", None)  # its NumPy backend breaks with recent SciPy
    import edward2

    return edward2


def _tfd():
    import tensorflow_probability as tfp

    return tfp.distributions


def _inputs(batch=4, seed=0, shape=(D,)):
    return tf.constant(np.random.RandomState(seed).randn(batch, *shape), tf.float32)


def _assert_within_mc_error(p_ours, p_theirs, var_ours, var_theirs, num_samples=S):
    diff = np.abs(np.asarray(p_ours) - np.asarray(p_theirs))
    stderr = np.sqrt((np.asarray(var_ours) + np.asarray(var_theirs)) / num_samples)
    assert np.all(diff <= 5 * stderr + 1e-6), (diff / (stderr + 1e-12)).max()


def _scaled(weights, factor=1.5):
    # Larger weights than the initialisation make the noise matter (predictive far from softmax).
    return [factor * w for w in weights]


# --- Parity with edward2 0.0.2 -------------------------------------------------------------


@pytest.mark.parametrize("noise", ["Normal", "Logistic", "Gumbel"])
@pytest.mark.parametrize("num_classes", [2, 5])
def test_mc_softmax_dense_logit_noise_parity(noise, num_classes):
    ed = _edward2()
    kwargs = {"temperature": 1.3, "test_mc_samples": S, "compute_pred_variance": True}
    theirs = ed.layers.MCSoftmaxDense(num_classes, getattr(_tfd(), noise), **kwargs)
    x = _inputs()
    tf.random.set_seed(0)
    theirs(x, training=False, seed=1)
    theirs_weights = _scaled(theirs.get_weights())
    for w, v in zip(theirs.weights, theirs_weights):
        w.assign(v)
    _, _, p_theirs, var_theirs = theirs(x, training=False, seed=1)
    # The tfp class and its name are both accepted, positionally as in edward2.
    ours = layers.MCSoftmaxDense(num_classes, getattr(_tfd(), noise), **kwargs, seed=2)
    ours.build(x.shape)
    ours.set_weights(theirs_weights)
    _, _, p_ours, var_ours = ours(x, False)
    _assert_within_mc_error(p_ours, p_theirs, var_ours, var_theirs)
    assert ours.get_config()["logit_noise"] == noise


@pytest.mark.parametrize("parameter_efficient", [False, True])
def test_multi_head_parity(parameter_efficient):
    ed = _edward2()
    kwargs = {
        "temperature": 0.9,
        "parameter_efficient": parameter_efficient,
        "test_mc_samples": S,
        "compute_pred_variance": True,
    }
    theirs = ed.layers.MultiHeadMCSoftmaxDenseFA(4, 2, 3, **kwargs)
    x = _inputs()
    theirs(x, training=False, seed=1)
    weights = _scaled(theirs.get_weights())
    for w, v in zip(theirs.weights, weights):
        w.assign(v)
    _, _, p_theirs, var_theirs = theirs(x, training=False, seed=1)
    ours = layers.MultiHeadMCSoftmaxDenseFA(4, 2, 3, **kwargs, seed=3)
    ours.build(x.shape)
    ours.set_weights(weights)
    _, _, p_ours, var_ours = ours(x, training=False)
    assert p_ours.shape == p_theirs.shape == (4, 3, 4)
    np.testing.assert_allclose(p_ours.numpy().sum(-1), 1.0, atol=1e-5)
    _assert_within_mc_error(p_ours, p_theirs, var_ours, var_theirs)


def test_custom_layers_parity():
    ed = _edward2()
    kwargs = {"temperature": 1.2, "test_mc_samples": S, "compute_pred_variance": True}

    def sublayers():
        return {
            "scale_layer": keras.layers.Dense(5 * 2),
            "loc_layer": keras.Sequential([keras.layers.Dense(8, "tanh"), keras.layers.Dense(5)]),
            "diag_layer": keras.layers.Dense(5, activation="softplus"),
        }

    theirs = ed.layers.MCSoftmaxDenseFACustomLayers(5, 2, **sublayers(), **kwargs)
    x = _inputs()
    theirs(x, training=False, seed=1)
    weights = _scaled(theirs.get_weights())
    for w, v in zip(theirs.weights, weights):
        w.assign(v)
    _, _, p_theirs, var_theirs = theirs(x, training=False, seed=1)
    ours = layers.MCSoftmaxDenseFACustomLayers(5, 2, **sublayers(), **kwargs, seed=4)
    ours.build(x.shape)
    ours.set_weights(weights)
    _, _, p_ours, var_ours = ours(x, training=False)
    _assert_within_mc_error(p_ours, p_theirs, var_ours, var_theirs)


def test_segmentation_matches_edward2_fa_head_on_every_pixel():
    """edward2 main's segmentation head is its FA head applied per pixel with independent noise."""
    ed = _edward2()
    kwargs = {"temperature": 1.1, "test_mc_samples": S, "compute_pred_variance": True}
    images = _inputs(batch=2, shape=(3, 2, D))  # [B, H, W, C]
    pixels = tf.reshape(images, [-1, D])
    theirs = ed.layers.MCSoftmaxDenseFA(4, 2, **kwargs)
    theirs(pixels, training=False, seed=1)
    weights = _scaled(theirs.get_weights())
    for w, v in zip(theirs.weights, weights):
        w.assign(v)
    _, _, p_theirs, var_theirs = theirs(pixels, training=False, seed=1)
    ours = layers.MCSoftmaxDenseFASegmentation(4, 2, **kwargs, seed=5)
    ours.build(images.shape)
    ours.set_weights(weights)
    _, _, p_ours, var_ours = ours(images, training=False)
    assert p_ours.shape == (2, 3, 2, 4)
    _assert_within_mc_error(
        tf.reshape(p_ours, [-1, 4]), p_theirs, tf.reshape(var_ours, [-1, 4]), var_theirs
    )


@pytest.mark.parametrize("noise", ["Normal", "Logistic"])
def test_exact_sigmoid_dense_matches_edward2_and_closed_form(noise):
    ed = _edward2()
    theirs = ed.layers.ExactSigmoidDense(3, logit_noise=getattr(_tfd(), noise), min_scale=0.05)
    x = _inputs(batch=5)
    theirs(x)
    ours = layers.ExactSigmoidDense(3, logit_noise=noise, min_scale=0.05, seed=1)
    ours.build(x.shape)
    weights = _scaled(theirs.get_weights(), 3.0)
    ours.set_weights(weights)
    for w, v in zip(theirs.weights, weights):
        w.assign(v)
    ours_out, theirs_out = ours(x, training=True), theirs(x, training=True)
    for a, b in zip(ours_out, theirs_out):
        finite = np.isfinite(b.numpy())  # edward2's Normal logits overflow to inf in the tails
        np.testing.assert_allclose(a.numpy()[finite], b.numpy()[finite], rtol=1e-4, atol=1e-5)
    assert np.all(np.isfinite(ours_out[0].numpy()))
    # Closed form: P(mu + s * eps > 0) = F(mu / s), F the CDF of eps; numpy/scipy reference.
    xn = x.numpy()
    mu = xn @ weights[0] + weights[1]
    s = np.logaddexp(0, xn @ weights[2] + weights[3]) + 0.05
    z = mu / s
    if noise == "Normal":
        log_cdf, log_sf = special.log_ndtr(z), special.log_ndtr(-z)
    else:
        log_cdf, log_sf = -np.logaddexp(0, -z), -np.logaddexp(0, z)
    logits, log_probs, probs = ours(x)
    np.testing.assert_allclose(probs.numpy(), np.exp(log_cdf), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(log_probs.numpy(), log_cdf, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(logits.numpy(), log_cdf - log_sf, rtol=1e-4, atol=1e-4)


def test_exact_sigmoid_dense_matches_quadrature_and_is_finite_in_the_tails():
    """E over the latent noise of the indicator, by Gauss-Hermite quadrature of Phi."""
    layer = layers.ExactSigmoidDense(1, seed=0, min_scale=0.1)
    layer.build((None, 1))
    layer.set_weights([np.array([[2.0]]), np.array([0.3]), np.array([[0.5]]), np.array([0.1])])
    x = np.array([[0.7], [-40.0], [40.0]], "float32")
    logits, log_probs, probs = layer(x)
    mu, s = 2 * 0.7 + 0.3, np.logaddexp(0, 0.5 * 0.7 + 0.1) + 0.1
    nodes, w = np.polynomial.hermite_e.hermegauss(80)
    exact = float(np.sum(w * (mu + s * nodes > 0)) / math.sqrt(2 * math.pi))
    assert abs(float(probs[0, 0]) - exact) < 0.02  # quadrature of a step: coarse
    assert abs(float(probs[0, 0]) - stats.norm.cdf(mu / s)) < 1e-5
    assert np.all(np.isfinite(logits.numpy())) and np.all(np.isfinite(log_probs.numpy()))
    assert float(log_probs[1, 0]) < -100  # far tail kept in log space, not clipped


def _mc_members(ed_or_ours, seed=None):
    kw = {"test_mc_samples": S, "compute_pred_variance": True}
    extra = {} if seed is None else {"seed": seed}
    return [
        ed_or_ours.MCSoftmaxDenseFA(5, 2, temperature=1.2, **kw, **extra),
        ed_or_ours.MCSoftmaxDense(5, _tfd().Gumbel, **kw, **extra),
    ]


@pytest.mark.parametrize("averaging", ["ensemble_cross_ent", "gibbs_cross_ent"])
def test_ensemble_parity_multiclass(averaging):
    ed = _edward2()
    x = _inputs()
    theirs_members = _mc_members(ed.layers)
    theirs = ed.layers.EnsembleHeteroscedasticOutputs(5, theirs_members, (0.3, 0.7), averaging)
    theirs(x, training=False)
    weights = _scaled(theirs.get_weights())
    for w, v in zip(theirs.weights, weights):
        w.assign(v)
    tf.random.set_seed(0)
    _logits_t, _log_probs_t, probs_t = theirs(x, False)
    ours_members = _mc_members(layers, seed=7)
    ours = layers.EnsembleHeteroscedasticOutputs(5, ours_members, (0.3, 0.7), averaging)
    ours.build(x.shape)
    ours.set_weights(weights)
    logits_o, log_probs_o, probs_o = ours(x, False)
    # Standard error of the mixture: sum_i w_i^2 Var_i (members sampled independently).
    var = sum(w**2 * m(x)[3].numpy() for w, m in zip((0.3, 0.7), ours_members))
    _assert_within_mc_error(probs_o, probs_t, var, var)
    np.testing.assert_allclose(logits_o.numpy(), log_probs_o.numpy())  # inference: log p
    np.testing.assert_allclose(np.exp(log_probs_o.numpy()), probs_o.numpy(), rtol=1e-5)


@pytest.mark.parametrize("averaging", ["ensemble_cross_ent", "gibbs_cross_ent"])
@pytest.mark.parametrize("training", [False, True])
def test_ensemble_of_exact_layers_matches_edward2_exactly(averaging, training):
    """edward2's docstring example (Normal + Logistic ExactSigmoidDense): deterministic."""
    ed = _edward2()
    x = _inputs()
    members = [
        ed.layers.ExactSigmoidDense(1, logit_noise=_tfd().Normal),
        ed.layers.ExactSigmoidDense(1, logit_noise=_tfd().Logistic),
    ]
    theirs = ed.layers.EnsembleHeteroscedasticOutputs(2, members, (0.5, 0.5), averaging)
    theirs(x)
    ours = layers.EnsembleHeteroscedasticOutputs(
        2,
        [
            layers.ExactSigmoidDense(1, logit_noise=_tfd().Normal),
            layers.ExactSigmoidDense(1, logit_noise=_tfd().Logistic),
        ],
        (0.5, 0.5),
        averaging,
    )
    ours.build(x.shape)
    ours.set_weights(theirs.get_weights())
    (logits_o, *rest_o), (logits_t, *rest_t) = ours(x, training), theirs(x, training)
    for a, b in zip(rest_o, rest_t):  # log_probs, probs
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-5)
    # edward2 clips p to [eps, 1 - eps] before its inverse sigmoid (eps = 1e-7, at float32's
    # resolution near 1); compare the logits where that clipping is inactive.
    p = rest_t[1].numpy()
    unclipped = (p > 1e-5) & (p < 1 - 1e-5)
    np.testing.assert_allclose(
        logits_o.numpy()[unclipped], logits_t.numpy()[unclipped], rtol=1e-3, atol=1e-4
    )


# --- edward2 main arguments ----------------------------------------------------------------


def test_tune_temperature_sigmoid_parametrisation_and_parity():
    """tau = lower + (upper - lower) * sigmoid(p): the midpoint at init; predictive = edward2's
    0.0.2 head at that fixed tau (same weights)."""
    ed = _edward2()
    layer = layers.MCSoftmaxDenseFA(
        5,
        2,
        tune_temperature=True,
        temperature_lower_bound=0.5,
        temperature_upper_bound=2.5,
        test_mc_samples=S,
        compute_pred_variance=True,
        seed=0,
    )
    x = _inputs()
    layer.build(x.shape)
    assert math.isclose(float(layer.temperature), 1.5, rel_tol=1e-6)
    assert layer.weights[0].name == "pre_sigmoid_temperature"  # first, as in edward2 main
    layer.pre_sigmoid_temperature.assign(1.2)
    tau = 0.5 + 2.0 / (1 + math.exp(-1.2))
    assert math.isclose(float(layer.temperature), tau, rel_tol=1e-6)
    default = layers.MCSoftmaxDense(5, tune_temperature=True, seed=0)
    default.build(x.shape)
    assert math.isclose(float(default.temperature), (0.3 + 3.0) / 2, rel_tol=1e-6)

    theirs = ed.layers.MCSoftmaxDenseFA(
        5, 2, temperature=tau, test_mc_samples=S, compute_pred_variance=True
    )
    theirs(x, training=False, seed=1)
    theirs.set_weights(layer.get_weights()[1:])
    _, _, p_theirs, var_theirs = theirs(x, training=False, seed=1)
    _, _, p_ours, var_ours = layer(x)
    _assert_within_mc_error(p_ours, p_theirs, var_ours, var_theirs)


def test_tune_temperature_trains_and_stays_in_bounds():
    x = np.random.RandomState(0).randn(64, D).astype("float32")
    y = (x[:, 0] > 0).astype("int32")
    layer = layers.MCSoftmaxDenseFA(
        3,
        1,
        tune_temperature=True,
        temperature_upper_bound=1.0,
        logits_only=True,
        train_mc_samples=16,
        seed=0,
    )
    model = keras.Sequential([keras.Input((D,)), layer])
    model.compile(
        keras.optimizers.Adam(0.5), keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    start = float(layer.temperature)
    model.fit(x, y, epochs=5, batch_size=32, verbose=0)
    assert float(layer.temperature) != start
    assert 0.3 <= float(layer.temperature) <= 1.0


@pytest.mark.parametrize(
    "make",
    [
        lambda: layers.MCSoftmaxDenseFA(5, 2, return_unaveraged_logits=True, test_mc_samples=9),
        lambda: layers.MCSigmoidDenseFA(5, 2, return_unaveraged_logits=True, test_mc_samples=9),
        lambda: layers.MultiHeadMCSoftmaxDenseFA(
            5, 2, 2, return_unaveraged_logits=True, test_mc_samples=9
        ),
    ],
    ids=["softmax", "sigmoid", "multi_head"],
)
def test_return_unaveraged_logits_are_the_samples_averaged(make):
    layer = make()
    _logits, samples, log_probs, _probs, variance = layer(_inputs())
    assert variance is None and samples.shape[1] == 9
    if isinstance(layer, layers.MCSigmoidDenseFA):
        want = np.log(special.expit(samples.numpy()).mean(axis=1))  # samples are logits
    else:
        want = special.logsumexp(samples.numpy(), axis=1) - math.log(9)  # log-softmaxes
    np.testing.assert_allclose(log_probs.numpy(), want, atol=1e-5)
    out = layers.MCSoftmaxDenseFA(5, 2, return_unaveraged_logits=True, logits_only=True)(
        _inputs(), seed=1
    )
    assert len(out) == 2 and out[1].shape == (4, 1000, 5)


# --- Call convention: edward2-style models run unchanged ------------------------------------


class Ed2StyleModel(keras.Model):
    """Written against edward2.layers: training passed positionally, a per-call seed."""

    def __init__(self, ed, seed=None):
        super().__init__()
        self.backbone = keras.layers.Dense(8, activation="relu")
        self.head = ed.layers.MCSoftmaxDenseFA(4, 2, train_mc_samples=20, test_mc_samples=50)
        self.noise_head = ed.layers.MCSoftmaxDense(4, _tfd().Logistic, train_mc_samples=20)
        self.call_seed = seed

    def call(self, inputs, training=None):
        h = self.backbone(inputs)
        if self.call_seed is None:
            logits = self.head(h, training)[0]
        else:
            logits = self.head(h, training=training, seed=self.call_seed)[0]
        return logits + 0.0 * self.noise_head(h, training)[0]


@pytest.mark.parametrize("seed", [None, 3])
def test_edward2_style_subclassed_model_trains_and_predicts(seed):
    ed = types.SimpleNamespace(layers=layers)  # `import het_ensembles as ed`-style swap
    keras.utils.set_random_seed(0)
    model = Ed2StyleModel(ed, seed)
    x = np.random.RandomState(0).randn(64, D).astype("float32")
    y = (x[:, 0] > 0).astype("int32") + 2 * (x[:, 1] > 0)
    model.compile(
        keras.optimizers.Adam(0.05), keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    losses = model.fit(x, y, epochs=8, batch_size=16, verbose=0).history["loss"]
    assert np.all(np.isfinite(losses)) and losses[-1] < losses[0]
    first = model(x[:4], training=True).numpy()
    second = model(x[:4], training=True).numpy()
    if seed is None:
        assert np.abs(first - second).max() > 0  # fresh training noise each call
    else:
        np.testing.assert_array_equal(first, second)  # same seed, same noise


def test_per_call_seed_same_seed_same_noise_any_convention():
    layer = layers.MCSigmoidDenseFA(3, 2, train_mc_samples=10, seed=1)
    x = _inputs()
    a = layer(x, True, 5)[0].numpy()
    b = layer(x, training=True, seed=5)[0].numpy()
    c = layer(x, training=True, seed=6)[0].numpy()
    d = tf.function(lambda t: layer(t, True, tf.constant(5)))(x)[0].numpy()
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(a, d, rtol=1e-6)
    assert np.abs(a - c).max() > 0
    # Default training=None is inference (edward2's default is training=True): test samples.
    inference = layers.MCSoftmaxDenseFA(5, 2, train_mc_samples=1, test_mc_samples=500, seed=1)
    out = inference(x)[2].numpy()
    np.testing.assert_allclose(out, inference(x, False)[2].numpy())


# --- Saving ---------------------------------------------------------------------------------


def _every_class():
    return {
        "MCSoftmaxDense_gumbel": (layers.MCSoftmaxDense(4, "Gumbel", logits_only=True), (D,)),
        "MCSoftmaxDenseFA_tuned": (
            layers.MCSoftmaxDenseFA(4, 2, tune_temperature=True, logits_only=True),
            (D,),
        ),
        "MCSigmoidDenseFA": (layers.MCSigmoidDenseFA(3, 1, logits_only=True), (D,)),
        "MultiHead": (layers.MultiHeadMCSoftmaxDenseFA(4, 2, 3, logits_only=True), (D,)),
        "CustomLayers": (
            layers.MCSoftmaxDenseFACustomLayers(
                4,
                2,
                keras.layers.Dense(8),
                keras.Sequential([keras.layers.Dense(5, "tanh"), keras.layers.Dense(4)]),
                keras.layers.Dense(4, activation="softplus"),
                logits_only=True,
            ),
            (D,),
        ),
        "ExactSigmoidDense": (layers.ExactSigmoidDense(3, "Logistic", logits_only=True), (D,)),
        "Segmentation": (
            layers.MCSoftmaxDenseFASegmentation(4, 2, logits_only=True, test_mc_samples=20),
            (3, 2, D),
        ),
        "Ensemble": (
            layers.EnsembleHeteroscedasticOutputs(
                4,
                [layers.MCSoftmaxDenseFA(4, 1), layers.MCSoftmaxDense(4, "Logistic")],
                [0.4, 0.6],
                "gibbs_cross_ent",
            ),
            (D,),
        ),
    }


@pytest.mark.parametrize("name", sorted(_every_class()))
def test_keras_file_round_trip(name, tmp_path):
    keras.utils.set_random_seed(1)
    layer, shape = _every_class()[name]
    inputs = keras.Input(shape)
    out = layer(inputs)
    model = keras.Model(inputs, out[0] if isinstance(out, (tuple, list)) else out)
    x = _inputs(batch=2, shape=shape)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_array_equal(model.predict(x, verbose=0), loaded.predict(x, verbose=0))
    assert len(model.get_weights()) == len(loaded.get_weights()) > 0
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)


# --- Bad arguments --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: layers.MCSoftmaxDense(5, "Cauchy"), "logit_noise"),
        (lambda: layers.MCSoftmaxDense(5, 1.5), "logit_noise"),
        (lambda: layers.ExactSigmoidDense(2, logit_noise="Gumbel"), "logit_noise"),
        (lambda: layers.ExactSigmoidDense(2, min_scale=0.0), "min_scale"),
        (lambda: layers.ExactSigmoidDense(0), "num_outputs"),
        (
            lambda: layers.MCSoftmaxDenseFA(5, 2, tune_temperature=True, learn_temperature=True),
            "tune_temperature",
        ),
        (
            lambda: layers.MCSoftmaxDenseFA(
                5,
                2,
                tune_temperature=True,
                temperature_lower_bound=2.0,
                temperature_upper_bound=1.0,
            ),
            "temperature_lower_bound",
        ),
        (
            lambda: layers.MCSoftmaxDenseFA(5, 2, temperature_lower_bound=-1.0),
            "temperature_lower_bound",
        ),
        (
            lambda: layers.MCSoftmaxDenseFA(5, 2, temperature_upper_bound="hot"),
            "temperature_upper_bound",
        ),
        (lambda: layers.MultiHeadMCSoftmaxDenseFA(5, 2, 0), "ensemble_size"),
        (
            lambda: layers.MCSoftmaxDenseFACustomLayers(
                5,
                2,
                keras.layers.Dense(10),
                keras.layers.Dense(5),
                keras.layers.Dense(5),
                parameter_efficient=True,
            ),
            "parameter_efficient",
        ),
        (
            lambda: layers.MCSoftmaxDenseFACustomLayers(5, 2, "dense", None, None),
            "scale_layer",
        ),
        (
            lambda: layers.EnsembleHeteroscedasticOutputs(
                5, [layers.MCSoftmaxDense(5), layers.MCSoftmaxDense(5)], (0.5, 0.6)
            ),
            "ensemble_weighting",
        ),
        (
            lambda: layers.EnsembleHeteroscedasticOutputs(
                5, [layers.MCSoftmaxDense(5), layers.MCSoftmaxDense(5)], (1.0,)
            ),
            "ensemble_weighting",
        ),
        (
            lambda: layers.EnsembleHeteroscedasticOutputs(
                5, [layers.MCSoftmaxDense(5)], (1.0,), averaging="mean"
            ),
            "averaging",
        ),
        (
            lambda: layers.EnsembleHeteroscedasticOutputs(
                5, [layers.MCSoftmaxDense(5, logits_only=True)], (1.0,)
            ),
            "logits_only",
        ),
        (lambda: layers.EnsembleHeteroscedasticOutputs(5, [], ()), "layers"),
        (lambda: layers.MCSoftmaxDenseFA(5, 2)(_inputs(), True, -1), "seed"),
        (lambda: layers.MCSoftmaxDenseFA(5, 2)(_inputs(), True, 1.5), "seed"),
        (lambda: layers.MCSoftmaxDenseFASegmentation(5, 2)(_inputs()), "rank 4"),
    ],
)
def test_bad_arguments_raise_value_error_naming_them(make, message):
    with pytest.raises(ValueError, match=message):
        make()
