"""HET-XL (`latent_dim`): noise in the D-dim pre-logits, every sample through the logit layer.

Reference: the model of Collier et al. (ICLR 2023) / edward2's JAX layers sampled directly in
numpy with its own random numbers, u_s = (x + d(x) * eps_D + V(x) eps_R) W + b.
"""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf
from scipy import special

from het_ensembles import layers

D, K, R, S = 5, 7, 2, 20000


def _softplus(z):
    return np.logaddexp(0.0, z)


def _reference(layer, x, link, num_samples=S):
    """MC predictive and per-class variance of the HET-XL model, numpy, independent draws."""
    rng = np.random.RandomState(0)
    weights = {w.path.split("/")[-2] + "/" + w.name: w.numpy() for w in layer.weights}
    dense = lambda role: x @ weights[f"{role}_layer/kernel"] + weights[f"{role}_layer/bias"]
    w, b = weights["loc_layer/kernel"], weights["loc_layer/bias"]
    d = _softplus(dense("diag")) + layers.MIN_SCALE  # [B, D]
    eps_d = rng.randn(x.shape[0], num_samples, D)
    eps_r = rng.randn(x.shape[0], num_samples, R)
    if layer.parameter_efficient:
        v = dense("scale_heteroscedastic")  # [B, D]
        hom_w = weights["scale_homoscedastic_layer/kernel"]
        hom_b = weights["scale_homoscedastic_layer/bias"]
        noise = v[:, None] * (eps_r @ hom_w + hom_b)
    else:
        factors = dense("scale").reshape(-1, D, R)
        noise = np.einsum("bdr,bsr->bsd", factors, eps_r)
    z = x[:, None] + d[:, None] * eps_d + noise  # [B, S, D]
    u = (z @ w + b) / float(layer.temperature)  # [B, S, K]
    p = special.softmax(u, axis=-1) if link == "softmax" else special.expit(u)
    return p.mean(axis=1), p.var(axis=1)


@pytest.mark.parametrize(
    "make, link",
    [
        (lambda **kw: layers.MCSoftmaxDenseFA(K, R, latent_dim=D, **kw), "softmax"),
        (
            lambda **kw: layers.MCSoftmaxDenseFA(
                K, R, parameter_efficient=True, latent_dim=D, **kw
            ),
            "softmax",
        ),
        (lambda **kw: layers.MCSigmoidDenseFA(K, R, latent_dim=D, **kw), "sigmoid"),
    ],
    ids=["fa", "pe", "sigmoid"],
)
def test_predictive_matches_numpy_het_xl_model(make, link):
    layer = make(temperature=1.2, test_mc_samples=S, compute_pred_variance=True, seed=0)
    x = np.random.RandomState(1).randn(4, D).astype("float32")
    layer.build(x.shape)
    layer.set_weights([1.5 * w for w in layer.get_weights()])
    _, _, probs, var = layer(x)
    want, want_var = _reference(layer, x, link)
    stderr = np.sqrt((var.numpy() + want_var) / S)
    diff = np.abs(probs.numpy() - want)
    assert np.all(diff <= 5 * stderr + 1e-6), (diff / stderr).max()


def test_covariance_parameters_grow_with_d_not_k():
    het_xl = layers.MCSoftmaxDenseFA(1000, 15, latent_dim=64, seed=0)
    standard = layers.MCSoftmaxDenseFA(1000, 15, seed=0)
    for layer in (het_xl, standard):
        layer.build((None, 64))
    # loc D*K + K; diag D*d + d; scale D*d*R + d*R, with d = D (HET-XL) or K (standard).
    assert het_xl.count_params() == 64 * 1000 + 1000 + 64 * 64 + 64 + 64 * 64 * 15 + 64 * 15
    assert standard.count_params() == 64 * 1000 + 1000 + 64 * 1000 + 1000 + 64 * 15000 + 15000


def test_covariance_is_projected_and_gradients_reach_every_weight():
    layer = layers.MCSoftmaxDenseFA(K, R, latent_dim=D, train_mc_samples=16, seed=2)
    x = tf.constant(np.random.RandomState(2).randn(3, D), tf.float32)
    layer.build(x.shape)
    xn = x.numpy()
    w = layer.loc_layer.kernel.numpy()
    d = _softplus(xn @ layer.diag_layer.kernel.numpy() + layer.diag_layer.bias.numpy()) + 1e-3
    v = (xn @ layer.scale_layer.kernel.numpy() + layer.scale_layer.bias.numpy()).reshape(3, D, R)
    sigma = np.stack([np.diag(di**2) for di in d]) + v @ v.transpose(0, 2, 1)
    want = np.einsum("dk,bde,el->bkl", w, sigma, w)
    np.testing.assert_allclose(layer.covariance(x).numpy(), want, rtol=1e-4, atol=1e-5)
    with tf.GradientTape() as tape:
        loss = -tf.reduce_sum(layer(x, training=True)[1][:, 0])
    grads = tape.gradient(loss, layer.trainable_weights)
    assert all(g is not None and np.all(np.isfinite(g.numpy())) for g in grads)
    assert float(tf.reduce_max(tf.abs(grads[0]))) > 0  # the scale (factor) kernel


def test_fits_and_round_trips(tmp_path):
    inputs = keras.Input((D,))
    head = layers.MCSoftmaxDenseFA(
        K, R, latent_dim=D, logits_only=True, train_mc_samples=8, test_mc_samples=8, seed=0
    )
    model = keras.Model(inputs, head(inputs))
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x = np.random.RandomState(0).randn(32, D).astype("float32")
    history = model.fit(x, np.arange(32) % K, epochs=1, batch_size=8, verbose=0)
    assert math.isfinite(history.history["loss"][0])
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert loaded.layers[-1].latent_dim == D
    np.testing.assert_array_equal(model.predict(x, verbose=0), loaded.predict(x, verbose=0))


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: layers.MCSoftmaxDenseFA(K, R, latent_dim=0), "latent_dim"),
        (lambda: layers.MCSoftmaxDenseFA(K, 6, latent_dim=5), "num_factors"),
        (lambda: layers.MCSoftmaxDenseFA(K, R, latent_dim=4)(tf.zeros([2, D])), "latent_dim"),
        (
            lambda: layers.MCSoftmaxDenseFACustomLayers(
                K,
                R,
                keras.layers.Dense(1),
                keras.layers.Dense(1),
                keras.layers.Dense(1),
                latent_dim=D,
            ),
            "latent_dim",
        ),
    ],
)
def test_bad_latent_dim_raises_value_error(make, message):
    with pytest.raises(ValueError, match=message):
        make()
