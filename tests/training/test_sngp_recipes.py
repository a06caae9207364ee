"""The SNGP / HetSNGP recipes: config values against uncertainty-baselines' flag defaults, one
training step of each config on `tfds.testing.mock_data`, the per-epoch covariance reset, and a
HetSNGP member trained, saved and loaded through the `het-ensembles train` console script.

Reference values: google/uncertainty-baselines at commit 163351d4 (2026-03-24), flag defaults of
`baselines/{cifar,imagenet}/{sngp,hetsngp}.py` (+ `baselines/cifar/utils.py`) and the arguments
fixed in `uncertainty_baselines/models/{wide_resnet,resnet50}_{sngp,hetsngp}.py`.
"""

import json
import math
import os

import console
import keras
import numpy as np
import pytest
import tensorflow_datasets as tfds

from het_ensembles import layers, training
from het_ensembles.training.covariance_reset import CovarianceReset

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SPEC_NORM = {"use_spec_norm": True, "spec_norm_iteration": 1, "spec_norm_bound": 6.0}
GP = {  # the GP flags shared by the four scripts
    "gp_hidden_dim": 1024,
    "gp_bias": 0.0,
    "gp_random_feature_type": "orf",
    "gp_cov_ridge_penalty": 1.0,
    "gp_cov_discount_factor": -1.0,
}
EXPECTED = {
    "cifar/sngp": {
        **GP,
        "head": "sngp",
        "model": "wide_resnet",
        "gp_scale": 1.0,
        "gp_input_normalization": False,
        "gp_mean_field_factor": 20.0,
        "scale_random_features": False,
        "train_epochs": 200,
        "l2": 2e-4,
        "model_kwargs": {"depth": 28, "width_multiplier": 10, "dropout_rate": 0.1, **SPEC_NORM},
    },
    "cifar/hetsngp": {
        **GP,
        "head": "hetsngp",
        "model": "wide_resnet",
        "gp_scale": 2.0,
        "gp_input_normalization": True,
        "num_factors": 6,
        "temperature": 0.3,
        "train_mc_samples": 100,
        "test_mc_samples": 100,
        "share_samples_across_batch": True,
        "sngp_var_weight": 1.0,
        "het_var_weight": 1.0,
        "scale_random_features": True,
        "model_kwargs": {
            "depth": 28,
            "width_multiplier": 10,
            "dropout_rate": 0.1,
            "gp_input_dim": 128,
            **SPEC_NORM,
        },
    },
    "imagenet/sngp": {
        **GP,
        "head": "sngp",
        "model": "resnet50",
        "gp_scale": 1.0,
        "train_epochs": 90,
        "base_learning_rate": 0.1,
        "use_bfloat16": False,
        "gp_mean_field_factor": 1.0,
        "gp_output_imagenet_initializer": True,
        "scale_random_features": False,
        "gp_input_normalization": False,
        "model_kwargs": SPEC_NORM,
    },
    "imagenet/hetsngp": {
        **GP,
        "head": "hetsngp",
        "model": "resnet50",
        "gp_scale": 1.0,
        "train_epochs": 270,
        "base_learning_rate": 0.07,
        "use_bfloat16": True,
        "num_factors": 15,
        "temperature": 1.25,
        "train_mc_samples": 5000,
        "test_mc_samples": 5000,
        "share_samples_across_batch": True,
        "gp_output_imagenet_initializer": True,
        "scale_random_features": False,
        "gp_input_normalization": False,
        "sngp_var_weight": 1.0,
        "het_var_weight": 1.0,
        "l2": 1e-4,
        "per_core_batch_size": 128,
        "lr_decay_epochs": (30, 60, 80),
        "lr_decay_base_epochs": 90,
        "model_kwargs": SPEC_NORM,
    },
}
SMOKE = {  # small sizes for one step
    "per_core_batch_size": 2,
    "train_epochs": 1,
    "steps_per_epoch": 1,
    "eval_steps": 1,
    "gp_hidden_dim": 32,
    "train_mc_samples": 8,
    "test_mc_samples": 8,
    "use_bfloat16": False,
}


