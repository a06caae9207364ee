"""SNGP building blocks against their equations: spectral norm (numpy's matrix 2-norm, an explicit
conv matrix), random features (cos(W x + b) sqrt(2/D), the RBF kernel), the Laplace covariance
(ridge Phi (ridge I + sum phi phi^T)^-1 Phi^T), mean-field logits; config and .keras round trips.
"""

import copy
import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from het_ensembles import layers

RNG = np.random.RandomState(0)


def _x(batch, dim, seed=0):
    return np.random.RandomState(seed).randn(batch, dim).astype("float32")


@pytest.mark.parametrize("bound", [0.5, 100.0])
def test_dense_spectral_norm_is_numpys_two_norm_capped_at_the_bound(bound):
    layer = layers.SpectralNormalization(
        keras.layers.Dense(7), iteration=200, norm_multiplier=bound, seed=0
    )
    layer.build((None, 5))
    original = layer.layer.kernel.numpy().copy()
    sigma = float(layer.update_weights(training=True))
    np.testing.assert_allclose(sigma, np.linalg.norm(original, 2), rtol=1e-4)
    np.testing.assert_allclose(
        np.linalg.norm(layer.layer.kernel.numpy(), 2), min(bound, sigma), rtol=1e-4
    )
    # The stored u, v are the top singular vectors (up to sign).
    _, _, vt = np.linalg.svd(original)
    np.testing.assert_allclose(abs(layer.u.numpy()[0] @ vt[0]), 1.0, atol=1e-4)


def test_dense_one_power_iteration_step_and_inference_keeps_u_v():
    layer = layers.SpectralNormalization(keras.layers.Dense(3), norm_multiplier=0.1, seed=1)
    x = _x(4, 6)
    layer(x, training=False)  # builds; no power iteration at inference
    w, u, v = layer.layer.kernel.numpy(), layer.u.numpy(), layer.v.numpy()
    layer(x, training=False)
    np.testing.assert_array_equal(layer.u.numpy(), u)
    np.testing.assert_array_equal(layer.v.numpy(), v)
    w = layer.layer.kernel.numpy()
    out = layer(x, training=True).numpy()
    v_new = u @ w.T
    v_new /= np.linalg.norm(v_new)
    u_new = v_new @ w
    u_new /= np.linalg.norm(u_new)
    sigma = (v_new @ w @ u_new.T).item()
    np.testing.assert_allclose(layer.u.numpy(), u_new, rtol=1e-5)
    np.testing.assert_allclose(layer.v.numpy(), v_new, rtol=1e-5)
    want_w = w * min(1.0, 0.1 / sigma)
    np.testing.assert_allclose(layer.layer.kernel.numpy(), want_w, rtol=1e-5)
    np.testing.assert_allclose(out, x @ want_w + layer.layer.bias.numpy(), rtol=1e-5, atol=1e-6)


