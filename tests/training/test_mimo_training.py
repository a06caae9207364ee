"""Training MIMO members: the ImageNet config against het_mimo.py's flags, the loss over heads,
bad values, one step of the config on mock ImageNet, and an embedded-data run through the
console script whose heads the evaluator scores as an ensemble.

References: uncertainty-baselines `baselines/imagenet/het_mimo.py` at commit 163351d4 (flag
defaults spelled out below), the cross-entropy written in numpy, and the evaluator's cached
per-head log-probabilities re-scored in numpy.
"""

import json
import math
import os

import console
import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from het_ensembles import training
from het_ensembles.training import losses

CONFIG = "configs/imagenet/heteroscedastic_mimo.py"
# het_mimo.py's flags (and resnet50_het_mimo's fixed arguments) -> our fields.
HET_MIMO = {
    "ensemble_size": 2,  # --ensemble_size
    "input_repetition_probability": 0.6,  # --input_repetition_probability
    "batch_repetitions": 2,  # --batch_repetitions
    "per_core_batch_size": 128,  # --per_core_batch_size
    "seed": 0,  # --seed
    "base_learning_rate": 0.1,  # --base_learning_rate (per 256 distinct images)
    "base_batch_size": 256,
    "one_minus_momentum": 0.1,  # --one_minus_momentum
    "nesterov": True,
    "warmup_epochs": 5,  # warmup_epochs=5 (the --lr_warmup_epochs flag is unused)
    "lr_decay_epochs": (30, 60, 80),  # (train_epochs * e) // 90; --lr_decay_epochs unused
    "lr_decay_base_epochs": 90,
    "lr_decay_ratio": 0.1,
    "l2": 1e-4,  # --l2, kernels and biases
    "train_epochs": 180,  # --train_epochs
    "checkpoint_interval": 25,  # --checkpoint_interval
    "num_bins": 15,  # --num_bins
    "num_factors": 15,  # --num_factors
    "temperature": 1.5,  # --temperature
    "train_mc_samples": 1000,  # --num_mc_samples
    "test_mc_samples": 1000,
    "share_samples_across_batch": True,  # resnet50_het_mimo het_layer_args
    "use_bfloat16": True,  # --use_bfloat16
    "dataset": "imagenet2012",
    "image_size": 224,
    "head": "heteroscedastic",
    "head_class": "MCSoftmaxDenseFA",
    "model": "resnet50_mimo",
    "label_smoothing": 0.0,
    "validation_fraction": 0.0,
    "mixup_alpha": 0.0,
}


def _config():
    return training.complete_config(training.load_config(CONFIG))


def test_config_matches_het_mimo_flags():
    config = _config()
    for name, value in HET_MIMO.items():
        assert config[name] == value, name
    assert config.model_kwargs.to_dict() == {
        "width_multiplier": 1,  # --width_multiplier
        "share_het_layer": True,  # --share_het_layer
        "zero_init_residual": False,  # resnet50_het_mimo: batch norm gammas start at 1
    }
    training.validate_config(config, num_classes=1000)
    with open(CONFIG.replace("configs/", os.path.join(console.REPO, "configs/"))) as f:
        doc = f.read()
    for text in ("het_mimo.py", "163351d4", "0.851", "93.2M", "Heteroscedastic with MIMO"):
        assert text in doc


def test_loss_sums_the_heads_cross_entropies():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(5, 3, 4)).astype(np.float32)
    labels = rng.integers(0, 4, size=(5, 3))
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    per_head = -np.take_along_axis(log_probs, labels[..., None], -1)[..., 0]  # [5, 3]
    summed = losses.CrossEntropy(4).call(tf.constant(labels), tf.constant(logits)).numpy()
    np.testing.assert_allclose(summed, per_head.sum(1), rtol=1e-5)
    mean = losses.CrossEntropy(4, heads="mean").call(tf.constant(labels), tf.constant(logits))
    np.testing.assert_allclose(mean.numpy(), per_head.mean(1), rtol=1e-5)
    shared = losses.CrossEntropy(4).call(tf.constant(labels[:, 0]), tf.constant(logits))
    same = -np.take_along_axis(log_probs, labels[:, :1, None].repeat(3, 1), -1)[..., 0]
    np.testing.assert_allclose(shared.numpy(), same.sum(1), rtol=1e-5)
    correct = losses.top1_correct(tf.constant(labels), tf.constant(logits), 4).numpy()
    np.testing.assert_array_equal(correct, (logits.argmax(-1) == labels).astype(np.float32))
    with pytest.raises(ValueError, match="heads must be one of"):
        losses.CrossEntropy(4, heads="max")