def _config(name):
    return training.complete_config(
        training.load_config(os.path.join(REPO, "configs", f"{name}.py"))
    )


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_config_matches_the_scripts_flag_defaults(name):
    config = _config(name).to_dict()
    got = {key: config[key] for key in EXPECTED[name]}
    got["model_kwargs"] = dict(got["model_kwargs"])
    assert got == EXPECTED[name]
    training.validate_config(training.complete_config(config), num_classes=100)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_config_trains_one_step_on_mock_data(name, tmp_path):
    config = _config(name)
    config.update(SMOKE)
    if name != "imagenet/hetsngp":  # ResNet-50 once (about a minute); WRN-10-1 elsewhere
        config.model = "wide_resnet"
        config.model_kwargs.update(depth=10, width_multiplier=1)
    config.image_size = 32
    with tfds.testing.mock_data(num_examples=4):
        results = training.train_and_evaluate(config, str(tmp_path))
    assert results["train/steps"] == 1
    assert all(math.isfinite(results[f"test/{k}"]) for k in ("nll", "accuracy", "ece"))
    model = keras.saving.load_model(tmp_path / "model.keras")
    head = model.get_layer("head")
    want = {"sngp": layers.RandomFeatureGaussianProcess, "hetsngp": layers.HeteroscedasticSNGPLayer}
    assert type(head) is want[config.head]
    wrapped = [
        layer for layer in model.layers if isinstance(layer, layers.SpectralNormalizationConv2D)
    ]
    assert wrapped and all(layer.norm_multiplier == 6.0 for layer in wrapped)


def test_covariance_reset_zeroes_exact_precision_only():
    exact = layers.RandomFeatureGaussianProcess(
        2, num_inducing=4, gp_cov_momentum=-1, seed=0, name="exact"
    )
    moving = layers.RandomFeatureGaussianProcess(
        2, num_inducing=4, gp_cov_momentum=0.9, seed=1, name="moving"
    )
    inputs = keras.Input((3,))
    model = keras.Model(inputs, [exact(inputs)[0], moving(inputs)[0]])
    x = np.random.RandomState(0).randn(5, 3).astype("float32")
    exact(x, training=True)
    moving(x, training=True)
    callback = CovarianceReset()
    callback.set_model(model)
    callback.on_epoch_begin(1)
    assert not exact._gp_cov_layer.precision_matrix.numpy().any()
    assert moving._gp_cov_layer.precision_matrix.numpy().any()


def test_hetsngp_member_through_the_console_script(tmp_path):
    config = tmp_path / "hetsngp_digits.py"
    config.write_text(
        "import os\n"
        "from het_ensembles import training\n\n\n"
        "def get_config():\n"
        f"    config = training.load_config({os.path.join(REPO, 'configs', 'noisy_digits', 'deterministic.py')!r})\n"
        "    config.head = 'hetsngp'\n"
        "    config.num_factors = 3\n"
        "    config.temperature = 1.0\n"
        "    config.gp_hidden_dim = 64\n"
        "    config.train_mc_samples = 16\n"
        "    config.test_mc_samples = 16\n"
        "    config.train_epochs = 5\n"
        "    return config\n"
    )
    console.run(["train", f"--config={config}", "--output_dir=member"], tmp_path)
    with open(tmp_path / "member" / "metrics.json") as f:
        results = json.load(f)
    assert math.isfinite(results["test/nll"]) and results["test/accuracy"] > 0.2  # chance 0.1
    done = console.python(
        """
        import json, sys
        import numpy as np
        import het_ensembles, keras
        model = keras.saving.load_model("member/model.keras")
        head = model.get_layer("head")
        x = np.random.default_rng(0).normal(size=(4, *model.input_shape[1:])).astype("float32")
        p = model.predict(x, verbose=0)
        precision = head.sngp_layer._gp_cov_layer.precision_matrix.numpy()
        print(json.dumps({"head": type(head).__name__, "finite": bool(np.isfinite(p).all()),
                          "sum_to_one": float(np.abs(np.exp(p).sum(-1) - 1).max()),
                          "precision_trace": float(np.trace(precision))}))
        """,
        tmp_path,
    )
    got = console.last_json(done.stdout)
    assert got["head"] == "HeteroscedasticSNGPLayer" and got["finite"]
    assert got["sum_to_one"] < 1e-4
    assert got["precision_trace"] > 0  # the last epoch's features, kept in model.keras


