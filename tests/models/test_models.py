"""`build_model`: parameter counts against closed forms, uncertainty-baselines architecture
details, numpy forward passes for the small models, seeding, head plumbing, errors.

The ImageNet-size models are built once per session (module fixtures) and never run on data.
"""

import inspect

import keras
import numpy as np
import pytest
from model_counts import resnet_trunk_counts

import het_ensembles.layers
from het_ensembles import models


def wide_resnet_counts(depth, k, num_classes):
    """(trainable, batch-norm channels) of pre-activation WRN-depth-k with a dense head."""
    n = (depth - 4) // 6
    conv = 3 * 3 * 3 * 16
    bn_channels = 0
    channels = 16
    for width in (16 * k, 32 * k, 64 * k):
        for block in range(n):
            bn_channels += channels + width
            conv += 9 * channels * width + 9 * width * width
            if channels != width:
                conv += channels * width
            channels = width
    bn_channels += channels
    return conv + 2 * bn_channels + channels * num_classes + num_classes, bn_channels


def count(weights):
    return sum(int(np.prod(w.shape)) for w in weights)


@pytest.fixture(scope="module")
def resnet50():
    return models.build_model(
        "resnet50", input_shape=(224, 224, 3), num_classes=1000, l2=1e-4, seed=0
    )


def test_resnet50_parameter_count_matches_closed_form_and_leaderboard(resnet50):
    trunk, bn_channels = resnet_trunk_counts()
    trainable = trunk + 2048 * 1000 + 1000
    assert trainable == 25_557_032
    assert count(resnet50.trainable_weights) == trainable
    # Keras' count_params also counts the batch-norm moving mean and variance.
    assert resnet50.count_params() == trainable + 2 * bn_channels == 25_610_152
    assert round(resnet50.count_params() / 1e6, 1) == 25.6  # leaderboard: 25.6M


def test_resnet50_is_uncertainty_baselines_v1_5(resnet50):
    assert resnet50.output.shape == (None, 1000)
    head = resnet50.get_layer("head")
    assert head.input.shape == (None, 2048) and head.dtype_policy.compute_dtype == "float32"
    assert resnet50.get_layer("res3a_branch2a").strides == (1, 1)  # v1.5: stride in the 3x3
    assert resnet50.get_layer("res3a_branch2b").strides == (2, 2)
    assert resnet50.get_layer("res3a_branch1").strides == (2, 2)
    convs = [layer for layer in resnet50.layers if isinstance(layer, keras.layers.Conv2D)]
    assert len(convs) == 53
    assert all(not conv.use_bias for conv in convs)
    assert all(isinstance(conv.kernel_initializer, keras.initializers.HeNormal) for conv in convs)
    norms = [
        layer for layer in resnet50.layers if isinstance(layer, keras.layers.BatchNormalization)
    ]
    assert {(bn.momentum, bn.epsilon) for bn in norms} == {(0.9, 1e-5)}
    for bn in norms:  # zero-init of the last batch norm of every residual branch
        gamma = bn.gamma.numpy()
        expected = 0.0 if bn.name.endswith("_branch2c") else 1.0
        np.testing.assert_array_equal(gamma, np.full_like(gamma, expected))
    # he_normal: a truncated normal rescaled to std sqrt(2 / fan_in) (9,408 draws here).
    kernel = resnet50.get_layer("conv1").kernel.numpy()
    assert abs(kernel.std() / np.sqrt(2 / (7 * 7 * 3)) - 1) < 0.05
    head_kernel = head.kernel.numpy()
    assert abs(head_kernel.std() - 0.01) < 0.001  # uncertainty-baselines fc1000 init


def test_resnet50_l2_is_on_kernels_and_biases_only(resnet50):
    penalised = [
        w for w in resnet50.trainable_weights if w.path.split("/")[-1] in ("kernel", "bias")
    ]
    assert len(resnet50.losses) == len(penalised) == 53 + 2
    expected = 1e-4 * sum(float(np.sum(np.square(w.numpy(), dtype=np.float64))) for w in penalised)
    total = sum(float(loss) for loss in resnet50.losses)
    np.testing.assert_allclose(total, expected, rtol=1e-4)


def test_resnet50_zero_init_residual_can_be_turned_off():
    model = models.build_model(
        "resnet50", input_shape=(32, 32, 3), num_classes=10, zero_init_residual=False
    )
    np.testing.assert_array_equal(model.get_layer("bn2a_branch2c").gamma.numpy(), np.ones(256))


def _heteroscedastic_count(features, num_classes, num_factors):
    """edward2 MCSoftmaxDenseFA (FA): loc Dense(K), diagonal scale Dense(K), factors Dense(K*R)."""
    return (
        2 * (features * num_classes + num_classes)
        + features * num_classes * num_factors
        + (num_classes * num_factors)
    )


