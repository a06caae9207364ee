"""Rank-1 layers against edward2 0.0.2's `DenseRank1` / `Conv2DRank1` on the same weights.

edward2 runs in a subprocess under tf-keras (TF_USE_LEGACY_KERAS=1), as its layers need. The
factors' posterior stddevs are set to softplus^-1(~0) there and here, so both compute the
deterministic part x -> ((x * alpha) W) * gamma + bias exactly; the KL term is compared
with edward2's `layer.losses` (its `NormalKLDivergence(mean=1, stddev=0.05)`) at edward2's own
initial weights. Sampling and the initializers are checked against closed forms.
"""

import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from het_ensembles.layers import rank1

M = 3
EDWARD2 = """
import os, sys
os.environ["TF_USE_LEGACY_KERAS"] = "1"
sys.modules.setdefault("edward2.numpy", None)  # its NumPy backend breaks with recent SciPy
import numpy as np, tensorflow as tf
import edward2 as ed
data = np.load(sys.argv[1])
kl = lambda: ed.regularizers.NormalKLDivergence(mean=1., stddev=0.05)
out = {}
layers = {
    "dense": ed.layers.DenseRank1(4, activation="relu", ensemble_size=3, alpha_regularizer=kl(),
        gamma_regularizer=kl(), bias_initializer="random_normal"),
    "additive": ed.layers.DenseRank1(4, ensemble_size=3, use_additive_perturbation=True,
        alpha_regularizer=kl(), gamma_regularizer=kl(), bias_initializer="random_normal"),
    "conv": ed.layers.Conv2DRank1(4, 3, strides=2, padding="same", ensemble_size=3,
        use_bias=False, alpha_regularizer=kl(), gamma_regularizer=kl()),
}
for name, layer in layers.items():
    x = data["image" if name == "conv" else "x"]
    layer(x)
    out[name + "_kl"] = np.float32(sum(layer.losses))
    for v in layer.trainable_variables:
        short = v.name.split("/", 1)[1].replace("/", "_").replace(":0", "")
        out[f"{name}_init_{short}"] = v.numpy()
        if short.endswith("stddev"):
            v.assign(tf.fill(v.shape, -30.0))  # softplus(-30) ~ 1e-13: factors = their means
        else:
            v.assign(tf.random.normal(v.shape, seed=1))
        out[f"{name}_{short}"] = v.numpy()
    out[name + "_y"] = layer(x).numpy()
np.savez(sys.argv[2], **out)
"""


@pytest.fixture(scope="module")
def edward2_run(tmp_path_factory):
    sys.modules.setdefault("edward2.numpy", None)
    pytest.importorskip("edward2")
    pytest.importorskip("tf_keras")
    tmp = tmp_path_factory.mktemp("rank1")
    rng = np.random.RandomState(0)
    inputs = {
        "x": rng.randn(M * 2, 5).astype("float32"),
        "image": rng.randn(M * 2, 6, 6, 3).astype("float32"),
    }
    np.savez(tmp / "in.npz", **inputs)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    subprocess.run(
        [sys.executable, "-c", EDWARD2, str(tmp / "in.npz"), str(tmp / "out.npz")],
        check=True,
        capture_output=True,
        timeout=300,
        env=env,
    )
    return inputs, dict(np.load(tmp / "out.npz"))


def _ours(name):
    if name == "conv":
        return rank1.Conv2DRank1(
            4, 3, strides=2, padding="same", ensemble_size=M, use_bias=False, seed=0
        )
    return rank1.DenseRank1(
        4,
        activation="relu" if name == "dense" else None,
        ensemble_size=M,
        use_additive_perturbation=name == "additive",
        seed=0,
    )


def _assign(layer, theirs, name, tag=""):
    prefix = f"{name}_{tag}"
    layer.kernel.assign(theirs[prefix + "kernel"])
    for role in ("alpha", "gamma"):
        mean, stddev = layer.factors[role]
        mean.assign(theirs[f"{prefix}{role}_mean"])
        stddev.assign(theirs[f"{prefix}{role}_stddev"])
    if layer.ensemble_bias is not None:
        layer.ensemble_bias.assign(theirs[prefix + "ensemble_bias"])


@pytest.mark.parametrize("name", ["dense", "additive", "conv"])
def test_matches_edward2_given_the_same_weights(edward2_run, name):
    inputs, theirs = edward2_run
    x = inputs["image" if name == "conv" else "x"]
    layer = _ours(name)
    layer(x)
    _assign(layer, theirs, name)
    for training in (True, False):
        np.testing.assert_allclose(
            layer(x, training=training), theirs[name + "_y"], rtol=1e-5, atol=1e-5
        )


