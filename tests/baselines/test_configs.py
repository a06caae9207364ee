"""The configs carry uncertainty-baselines' hyper-parameters; variants change only their fields.

Reference values are read from google/uncertainty-baselines (commit 163351d4, 2026-03-24):
flag defaults of `baselines/imagenet/deterministic.py`, `baselines/imagenet/heteroscedastic.py`,
`baselines/cifar/utils.py`, `baselines/cifar/deterministic.py`, `baselines/cifar/heteroscedastic.py`
and the head arguments fixed in `uncertainty_baselines/models/resnet50_heteroscedastic.py` and
`wide_resnet_heteroscedastic.py`. The comment on each value names the file and line.
"""

import os

import pytest

from het_ensembles import training

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
IMAGENET = {  # baselines/imagenet/deterministic.py
    "seed": 0,  # :47
    "dataset": "imagenet2012",
    "model": "resnet50",  # ub.models.resnet50_deterministic
    "image_size": 224,  # IMAGE_SHAPE
    "per_core_batch_size": 128,  # :46
    "train_epochs": 90,  # :56
    "base_learning_rate": 0.1,  # :48
    "base_batch_size": 256,  # `FLAGS.base_learning_rate * batch_size / 256`
    "one_minus_momentum": 0.1,  # :50
    "l2": 1e-4,  # :51
    "warmup_epochs": 5,  # `warmup_epochs=5`
    "lr_decay_epochs": (30, 60, 80),  # `(FLAGS.train_epochs * 30) // 90`, ...
    "lr_decay_base_epochs": 90,
    "lr_decay_ratio": 0.1,  # `decay_ratio=0.1`
    "use_bfloat16": True,  # :80
    "label_smoothing": 0.0,  # plain categorical cross-entropy
    "num_bins": 15,  # :60
    "checkpoint_interval": 25,  # :57
    "head": "deterministic",
}
IMAGENET_HET = {  # baselines/imagenet/heteroscedastic.py
    "train_epochs": 180,  # :63 (paper Table 7: 180 epochs for the heteroscedastic method)
    "head": "heteroscedastic",
    "head_class": "MCSoftmaxDenseFA",  # --multiclass=True (:101), num_factors > 0
    "num_factors": 15,  # :95
    "temperature": 1.5,  # :97
    "learn_temperature": False,  # --tune_temperature=False (:103)
    "train_mc_samples": 5000,  # --num_mc_samples (:99) -> train_mc_samples
    "test_mc_samples": 5000,  # ... and test_mc_samples (resnet50_heteroscedastic.py:198-199)
    "share_samples_across_batch": True,  # resnet50_heteroscedastic.py:200
    "parameter_efficient": False,
    "multilabel": False,
}
CIFAR = {  # baselines/cifar/utils.py (+ deterministic.py)
    "seed": 42,  # utils.py:76
    "dataset": "cifar10",  # utils.py:42
    "model": "wide_resnet",  # ub.models.wide_resnet(depth=28, width_multiplier=10), version 2
    "model_kwargs": {"depth": 28, "width_multiplier": 10},
    "image_size": None,
    "per_core_batch_size": 64,  # utils.py:70
    "train_epochs": 200,  # utils.py:77
    "base_learning_rate": 0.1,  # utils.py:25
    "base_batch_size": 128,  # `FLAGS.base_learning_rate * batch_size / 128`
    "one_minus_momentum": 0.1,  # utils.py:68
    "l2": 2e-4,  # utils.py:59
    "warmup_epochs": 1,  # utils.py:63 --lr_warmup_epochs
    "lr_decay_epochs": (60, 120, 160),  # utils.py:61, `(e * FLAGS.train_epochs) // 200`
    "lr_decay_base_epochs": 200,
    "lr_decay_ratio": 0.2,  # utils.py:60
    "use_bfloat16": False,  # utils.py:92
    "label_smoothing": 0.0,  # deterministic.py:38
    "num_bins": 15,  # utils.py:67
    "checkpoint_interval": 25,  # utils.py:29
    "head": "deterministic",
}
CIFAR_HET = {  # baselines/cifar/heteroscedastic.py
    "head": "heteroscedastic",
    "head_class": "MCSoftmaxDenseFA",
    "num_factors": 6,  # :70
    "temperature": 1.3,  # :72
    "train_mc_samples": 10000,  # --num_mc_samples (:74) -> train_mc_samples
    "test_mc_samples": 10000,  # ... and test_mc_samples (wide_resnet_heteroscedastic.py:216-217)
    "share_samples_across_batch": True,  # wide_resnet_heteroscedastic.py:218
}
# config file -> (base config file or None, fields that differ from the base)
CONFIGS = {
    "imagenet/deterministic": (None, IMAGENET),
    "imagenet/heteroscedastic": ("imagenet/deterministic", IMAGENET_HET),
    "imagenet/heteroscedastic_pe": ("imagenet/heteroscedastic", {"parameter_efficient": True}),
    "imagenet/heteroscedastic_mixup": (  # heteroscedastic.py's mixup flags (:76-82)
        "imagenet/heteroscedastic",
        {
            "mixup_alpha": 0.2,  # not published for the row (the config's docstring)
            "same_mix_weight_per_batch": False,
            "use_random_shuffling": False,
            "use_truncated_beta": True,
        },
    ),
    "imagenet/heteroscedastic_sigmoid": (
        "imagenet/heteroscedastic",
        {"head_class": "MCSigmoidDenseFA", "multilabel": True},
    ),
    "cifar/deterministic": (None, CIFAR),
    "cifar/heteroscedastic": ("cifar/deterministic", CIFAR_HET),
    "cifar/heteroscedastic_cifar100": ("cifar/heteroscedastic", {"dataset": "cifar100"}),
    # HET-XL (Collier et al., ICLR 2023): noise in ResNet-50's 2048-d pre-logits, learned tau.
    "imagenet21k/heteroscedastic_hetxl": (
        "imagenet/heteroscedastic",
        {
            "dataset": (
                "tfrecord:/path/to/imagenet21k?test_fraction=0.04&num_classes=21843&multilabel=true"
            ),
            "head_class": "MCSigmoidDenseFA",  # the Table 3 data are multi-label
            "multilabel": True,
            "latent_dim": 2048,
            "tune_temperature": True,
            "share_samples_across_batch": True,
        },
    ),
}


