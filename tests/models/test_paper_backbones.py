"""The paper's other backbones (Collier et al. 2021, Tables 1-3): ResNet-152 v1.5 and
InceptionResNet-v2, checked against He et al.'s Table 1 closed form and Keras' own
`keras.applications.ResNet152` / `InceptionResNetV2` (layer by layer), and ResNet-50 unchanged.

The 224 / 299 models are built once per module and never run on data; forward passes use the
smallest input each network takes.
"""

import collections

import keras
import numpy as np
import pytest
from model_counts import RESNET152_BLOCKS, resnet_trunk_counts

from het_ensembles import models


def count(weights):
    return sum(int(np.prod(w.shape)) for w in weights)


def layers_of(model, kind):
    return [layer for layer in model.layers if isinstance(layer, kind)]


@pytest.fixture(scope="module")
def resnet152():
    return models.build_model(
        "resnet152", input_shape=(224, 224, 3), num_classes=1000, l2=1e-4, seed=0
    )


@pytest.fixture(scope="module")
def keras_resnet152():
    return keras.applications.ResNet152(weights=None)


def test_resnet152_parameter_count_is_60_19m(resnet152):
    trunk, bn_channels = resnet_trunk_counts(RESNET152_BLOCKS)
    trainable = trunk + 2048 * 1000 + 1000
    assert trainable == 60_192_808  # torchvision resnet152's count (the "60.19M")
    assert count(resnet152.trainable_weights) == trainable
    assert resnet152.count_params() == trainable + 2 * bn_channels  # + moving mean / variance


def test_resnet152_matches_keras_resnet152_layer_by_layer(resnet152, keras_resnet152):
    """Same conv kernels and batch norms as Keras' ResNet152; Keras' convs carry biases (ours,
    as uncertainty-baselines' and torchvision's, do not): that is the whole difference."""
    ours = layers_of(resnet152, keras.layers.Conv2D)
    theirs = layers_of(keras_resnet152, keras.layers.Conv2D)
    assert len(ours) == len(theirs) == 1 + 3 * sum(RESNET152_BLOCKS) + 4  # 155
    kernel_shapes = collections.Counter(tuple(c.kernel.shape) for c in ours)
    assert kernel_shapes == collections.Counter(tuple(c.kernel.shape) for c in theirs)
    norms = collections.Counter(
        tuple(b.gamma.shape) for b in layers_of(resnet152, keras.layers.BatchNormalization)
    )
    assert norms == collections.Counter(
        tuple(b.gamma.shape) for b in layers_of(keras_resnet152, keras.layers.BatchNormalization)
    )
    conv_biases = sum(int(c.bias.shape[0]) for c in theirs)
    assert not any(c.use_bias for c in ours)
    assert count(keras_resnet152.trainable_weights) - conv_biases == 60_192_808
    assert count(resnet152.trainable_weights) == 60_192_808
    # v1 (Keras: stride in the first 1x1) vs v1.5 (ours: stride in the 3x3), same shapes.
    assert keras_resnet152.get_layer("conv3_block1_1_conv").strides == (2, 2)
    assert resnet152.get_layer("res3a_branch2a").strides == (1, 1)
    assert resnet152.get_layer("res3a_branch2b").strides == (2, 2)


def test_resnet152_keeps_resnet50_conventions_with_caffe_block_names(resnet152):
    assert resnet152.get_layer("head").input.shape == (None, 2048)
    names = [layer.name for layer in layers_of(resnet152, keras.layers.Conv2D)]
    # Stages of more than 6 blocks: a, b1, b2, ... (Caffe ResNet-152); others: a, b, c.
    assert "res3b7_branch2c" in names and "res4b35_branch2c" in names and "res5c_branch2c" in names
    assert "res2c_branch2a" in names and "res4b36_branch2c" not in names
    assert len(set(names)) == len(names)
    norms = layers_of(resnet152, keras.layers.BatchNormalization)
    assert {(bn.momentum, bn.epsilon) for bn in norms} == {(0.9, 1e-5)}
    zero_gamma = [bn.name for bn in norms if not np.any(bn.gamma.numpy())]
    assert len(zero_gamma) == sum(RESNET152_BLOCKS)  # the last norm of every residual branch
    assert all(name.endswith("_branch2c") for name in zero_gamma)
    assert len(resnet152.losses) == 155 + 2  # L2 on conv kernels and the head's kernel, bias


