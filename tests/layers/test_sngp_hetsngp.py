"""HeteroscedasticSNGPLayer against edward2 GitHub main's own code and against its equations.

edward2's `hetsngp.py` (vendored verbatim, `edward2_main_hetsngp.py`) runs on top of edward2
0.0.2's MCSoftmaxDenseFA and RandomFeatureGaussianProcess under tf-keras, in a subprocess; our
layer gets its weights and must give the same GP logits, precision, covariance and, within
Monte Carlo error, the same predictive probabilities.
"""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from het_ensembles import layers

HERE = os.path.dirname(os.path.abspath(__file__))
ARGS = {
    "num_classes": 5,
    "num_factors": 2,
    "temperature": 1.3,
    "num_inducing": 32,
    "gp_kernel_scale": 2.0,
    "gp_cov_ridge_penalty": 0.5,
    "test_mc_samples": 20000,
    "compute_pred_variance": True,
    "logits_only": False,
    "sngp_var_weight": 0.7,
    "het_var_weight": 1.5,
}
EDWARD2 = f"""
import os, sys
os.environ["TF_USE_LEGACY_KERAS"] = "1"
sys.modules.setdefault("edward2.numpy", None)  # its NumPy backend breaks with recent SciPy
sys.path.insert(0, sys.argv[1])
import numpy as np, tensorflow as tf
import edward2_main_hetsngp as hs
# edward2 0.0.2's base returns the mean alone where GitHub main's returns (mean, samples).
_mean = hs.HeteroscedasticSNGPLayer._compute_predictive_mean
hs.HeteroscedasticSNGPLayer._compute_predictive_mean = lambda self, *a: (_mean(self, *a), None)
data = np.load(sys.argv[2])
layer = hs.HeteroscedasticSNGPLayer(**{ARGS})
layer.sngp_layer(data["x_train"], training=True)  # a training step's forward through the GP
gp_logits, gp_cov = layer.sngp_layer(data["x_test"], training=False)
tf.random.set_seed(0)
_, _, probs, var = layer(data["x_test"], training=False, seed=1)
weights = {{f"w{{i}}": w.numpy() for i, w in enumerate(layer.weights)}}
np.savez(sys.argv[3], gp_logits=gp_logits.numpy(), gp_cov=gp_cov.numpy(), probs=probs.numpy(),
         var=var.numpy(), **weights)
"""


