"""MIMO models (models/mimo.py): input stacking, heads, the test-time tiling, parameter count.

References: the stacking is uncertainty-baselines' Permute([2, 3, 4, 1]) + Reshape written in
numpy; the ResNet-50 count is the closed form of tests/model_counts.py plus the first conv's
extra input channels and edward2's MultiHeadMCSoftmaxDenseFA weights (loc, diag, factors of
M x K outputs), against the leaderboard's 93.2M.
"""

import keras
import numpy as np
import pytest
from model_counts import resnet_trunk_counts

from het_ensembles import models, training
from het_ensembles.models import mimo
from het_ensembles.training import trainer

HET = {"type": "MCSoftmaxDenseFA", "num_factors": 3, "temperature": 1.0}


def _small(heads=3, head=None, **kwargs):
    return models.build_model(
        "small_cnn_mimo",
        input_shape=(8, 8, 2),
        num_classes=5,
        head=head,
        seed=0,
        ensemble_size=heads,
        filters=(4,),
        hidden_units=8,
        **kwargs,
    )


def test_inputs_are_stacked_in_channels_as_the_reference():
    model = _small()
    x = np.random.default_rng(0).normal(size=(4, 3, 8, 8, 2)).astype(np.float32)
    pack = keras.Model(model.input, model.get_layer(mimo.PACK_NAME).output)
    # [B, M, H, W, C] -> [B, H, W, C, M] -> [B, H, W, C * M]: channel c * M + m.
    expected = np.transpose(x, (0, 2, 3, 4, 1)).reshape(4, 8, 8, 6)
    np.testing.assert_array_equal(pack(x).numpy(), expected)
    assert expected[0, 0, 0, 1 * 3 + 2] == x[0, 2, 0, 0, 1]


@pytest.mark.parametrize(
    "head,share,layer",
    [
        (None, True, "Dense"),
        (HET, True, "MultiHeadMCSoftmaxDenseFA"),
        (HET, False, "MCSoftmaxDenseFA"),
    ],
)
def test_heads_output_shape_and_member_model(head, share, layer):
    model = _small(head=head, share_het_layer=share)
    assert model.input_shape == (None, 3, 8, 8, 2)
    assert model.output_shape == (None, 3, 5)
    name = "head" if share else "head_1"
    assert type(model.get_layer(name)).__name__ == layer
    member = mimo.member_model(model)
    assert member.input_shape == (None, 8, 8, 2) and member.output_shape == (None, 3, 5)
    x = np.random.default_rng(1).normal(size=(4, 8, 8, 2)).astype(np.float32)
    tiled = np.repeat(x[:, None], 3, axis=1)
    np.testing.assert_allclose(member(x).numpy(), model(tiled).numpy(), rtol=1e-5, atol=1e-6)
    assert mimo.member_model(member) is member  # not a training model: unchanged


def test_separate_heads_are_independent():
    model = _small(head=HET, share_het_layer=False)
    x = np.random.default_rng(2).normal(size=(4, 3, 8, 8, 2)).astype(np.float32)
    before = model(x).numpy()
    layer = model.get_layer("head_1")
    layer.set_weights([w * 0.5 for w in layer.get_weights()])
    after = model(x).numpy()
    np.testing.assert_array_equal(after[:, [0, 2]], before[:, [0, 2]])
    assert not np.allclose(after[:, 1], before[:, 1])


def test_heads_see_their_own_input():
    model = _small()
    x = np.random.default_rng(3).normal(size=(2, 3, 8, 8, 2)).astype(np.float32)
    changed = x.copy()
    changed[:, 2] += 1.0  # only head 2's image
    assert not np.allclose(model(x).numpy(), model(changed).numpy())
    assert not np.allclose(model(x).numpy()[:, 0], model(x).numpy()[:, 1])  # heads differ


def test_resnet50_het_mimo_has_the_published_parameter_count():
    """Built from configs/imagenet/heteroscedastic_mimo.py, as the trainer builds it."""
    config = training.complete_config(
        training.load_config("configs/imagenet/heteroscedastic_mimo.py")
    )
    config.use_bfloat16 = False
    model = trainer.create_model(config, input_shape=(224, 224, 3), num_classes=1000)
    assert type(model.get_layer("head")).__name__ == "MultiHeadMCSoftmaxDenseFA"
    trunk, bn_channels = resnet_trunk_counts()
    extra_conv1 = 7 * 7 * 3 * 64  # conv1 sees 2 x 3 channels
    outputs, features = 2 * 1000, 2048
    fa_head = 2 * (features * outputs + outputs) + features * outputs * 15 + outputs * 15
    assert model.count_params() == trunk + extra_conv1 + fa_head + 2 * bn_channels == 93_236_560
    assert abs(model.count_params() - 93.2e6) < 0.1e6  # leaderboard: 93.2M
    assert model.output_shape == (None, 2, 1000)


def test_bad_values():
    with pytest.raises(ValueError, match="has one head; ensemble_size > 1 needs a MIMO"):
        models.build_model("small_cnn", input_shape=(8, 8, 1), num_classes=5, ensemble_size=2)
    with pytest.raises(ValueError, match="ensemble_size must be an integer >= 1"):
        _small(heads=0)
    with pytest.raises(ValueError, match="head must be one of"):
        _small(head={"type": "MCSoftmaxDense", "temperature": 1.0})
    with pytest.raises(ValueError, match="stacks images"):
        models.build_model("small_cnn_mimo", input_shape=(8,), num_classes=5, ensemble_size=2)
    with pytest.raises(ValueError, match="width_multiplier must be an integer >= 1"):
        models.build_model(
            "resnet50_mimo", input_shape=(32, 32, 3), num_classes=5, width_multiplier=0
        )
