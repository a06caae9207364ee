"""The configs carry uncertainty-baselines' hyper-parameters; variants change only their fields.

Reference values are copied from uncertainty-baselines (`baselines/imagenet/deterministic.py`,
`baselines/imagenet/heteroscedastic.py`, `baselines/cifar/utils.py` flags,
`baselines/cifar/heteroscedastic.py`).
"""

import os

import pytest

from het_ensembles import training

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
IMAGENET = {
    "dataset": "imagenet2012",
    "model": "resnet50",
    "image_size": 224,
    "per_core_batch_size": 128,
    "train_epochs": 90,
    "base_learning_rate": 0.1,
    "base_batch_size": 256,
    "one_minus_momentum": 0.1,
    "l2": 1e-4,
    "warmup_epochs": 5,
    "lr_decay_epochs": (30, 60, 80),
    "lr_decay_base_epochs": 90,
    "lr_decay_ratio": 0.1,
    "use_bfloat16": True,
    "label_smoothing": 0.0,
    "head": "deterministic",
}
IMAGENET_HET = {
    "head": "heteroscedastic",
    "head_class": "MCSoftmaxDenseFA",
    "num_factors": 15,
    "temperature": 1.5,
    "train_mc_samples": 1000,
    "test_mc_samples": 5000,
    "parameter_efficient": False,
    "multilabel": False,
}
CIFAR = {
    "dataset": "cifar10",
    "model": "wide_resnet",
    "model_kwargs": {"depth": 28, "width_multiplier": 10},
    "image_size": None,
    "per_core_batch_size": 64,
    "train_epochs": 200,
    "base_learning_rate": 0.1,
    "base_batch_size": 128,
    "one_minus_momentum": 0.1,
    "l2": 2e-4,
    "warmup_epochs": 1,
    "lr_decay_epochs": (60, 120, 160),
    "lr_decay_base_epochs": 200,
    "lr_decay_ratio": 0.2,
    "use_bfloat16": False,
    "head": "deterministic",
}
CIFAR_HET = {
    "head": "heteroscedastic",
    "head_class": "MCSoftmaxDenseFA",
    "num_factors": 6,
    "temperature": 1.3,
    "train_mc_samples": 10000,
    "test_mc_samples": 10000,
}
# config file -> (base config file or None, fields that differ from the base)
CONFIGS = {
    "imagenet/deterministic": (None, IMAGENET),
    "imagenet/heteroscedastic": ("imagenet/deterministic", IMAGENET_HET),
    "imagenet/heteroscedastic_pe": ("imagenet/heteroscedastic", {"parameter_efficient": True}),
    "imagenet/heteroscedastic_sigmoid": (
        "imagenet/heteroscedastic",
        {"head_class": "MCSigmoidDenseFA", "multilabel": True},
    ),
    "cifar/deterministic": (None, CIFAR),
    "cifar/heteroscedastic": ("cifar/deterministic", CIFAR_HET),
    # HET-XL (Collier et al., ICLR 2023): noise in ResNet-50's 2048-d pre-logits, learned tau.
    "imagenet21k/heteroscedastic_hetxl": (
        "imagenet/heteroscedastic",
        {
            "dataset": "npz:imagenet21k.npz",
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
