"""`het-ensembles compare` on two tiny configs: numbers against the evaluator's and numpy's."""

import json
import os
from pathlib import Path

import numpy as np
import pytest

from het_ensembles import metrics
from het_ensembles.experiments import compare

CONFIG = """
from het_ensembles import training


def get_config():
    config = training.default_config()
    config.dataset = "npz:{npz}"
    config.model = "mlp"
    config.model_kwargs = {{"hidden_units": (8,)}}
    config.per_core_batch_size = 16
    config.train_epochs = 2
    config.base_learning_rate = 1.0
    config.warmup_epochs = 0
    config.head = "{head}"
    config.num_factors = 2
    config.train_mc_samples = 8
    config.test_mc_samples = 16
    return config
"""


@pytest.fixture(scope="module")
def configs(tmp_path_factory):
    root = tmp_path_factory.mktemp("compare")
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(3, 6))

    def split(n):
        y = rng.integers(0, 3, n)
        return (centers[y] + 1.5 * rng.normal(size=(n, 6))).astype(np.float32), y

    (x_train, y_train), (x_test, y_test) = split(96), split(40)
    npz = root / "set.npz"
    np.savez(npz, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    paths = []
    for head in ("deterministic", "heteroscedastic"):
        path = root / f"{head}.py"
        path.write_text(CONFIG.format(npz=npz, head=head))
        paths.append(str(path))
    return root, paths


def test_compare_reports_spread_and_paired_intervals(configs, capsys):
    root, paths = configs
    out = str(root / "out")
    status = compare.cli_main(
        ["--configs", *paths, "--seeds", "2", "--output_dir", out, "--no_progress"]
    )
    assert status == 0
    printed = capsys.readouterr().out
    assert "heteroscedastic - deterministic (paired bootstrap 95%" in printed
    summary = json.loads(Path(out, "comparison.json").read_text())
    assert list(summary["configs"]) == ["deterministic", "heteroscedastic"]
    (pair,) = summary["pairs"]
    for name in ("deterministic", "heteroscedastic"):
        evaluated = json.loads(Path(out, "eval", name, "metrics.json").read_text())
        result = next(iter(evaluated.values()))
        members = [result["members"][s] for s in ("0", "1")]
        row = summary["configs"][name]
        for metric in ("accuracy", "nll", "ece"):
            values = [m[metric] for m in members]
            assert row["member_mean"][metric] == pytest.approx(np.mean(values))
            assert row["member_std"][metric] == pytest.approx(np.std(values, ddof=1))
            assert row["ensemble"][metric] == pytest.approx(result["ensemble"][metric])
            assert pair["ensemble_difference"][metric]["a" if name == "deterministic" else "b"] == (
                pytest.approx(result["ensemble"][metric])
            )
    for metric in ("accuracy", "nll", "ece"):
        d = pair["ensemble_difference"][metric]
        assert d["low"] <= d["difference"] <= d["high"]
        het = summary["configs"]["heteroscedastic"]
        det = summary["configs"]["deterministic"]
        assert np.mean(pair["member_differences"][metric]) == pytest.approx(
            het["member_mean"][metric] - det["member_mean"][metric]
        )
    # The ensemble NLL difference, from the cached predictions with numpy.
    from het_ensembles import evaluation

    nlls = []
    for name in ("deterministic", "heteroscedastic"):
        labels, log_probs = evaluation.cached_predictions(
            os.path.join(out, "eval", name),
            [os.path.join(out, "members", name, s) for s in ("0", "1")],
            summary["dataset"],
        )
        nlls.append(metrics.ensemble_nll(labels, log_probs))
    assert pair["ensemble_difference"]["nll"]["difference"] == pytest.approx(nlls[1] - nlls[0])
    # Run again: every member is reused, the numbers are the same.
    assert compare.compare(paths, out, seeds=2, progress=False) == summary


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--seeds", "0"], "seeds must be an integer >= 1"),
        (["--dataset", "nope"], "Unknown dataset"),
    ],
)
def test_bad_arguments(configs, tmp_path, capsys, argv, message):
    _, paths = configs
    base = ["--configs", *paths, "--output_dir", str(tmp_path / "out"), "--no_progress"]
    assert compare.cli_main(base + argv) == 2
    assert message in capsys.readouterr().err


def test_one_config_is_not_a_comparison(configs, tmp_path, capsys):
    _, paths = configs
    argv = ["--configs", paths[0], "--output_dir", str(tmp_path / "out")]
    assert compare.cli_main(argv) == 2
    assert "two or more configs" in capsys.readouterr().err


def test_a_temperature_grid_is_chosen_on_validation_first(configs, tmp_path):
    root, paths = configs
    tuned = root / "heteroscedastic_tuned.py"
    tuned.write_text(
        Path(paths[1])
        .read_text()
        .replace(
            "    return config",
            "    config.validation_fraction = 0.25\n"
            "    config.temperature_grid = (0.5, 2.0)\n"
            "    return config",
        )
    )
    out = tmp_path / "out"
    summary = compare.compare([paths[0], str(tuned)], str(out), seeds=1, progress=False)
    choice = summary["configs"]["heteroscedastic_tuned"]["temperature_choice"]
    assert choice["grid"] == [0.5, 2.0]
    assert choice["temperature"] == min(choice["grid"], key=lambda t: choice["val_nll"][repr(t)])
    stored = json.loads(
        Path(out, "members", "heteroscedastic_tuned", "0", "config.json").read_text()
    )
    assert stored["temperature"] == choice["temperature"] and stored["temperature_grid"] == []
    assert summary["configs"]["deterministic"]["temperature_choice"] is None