@pytest.fixture(scope="module")
def heteroscedastic_resnet50():
    if not hasattr(het_ensembles.layers, "MCSoftmaxDenseFA"):
        pytest.skip("het_ensembles.layers.MCSoftmaxDenseFA has not landed yet (lead's layer)")
    head = {
        "type": "MCSoftmaxDenseFA",
        "num_factors": 15,
        "temperature": 1.5,
        "train_mc_samples": 1000,
        "test_mc_samples": 5000,
    }
    return models.build_model(
        "resnet50", input_shape=(224, 224, 3), num_classes=1000, head=head, l2=1e-4, seed=0
    )


def test_heteroscedastic_resnet50_parameter_count(heteroscedastic_resnet50):
    trunk, bn_channels = resnet_trunk_counts()
    trainable = trunk + _heteroscedastic_count(2048, 1000, 15)
    assert trainable == 58_341_032
    assert count(heteroscedastic_resnet50.trainable_weights) == trainable
    total = heteroscedastic_resnet50.count_params()
    assert total == trainable + 2 * bn_channels
    assert abs(total - 58.4e6) < 0.1e6  # leaderboard: 58.4M
    head = heteroscedastic_resnet50.get_layer("head")
    assert head.input.shape == (None, 2048)
    assert heteroscedastic_resnet50.output.shape == (None, 1000)


def test_wide_resnet_28_10_parameter_count():
    model = models.build_model("wide_resnet", input_shape=(32, 32, 3), num_classes=10)
    trainable, bn_channels = wide_resnet_counts(28, 10, 10)
    assert count(model.trainable_weights) == trainable == 36_479_194  # leaderboard: 36.5M
    assert model.count_params() == trainable + 2 * bn_channels


def test_wide_resnet_small_runs_and_regularises_batch_norm():
    model = models.build_model(
        "wide_resnet",
        input_shape=(16, 16, 3),
        num_classes=4,
        l2=1e-3,
        depth=10,
        width_multiplier=1,
        seed=1,
    )
    trainable, _ = wide_resnet_counts(10, 1, 4)
    assert count(model.trainable_weights) == trainable
    # conv kernels (1 + 3 groups x 2 + 2 projections) + 7 batch norms x (gamma, beta) + head.
    assert len(model.losses) == 9 + 14 + 2
    logits = model(np.random.default_rng(0).normal(size=(2, 16, 16, 3)), training=False)
    assert logits.shape == (2, 4) and np.isfinite(logits).all()


def _relu(x):
    return np.maximum(x, 0.0)


def test_mlp_matches_numpy_forward_pass():
    model = models.build_model(
        "mlp", input_shape=(2, 3), num_classes=4, seed=3, hidden_units=(5, 6)
    )
    x = np.random.default_rng(0).normal(size=(7, 2, 3)).astype(np.float32)
    w1, b1, w2, b2, w3, b3 = (w.numpy().astype(np.float64) for w in model.weights)
    expected = _relu(_relu(x.reshape(7, 6) @ w1 + b1) @ w2 + b2) @ w3 + b3
    np.testing.assert_allclose(model(x).numpy(), expected, rtol=1e-4, atol=1e-5)
    linear = models.build_model("mlp", input_shape=(6,), num_classes=3, hidden_units=())
    w, b = (v.numpy() for v in linear.weights)
    np.testing.assert_allclose(
        linear(x.reshape(7, 6)).numpy(), x.reshape(7, 6) @ w + b, rtol=1e-4, atol=1e-5
    )


def test_small_cnn_matches_numpy_forward_pass():
    model = models.build_model(
        "small_cnn", input_shape=(8, 8, 1), num_classes=10, seed=0, filters=(2, 3), hidden_units=5
    )
    x = np.random.default_rng(1).normal(size=(2, 8, 8, 1))
    k1, c1, k2, c2, w1, b1, w2, b2 = (w.numpy().astype(np.float64) for w in model.weights)

    def conv_same(h, kernel, bias):  # 3x3, stride 1, zero padding
        padded = np.pad(h, ((0, 0), (1, 1), (1, 1), (0, 0)))
        out = np.zeros(h.shape[:3] + (kernel.shape[-1],))
        for dy in range(3):
            for dx in range(3):
                out += padded[:, dy : dy + 8, dx : dx + 8] @ kernel[dy, dx]
        return out + bias

    h = _relu(conv_same(_relu(conv_same(x, k1, c1)), k2, c2))
    h = h.reshape(2, 4, 2, 4, 2, 3).max(axis=(2, 4))  # 2x2 max pooling
    expected = _relu(h.reshape(2, -1) @ w1 + b1) @ w2 + b2
    np.testing.assert_allclose(model(x).numpy(), expected, rtol=1e-4, atol=1e-5)


