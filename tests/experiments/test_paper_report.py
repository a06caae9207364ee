"""`het-ensembles report`: statistics against numpy and scipy, files through the console script."""

import json

import numpy as np
import pytest
import scipy.special
import scipy.stats
from console import run
from tiny_training import make_arrays, tiny_config

from het_ensembles.experiments import report
from het_ensembles.training import trainer

SEEDS = 3


def test_group_statistics_match_scipy_ttest():
    values = {
        "Hom": [0.70, 0.71, 0.69, 0.70],
        "Het diag": [0.74, 0.70, 0.79, 0.72],
        "Het": [0.76, 0.75, 0.77, 0.76],
    }
    best, stats = report.group_statistics(values, "accuracy")
    assert best == "Het"
    for group in ("Hom", "Het diag"):
        expected = scipy.stats.ttest_ind(values[group], values["Het"], equal_var=True)
        assert stats[group]["p_value"] == pytest.approx(expected.pvalue, rel=1e-12)
        assert stats[group]["dagger"] == (expected.pvalue < 0.05)
        assert stats[group]["mean"] == pytest.approx(np.mean(values[group]))
        assert stats[group]["std"] == pytest.approx(np.std(values[group], ddof=1))
        assert stats[group]["n"] == 4
    # Hom is far from Het (p ~ 1e-5), Het diag not (p ~ 0.30).
    assert stats["Hom"]["dagger"] and not stats["Het diag"]["dagger"]
    assert stats["Het"] == {
        "mean": pytest.approx(0.76),
        "std": pytest.approx(np.std(values["Het"], ddof=1)),
        "n": 4,
        "p_value": None,
        "dagger": False,
    }
    best, _ = report.group_statistics(values, "nll")  # lower is better
    assert best == "Hom"


def test_single_member_groups_have_no_test():
    best, stats = report.group_statistics({"a": [1.0], "b": [2.0, 2.1]}, "nll")
    assert best == "a" and stats["b"]["p_value"] is None and stats["a"]["std"] is None


@pytest.mark.parametrize(
    "entries, match",
    [
        (["Het"], "GROUP=MEMBERS"),
        (["=runs/*"], "GROUP=MEMBERS"),
        (["a=x", "a=y"], "given twice"),
    ],
)
def test_bad_groups(entries, match):
    with pytest.raises(ValueError, match=match):
        report.parse_groups(entries)


@pytest.fixture(scope="module")
def members(npz, tmp_path_factory):
    root = tmp_path_factory.mktemp("report_members")
    for head in ("deterministic", "heteroscedastic"):
        for seed in range(SEEDS):
            config = tiny_config(
                npz, head=head, seed=seed, num_factors=2, train_mc_samples=8, test_mc_samples=16
            )
            trainer.train_and_evaluate(config, str(root / head / str(seed)))
    return root


def test_report_cli_matches_scipy_on_the_members_predictions(members, tmp_path):
    done = run(
        [
            "report",
            f"Hom={members / 'deterministic'}/*",
            f"Het={members / 'heteroscedastic'}/*",
            "--dataset",
            _dataset(members),
            "--output_dir",
            "out",
            "--metrics",
            "accuracy,nll",
            "--no_progress",
        ],
        tmp_path,
    )
    out = tmp_path / "out"
    data = json.loads((out / "report.json").read_text())
    (dataset,) = data["datasets"]
    # Per-member metrics recomputed from the cached log-probabilities with numpy.
    values = {}
    for group, head in (("Hom", "deterministic"), ("Het", "heteroscedastic")):
        cache = out / "eval" / group / "predictions" / _cache_dir(out / "eval" / group)
        labels = np.load(cache / "labels.npy")
        values[group] = {"accuracy": [], "nll": []}
        for seed in range(SEEDS):
            log_probs = np.load(cache / f"{seed}.npy").astype(np.float64)
            log_probs -= scipy.special.logsumexp(log_probs, axis=1, keepdims=True)
            values[group]["accuracy"].append(np.mean(log_probs.argmax(1) == labels))
            values[group]["nll"].append(-np.mean(log_probs[np.arange(len(labels)), labels]))
    for metric, direction in (("accuracy", 1), ("nll", -1)):
        entry = data["datasets"][dataset]["metrics"][metric]
        best = max(values, key=lambda g: direction * np.mean(values[g][metric]))
        other = "Hom" if best == "Het" else "Het"
        assert data["datasets"][dataset]["best"][metric] == best
        expected = scipy.stats.ttest_ind(values[other][metric], values[best][metric])
        if np.isnan(expected.pvalue):
            assert entry[other]["p_value"] is None
        else:
            assert entry[other]["p_value"] == pytest.approx(expected.pvalue, rel=1e-4, abs=1e-9)
        assert entry[other]["dagger"] == bool(expected.pvalue < 0.05)
        for group in values:
            assert entry[group]["mean"] == pytest.approx(np.mean(values[group][metric]), rel=1e-5)
            assert entry[group]["std"] == pytest.approx(
                np.std(values[group][metric], ddof=1), rel=1e-4, abs=1e-9
            )
    markdown = (out / "report.md").read_text()
    assert markdown.splitlines()[0] == "| Method | Top-1 (%) | NLL |"
    assert markdown.splitlines()[2].startswith("| Hom | ")
    assert "\\begin{tabular}{lcc}" in (out / "report.tex").read_text()
    assert markdown in done.stdout + "\n"