@pytest.fixture(scope="module")
def edward2_run(tmp_path_factory):
    sys.modules.setdefault("edward2.numpy", None)  # its NumPy backend breaks with recent SciPy
    pytest.importorskip("edward2")
    pytest.importorskip("tf_keras")
    tmp = tmp_path_factory.mktemp("hetsngp")
    rng = np.random.RandomState(0)
    np.savez(
        tmp / "in.npz",
        x_train=rng.randn(16, 6).astype("float32"),
        x_test=rng.randn(4, 6).astype("float32"),
    )
    subprocess.run(
        [sys.executable, "-c", EDWARD2, HERE, str(tmp / "in.npz"), str(tmp / "out.npz")],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return dict(np.load(tmp / "in.npz")), dict(np.load(tmp / "out.npz"))


def _ours_with_edward2_weights(inputs, theirs):
    ours = layers.HeteroscedasticSNGPLayer(**ARGS, seed=3)
    ours.build((None, 6))
    # edward2's order (tf-keras: trainable, then non-trainable): V(x) kernel, bias; d(x) kernel,
    # bias; GP output kernel; GP output bias; random-feature kernel, bias; precision matrix.
    gp = ours.sngp_layer
    targets = [
        ours.scale_layer.kernel,
        ours.scale_layer.bias,
        ours.diag_layer.kernel,
        ours.diag_layer.bias,
        gp._gp_output_layer.kernel,
        gp._gp_output_bias,
        gp._random_feature.kernel,
        gp._random_feature.bias,
    ]
    for i, variable in enumerate(targets):
        variable.assign(theirs[f"w{i}"])
    return ours


def test_matches_edward2_main_given_the_same_weights(edward2_run):
    inputs, theirs = edward2_run
    ours = _ours_with_edward2_weights(inputs, theirs)
    ours(inputs["x_train"], training=True)
    precision = ours.sngp_layer._gp_cov_layer.precision_matrix.numpy()
    # edward2 0.0.2 keeps the ridge inside its precision matrix (it starts at ridge * I; main
    # starts at 0 and adds the ridge when inverting): the accumulated Phi^T Phi must agree.
    ridge = ARGS["gp_cov_ridge_penalty"] * np.eye(ARGS["num_inducing"])
    np.testing.assert_allclose(precision, theirs["w8"] - ridge, rtol=1e-4, atol=1e-4)
    gp_logits, gp_cov = ours.sngp_layer(inputs["x_test"], training=False)
    np.testing.assert_allclose(gp_logits, theirs["gp_logits"], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(gp_cov, theirs["gp_cov"], rtol=1e-3, atol=1e-5)
    _, _, probs, var = ours(inputs["x_test"], training=False)
    diff = np.abs(probs.numpy() - theirs["probs"])
    stderr = np.sqrt((var.numpy() + theirs["var"]) / ARGS["test_mc_samples"])
    assert diff.max() < 0.01, diff.max()
    assert np.all(diff <= 5 * stderr + 1e-6), (diff / stderr).max()


def test_inference_diagonal_mixes_het_and_gp_variances():
    layer = layers.HeteroscedasticSNGPLayer(
        5, 2, num_inducing=16, sngp_var_weight=0.7, het_var_weight=1.5, seed=4
    )
    x = np.random.RandomState(1).randn(3, 6).astype("float32")
    layer(x, training=True)
    xn = x
    dense = lambda sub: xn @ sub.kernel.numpy() + sub.bias.numpy()
    d = np.logaddexp(0.0, dense(layer.diag_layer)) + layers.MIN_SCALE
    v = dense(layer.scale_layer).reshape(3, 5, 2)
    _, gp_cov = layer.sngp_layer(x, training=False)
    gp_var = np.diag(gp_cov.numpy())[:, None]
    _, diag, _ = layer.noise_params(tf.constant(x), training=False)
    np.testing.assert_allclose(diag, np.sqrt(1.5 * d**2 + 0.7 * gp_var), rtol=1e-5)
    want = np.stack([np.diag(di**2) for di in diag.numpy()]) + v @ v.transpose(0, 2, 1)
    np.testing.assert_allclose(layer.covariance(x), want, rtol=1e-4, atol=1e-6)
    _, diag_train, _ = layer.noise_params(tf.constant(x), training=True)  # updates the GP
    np.testing.assert_allclose(diag_train, d, rtol=1e-5)


def test_keras_model_trains_saves_and_loads(tmp_path):
    inputs = keras.Input((6,))
    head = layers.HeteroscedasticSNGPLayer(
        4,
        2,
        num_inducing=16,
        train_mc_samples=8,
        test_mc_samples=32,
        seed=5,
        kernel_initializer=keras.initializers.RandomNormal(stddev=0.01, seed=1),
    )
    model = keras.Model(inputs, head(inputs))
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x = np.random.RandomState(2).randn(16, 6).astype("float32")
    model.fit(x, np.arange(16) % 4, epochs=2, batch_size=8, verbose=0)
    assert np.abs(head.sngp_layer._gp_cov_layer.precision_matrix.numpy()).max() > 0
    before = model.predict(x, verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(loaded.predict(x, verbose=0), before, rtol=1e-5, atol=1e-6)
    config = head.get_config()
    assert layers.HeteroscedasticSNGPLayer.from_config(config).get_config() == config


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"num_classes": 2}, "num_classes=2"),
        ({"num_classes": 5, "num_factors": 6}, "num_factors=6"),
        ({"num_classes": 5, "num_factors": 2, "return_gp_cov": False}, "return_gp_cov=False"),
        ({"num_classes": 5, "num_factors": 2, "sngp_var_weight": -1.0}, "-1.0"),
        ({"num_classes": 5, "num_factors": 2, "parameter_efficient": True}, "parameter_eff"),
    ],
)
def test_bad_arguments_name_the_value(kwargs, message):
    with pytest.raises(ValueError, match=message):
        layers.HeteroscedasticSNGPLayer(**kwargs)
