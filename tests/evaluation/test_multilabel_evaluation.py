"""Multi-label members end to end through the console script: train two sigmoid members on a
multi-hot `npz:` set, evaluate them, and recompute every reported metric from the cached
predictions with scikit-learn and numpy."""

import concurrent.futures
import glob
import json
import os

import console
import numpy as np
import pytest
from multilabel_sets import reference_metrics, write_config, write_multilabel_npz


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("multilabel")
    write_multilabel_npz(workdir / "tags.npz")
    write_config(
        workdir / "het.py",
        workdir / "tags.npz",
        head="heteroscedastic",
        head_class="MCSigmoidDenseFA",
        num_factors=2,
        temperature=1.0,
        train_mc_samples=8,
        test_mc_samples=8,
    )
    commands = [
        ["train", "--config=het.py", f"--config.seed={seed}", f"--output_dir=runs/{seed}"]
        for seed in (0, 1)
    ]
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda args: console.run(args, workdir), commands))
    done = console.run(
        [
            "evaluate",
            "--members",
            "runs/*",
            "--dataset",
            "npz:tags.npz",
            "--ensemble_size=1",
            "--output_dir=eval",
            "--no_progress",
        ],
        workdir,
    )
    with open(workdir / "eval" / "metrics.json") as f:
        results = json.load(f)
    (cache,) = glob.glob(str(workdir / "eval" / "predictions" / "*"))
    labels = np.load(os.path.join(cache, "labels.npy")).astype(np.float64)
    log_probs = {
        name: np.load(os.path.join(cache, f"{name}.npy")).astype(np.float64) for name in "01"
    }
    return workdir, done, results, labels, log_probs


def test_members_and_ensemble_match_their_definitions(evaluated):
    _, _, results, labels, log_probs = evaluated
    (result,) = results.values()
    probs = {name: np.exp(lp) for name, lp in log_probs.items()}
    ensemble = np.mean([probs["0"], probs["1"]], axis=0)  # mean of the member probabilities
    rows = {"0": result["members"]["0"], "1": result["members"]["1"]}
    rows["ensemble"] = result["ensemble"]
    probs["ensemble"] = ensemble
    for name, row in rows.items():
        for key, value in reference_metrics(labels, probs[name]).items():
            assert row[key] == pytest.approx(value, rel=1e-5, abs=1e-9), (name, key)
        assert "accuracy" not in row and row["num_examples"] == len(labels)
    for key in ("gap", "map", "prec@1", "nll", "ece"):
        member_values = [rows["0"][key], rows["1"][key]]
        assert result["member_mean"][key] == pytest.approx(np.mean(member_values))
        assert result["member_std"][key] == pytest.approx(np.std(member_values, ddof=1))
        # Sub-ensembles of size 1 are the members themselves.
        assert result["ensemble_subsets"]["mean"][key] == pytest.approx(np.mean(member_values))


def test_report_has_the_multilabel_table(evaluated):
    workdir, done, results, _, _ = evaluated
    text = (workdir / "eval" / "leaderboard.md").read_text()
    assert (
        "| Method | gAP | mAP | prec@1 | NLL | ECE | Train Runtime (hours) | "
        "Test Runtime (ms / example)| # Parameters |"
    ) in text
    (result,) = results.values()
    gap = f"{100 * result['member_mean']['gap']:.1f}%"
    row = next(line for line in text.splitlines() if line.startswith("| Heteroscedastic |"))
    assert row.split(" | ")[1] == gap
    assert ["dataset", "row", "nll", "gap", "ece"] in [
        line.split() for line in done.stdout.splitlines()
    ]
    assert (workdir / "eval" / "reliability_diagram.png").stat().st_size > 0