def test_same_seed_same_weights_and_layers_get_distinct_seeds():
    def weights(seed):
        model = models.build_model(
            "mlp", input_shape=(8,), num_classes=8, seed=seed, hidden_units=(8, 8, 8)
        )
        return [w.numpy() for w in model.weights]

    first, again, other = weights(0), weights(0), weights(1)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[0], other[0])
    kernels = first[0::2]  # four 8x8 kernels of one model
    assert all(
        not np.array_equal(kernels[i], kernels[j]) for i in range(4) for j in range(i + 1, 4)
    )


def test_head_runs_in_float32_under_mixed_precision():
    keras.mixed_precision.set_dtype_policy("mixed_bfloat16")
    try:
        model = models.build_model("small_cnn", input_shape=(8, 8, 1), num_classes=3)
    finally:
        keras.mixed_precision.set_dtype_policy("float32")
    assert model.get_layer("head").dtype_policy.compute_dtype == "float32"
    assert str(model(np.zeros((1, 8, 8, 1), np.float32)).dtype) == "<dtype: 'float32'>"


def test_saved_model_loads_back_with_same_outputs(tmp_path):
    model = models.build_model("small_cnn", input_shape=(8, 8, 1), num_classes=3, l2=1e-4, seed=2)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    x = np.random.default_rng(0).normal(size=(2, 8, 8, 1)).astype(np.float32)
    np.testing.assert_allclose(loaded(x).numpy(), model(x).numpy(), rtol=1e-6)
    assert loaded.get_layer("head").output.shape == (None, 3)