@pytest.mark.parametrize("name", ["dense", "additive", "conv"])
def test_kl_matches_edward2_normal_kl_divergence(edward2_run, name):
    inputs, theirs = edward2_run
    layer = _ours(name)
    layer(inputs["image" if name == "conv" else "x"])
    _assign(layer, theirs, name, tag="init_")
    np.testing.assert_allclose(layer.kl_divergence(), theirs[name + "_kl"], rtol=1e-5)
    assert theirs[name + "_kl"] > 100  # a real term: stddev ~0.03 vs 0.05, means +-1 vs 1


def test_kl_closed_form_against_tfp():
    import tensorflow_probability as tfp

    rng = np.random.RandomState(1)
    mean, stddev = rng.randn(7).astype("float32"), rng.rand(7).astype("float32") + 0.1
    expected = tf.reduce_sum(
        tfp.distributions.kl_divergence(
            tfp.distributions.Normal(mean, stddev), tfp.distributions.Normal(1.0, 0.05)
        )
    )
    np.testing.assert_allclose(rank1.normal_kl(mean, stddev, 1.0, 0.05), expected, rtol=1e-5)


def test_initial_factors_follow_uncertainty_baselines_make_initializer():
    layer = rank1.DenseRank1(
        2000, ensemble_size=4, random_sign_init=0.75, dropout_rate=1e-3, seed=3
    )
    layer.build((None, 500))
    mean, stddev = (v.numpy() for v in layer.factors["gamma"])
    assert set(np.unique(mean)) == {-1.0, 1.0}
    assert abs((mean == 1).mean() - 0.75) < 0.01  # 8000 signs, sd of the fraction ~0.005
    centre = np.log(np.expm1(np.sqrt(1e-3 / (1 - 1e-3))))  # written here, not imported
    assert abs(stddev.mean() - centre) < 0.01
    assert np.abs(stddev - centre).max() <= 0.2 + 1e-6  # truncated at 2 stddevs of 0.1
    normal = rank1.DenseRank1(3, ensemble_size=2, random_sign_init=-0.5, seed=3)
    normal.build((None, 4000))
    alpha_mean = normal.factors["alpha"][0].numpy()
    assert abs(alpha_mean.mean() - 1) < 0.03 and abs(alpha_mean.std() - 0.5) < 0.03


def test_training_draws_one_sample_per_example_with_the_posterior_moments():
    layer = rank1.DenseRank1(1, use_bias=False, ensemble_size=2, seed=5, kernel_initializer="ones")
    layer.build((None, 1))
    alpha_mean, alpha_stddev = layer.factors["alpha"]
    gamma_mean, gamma_stddev = layer.factors["gamma"]
    alpha_mean.assign([[2.0], [-1.0]])
    alpha_stddev.assign(np.log(np.expm1([[0.5], [0.2]])))  # softplus^-1: scales 0.5, 0.2
    gamma_mean.assign([[1.0], [1.0]])
    gamma_stddev.assign(np.full((2, 1), -30.0))
    out = layer(np.ones((2 * 20000, 1), "float32"), training=True).numpy().reshape(2, -1)
    np.testing.assert_allclose(out.mean(axis=1), [2.0, -1.0], atol=0.02)
    np.testing.assert_allclose(out.std(axis=1), [0.5, 0.2], rtol=0.03)
    fixed = layer(np.ones((8, 1), "float32"), training=False).numpy().reshape(2, -1)
    assert np.ptp(fixed, axis=1).max() == 0  # inference: one draw per member, batch-shared
    np.testing.assert_array_equal(fixed, layer(np.ones((8, 1), "float32")).numpy().reshape(2, -1))


def test_bad_arguments_name_the_argument():
    with pytest.raises(ValueError, match="alpha_initializer.*trainable_cauchy"):
        rank1.DenseRank1(2, alpha_initializer="trainable_cauchy")
    with pytest.raises(ValueError, match="ensemble_size.*0"):
        rank1.Conv2DRank1(2, 3, ensemble_size=0)
    with pytest.raises(ValueError, match="prior_stddev"):
        rank1.DenseRank1(2, prior_stddev=0.0)


def test_serialization_round_trip():
    import keras

    layer = rank1.DenseRank1(3, activation="softplus", ensemble_size=2, prior_stddev=0.1, seed=4)
    x = np.random.RandomState(0).randn(4, 5).astype("float32")
    y = layer(x)
    clone = rank1.DenseRank1.from_config(layer.get_config())
    clone(x)
    clone.set_weights(layer.get_weights())
    np.testing.assert_allclose(clone(x), y, rtol=1e-6)
    assert keras.activations.serialize(clone.ensemble_activation) == "softplus"
    assert clone.rank1_options == layer.rank1_options