@pytest.mark.parametrize(
    "overrides,field",
    [
        ({"batch_repetitions": 3}, "batch_repetitions"),  # 128 is not a multiple of 3
        ({"batch_repetitions": 0}, "batch_repetitions"),
        ({"input_repetition_probability": 1.5}, "input_repetition_probability"),
        ({"ensemble_size": 0}, "ensemble_size"),
        ({"head_class": "MCSoftmaxDense"}, "head"),
        ({"model": "resnet50", "model_kwargs": {}}, "batch_repetitions"),
        ({"mixup_alpha": 0.2}, "mixup_alpha"),
    ],
)
def test_bad_values(overrides, field):
    config = _config()
    for name, value in overrides.items():
        config[name] = value
    with pytest.raises(training.ConfigError, match=f"config.{field}. Received: {field}="):
        training.validate_config(config, num_classes=1000)


def test_imagenet_config_trains_one_step(tmp_path):
    config = _config()
    config.update(
        {
            "per_core_batch_size": 4,  # 2 distinct images, each twice
            "train_epochs": 1,
            "steps_per_epoch": 1,
            "eval_steps": 1,
            "train_mc_samples": 8,
            "test_mc_samples": 8,
            "use_bfloat16": False,
            "image_size": 16,
            "model": "small_cnn_mimo",  # the ResNet-50 is counted in tests/models
        }
    )
    config.model_kwargs = {"share_het_layer": True}
    with tfds.testing.mock_data(num_examples=8):
        results = training.train_and_evaluate(config, str(tmp_path / "member"))
    assert results["train/steps"] == 1
    assert all(math.isfinite(results[f"test/{k}"]) for k in ("nll", "accuracy", "gibbs_nll"))
    assert {"test/nll_member_0", "test/nll_member_1"} <= set(results)
    model = keras.saving.load_model(tmp_path / "member" / "model.keras")
    assert model.input_shape == (None, 16, 16, 3) and model.output_shape == (None, 2, 1000)
    with open(tmp_path / "member" / "config.json") as f:
        assert json.load(f)["ensemble_size"] == 2


def test_noisy_digits_heads_disagree_and_ensemble_beats_their_mean(tmp_path):
    """The shipped small config for 4 epochs via the console script, then `evaluate`."""
    console.run(
        [
            "train",
            "--config=configs/noisy_digits/heteroscedastic_mimo.py",
            "--config.train_epochs=4",
            "--output_dir=mimo",
        ],
        tmp_path,
    )
    console.run(
        ["evaluate", "--members", "mimo", "--dataset", "noisy_digits", "--output_dir", "eval"],
        tmp_path,
    )
    with open(tmp_path / "eval" / "metrics.json") as f:
        digits = json.load(f)["noisy_digits"]
    assert sorted(digits["members"]) == ["mimo/head0", "mimo/head1", "mimo/head2"]
    cache = tmp_path / "eval" / "predictions" / "noisy_digits"
    labels = np.load(cache / "labels.npy")
    heads = np.stack([np.load(cache / "mimo" / f"head{i}.npy") for i in range(3)]).astype(float)
    rows = np.arange(len(labels))
    head_nll = [-h[rows, labels].mean() for h in heads]
    ensemble = np.log(np.exp(heads).mean(0))
    ensemble_nll = -ensemble[rows, labels].mean()
    argmax = heads.argmax(-1)
    disagreement = np.mean([np.mean(argmax[a] != argmax[b]) for a, b in ((0, 1), (0, 2), (1, 2))])
    probs = np.exp(heads)
    kl = np.mean([(p * (np.log(p) - ensemble)).sum(-1).mean() for p in probs])
    assert digits["ensemble"]["nll"] == pytest.approx(ensemble_nll, rel=1e-5)
    assert digits["member_mean"]["nll"] == pytest.approx(np.mean(head_nll), rel=1e-5)
    assert digits["ensemble"]["disagreement"] == pytest.approx(disagreement)
    # The heads are not copies: they disagree on some argmaxes and their predictions differ.
    assert disagreement > 0.02 and kl > 1e-3
    # Jensen guarantees <=; the margin says how much the heads' ensemble gains.
    assert ensemble_nll < np.mean(head_nll) - 0.005
