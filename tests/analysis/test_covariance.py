"""Tests of the covariance analysis (paper Table 4) against numpy references."""

import json
import os

import keras
import numpy as np
import pytest

from het_ensembles import data, member_dir
from het_ensembles.analysis import covariance


@keras.saving.register_keras_serializable(package="test_analysis")
class KnownCovarianceHead(keras.layers.Layer):
    """A head with a hand-checkable Sigma(x) = diag(softplus(x A)^2) + (x B)(x B)^T (rank 1)."""

    def __init__(self, num_classes, **kwargs):
        super().__init__(**kwargs)
        self.num_classes = num_classes

    def build(self, input_shape):
        d = input_shape[-1]
        self.loc = self.add_weight(shape=(d, self.num_classes), name="loc")
        self.diag = self.add_weight(shape=(d, self.num_classes), name="diag")
        self.factor = self.add_weight(shape=(d, self.num_classes), name="factor")

    def call(self, x):
        return x @ self.loc

    def covariance(self, x):
        d = keras.ops.softplus(x @ self.diag)
        v = x @ self.factor
        return keras.ops.vectorized_map(lambda dv: keras.ops.diag(dv[0] ** 2), (d, v)) + (
            v[:, :, None] * v[:, None, :]
        )

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes}


def _model(input_shape, num_classes=4, features=5):
    inputs = keras.Input(input_shape)
    h = keras.layers.Flatten()(inputs)
    h = keras.layers.Dense(features, activation="tanh", name="trunk")(h)
    outputs = KnownCovarianceHead(num_classes, name="head")(h)
    return keras.Model(inputs, outputs)


def _reference_mean_correlation(model, x, center=True):
    trunk = model.get_layer("trunk")
    kernel, bias = (np.asarray(w, np.float64) for w in trunk.get_weights())
    h = np.tanh(x.reshape(len(x), -1) @ kernel + bias)
    _, diag, factor = (np.asarray(w, np.float64) for w in model.get_layer("head").get_weights())
    d, v = np.logaddexp(0, h @ diag), h @ factor
    k = d.shape[1]
    p = np.eye(k) - np.ones((k, k)) / k if center else np.eye(k)
    total = 0
    for di, vi in zip(d, v):
        cov = p @ (np.diag(di**2) + np.outer(vi, vi)) @ p
        std = np.sqrt(np.diag(cov))
        total = total + cov / np.outer(std, std)
    return total / len(x)


def test_mean_correlation_matches_numpy_over_arrays_and_datasets():
    keras.utils.set_random_seed(0)
    model = _model((6,))
    x = np.random.default_rng(0).standard_normal((37, 6)).astype(np.float32)
    expected = _reference_mean_correlation(model, x)
    got, count = covariance.mean_correlation(model, x, batch_size=8)
    assert count == 37
    np.testing.assert_allclose(got, expected, atol=1e-5)
    np.testing.assert_allclose(np.diag(got), 1.0)
    import tensorflow as tf

    dataset = tf.data.Dataset.from_tensor_slices((x, np.zeros(37, np.int32))).batch(10)
    got_ds, count_ds = covariance.mean_correlation(model, dataset)
    assert count_ds == 37
    np.testing.assert_allclose(got_ds, expected, atol=1e-5)
    got_max, count_max = covariance.mean_correlation(model, x, batch_size=8, max_examples=11)
    assert count_max == 11
    np.testing.assert_allclose(got_max, _reference_mean_correlation(model, x[:11]), atol=1e-5)
    raw, _ = covariance.mean_correlation(model, x, center=False)
    np.testing.assert_allclose(raw, _reference_mean_correlation(model, x, center=False), atol=1e-5)


def test_centering_removes_common_mode_noise():
    # Sigma = swap noise on (0, 1) plus a large shift of all logits together (which a softmax
    # ignores): centred, the pair is anti-correlated and the other pairs are not.
    k = 4
    swap = np.array([1.0, -1.0, 0.0, 0.0])
    cov = 0.1 * np.eye(k) + np.outer(swap, swap) + 25.0 * np.ones((k, k))
    raw = covariance.covariance_to_correlation(cov)
    assert raw[0, 1] > 0.9 and raw[2, 3] > 0.9
    centred = covariance.covariance_to_correlation(covariance.center_covariance(cov))
    p = np.eye(k) - 1.0 / k
    np.testing.assert_allclose(covariance.center_covariance(cov), p @ cov @ p, atol=1e-12)
    assert centred[0, 1] < -0.9
    assert covariance.top_pairs(centred, top_k=1)[0]["classes"] == (0, 1)


def test_covariance_to_correlation_matches_numpy_corrcoef_definition():
    a = np.random.default_rng(1).standard_normal((3, 50))
    cov = np.cov(a)
    np.testing.assert_allclose(covariance.covariance_to_correlation(cov), np.corrcoef(a))
    zero_variance = np.diag([1.0, 0.0])
    np.testing.assert_array_equal(covariance.covariance_to_correlation(zero_variance), np.eye(2))


