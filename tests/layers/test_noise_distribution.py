"""Every layer exposes its latent noise: `noise_distribution(x)` and `covariance(x)`.

References: TFP's own moments of the distributions, the closed form of the exact sigmoid
predictive (p(y_k = 1) = P(u_k > 0), evaluated with scipy), the law of total covariance in
numpy, and Monte Carlo samples of TFP's mixture with a tolerance from their standard error.
"""

import inspect

import keras
import numpy as np
import pytest
import tensorflow as tf
from scipy import stats

from het_ensembles import layers

D, K = 6, 4


def _inputs(batch=3, seed=0):
    return tf.constant(np.random.RandomState(seed).randn(batch, D), tf.float32)


def _layer_classes():
    return [
        obj
        for name, obj in vars(layers).items()
        if name in layers.__all__
        and inspect.isclass(obj)
        and issubclass(obj, keras.layers.Layer)
        and name not in BUILDING_BLOCKS
    ]


# SNGP's backbone wrappers and GP output pieces, and the rank-1 BNN's weight layers: not
# heteroscedastic heads, no logit noise.
BUILDING_BLOCKS = (
    "Conv2DRank1",
    "DenseRank1",
    "LaplaceRandomFeatureCovariance",
    "RandomFeatureGaussianProcess",
    "RandomFourierFeatures",
    "SpectralNormalization",
    "SpectralNormalizationConv2D",
)


def _members():
    return [
        layers.MCSoftmaxDenseFA(K, 2, seed=1),
        layers.MCSoftmaxDense(K, seed=2),
    ]


def test_every_layer_class_has_noise_distribution_and_covariance():
    missing = [
        cls.__name__
        for cls in _layer_classes()
        if not (callable(getattr(cls, "noise_distribution", None)) and callable(cls.covariance))
    ]
    assert missing == []


def test_edward2_base_class_name_is_ours():
    assert layers.MCSoftmaxOutputLayerBase is layers.MCHeteroscedasticBase
    assert isinstance(layers.MCSoftmaxDenseFA(K, 2), layers.MCSoftmaxOutputLayerBase)


@pytest.mark.parametrize("noise", ["Normal", "Logistic"])
def test_exact_sigmoid_noise_gives_its_closed_form_probabilities(noise):
    layer = layers.ExactSigmoidDense(K, logit_noise=noise, seed=0)
    x = _inputs()
    _, _, probs = layer(x)
    dist = layer.noise_distribution(x)
    loc = dist.mean().numpy()
    scale = (layer.diag_layer(x).numpy() + layer.min_scale).astype(np.float64)
    reference = stats.norm if noise == "Normal" else stats.logistic
    # p(y_k = 1 | x) = P(u_k > 0) for u_k = loc_k + scale_k * eps.
    np.testing.assert_allclose(probs.numpy(), reference.sf(0.0, loc=loc, scale=scale), rtol=1e-5)
    # TFP's Independent has no covariance(); its variance() is the diagonal, the rest is 0.
    cov = layer.covariance(x).numpy()
    np.testing.assert_allclose(np.diagonal(cov, axis1=1, axis2=2), dist.variance(), rtol=1e-5)
    np.testing.assert_array_equal(cov * (1 - np.eye(K)), 0.0)
    assert dist.event_shape == (K,)


def test_ensemble_covariance_is_the_law_of_total_covariance():
    members = _members()
    weights = [0.3, 0.7]
    layer = layers.EnsembleHeteroscedasticOutputs(K, members, weights)
    x = _inputs()
    layer(x)
    expected = 0.0
    means = [m.noise_distribution(x).mean().numpy().astype(np.float64) for m in members]
    # MCSoftmaxDense's Normal noise is TFP's MultivariateNormalDiagPlusLowRankCovariance too.
    covs = [m.noise_distribution(x).covariance().numpy().astype(np.float64) for m in members]
    mean = sum(w * mu for w, mu in zip(weights, means))
    for w, mu, cov in zip(weights, means, covs):
        expected = expected + w * (cov + mu[:, :, None] * mu[:, None, :])
    expected = expected - mean[:, :, None] * mean[:, None, :]
    np.testing.assert_allclose(layer.covariance(x).numpy(), expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(layer.noise_distribution(x).mean().numpy(), mean, rtol=1e-5)


def test_ensemble_noise_distribution_samples_match_its_covariance():
    layer = layers.EnsembleHeteroscedasticOutputs(K, _members(), [0.5, 0.5])
    x = _inputs(batch=1)
    layer(x)
    n = 40_000
    samples = layer.noise_distribution(x).sample(n, seed=3).numpy()[:, 0].astype(np.float64)
    sample_cov = np.cov(samples, rowvar=False)
    cov = layer.covariance(x).numpy()[0]
    # Standard error of a sample covariance entry: sqrt((S_ii S_jj + S_ij^2) / n) for a
    # Gaussian; a mixture has heavier tails, so allow 6 of them.
    diag = np.diag(cov)
    tolerance = 6 * np.sqrt((diag[:, None] * diag[None, :] + cov**2) / n)
    assert np.all(np.abs(sample_cov - cov) < tolerance)
