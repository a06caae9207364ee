"""Multi-label members end to end through the console script: train two sigmoid members on a
multi-hot `npz:` set, evaluate them, and recompute every reported metric from the cached
predictions with scikit-learn and numpy."""

import concurrent.futures
import glob
import json
import os
import textwrap

import console
import numpy as np
import pytest
from sklearn import metrics as sk_metrics

NUM_FEATURES, NUM_CLASSES = 6, 5


def write_multilabel_npz(path, seed=0, num_train=96, num_test=40):
    """Multi-hot labels [N, 5] that depend on the inputs; the last test row has no positive."""
    rng = np.random.default_rng(seed)
    weights = rng.normal(size=(NUM_FEATURES, NUM_CLASSES))

    def split(n):
        x = rng.normal(size=(n, NUM_FEATURES)).astype(np.float32)
        noisy = x @ weights + rng.normal(size=(n, NUM_CLASSES))
        return x, (noisy > 0.5).astype(np.int64)

    x_train, y_train = split(num_train)
    x_test, y_test = split(num_test)
    y_test[-1] = 0
    np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)


def write_config(path, npz_path, **fields):
    """A config file for `--config`: one epoch of a tiny MLP on `npz_path`, `fields` added."""
    body = {
        "dataset": f"npz:{npz_path}",
        "model": "mlp",
        "model_kwargs": {"hidden_units": (16,)},
        "per_core_batch_size": 8,
        "train_epochs": 1,
        "base_learning_rate": 0.5,
        "warmup_epochs": 0,
        "lr_decay_epochs": (),
        "multilabel": True,
        **fields,
    }
    with open(path, "w") as f:
        f.write(
            textwrap.dedent(
                f"""\
                from het_ensembles import training

                def get_config():
                    config = training.default_config()
                    config.update({body!r})
                    return config
                """
            )
        )


def _bce(labels, probs):
    return -np.mean(np.sum(labels * np.log(probs) + (1 - labels) * np.log1p(-probs), axis=1))


def _labelwise_ece(labels, probs, num_bins=15):
    p, y = probs.ravel(), labels.ravel()
    bins = np.minimum((p * num_bins).astype(int), num_bins - 1)
    return sum(
        np.mean(bins == b) * abs(y[bins == b].mean() - p[bins == b].mean())
        for b in range(num_bins)
        if np.any(bins == b)
    )


def _expected(labels, probs):
    """Each metric from its definition: sklearn AP for gAP (all 5 < 20 classes kept: the AP of
    the pooled (example, class) pairs) and mAP (per class with a positive), numpy for the rest."""
    present = [k for k in range(NUM_CLASSES) if labels[:, k].any()]
    has_positive = labels.max(axis=1) > 0
    top = np.argmax(probs, axis=1)
    return {
        "gap": sk_metrics.average_precision_score(labels.ravel(), probs.ravel()),
        "map": np.mean(
            [sk_metrics.average_precision_score(labels[:, k], probs[:, k]) for k in present]
        ),
        "prec@1": np.mean(labels[np.arange(len(labels)), top][has_positive]),
        "nll": _bce(labels, probs),
        "ece": _labelwise_ece(labels, probs),
    }


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
        for key, value in _expected(labels, probs[name]).items():
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
