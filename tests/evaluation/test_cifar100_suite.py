"""The CIFAR-100 leaderboard rows as a user makes them: `het-ensembles train` with the CIFAR-100
config (smoke size, mock TFDS), then `het-ensembles evaluate --suite cifar100` with CIFAR-100-C
from release-shaped `.npy` files. Values are checked with numpy against the cached predictions
and the files (severity 2 is rows 10000..20000), the table against ub's CIFAR header."""

import json
import math

import baseline_smoke
import console
import numpy as np
import pytest

MOCK = {"num_examples": 8}
PER_SEVERITY = 10_000


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    work = tmp_path_factory.mktemp("cifar100")
    for seed in (0, 1):
        console.run(
            [
                "train",
                "--config=configs/cifar/heteroscedastic_cifar100.py",
                *baseline_smoke.COMMON,
                *baseline_smoke.CIFAR,
                *baseline_smoke.HET,
                f"--config.seed={seed}",
                f"--output_dir=runs/cifar100/het/{seed}",
            ],
            work,
            mock_tfds=MOCK,
        )
    release = work / "CIFAR-100-C"
    release.mkdir()
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (5 * PER_SEVERITY, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, 100, 5 * PER_SEVERITY).astype(np.uint8)
    np.save(release / "brightness.npy", images)
    np.save(release / "labels.npy", labels)
    console.run(
        [
            "evaluate",
            "--members",
            "runs/cifar100/het/*",
            "--suite",
            "cifar100",
            "--corruptions",
            "brightness",
            "--severities",
            "2",
            "--cifar100_c_path",
            "CIFAR-100-C",
            "--method",
            "[Heteroscedastic](heteroscedastic.py)",
            "--ensemble_method",
            "[Heteroscedastic Ensemble (size=2)](het_ensemble.py)",
            "--output_dir",
            "reports/cifar100",
            "--no_progress",
        ],
        work,
        mock_tfds=MOCK,
    )
    return work, labels


def test_suite_scores_cifar100_and_its_corruption_summary(evaluated):
    work, labels = evaluated
    out = work / "reports" / "cifar100"
    results = json.loads((out / "metrics.json").read_text())
    corrupted = "cifar100_corrupted/brightness_2"
    assert set(results) == {"cifar100", corrupted, "cifar100_corrupted"}
    cache = out / "predictions" / corrupted
    np.testing.assert_array_equal(np.load(cache / "labels.npy"), labels[PER_SEVERITY : 2 * 10_000])
    log_probs = np.stack([np.load(cache / f"{m}.npy").astype(np.float64) for m in ("0", "1")])
    y = labels[PER_SEVERITY : 2 * PER_SEVERITY].astype(int)
    rows = np.arange(len(y))
    member_nll = [-np.mean(lp[rows, y]) for lp in log_probs]
    member_accuracy = [np.mean(lp.argmax(1) == y) for lp in log_probs]
    mean_probs = np.exp(log_probs).mean(0)
    got = results[corrupted]
    assert got["member_mean"]["nll"] == pytest.approx(np.mean(member_nll), rel=1e-5)
    assert got["member_mean"]["accuracy"] == pytest.approx(np.mean(member_accuracy))
    assert got["ensemble"]["nll"] == pytest.approx(-np.mean(np.log(mean_probs[rows, y])), rel=1e-5)
    # One set evaluated: the summary is that set's values.
    for statistic in ("member_mean", "ensemble"):
        for field in ("nll", "accuracy", "ece"):
            summary = results["cifar100_corrupted"][statistic][field]
            assert summary == pytest.approx(got[statistic][field])
    assert results["cifar100_corrupted"]["ensemble"]["num_datasets"] == 1
    # Joint NLL on the clean set only, as ub's scripts (no ENN-sample pass on corrupted sets).
    assert math.isfinite(results["cifar100"]["ensemble"]["joint_nll"])
    assert got["ensemble"]["joint_nll"] is None and not list(cache.glob("*.joint.npy"))
    assert results["cifar100"]["ensemble"]["num_examples"] == 8  # mock TFDS


def test_leaderboard_rows_have_the_published_header_names_and_c_cells(evaluated):
    from het_ensembles.evaluation import leaderboard

    work, _ = evaluated
    out = work / "reports" / "cifar100"
    results = json.loads((out / "metrics.json").read_text())
    text = (out / "leaderboard.md").read_text()
    lines = text.splitlines()
    start = lines.index(leaderboard.CIFAR_HEADER[0])
    assert lines[start + 1] == leaderboard.CIFAR_HEADER[1]
    rows = [
        [c.strip() for c in line.strip("|").split("|")] for line in lines[start + 2 : start + 4]
    ]
    assert [r[0] for r in rows] == [
        "[Heteroscedastic](heteroscedastic.py)",
        "[Heteroscedastic Ensemble (size=2)](het_ensemble.py)",
    ]
    for row, statistic in zip(rows, ("member_mean", "ensemble")):
        corrupted = results["cifar100_corrupted"][statistic]
        nll, accuracy, cce = row[4].split(" / ")
        assert float(nll) == pytest.approx(corrupted["nll"], rel=6e-3)
        assert float(accuracy.rstrip("%")) == pytest.approx(100 * corrupted["accuracy"], abs=0.06)
        assert float(cce) == pytest.approx(corrupted["ece"], abs=6e-4)
        clean = results["cifar100"][statistic]
        assert float(row[1]) == pytest.approx(clean["nll"], rel=6e-3)
        assert math.isfinite(float(row[3]))
    # WRN-10-1 at smoke size: the ensemble's count is the two members' sum.
    single, ensemble = (float(r[7].rstrip("K")) for r in rows)
    assert rows[0][7].endswith("K") and ensemble == pytest.approx(2 * single, abs=1)
    assert "CIFAR-100-C: cNLL / cA / cCE are means over 1 sets (only 1 of the 85" in text