class _RecordingSoftmaxHead(keras.layers.Layer):
    """Stands in for a heteroscedastic layer: records its constructor arguments."""

    def __init__(
        self,
        num_classes,
        num_factors,
        temperature=1.0,
        logits_only=False,
        kernel_regularizer=None,
        bias_regularizer=None,
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.received = {
            "num_classes": num_classes,
            "num_factors": num_factors,
            "temperature": temperature,
            "logits_only": logits_only,
            "kernel_regularizer": kernel_regularizer,
            "bias_regularizer": bias_regularizer,
            "seed": seed,
        }
        self.dense = keras.layers.Dense(num_classes)

    def call(self, inputs):
        return self.dense(inputs)


class _RecordingSigmoidHead(_RecordingSoftmaxHead):
    def __init__(self, num_outputs, num_factors=0, **kwargs):
        super().__init__(num_classes=num_outputs, num_factors=num_factors, **kwargs)
        self.received["num_outputs"] = self.received.pop("num_classes")


class _KeywordSeedHead(keras.layers.Layer):
    """Takes the contract's extra arguments (seed, ...) through **kwargs, like the real layers."""

    def __init__(
        self,
        num_classes,
        num_factors,
        logits_only=False,
        kernel_regularizer=None,
        bias_regularizer=None,
        **kwargs,
    ):
        self.received_seed = kwargs.pop("seed", "missing")
        super().__init__(**kwargs)
        self.dense = keras.layers.Dense(num_classes)

    def call(self, inputs):
        return self.dense(inputs)


@pytest.fixture
def fake_layers(monkeypatch):
    monkeypatch.setattr(het_ensembles.layers, "FakeKeywordSeed", _KeywordSeedHead, raising=False)
    monkeypatch.setattr(het_ensembles.layers, "FakeSoftmaxFA", _RecordingSoftmaxHead, raising=False)
    monkeypatch.setattr(het_ensembles.layers, "FakeSigmoidFA", _RecordingSigmoidHead, raising=False)


def test_heteroscedastic_head_gets_contract_arguments(fake_layers):
    model = models.build_model(
        "mlp",
        input_shape=(4,),
        num_classes=5,
        l2=1e-3,
        seed=0,
        head={"type": "FakeSoftmaxFA", "num_factors": 2, "temperature": 1.5},
    )
    head = model.get_layer("head")
    assert isinstance(head, _RecordingSoftmaxHead)
    received = head.received
    assert received["num_classes"] == 5 and received["num_factors"] == 2
    assert received["temperature"] == 1.5 and received["logits_only"] is True
    assert received["kernel_regularizer"].l2 == pytest.approx(1e-3)
    assert received["bias_regularizer"].l2 == pytest.approx(1e-3)
    assert isinstance(received["seed"], int)
    assert head.dtype_policy.compute_dtype == "float32"
    sigmoid = models.build_model(
        "mlp", input_shape=(4,), num_classes=6, head={"type": "FakeSigmoidFA", "num_factors": 1}
    )
    assert sigmoid.get_layer("head").received["num_outputs"] == 6
    assert sigmoid.get_layer("head").received["kernel_regularizer"] is None


def test_heteroscedastic_head_always_gets_an_integer_seed(fake_layers):
    def head_seed(seed):
        model = models.build_model(
            "mlp",
            input_shape=(4,),
            num_classes=5,
            seed=seed,
            head={"type": "FakeKeywordSeed", "num_factors": 2},
        )
        return model.get_layer("head").received_seed

    assert head_seed(0) == head_seed(0) != head_seed(1)
    keras.utils.set_random_seed(11)
    unseeded = head_seed(None)
    keras.utils.set_random_seed(11)
    assert isinstance(unseeded, int) and head_seed(None) == unseeded


@pytest.mark.parametrize(
    "head, match",
    [
        ({"type": "FakeSoftmaxFA", "num_factors": 2, "logits_only": False}, "logits_only"),
        ({"type": "FakeSoftmaxFA", "num_factors": 2, "name": "fc1000"}, "name"),
        ({"type": "FakeSoftmaxFA", "num_factors": 2, "num_classes": 4}, "num_classes"),
        ({"type": "Softmax"}, "Unknown head type"),
        ({"type": "dense", "units": 3}, "no options"),
        ({"num_factors": 2}, "'type'"),
        ("heteroscedastic", "'type'"),
    ],
)
def test_bad_heads_raise(fake_layers, head, match):
    with pytest.raises(ValueError, match=match):
        models.build_model("mlp", input_shape=(4,), num_classes=5, head=head)


@pytest.mark.skipif(
    not hasattr(het_ensembles.layers, "MCSoftmaxDenseFA"),
    reason="het_ensembles.layers.MCSoftmaxDenseFA has not landed yet",
)
def test_real_heteroscedastic_head_on_small_model():
    model = models.build_model(
        "small_cnn",
        input_shape=(8, 8, 1),
        num_classes=10,
        seed=0,
        head={
            "type": "MCSoftmaxDenseFA",
            "num_factors": 3,
            "train_mc_samples": 8,
            "test_mc_samples": 8,
        },
    )
    logits = model(np.zeros((2, 8, 8, 1), np.float32), training=False).numpy()
    assert logits.shape == (2, 10)
    # logits_only=True: log of MC-mean probabilities, so they are normalised log-probs.
    np.testing.assert_allclose(np.exp(logits).sum(axis=1), 1.0, rtol=1e-4)


@pytest.mark.skipif(
    not hasattr(het_ensembles.layers, "MCSoftmaxDenseFA"),
    reason="het_ensembles.layers has not landed yet",
)
@pytest.mark.parametrize("head_type", ["MCSoftmaxDenseFA", "MCSoftmaxDense", "MCSigmoidDenseFA"])
@pytest.mark.parametrize("seed", [3, None])
def test_saved_heteroscedastic_model_predicts_the_same(tmp_path, head_type, seed):
    head = {"type": head_type, "train_mc_samples": 8, "test_mc_samples": 8}
    if head_type != "MCSoftmaxDense":
        head["num_factors"] = 2
    model = models.build_model(
        "mlp", input_shape=(6,), num_classes=4, head=head, seed=seed, hidden_units=(8,)
    )
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    x = np.random.default_rng(0).normal(size=(5, 6)).astype(np.float32)
    np.testing.assert_allclose(
        loaded(x, training=False).numpy(), model(x, training=False).numpy(), rtol=1e-5, atol=1e-6
    )


@pytest.mark.parametrize(
    "architecture, kwargs, match",
    [
        ("resnet18", {}, "Unknown architecture"),
        ("mlp", {"depth": 3}, "Unknown options"),
        ("mlp", {"input_shape": (0,)}, "input_shape"),
        ("resnet50", {"input_shape": (64,)}, "image inputs"),
        ("small_cnn", {"input_shape": (64,)}, "image inputs"),
        ("mlp", {"num_classes": 0}, "num_classes"),
        ("mlp", {"l2": -1.0}, "l2"),
        ("mlp", {"seed": -1}, "seed"),
        ("mlp", {"hidden_units": (4, 0)}, "hidden_units"),
        ("wide_resnet", {"input_shape": (8, 8, 3), "depth": 27}, "depth"),
        ("wide_resnet", {"input_shape": (8, 8, 3), "depth": 10, "version": 3}, "version"),
    ],
)
def test_bad_arguments_raise(architecture, kwargs, match):
    arguments = {"input_shape": (8, 8, 1), "num_classes": 3, **kwargs}
    with pytest.raises(ValueError, match=match):
        models.build_model(architecture, **arguments)


def test_build_model_signature_is_the_contract():
    parameters = inspect.signature(models.build_model).parameters
    assert list(parameters) == [
        "architecture",
        "input_shape",
        "num_classes",
        "head",
        "l2",
        "seed",
        "ensemble_size",  # the heads of a MIMO / rank-1 model (default 1)
        "kwargs",
    ]
    assert parameters["ensemble_size"].default == 1
