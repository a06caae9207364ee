"""configs/imagenet/heteroscedastic_rank1.py against het_rank1_bnn.py's flags, field by field.

Reference: google/uncertainty-baselines commit 163351d4, `baselines/imagenet/het_rank1_bnn.py`
(the comment on each value names its line) and `uncertainty_baselines/models/
resnet50_het_rank1.py` (the head's arguments). The config is `configs/imagenet/
heteroscedastic.py` with these fields set and nothing else changed.
"""

import os

import pytest

from het_ensembles import training

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RANK1 = {
    "model": "resnet50_rank1",  # ub.models.resnet50_het_rank1 (:184)
    "ensemble_size": 4,  # :70
    "kl_annealing_epochs": 120,  # :56
    "per_core_batch_size": 32,  # :71 128, // ensemble_size (:134)
    "train_epochs": 180,  # :91
    "base_learning_rate": 0.1,  # :75, `* batch_size / 256` (:215)
    "one_minus_momentum": 0.1,  # :77
    "l2": 7e-5,  # :84
    "use_bfloat16": False,  # :105
    "checkpoint_interval": 30,  # :95
    "num_bins": 15,  # :100
    "seed": 0,  # :74
    "num_factors": 15,  # :111
    "temperature": 1.5,  # :113
    "train_mc_samples": 5000,  # :115 --num_mc_samples, train_mc_samples=...
    "test_mc_samples": 5000,  # ... and test_mc_samples (resnet50_het_rank1.py)
    "share_samples_across_batch": True,  # resnet50_het_rank1.py's head
    "lr_decay_epochs": (30, 60, 80),  # `(FLAGS.train_epochs * 30) // 90`, ... (:218-222)
    "lr_decay_base_epochs": 90,
    "warmup_epochs": 5,  # :228
    "nesterov": True,  # :231
    "head": "heteroscedastic",
    "head_class": "MCSoftmaxDenseFA",  # MCSoftmaxDenseFACustomLayers in the model
}
MODEL_KWARGS = {
    "alpha_initializer": "trainable_normal",  # :58
    "gamma_initializer": "trainable_normal",  # :60
    "alpha_regularizer": "normal_kl_divergence",  # :62
    "gamma_regularizer": "normal_kl_divergence",  # :64
    "use_additive_perturbation": False,  # :66
    "random_sign_init": 0.75,  # :72
    "dropout_rate": 1e-3,  # :78
    "prior_stddev": 0.05,  # :81
    "use_ensemble_bn": False,  # :101
}


def _load(name):
    return training.load_config(os.path.join(REPO, "configs", f"{name}.py")).to_dict()


def test_imagenet_rank1_config_is_the_script_field_by_field():
    config = _load("imagenet/heteroscedastic_rank1")
    assert {k: config[k] for k in RANK1} == RANK1
    assert config["model_kwargs"] == MODEL_KWARGS
    changed = {k for k, v in config.items() if _load("imagenet/heteroscedastic")[k] != v}
    assert changed == {
        "model",
        "model_kwargs",
        "ensemble_size",
        "kl_annealing_epochs",
        "per_core_batch_size",
        "l2",
        "use_bfloat16",
        "checkpoint_interval",
    }
    training.validate_config(training.complete_config(config), num_classes=1000)


def test_rank1_configs_docstrings_name_the_script_commit_and_command():
    for name in ("imagenet/heteroscedastic_rank1", "noisy_digits/heteroscedastic_rank1"):
        with open(os.path.join(REPO, "configs", f"{name}.py")) as f:
            source = " ".join(f.read().split())
        assert "`baselines/imagenet/het_rank1_bnn.py`" in source
        assert "163351d4" in source
        assert f"het-ensembles train --config=configs/{name}.py" in source


def test_imagenet_rank1_config_trains_one_step_on_mock_imagenet(tmp_path):
    """The config (M = 4, its rank-1 flags, KL annealing, head) for one step of 2 images (8
    rows) under `tfds.testing.mock_data`, then one test batch scored as the heads' mean; the
    backbone is small_cnn_rank1 (the ResNet-50 takes 90 s here; tests/models counts it)."""
    import math

    import tensorflow_datasets as tfds

    config = training.load_config(os.path.join(REPO, "configs/imagenet/heteroscedastic_rank1.py"))
    config.update(
        {
            "per_core_batch_size": 2,
            "train_epochs": 1,
            "steps_per_epoch": 1,
            "eval_steps": 1,
            "train_mc_samples": 8,
            "test_mc_samples": 8,
            "image_size": 16,
            "model": "small_cnn_rank1",
        }
    )
    with tfds.testing.mock_data(num_examples=4):
        results = training.train_and_evaluate(config, str(tmp_path / "member"))
    assert results["train/steps"] == 1
    assert results["train/kl_scale"] == pytest.approx(1 / 120)  # (0 + 1) / (1 step x 120)
    for key in ("train/kl", "train/elbo", "test/nll", "test/kl", "test/elbo", "test/gibbs_nll"):
        assert math.isfinite(results[key]), key
    assert {f"test/nll_member_{i}" for i in range(4)} <= set(results)