def test_top_pairs_ranks_by_abs_positive_and_negative():
    corr = np.eye(4)
    for (i, j), value in {(0, 1): 0.2, (0, 2): -0.7, (1, 3): 0.5, (2, 3): -0.1}.items():
        corr[i, j] = corr[j, i] = value
    names = ("a", "b", "c", "d")
    by_abs = covariance.top_pairs(corr, top_k=3, class_names=names)
    assert [p["classes"] for p in by_abs] == [(0, 2), (1, 3), (0, 1)]
    assert by_abs[0]["names"] == ("a", "c")
    assert by_abs[0]["correlation"] == pytest.approx(-0.7)
    assert [p["rank"] for p in by_abs] == [1, 2, 3]
    positive = covariance.top_pairs(corr, top_k=2, rank_by="positive")
    assert [p["classes"] for p in positive] == [(1, 3), (0, 1)]
    negative = covariance.top_pairs(corr, top_k=1, rank_by="negative")
    assert negative[0]["classes"] == (0, 2) and negative[0]["names"] == ("0", "2")
    assert len(covariance.top_pairs(corr, top_k=100)) == 6


def test_top_pairs_rejects_bad_arguments():
    with pytest.raises(ValueError, match="square"):
        covariance.top_pairs(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="rank_by"):
        covariance.top_pairs(np.eye(3), rank_by="largest")
    with pytest.raises(ValueError, match="top_k"):
        covariance.top_pairs(np.eye(3), top_k=0)
    with pytest.raises(ValueError, match="class_names"):
        covariance.top_pairs(np.eye(3), class_names=("a", "b"))


def test_mean_correlation_rejects_a_deterministic_head():
    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Dense(2, name="head")(inputs))
    with pytest.raises(ValueError, match="heteroscedastic head"):
        covariance.mean_correlation(model, np.zeros((2, 3), np.float32))


def test_planted_pairs_and_table_format():
    assert covariance.planted_pairs_of("noisy_digits") == ((1, 7), (3, 8), (4, 9), (5, 6))
    assert covariance.planted_pairs_of("synthetic") == ((0, 1), (2, 3))
    assert covariance.planted_pairs_of("cifar10") is None
    pairs = [{"rank": 1, "classes": (7, 1), "names": ("7", "1"), "correlation": -0.5}]
    table = covariance.format_pairs(pairs, planted=((1, 7),))
    assert table.splitlines()[1].split()[-2:] == ["-0.500", "yes"]


def test_heatmap_is_a_png(tmp_path):
    path = tmp_path / "sub" / "c.png"
    covariance.plot_correlation(np.eye(3) * 0.5, str(path), highlight_pairs=((0, 1),), title="t")
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert os.listdir(path.parent) == ["c.png"]  # no temp file left behind


def test_cli_on_a_member_directory(tmp_path, capsys):
    keras.utils.set_random_seed(1)
    model = _model((8, 8, 1), num_classes=10)
    member = tmp_path / "member"
    member.mkdir()
    model.save(member / "model.keras")
    (member / "config.json").write_text(json.dumps({"dataset": "noisy_digits"}))
    assert (
        covariance.cli_main(["--member", str(member), "--top_k", "3", "--batch_size", "128"]) == 0
    )
    out = capsys.readouterr().out
    assert "noisy_digits/test (539 examples)" in out
    read = member_dir.read_member(str(member))
    loaded, config = read.load_model(), read.config
    assert config == {"dataset": "noisy_digits"}
    x_test = next(iter(data.load("noisy_digits", "test", batch_size=1000, is_training=False)))[0]
    expected = _reference_mean_correlation(loaded, x_test.numpy())
    written = np.load(member / "covariance" / "correlation.npy")
    np.testing.assert_allclose(written, expected, atol=1e-5)
    summary = json.loads((member / "covariance" / "covariance_pairs.json").read_text())
    assert summary["num_examples"] == 539
    assert [tuple(p["classes"]) for p in summary["pairs"]] == [
        p["classes"] for p in covariance.top_pairs(expected, top_k=3)
    ]
    assert summary["planted_pairs"] == [[1, 7], [3, 8], [4, 9], [5, 6]]
    assert (member / "covariance" / "correlation.png").stat().st_size > 1000
    # A directory without a model is a clear error, not a traceback.
    assert covariance.cli_main(["--member", str(tmp_path)]) == 2
    assert "no model.keras" in capsys.readouterr().err


def test_mean_correlation_of_a_built_heteroscedastic_model_matches_its_weights():
    from het_ensembles import models

    model = models.build_model(
        "mlp",
        input_shape=(5,),
        num_classes=4,
        head={"type": "MCSoftmaxDenseFA", "num_factors": 2, "test_mc_samples": 10},
        seed=3,
    )
    x = np.random.default_rng(4).standard_normal((9, 5)).astype(np.float32)
    features = np.asarray(covariance.feature_model(model)(x), np.float64)
    # The paper's parameterisation with the head's own Dense sublayers, in numpy:
    # d(x) = softplus(W_d h + b_d) + 1e-3, V(x) = reshape(W_V h + b_V, [K, R]).
    head = model.get_layer("head")
    w_d, b_d = (np.asarray(w, np.float64) for w in head.diag_layer.get_weights())
    w_v, b_v = (np.asarray(w, np.float64) for w in head.scale_layer.get_weights())
    d = np.logaddexp(0, features @ w_d + b_d) + 1e-3
    v = (features @ w_v + b_v).reshape(9, 4, 2)
    p = np.eye(4) - 0.25
    expected = np.zeros((4, 4))
    for di, vi in zip(d, v):
        cov = p @ (np.diag(di**2) + vi @ vi.T) @ p
        std = np.sqrt(np.diag(cov))
        expected += cov / np.outer(std, std) / 9
    got, count = covariance.mean_correlation(model, x, batch_size=4)
    assert count == 9
    np.testing.assert_allclose(got, expected, atol=1e-4)