def test_resnet_depth_is_fixed_by_the_architecture_name():
    with pytest.raises(ValueError, match="Unknown options for resnet152: \\['depth'\\]"):
        models.build_model("resnet152", input_shape=(32, 32, 3), num_classes=3, depth=50)
    with pytest.raises(ValueError, match="Unknown options for resnet50: \\['depth'\\]"):
        models.build_model("resnet50", input_shape=(32, 32, 3), num_classes=3, depth=152)


@pytest.fixture(scope="module")
def inception_resnet_v2():
    return models.build_model(
        "inception_resnet_v2", input_shape=(299, 299, 3), num_classes=1000, l2=1e-4, seed=0
    )


def test_inception_resnet_v2_matches_keras_weight_by_weight(inception_resnet_v2):
    reference = keras.applications.InceptionResNetV2(weights=None)  # with its 1000-class top
    assert reference.count_params() == 55_873_736
    assert inception_resnet_v2.count_params() == 55_873_736
    ours = [tuple(w.shape) for w in inception_resnet_v2.weights]
    assert ours == [tuple(w.shape) for w in reference.weights]
    head = inception_resnet_v2.get_layer("head")
    assert head.input.shape == (None, 1536)
    trunk = inception_resnet_v2.count_params() - count(head.weights)
    assert trunk == 54_336_736  # Keras: include_top=False
    assert count(inception_resnet_v2.trainable_weights) == count(reference.trainable_weights)


def test_inception_resnet_v2_l2_on_every_conv_kernel_and_bias(inception_resnet_v2):
    convs = layers_of(inception_resnet_v2, keras.layers.Conv2D)
    penalised = [c.kernel for c in convs] + [c.bias for c in convs if c.use_bias]
    head = inception_resnet_v2.get_layer("head")
    penalised += [head.kernel, head.bias]
    assert len(inception_resnet_v2.losses) == len(penalised) == 244 + 40 + 2
    expected = 1e-4 * sum(float(np.sum(np.square(w.numpy(), dtype=np.float64))) for w in penalised)
    total = sum(float(loss) for loss in inception_resnet_v2.losses)
    np.testing.assert_allclose(total, expected, rtol=1e-4)


def test_inception_resnet_v2_seeded_runs_saves_and_reloads_with_its_l2(
    inception_resnet_v2, tmp_path
):
    """The seed fixes every weight (unseeded, Keras' initializers would draw from its global
    RNG, which moves between builds); the reloaded model.keras predicts the same and keeps L2."""
    model = models.build_model(
        "inception_resnet_v2", input_shape=(75, 75, 3), num_classes=1000, seed=0, l2=1e-3
    )
    for a, b in zip(model.weights, inception_resnet_v2.weights, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    # glorot_uniform: U(-l, l) with l = sqrt(6 / (fan_in + fan_out)) (Keras' own initializer).
    stem = model.weights[0].numpy()  # the first conv: 3x3x3x32
    limit = np.sqrt(6 / (3 * 3 * 3 + 3 * 3 * 32))
    assert stem.shape == (3, 3, 3, 32)
    assert 0.9 * limit < np.abs(stem).max() <= limit
    assert abs(stem.std() / (limit / np.sqrt(3)) - 1) < 0.1
    x = np.random.default_rng(0).normal(size=(2, 75, 75, 3)).astype(np.float32)
    logits = model(x, training=False).numpy()
    assert logits.shape == (2, 1000) and np.isfinite(logits).all()
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(loaded(x, training=False).numpy(), logits, rtol=1e-4, atol=1e-5)
    assert len(loaded.losses) == len(model.losses) == 244 + 40 + 2
    np.testing.assert_allclose(
        sum(float(v) for v in loaded.losses), sum(float(v) for v in model.losses), rtol=1e-5
    )


@pytest.mark.parametrize("input_shape", [(74, 299, 3), (299, 299, 1), (299, 3)])
def test_inception_resnet_v2_refuses_small_or_grey_images(input_shape):
    with pytest.raises(ValueError, match="input_shape"):
        models.build_model("inception_resnet_v2", input_shape=input_shape, num_classes=3)
