"""`evaluate --ood_dataset`: held-out digit classes against members trained on the rest.

Members are trained and evaluated through the console script; every OOD number in metrics.json
is recomputed from the cached predictions with scikit-learn.
"""

import json

import numpy as np
import pytest
import scipy.special
import sklearn.metrics
from console import run

from het_ensembles import data
from het_ensembles.data import noisy_digits
from het_ensembles.evaluation import datasets as datasets_lib

IN = "noisy_digits:classes=0+1+2+3+4+5+6+7"
OUT = "noisy_digits:classes=8+9"
SMOKE = ["--config.train_epochs=2", "--config.train_mc_samples=8", "--config.test_mc_samples=16"]


def test_class_subsets_keep_the_digits_of_those_classes():
    full = noisy_digits.load_arrays()
    for classes in ((0, 1, 2, 3, 4, 5, 6, 7), (9, 8)):
        name = "noisy_digits:classes=" + "+".join(map(str, classes))
        info = data.get_info(name)
        assert info.num_classes == len(classes)
        assert info.class_names == tuple(str(c) for c in classes)
        x, y = _arrays(name, "test_clean")
        # Every kept image is a test digit of a kept class with both labels in the subset.
        keep = np.isin(full["y_test_clean"], classes) & np.isin(full["y_test"], classes)
        np.testing.assert_array_equal(x, full["x_test"][keep])
        np.testing.assert_array_equal(np.asarray(classes)[y], full["y_test_clean"][keep])


def test_bad_classes_are_named():
    with pytest.raises(ValueError, match="classes must be distinct classes in 0..9"):
        data.get_info("noisy_digits:classes=1+1")


@pytest.fixture(scope="module")
def members(tmp_path_factory):
    root = tmp_path_factory.mktemp("ood_members")
    for head, seed in (("heteroscedastic", 0), ("heteroscedastic", 1)):
        run(
            [
                "train",
                f"--config=configs/noisy_digits/{head}.py",
                f"--config.seed={seed}",
                f"--config.dataset={IN}",
                f"--output_dir=runs/{seed}",
                *SMOKE,
            ],
            root,
        )
    return root


def test_ood_metrics_of_members_and_ensemble_match_sklearn(members, tmp_path):
    done = run(
        [
            "evaluate",
            "--members",
            f"{members}/runs/*",
            "--dataset",
            IN,
            "--ood_dataset",
            OUT,
            "--output_dir",
            "eval",
            "--no_progress",
        ],
        tmp_path,
    )
    results = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    entry = results[f"ood/{OUT}"]
    assert entry["in_distribution"] == IN
    in_lp, out_lp = (_cached(tmp_path / "eval", name) for name in (IN, OUT))
    assert entry["num_in_distribution"] == in_lp.shape[1] == data.get_info(IN).num_examples["test"]
    assert entry["num_ood"] == out_lp.shape[1] == data.get_info(OUT).num_examples["test"]
    labels = np.r_[np.ones(in_lp.shape[1]), np.zeros(out_lp.shape[1])]

    def expected(in_log_probs, out_log_probs):
        probs = np.exp(np.r_[in_log_probs, out_log_probs])
        probs /= probs.sum(axis=1, keepdims=True)
        scores = {"msp": probs.max(1), "entropy": np.sum(probs * np.log(probs), axis=1)}
        out = {}
        for name, score in scores.items():
            out[f"auroc_{name}"] = sklearn.metrics.roc_auc_score(labels, score)
            out[f"auprc_{name}"] = sklearn.metrics.average_precision_score(labels, score)
            fpr, tpr, _ = sklearn.metrics.roc_curve(labels, score)
            out[f"fpr@95tpr_{name}"] = fpr[np.searchsorted(tpr, 0.95, side="left")]
        return out

    for index, member in enumerate(("0", "1")):
        for key, value in expected(in_lp[index], out_lp[index]).items():
            assert entry["members"][member][key] == pytest.approx(value, abs=1e-6), key
    ensemble = [scipy.special.logsumexp(lp, axis=0) - np.log(2) for lp in (in_lp, out_lp)]
    for key, value in expected(*ensemble).items():
        assert entry["ensemble"][key] == pytest.approx(value, abs=1e-6), key
    # The console summary and the leaderboard carry the OOD table.
    assert f"| {OUT} | {IN} | ensemble | {entry['ensemble']['auroc_msp']:.3f} |" in done.stdout
    leaderboard = (tmp_path / "eval" / "leaderboard.md").read_text()
    assert "| OOD set | vs | row | AUROC | AUPRC | FPR@95%TPR |" in leaderboard


def test_a_set_cannot_be_both_in_and_out_of_distribution(members, tmp_path):
    done = run(
        ["evaluate", "--members", f"{members}/runs/*", "--dataset", IN, "--ood_dataset", IN]
        + ["--output_dir", "eval", "--no_progress"],
        tmp_path,
        check=False,
    )
    assert done.returncode == 2
    assert "both evaluated and out of distribution" in done.stderr
    assert not (tmp_path / "eval").exists()


def _arrays(name, split):
    xs, ys = [], []
    for x, y in data.load(name, split, batch_size=512, is_training=False):
        xs.append(np.asarray(x))
        ys.append(np.asarray(y))
    return np.concatenate(xs), np.concatenate(ys)


def _cached(eval_dir, name):
    (dataset,) = datasets_lib.parse_datasets([name])
    directory = eval_dir / "predictions" / dataset.cache_name
    return np.stack([np.load(directory / f"{m}.npy").astype(np.float64) for m in ("0", "1")])
