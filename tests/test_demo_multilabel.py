"""`het-ensembles demo --multilabel` run as users run it (the console script, tiny configs), and
the shipped `configs/multilabel_digits/*.py`.

The printed table and the files are checked against metrics.json, and metrics.json's gAP and NLL
against values recomputed here from the evaluator's cached predictions: with
`metrics.global_average_precision` and, independently, scikit-learn's average precision of the
pooled (example, label) pairs (gAP with top_k >= K keeps every pair) and a numpy binary
cross-entropy.
"""

import json
import os
import re

import numpy as np
import pytest
import test_demo
from console import run
from sklearn.metrics import average_precision_score

from het_ensembles import training

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = os.path.join(REPO, "configs")
METHODS = {"hom": "Hom", "het_diag": "Het diag", "het": "Het"}

# test_demo's tiny members (1 epoch of 3 steps, a 4-filter CNN, 16 MC samples), on this set.
TINY = test_demo.TINY.replace('"noisy_digits"', '"multilabel_digits"')


@pytest.mark.parametrize(
    "name, head, num_factors",
    [
        ("deterministic.py", "deterministic", None),
        ("heteroscedastic_diag.py", "heteroscedastic", 0),
        ("heteroscedastic.py", "heteroscedastic", 4),
    ],
)
def test_shipped_configs_load_validate_and_build_sigmoid_heads(name, head, num_factors):
    from het_ensembles.training import trainer

    config = training.load_config(os.path.join(CONFIGS, "multilabel_digits", name))
    config, info = trainer.check_config(config)  # the trainer's own validation, with the data
    assert config.dataset == "multilabel_digits" and config.multilabel and info.multilabel
    assert config.head == head
    model = trainer.create_model(config, input_shape=info.input_shape, num_classes=10)
    layer = model.layers[-1]
    if num_factors is None:
        assert type(layer).__name__ == "Dense" and layer.units == 10
    else:
        assert type(layer).__name__ == "MCSigmoidDenseFA"
        assert layer.num_factors == num_factors and float(layer.temperature) == pytest.approx(0.15)


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("ml_demo")
    configs = root / "configs" / "multilabel_digits"
    configs.mkdir(parents=True)
    for name in ("deterministic.py", "heteroscedastic_diag.py", "heteroscedastic.py"):
        (configs / name).write_text(TINY.format(configs=CONFIGS, name=name))
    args = ["demo", "--multilabel", "--config_dir", root / "configs", "--no_progress"]
    first = run(args, root)
    output_dir = root / "runs" / "demo_multilabel"
    mtimes = {p: p.stat().st_mtime_ns for p in output_dir.glob("members/*/*/model.keras")}
    second = run(args, root)  # reuses the members
    return output_dir, first, second, mtimes


def _cell(value):
    return f"{value['mean']:.3f} +- {value['std']:.3f}"


def test_demo_prints_the_table_of_metrics_json_and_writes_its_files(demo_run):
    output_dir, first, second, mtimes = demo_run
    for name in ("metrics.json", "leaderboard.md", "multilabel_bars.png"):
        assert (output_dir / name).stat().st_size > 0, name
    assert len(mtimes) == 9  # 3 methods x 3 seeds
    record = json.loads((output_dir / "metrics.json").read_text())
    assert list(record["table3"]) == ["Hom", "Het diag", "Het"]
    stdout = first.stdout
    assert "== Table 3 shape: multilabel_digits (sigmoid heads), 3 seeds per method ==" in stdout
    for labels in ("noisy", "clean"):
        block = stdout.split(f"{labels} test labels")[1]
        for row, values in record["table3"].items():
            line = re.search(rf"^{re.escape(row)} +\|(.*)$", block, re.MULTILINE).group(1)
            cells = [c.strip().rstrip("*") for c in line.split("|")]
            v = values[labels]
            assert cells == [_cell(v["gap"]), _cell(v["nll"]), _cell(v["map"]), _cell(v["prec@1"])]
            assert np.mean(v["gap"]["seeds"]) == pytest.approx(v["gap"]["mean"])
            assert np.std(v["nll"]["seeds"], ddof=1) == pytest.approx(v["nll"]["std"], abs=1e-9)
    for name, target in record["targets"].items():
        assert f"[{'x' if target['met'] else ' '}] {name}: {target['value']}" in stdout
    report = stdout[stdout.index("== Table 3") : stdout.index("\nWrote")].strip()
    assert report in (output_dir / "leaderboard.md").read_text()
    # The second run trained nothing and printed the same table.
    assert {p: p.stat().st_mtime_ns for p in mtimes} == mtimes
    assert second.stdout.split("Wrote")[0] == stdout.split("Wrote")[0]


def test_metrics_json_gap_and_nll_match_the_cached_predictions(demo_run):
    from het_ensembles import evaluation, metrics

    output_dir, _, _, _ = demo_run
    record = json.loads((output_dir / "metrics.json").read_text())
    for key, row in METHODS.items():
        root = output_dir.parent.parent  # the demo's cwd; metrics.json names members from it
        members = [str(root / member) for member in record["members"][key]]
        for labels, dataset in (
            ("noisy", "multilabel_digits"),
            ("clean", "multilabel_digits:test_clean"),
        ):
            y, log_probs = evaluation.cached_predictions(
                str(output_dir / "eval" / key), members, dataset
            )
            assert log_probs.shape == (3, 1000, 10)
            probs = np.exp(np.asarray(log_probs, np.float64))
            gaps = [metrics.global_average_precision(p, y, top_k=20) for p in probs]
            sklearn_gaps = [average_precision_score(y.ravel(), p.ravel()) for p in probs]
            np.testing.assert_allclose(gaps, sklearn_gaps, atol=1e-9)
            entry = record["table3"][row][labels]
            np.testing.assert_allclose(entry["gap"]["seeds"], gaps, atol=1e-6)
            nll = [
                -np.mean(np.sum(y * lp + (1 - y) * np.log1p(-np.exp(lp)), axis=1))
                for lp in np.asarray(log_probs, np.float64)
            ]
            np.testing.assert_allclose(entry["nll"]["seeds"], nll, rtol=1e-4)
            ensemble = metrics.global_average_precision(probs.mean(0), y, top_k=20)
            assert record["ensembles"][row][labels]["gap"] == pytest.approx(ensemble, abs=1e-6)


def test_multilabel_and_synthetic_together_exit_2(tmp_path):
    result = run(["demo", "--multilabel", "--synthetic"], tmp_path, check=False)
    assert result.returncode == 2
    assert "--synthetic" in result.stderr and "--multilabel" in result.stderr