def _conv_matrix(kernel, height, width, stride):
    """The [H'W'C_out, HWC_in] matrix of a SAME-padded conv, built entry by entry in numpy."""
    kh, kw, c_in, c_out = kernel.shape
    out_h, out_w = -(-height // stride), -(-width // stride)
    pad_h = max((out_h - 1) * stride + kh - height, 0) // 2
    pad_w = max((out_w - 1) * stride + kw - width, 0) // 2
    matrix = np.zeros((out_h, out_w, c_out, height, width, c_in))
    for i in range(out_h):
        for j in range(out_w):
            for a in range(kh):
                for b in range(kw):
                    y, x = i * stride + a - pad_h, j * stride + b - pad_w
                    if 0 <= y < height and 0 <= x < width:
                        matrix[i, j, :, y, x, :] = kernel[a, b].T
    return matrix.reshape(out_h * out_w * c_out, height * width * c_in)


@pytest.mark.parametrize("stride", [1, 2])
def test_conv_spectral_norm_is_the_operator_norm_of_the_convolution(stride):
    conv = keras.layers.Conv2D(4, 3, strides=stride, padding="same")
    layer = layers.SpectralNormalizationConv2D(conv, iteration=300, norm_multiplier=0.8, seed=2)
    images = RNG.randn(2, 6, 6, 3).astype("float32")
    layer.build(images.shape)
    matrix = _conv_matrix(conv.kernel.numpy(), 6, 6, stride)
    np.testing.assert_allclose(
        matrix @ images[0].ravel(),
        tf.nn.conv2d(images[:1], conv.kernel, stride, "SAME").numpy().ravel(),
        rtol=1e-4,
        atol=1e-5,
    )  # the reference matrix is the layer's convolution
    sigma = float(layer.update_weights(training=True))
    np.testing.assert_allclose(sigma, np.linalg.norm(matrix, 2), rtol=1e-3)
    bounded = _conv_matrix(conv.kernel.numpy(), 6, 6, stride)
    np.testing.assert_allclose(np.linalg.norm(bounded, 2), min(0.8, sigma), rtol=1e-3)


def test_random_features_and_logits_follow_the_equations():
    gp = layers.RandomFeatureGaussianProcess(
        3,
        num_inducing=8,
        normalize_input=False,
        gp_kernel_scale=2.0,
        return_random_features=True,
        gp_output_bias=0.25,
        seed=0,
    )
    x = _x(5, 4)
    logits, _, features = gp(x, training=True)
    w = gp._random_feature.kernel.numpy()
    b = gp._random_feature.bias.numpy()
    phi = np.cos(x / np.sqrt(2.0) @ w + b) * np.sqrt(2.0 / 8)
    np.testing.assert_allclose(features.numpy(), phi, rtol=1e-5, atol=1e-6)
    beta = gp._gp_output_layer.kernel.numpy()
    np.testing.assert_allclose(logits.numpy(), phi @ beta + 0.25, rtol=1e-5, atol=1e-6)


def test_orthogonal_random_features_approximate_the_rbf_kernel():
    """phi(x).phi(y) -> exp(-|x - y|^2 / (2 l)) (Rahimi & Recht) with l = gp_kernel_scale."""
    gp = layers.RandomFeatureGaussianProcess(
        1,
        num_inducing=8192,
        normalize_input=False,
        gp_kernel_scale=3.0,
        return_gp_cov=False,
        return_random_features=True,
        seed=3,
    )
    x = _x(6, 4, seed=1)
    _, phi = gp(x)
    gram = phi.numpy() @ phi.numpy().T
    sq = ((x[:, None] - x[None]) ** 2).sum(-1)
    np.testing.assert_allclose(gram, np.exp(-sq / (2 * 3.0)), atol=0.04)


def test_orthogonal_random_features_blocks_are_orthogonal_and_distinct():
    w = layers.OrthogonalRandomFeatures(stddev=1.0, seed=4)((4, 10)).numpy()
    for start in (0, 4):
        block = w[:, start : start + 4]
        gram = block.T @ block
        np.testing.assert_allclose(gram - np.diag(np.diag(gram)), 0, atol=1e-4)
    assert (
        np.abs(
            w[:, :4] / np.linalg.norm(w[:, :4], axis=0)
            - w[:, 4:8] / np.linalg.norm(w[:, 4:8], axis=0)
        ).max()
        > 0.1
    )


def _features(gp, x):
    return np.cos(x @ gp._random_feature.kernel.numpy() + gp._random_feature.bias.numpy()) * (
        np.sqrt(2.0 / gp.num_inducing)
    )


@pytest.mark.parametrize("momentum", [-1.0, 0.9])
def test_laplace_covariance_is_ridge_phi_inverse_precision_phi(momentum):
    ridge = 0.5
    gp = layers.RandomFeatureGaussianProcess(
        2,
        num_inducing=16,
        normalize_input=False,
        gp_cov_momentum=momentum,
        gp_cov_ridge_penalty=ridge,
        gp_kernel_scale=None,
        seed=5,
    )
    batches = [_x(6, 3, seed=s) for s in (1, 2)]
    x_test = _x(4, 3, seed=3)
    gp(x_test)  # builds; an inference call before training
    precision = np.zeros((16, 16))
    for batch in batches:
        gp(batch, training=True)
        phi = _features(gp, batch)
        if momentum < 0:
            precision = precision + phi.T @ phi
        else:
            precision = momentum * precision + (1 - momentum) * phi.T @ phi / len(batch)
    np.testing.assert_allclose(
        gp._gp_cov_layer.precision_matrix.numpy(), precision, rtol=1e-4, atol=1e-5
    )
    _, cov = gp(x_test, training=False)
    phi_t = _features(gp, x_test)
    want = ridge * phi_t @ np.linalg.solve(ridge * np.eye(16) + precision, phi_t.T)
    np.testing.assert_allclose(cov.numpy(), want, rtol=1e-3, atol=1e-5)
    # The per-epoch reset: only what follows it counts.
    gp.reset_covariance_matrix()
    gp(batches[1], training=True)
    phi = _features(gp, batches[1])
    _, cov = gp(x_test, training=False)
    want = (
        ridge
        * phi_t
        @ np.linalg.solve(
            ridge * np.eye(16)
            + (phi.T @ phi if momentum < 0 else (1 - momentum) * phi.T @ phi / 6),
            phi_t.T,
        )
    )
    np.testing.assert_allclose(cov.numpy(), want, rtol=1e-3, atol=1e-5)


def test_covariance_before_training_is_the_prior():
    gp = layers.RandomFeatureGaussianProcess(2, num_inducing=8, normalize_input=False, seed=6)
    x = _x(3, 3)
    _, cov = gp(x)
    phi = _features(gp, x / np.sqrt(1.0))
    np.testing.assert_allclose(cov.numpy(), phi @ phi.T, rtol=1e-4, atol=1e-6)


def test_mean_field_logits_closed_form():
    logits = RNG.randn(3, 4).astype("float32")
    cov = np.diag([0.5, 2.0, 0.0]).astype("float32")
    got = layers.mean_field_logits(logits, cov).numpy()
    np.testing.assert_allclose(
        got, logits / np.sqrt(1 + math.pi / 8 * np.diag(cov))[:, None], rtol=1e-6
    )
    got = layers.mean_field_logits(logits, cov, mean_field_factor=20.0).numpy()
    np.testing.assert_allclose(got, logits / np.sqrt(1 + 20 * np.diag(cov))[:, None], rtol=1e-6)
    np.testing.assert_array_equal(layers.mean_field_logits(logits, cov, -1), logits)
    got = layers.mean_field_logits(logits, cov, 1.0, likelihood="poisson").numpy()
    np.testing.assert_allclose(got, logits / np.exp(-np.diag(cov) / 2)[:, None], rtol=1e-6)


def test_sngp_head_returns_mean_field_logits_at_inference_only():
    gp = layers.RandomFeatureGaussianProcess(
        3, num_inducing=8, logits_only=True, mean_field_factor=2.0, seed=7
    )
    raw = layers.RandomFeatureGaussianProcess.from_config(
        {**gp.get_config(), "logits_only": False, "mean_field_factor": None}
    )
    x = _x(4, 5)
    gp(x, training=True)
    raw(x, training=True)
    raw.set_weights(gp.get_weights())
    np.testing.assert_allclose(gp(x, training=True), raw(x, training=True)[0], rtol=1e-6)
    logits, cov = raw(x, training=False)
    want = logits.numpy() / np.sqrt(1 + 2.0 * np.diag(cov.numpy()))[:, None]
    np.testing.assert_allclose(gp(x, training=False).numpy(), want, rtol=1e-5)


def test_sngp_model_trains_saves_and_loads(tmp_path):
    inputs = keras.Input((6, 6, 2))
    x = layers.SpectralNormalizationConv2D(
        keras.layers.Conv2D(3, 3, padding="same"), norm_multiplier=0.9, seed=1
    )(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = layers.SpectralNormalization(keras.layers.Dense(4), norm_multiplier=0.9, seed=2)(x)
    outputs = layers.RandomFeatureGaussianProcess(
        3,
        num_inducing=16,
        gp_cov_momentum=-1,
        logits_only=True,
        mean_field_factor=1.0,
        custom_random_features_initializer=layers.OrthogonalRandomFeatures(0.05, seed=3),
        seed=4,
    )(x)
    model = keras.Model(inputs, outputs)
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    images = RNG.randn(8, 6, 6, 2).astype("float32")
    model.fit(images, np.arange(8) % 3, epochs=2, batch_size=4, verbose=0)
    before = model.predict(images, verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(loaded.predict(images, verbose=0), before, rtol=1e-5, atol=1e-6)
    for layer in model.layers[1:]:
        config = layer.get_config()
        assert type(layer).from_config(copy.deepcopy(config)).get_config() == config


@pytest.mark.parametrize(
    "build, message",
    [
        (
            lambda: layers.SpectralNormalization(keras.layers.Conv2D(2, 3)),
            "layer must be a keras.layers.Dense",
        ),
        (lambda: layers.SpectralNormalization(keras.layers.Dense(2), iteration=0), "iteration=0"),
        (
            lambda: layers.SpectralNormalizationConv2D(
                keras.layers.Conv2D(2, 3), norm_multiplier=-1.0
            ),
            "norm_multiplier=-1.0",
        ),
        (lambda: layers.RandomFeatureGaussianProcess(2, num_inducing=0), "num_inducing=0"),
        (
            lambda: layers.RandomFeatureGaussianProcess(2, gp_cov_ridge_penalty=0.0),
            "ridge_penalty=0.0",
        ),
        (
            lambda: layers.RandomFeatureGaussianProcess(2, gp_cov_likelihood="probit"),
            "likelihood='probit'",
        ),
        (
            lambda: layers.RandomFeatureGaussianProcess(2, gp_kernel_type="cosine"),
            "gp_kernel_type='cosine'",
        ),
        (
            lambda: layers.mean_field_logits(np.zeros((1, 2)), likelihood="gauss"),
            "likelihood='gauss'",
        ),
    ],
)
def test_bad_arguments_name_the_value(build, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace("[", r"\[")):
        build()
