"""`het-ensembles evaluate --test_mc_samples`: the console script on tiny noisy_digits members.

Two heteroscedastic members (shipped config, 1 epoch, 16 test MC samples) are trained and
evaluated through the installed console script. Checked: the JSON structure, that the sweep's
rows at the members' own S (16) equal the plain evaluation (a separate pass), that another S
changes them, the NLL against numpy on the cached predictions, cache reuse (a second run makes
and resuming: after an interrupted sweep (one entry removed) a second run predicts only
that entry, every other cache file's mtime unchanged.
"""

import json
import os

import numpy as np
import pytest
from console import run

OWN_S = 16
SMOKE = [
    "--config.train_epochs=1",
    "--config.train_mc_samples=8",
    f"--config.test_mc_samples={OWN_S}",
]
SWEEP = ["--test_mc_samples", f"{OWN_S},4"]


@pytest.fixture(scope="module")
def members(tmp_path_factory):
    root = tmp_path_factory.mktemp("mc_cli_members")
    for seed in (0, 1):
        run(
            [
                "train",
                "--config=configs/noisy_digits/heteroscedastic.py",
                f"--config.seed={seed}",
                f"--output_dir=runs/{seed}",
                *SMOKE,
            ],
            root,
        )
    return root


def _evaluate(members, cwd, *extra, check=True):
    args = ["evaluate", "--members", f"{members}/runs/*", "--dataset", "noisy_digits"]
    return run([*args, "--output_dir", "eval", "--no_progress", *extra], cwd, check=check)


def _mtimes(directory):
    return {
        os.path.relpath(os.path.join(d, f), directory): os.stat(os.path.join(d, f)).st_mtime_ns
        for d, _, files in os.walk(directory)
        for f in files
    }


def test_sweep_rows_cache_reuse_and_resume(members, tmp_path):
    done = _evaluate(members, tmp_path, *SWEEP)
    results = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    entry = results["noisy_digits"]
    sweep = entry["mc_samples"]
    assert list(sweep) == ["4", str(OWN_S)]
    for count, rows in sweep.items():
        assert set(rows) == {"ensemble", "member_mean", "member_std", "members"}
        assert set(rows["members"]) == {"0", "1"}
        for row in [rows["ensemble"], rows["member_mean"], *rows["members"].values()]:
            assert row["ms_per_example"] > 0
        assert {m["test_mc_samples"] for m in rows["members"].values()} == {int(count)}
    # At the members' own S the sweep reproduces the plain evaluation (its own pass).
    assert {m["test_mc_samples"] for m in entry["members"].values()} == {OWN_S}
    for row in ("ensemble", "member_mean", "member_std"):
        for key, value in entry[row].items():
            if key != "ms_per_example":
                assert sweep[str(OWN_S)][row][key] == pytest.approx(value, abs=1e-6), (row, key)
    predictions = tmp_path / "eval" / "predictions"
    for name in ("0", "1"):
        plain = np.load(predictions / "noisy_digits" / f"{name}.npy")
        np.testing.assert_allclose(
            np.load(predictions / f"mc_samples={OWN_S}" / "noisy_digits" / f"{name}.npy"),
            plain,
            atol=1e-6,
        )
        at_4 = np.load(predictions / "mc_samples=4" / "noisy_digits" / f"{name}.npy")
        assert np.abs(at_4 - plain).max() > 1e-3  # S = 4 was really drawn
        labels = np.load(predictions / "mc_samples=4" / "noisy_digits" / "labels.npy")
        nll = -np.mean(at_4.astype(np.float64)[np.arange(len(labels)), labels])
        assert sweep["4"]["members"][name]["nll"] == pytest.approx(nll, rel=1e-6)
    assert "| noisy_digits | 4 | ensemble |" in done.stdout
    assert "mc_samples.png" in done.stdout
    assert (tmp_path / "eval" / "mc_samples.png").stat().st_size > 10_000
    assert (
        "| noisy_digits | 16 | members (mean ± std) |"
        in (tmp_path / "eval" / "leaderboard.md").read_text()
    )

    # A second run after an interruption (member 1 at S = 4 never stored) predicts only that
    # entry: every other cache file keeps its mtime, and the results are the same.
    before = _mtimes(predictions)
    (predictions / "mc_samples=4" / "noisy_digits" / "1.json").unlink()
    _evaluate(members, tmp_path, *SWEEP)
    after = _mtimes(predictions)
    changed = {path for path in after if after[path] != before.get(path)}
    entry_files = ("1.json", "1.npy", "1.joint.npy")  # the joint-NLL table comes with it
    assert changed == {f"mc_samples=4/noisy_digits/{name}" for name in entry_files}
    rerun = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    rerun_sweep = rerun["noisy_digits"].pop("mc_samples")
    assert rerun["noisy_digits"] == {k: v for k, v in entry.items() if k != "mc_samples"}
    for count, rows in sweep.items():
        for name, row in rows["members"].items():
            for key, value in row.items():
                if key != "ms_per_example":  # a new pass, a new time
                    assert rerun_sweep[count]["members"][name][key] == pytest.approx(value), key


def test_bad_sample_counts_are_refused_before_any_work(members, tmp_path):
    done = _evaluate(members, tmp_path, "--test_mc_samples", "10,ten", check=False)
    assert done.returncode == 2
    assert "test_mc_samples must be integers >= 1" in done.stderr
    assert "'10,ten'" in done.stderr
    assert not (tmp_path / "eval").exists()
