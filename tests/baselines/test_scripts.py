"""Each baselines script trains 2 short epochs on `tfds.testing.mock_data` and leaves a member.

The scripts are run in-process through their `main(argv)`, exactly as `python <script> ...`
would call it, with the real configs and only size overrides: 16 x 16 ImageNet crops and a
small CNN instead of ResNet-50, WRN-10-1 instead of WRN-28-10, 2 steps per epoch, 16 MC
samples.
"""

import json
import math
import os
import runpy

import keras
import numpy as np
import pytest
import tensorflow_datasets as tfds
from baseline_smoke import CIFAR, COMMON, HET, IMAGENET

import het_ensembles  # noqa: F401  (registers the layers model.keras needs)

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# script -> (overrides, expected config.json fields, head layer class, num_classes)
SCRIPTS = {
    "imagenet/deterministic": (IMAGENET, {"head": "deterministic", "l2": 1e-4}, "Dense", 1000),
    "imagenet/heteroscedastic": (
        IMAGENET + HET,
        {"head": "heteroscedastic", "num_factors": 15, "temperature": 1.5, "test_mc_samples": 16},
        "MCSoftmaxDenseFA",
        1000,
    ),
    "cifar/deterministic": (
        CIFAR,
        {"head": "deterministic", "l2": 2e-4, "model_kwargs": {"depth": 10, "width_multiplier": 1}},
        "Dense",
        10,
    ),
    "cifar/heteroscedastic": (
        CIFAR + HET,
        {"head": "heteroscedastic", "num_factors": 6, "temperature": 1.3, "train_mc_samples": 16},
        "MCSoftmaxDenseFA",
        10,
    ),
}


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_script_trains_two_epochs_and_leaves_a_loadable_member(script, tmp_path):
    overrides, expected_config, head_class, num_classes = SCRIPTS[script]
    path = os.path.join(REPO, "baselines", f"{script}.py")
    main = runpy.run_path(path)["main"]
    out = str(tmp_path / "member")
    with tfds.testing.mock_data(num_examples=8):
        assert main([path, *COMMON, *overrides, f"--output_dir={out}"]) == 0

    assert sorted(os.listdir(out)) == [
        "checkpoints",
        "config.json",
        "logs",
        "metrics.json",
        "model.keras",
    ]
    with open(os.path.join(out, "config.json")) as f:
        config = json.load(f)
    assert config["seed"] == 3 and config["num_classes"] == num_classes
    assert {k: config[k] for k in expected_config} == expected_config
    with open(os.path.join(out, "metrics.json")) as f:
        results = json.load(f)
    assert results["train/epochs"] == 2 and results["train/steps"] == 4
    assert results["test/num_examples"] == 4  # eval_steps=2 batches of 2
    assert all(math.isfinite(results[f"test/{k}"]) for k in ("nll", "accuracy", "ece"))

    model = keras.saving.load_model(os.path.join(out, "model.keras"))
    assert type(model.get_layer("head")).__name__ == head_class
    x = np.zeros((2, *model.input_shape[1:]), np.float32)
    assert model.predict(x, verbose=0).shape == (2, num_classes)