def load(name):
    return training.load_config(os.path.join(REPO, "configs", f"{name}.py")).to_dict()


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_config_values_and_difference_from_its_base(name):
    base, fields = CONFIGS[name]
    config = load(name)
    assert {k: config[k] for k in fields} == fields
    if base is not None:  # the base config with these fields set, nothing else changed
        assert config == {**load(base), **fields}
    assert set(config) == set(training.default_config().keys())
    training.validate_config(training.complete_config(config), num_classes=1000)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_config_docstring_has_its_launch_command(name):
    with open(os.path.join(REPO, "configs", f"{name}.py")) as f:
        source = f.read()
    assert f"het-ensembles train --config=configs/{name}.py" in source
    assert "--output_dir=" in source


REFERENCE_SCRIPTS = {  # the uncertainty-baselines script each config's docstring must name
    "imagenet/deterministic": "baselines/imagenet/deterministic.py",
    "imagenet/heteroscedastic": "baselines/imagenet/heteroscedastic.py",
    "imagenet/heteroscedastic_pe": "baselines/imagenet/heteroscedastic.py",
    "imagenet/heteroscedastic_mixup": "baselines/imagenet/heteroscedastic.py",
    "imagenet/heteroscedastic_sigmoid": "baselines/imagenet/heteroscedastic.py",
    "cifar/deterministic": "baselines/cifar/deterministic.py",
    "cifar/heteroscedastic": "baselines/cifar/heteroscedastic.py",
    "cifar/heteroscedastic_cifar100": "baselines/cifar/heteroscedastic.py",
    # A project variant; its docstring names the nearest published recipe and how it differs.
    "imagenet21k/heteroscedastic_hetxl": (
        "baselines/jft/experiments/bit/imagenet21k_bit_resnet50x2_heteroscedastic.py"
    ),
}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_config_docstring_names_the_reference_script_it_reproduces(name):
    with open(os.path.join(REPO, "configs", f"{name}.py")) as f:
        docstring = f.read().split('"""')[1]
    assert "uncertainty-baselines" in docstring
    assert f"`{REFERENCE_SCRIPTS[name]}`" in " ".join(docstring.split())