def test_report_cli_refuses_a_metric_the_dataset_lacks(members, tmp_path):
    done = run(
        [
            "report",
            f"Hom={members / 'deterministic'}/*",
            "--dataset",
            _dataset(members),
            "--output_dir",
            "out",
            "--metrics",
            "gap",
            "--no_progress",
        ],
        tmp_path,
        check=False,
    )
    assert done.returncode == 2
    assert "reports no ['gap']" in done.stderr
    assert not (tmp_path / "out" / "report.json").exists()


def _dataset(members):
    config = json.loads((members / "deterministic" / "0" / "config.json").read_text())
    return config["dataset"]


def _cache_dir(eval_dir):
    (entry,) = [p for p in (eval_dir / "predictions").iterdir() if p.is_dir()]
    return entry.name


def test_tables_mark_best_in_bold_and_significant_groups_with_a_dagger():
    values = {"Hom": [0.70, 0.71, 0.69, 0.70], "Het": [0.76, 0.75, 0.77, 0.76]}
    best, stats = report.group_statistics(values, "accuracy")
    data = {
        "alpha": 0.05,
        "groups": ["Hom", "Het"],
        "datasets": {"imagenet2012": {"best": {"accuracy": best}, "metrics": {"accuracy": stats}}},
    }
    lines = report.markdown_table(data).splitlines()
    assert lines[2] == "| Hom | 70.0 ± 0.8\u2020 |"  # std of the four values: 0.816
    assert lines[3] == "| Het | **76.0 ± 0.8** |"
    tex = report.latex_table(data).splitlines()
    assert tex[4] == r"Hom & $70.0 \pm 0.8^\dagger$ \\"
    assert tex[5] == r"Het & $\mathbf{76.0 \pm 0.8}$ \\"


def test_report_with_an_ood_set_tabulates_detection_per_group(members, tmp_path):
    arrays = make_arrays(seed=1)
    ood = tmp_path / "shifted.npz"
    np.savez(ood, **{k: v + 3.0 if k.startswith("x") else v for k, v in arrays.items()})
    run(
        [
            "report",
            f"Hom={members / 'deterministic'}/*",
            f"Het={members / 'heteroscedastic'}/*",
            "--dataset",
            _dataset(members),
            "--ood_dataset",
            f"npz:{ood}",
            "--output_dir",
            "out",
            "--no_progress",
        ],
        tmp_path,
    )
    data = json.loads((tmp_path / "out" / "report.json").read_text())
    key = f"ood/npz:{ood}"
    assert sorted(data["datasets"][key]["metrics"]) == ["auprc_msp", "auroc_msp", "fpr@95tpr_msp"]
    assert "auroc_msp" not in data["datasets"][_dataset(members)]["metrics"]
    for group in ("Hom", "Het"):
        evaluated = json.loads((tmp_path / "out" / "eval" / group / "metrics.json").read_text())
        aurocs = [row["auroc_msp"] for row in evaluated[key]["members"].values()]
        stat = data["datasets"][key]["metrics"]["auroc_msp"][group]
        assert stat["n"] == SEEDS and stat["mean"] == pytest.approx(np.mean(aurocs))
    assert "AUROC" in (tmp_path / "out" / "report.md").read_text().splitlines()[0]