# configs/noisy_digits/{sngp,hetsngp}.py: the CIFAR scripts' GP fields they keep (EXPECTED
# above), the few values chosen on validation (their docstrings), and the small CNN recipe of
# the Hom / Het configs they start from, so the rows differ only in the head.
DIGITS_CHOSEN = {
    "sngp": {"gp_hidden_dim": 128, "gp_mean_field_factor": 1.0, "scale_random_features": False},
    "hetsngp": {
        "gp_hidden_dim": 128,
        "scale_random_features": False,
        "num_factors": 3,
        "temperature": 1.0,
    },
}
DIGITS_FROM = {"sngp": "deterministic", "hetsngp": "heteroscedastic"}
IN_CLASSES = (0, 1, 2, 3, 4, 5, 6, 7)


def test_noisy_digits_recipes_train_on_the_in_distribution_digits(tmp_path):
    from het_ensembles.data import noisy_digits

    arrays = noisy_digits.load_arrays()  # all ten digits; the subset counted here with numpy
    keep = np.isin(arrays["y_test"], IN_CLASSES) & np.isin(arrays["y_test_clean"], IN_CLASSES)
    for name in ("sngp", "hetsngp"):
        config = _config(f"noisy_digits/{name}")
        cifar = EXPECTED[f"cifar/{name}"]
        kept = ("gp_scale", "gp_bias", "gp_input_normalization", "gp_random_feature_type")
        kept += ("gp_cov_ridge_penalty", "gp_cov_discount_factor")
        if name == "hetsngp":
            kept += ("train_mc_samples", "test_mc_samples", "share_samples_across_batch")
            kept += ("sngp_var_weight", "het_var_weight")
        assert {k: config[k] for k in kept} == {k: cifar[k] for k in kept}
        assert {k: config[k] for k in DIGITS_CHOSEN[name]} == DIGITS_CHOSEN[name]
        base = _config(f"noisy_digits/{DIGITS_FROM[name]}")
        recipe = ("model", "l2", "base_learning_rate", "per_core_batch_size")
        assert {k: config[k] for k in recipe} == {k: base[k] for k in recipe}
        # The same small CNN, spectral-normalised as uncertainty-baselines' SNGP recipes.
        assert config.model_kwargs.to_dict() == {**base.model_kwargs.to_dict(), **SPEC_NORM}
        assert config.head == name and config.train_epochs == 40

        output = tmp_path / name
        console.run(
            [
                "train",
                f"--config=configs/noisy_digits/{name}.py",
                "--config.dataset=noisy_digits:classes=" + "+".join(map(str, IN_CLASSES)),
                "--config.train_epochs=1",
                "--config.train_mc_samples=16",
                "--config.test_mc_samples=16",
                f"--output_dir={output}",
            ],
            tmp_path,
        )
        with open(output / "config.json") as f:
            assert json.load(f)["num_classes"] == len(IN_CLASSES)
        with open(output / "metrics.json") as f:
            results = json.load(f)
        assert results["test/num_examples"] == int(keep.sum())
        assert results["train/epochs"] == 1
        assert all(math.isfinite(results[f"test/{k}"]) for k in ("nll", "accuracy", "ece"))
