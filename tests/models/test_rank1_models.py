"""The rank-1 models: uncertainty-baselines' resnet50_het_rank1 parameter count (59.0M on the
ImageNet leaderboard) from a closed form, the member layout of the tiled batch, saving."""

import numpy as np
import pytest
from model_counts import RESNET50_BLOCKS, RESNET_FILTERS

from het_ensembles import models

HET_HEAD = {
    "type": "MCSoftmaxDenseFA",
    "num_factors": 15,
    "temperature": 1.5,
    "train_mc_samples": 5000,
    "test_mc_samples": 5000,
    "share_samples_across_batch": True,
}


def rank1_resnet50_count(members, classes=1000, factors=15):
    """Closed form of edward2's count_params for resnet50_het_rank1: every conv kernel, its
    rank-1 factors (alpha [M, in] and gamma [M, out], a mean and a stddev each), batch norm's
    four vectors per channel, and the three DenseRank1 head layers (kernel, factors and a
    per-member bias [M, units])."""
    convs = [(7 * 7 * 3 * 64, 3, 64)]  # (kernel weights, in, out)
    bn = 64
    channels = 64
    for (f1, f2, f3), blocks in zip(RESNET_FILTERS, RESNET50_BLOCKS):
        for block in range(blocks):
            convs += [(channels * f1, channels, f1), (9 * f1 * f2, f1, f2), (f2 * f3, f2, f3)]
            bn += f1 + f2 + f3
            if block == 0:
                convs.append((channels * f3, channels, f3))
                bn += f3
            channels = f3
    total = sum(k + 2 * members * (i + o) for k, i, o in convs) + 4 * bn
    for units in (classes * factors, classes, classes):
        total += 2048 * units + 2 * members * (2048 + units) + members * units
    return total


def test_resnet50_rank1_matches_the_leaderboard_count():
    model = models.build_model(
        "resnet50_rank1",
        input_shape=(224, 224, 3),
        num_classes=1000,
        head=HET_HEAD,
        l2=7e-5,
        seed=0,
        ensemble_size=4,
    )
    assert model.output_shape == (None, 4, 1000)
    assert model.count_params() == rank1_resnet50_count(4)
    assert abs(model.count_params() - 59.0e6) < 0.1e6  # leaderboard: 59.0M
    names = {layer.name for layer in model.layers}
    assert {"conv1", "bn_conv1", "res2a_branch1", "res5c_branch2c", "bn5c_branch2c"} <= names
    head = model.get_layer("head")
    assert type(head).__name__ == "MCSoftmaxDenseFACustomLayers"
    assert head.eps == 1e-5 and head.share_samples_across_batch
    assert head.diag_layer.ensemble_activation.__name__ == "softplus"
    # L2 on kernels and the dense layers' per-member biases, none on factors or batch norm.
    regularised = {w.path.split("/")[-1] for w in model.weights if w.regularizer is not None}
    assert regularised == {"kernel", "ensemble_bias"}


def _small(seed=0, members=3):
    return models.build_model(
        "small_cnn_rank1",
        input_shape=(8, 8, 1),
        num_classes=4,
        head={**HET_HEAD, "num_factors": 2, "train_mc_samples": 50, "test_mc_samples": 50},
        seed=seed,
        ensemble_size=members,
        filters=(4,),
        hidden_units=8,
    )


def test_heads_are_members_and_inference_does_not_depend_on_the_batch():
    model = _small()
    x = np.random.RandomState(0).rand(5, 8, 8, 1).astype("float32")
    logits = model(x, training=False).numpy()
    assert logits.shape == (5, 3, 4)
    assert np.abs(logits[:, 0] - logits[:, 1]).max() > 1e-4  # members differ
    np.testing.assert_allclose(model(x[2:3], training=False)[0], logits[2], rtol=1e-5, atol=1e-6)
    # Member 1's output-side factor of the loc layer moves head 1 only.
    mean = model.get_layer("head").loc_layer.factors["gamma"][0]
    mean.assign(mean.numpy() * np.array([[1.0], [3.0], [1.0]], "float32"))
    changed = model(x, training=False).numpy()
    np.testing.assert_allclose(changed[:, [0, 2]], logits[:, [0, 2]], rtol=1e-5, atol=1e-6)
    assert np.abs(changed[:, 1] - logits[:, 1]).max() > 1e-4


def test_saved_model_predicts_the_same(tmp_path):
    import keras

    model = _small(seed=3)
    x = np.random.RandomState(1).rand(4, 8, 8, 1).astype("float32")
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    np.testing.assert_allclose(loaded(x), model(x), rtol=1e-5, atol=1e-6)


def test_bad_options_are_refused():
    with pytest.raises(ValueError, match="use_ensemble_bn"):
        models.build_model(
            "resnet50_rank1",
            input_shape=(32, 32, 3),
            num_classes=10,
            ensemble_size=2,
            use_ensemble_bn=True,
        )
    with pytest.raises(ValueError, match="prior_std"):
        models.build_model("small_cnn_rank1", input_shape=(8, 8, 1), num_classes=3, prior_std=1)
    with pytest.raises(ValueError, match="ensemble_size"):
        models.build_model("small_cnn", input_shape=(8, 8, 1), num_classes=3, ensemble_size=2)
