"""Tests of the demo's machinery (tiny members, few steps) and of the embedded-set configs.

They check what the demo computes and writes, not the demo's targets (those are measured by
running `het-ensembles demo`).
"""

import glob
import json
import logging
import os

import numpy as np
import pytest

from het_ensembles import demo, member_dir, training
from het_ensembles.training import progress

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = os.path.join(REPO, "configs")

TINY = """
import os
from het_ensembles import training

def get_config():
    config = training.load_config(os.path.join({configs!r}, "noisy_digits", {name!r}))
    config.train_epochs = 1
    config.steps_per_epoch = 3
    config.per_core_batch_size = 32
    config.model_kwargs.filters = (4,)
    config.model_kwargs.hidden_units = 8
    config.train_mc_samples = 16
    config.test_mc_samples = 16
    return config
"""


@pytest.fixture(scope="module")
def tiny_config_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("configs")
    (root / "noisy_digits").mkdir()
    for name in ("deterministic.py", "heteroscedastic.py"):
        (root / "noisy_digits" / name).write_text(TINY.format(configs=CONFIGS, name=name))
    return str(root)


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory, tiny_config_dir):
    output_dir = str(tmp_path_factory.mktemp("demo"))
    record = demo.run_demo(output_dir, config_dir=tiny_config_dir, num_members=2, progress=False)
    return output_dir, record


def _cached(output_dir, key, dataset):
    """The evaluator's cached predictions [M, N, K] and labels, read through its public API."""
    from het_ensembles import evaluation

    members = sorted(glob.glob(os.path.join(output_dir, "members", key, "*")))
    labels, log_probs = evaluation.cached_predictions(
        os.path.join(output_dir, "eval", key), members, dataset
    )
    return labels, log_probs


def test_demo_writes_its_files_and_table_rows(demo_run, capsys):
    output_dir, record = demo_run
    for name in (
        "leaderboard.md",
        "metrics.json",
        "reliability_diagram.png",
        "correlation_heatmap.png",
    ):
        assert os.path.getsize(os.path.join(output_dir, name)) > 0, name
    for key in ("hom", "het"):
        for seed in ("0", "1"):
            assert os.path.isfile(os.path.join(output_dir, "members", key, seed, "model.keras"))
    assert list(record["table7"]) == ["Hom", "Hom ens2", "Het", "Het ens2"]
    with open(os.path.join(output_dir, "metrics.json")) as f:
        written = json.load(f)
    assert written["table7"] == record["table7"]  # JSON keeps floats exactly
    with open(os.path.join(output_dir, "leaderboard.md")) as f:
        leaderboard = f.read()
    assert "| Het ens2 |" in leaderboard and "Planted pairs: 1 <-> 7" in leaderboard


def test_demo_reports_the_spread_and_the_paired_interval(demo_run):
    _, record = demo_run
    rows = record["table7"]
    for column in ("noisy", "clean"):
        part = record["spread"][column]
        for metric in ("accuracy", "nll", "ece"):
            d = part["het_minus_hom"][metric]
            expected = rows["Het ens2"][column][metric] - rows["Hom ens2"][column][metric]
            assert d["difference"] == pytest.approx(expected, abs=1e-6)
            assert d["low"] <= d["difference"] <= d["high"]
        assert set(part["member_std"]) == {"Hom", "Het"}
        assert all(v >= 0 for row in part["member_std"].values() for v in row.values())


def test_demo_table_matches_numpy_on_the_cached_predictions(demo_run):
    from het_ensembles.data import noisy_digits

    output_dir, record = demo_run
    arrays = noisy_digits.load_arrays()
    for labels_key, column, dataset in (
        ("y_test", "noisy", "noisy_digits"),
        ("y_test_clean", "clean", "noisy_digits:test_clean"),
    ):
        labels = arrays[labels_key]
        for key, row in (("hom", "Hom"), ("het", "Het")):
            cached_labels, log_probs = _cached(output_dir, key, dataset)
            np.testing.assert_array_equal(cached_labels, labels)
            log_probs = log_probs.astype(np.float64)  # [M, N, K]
            picked = log_probs[:, np.arange(len(labels)), labels]  # [M, N]
            member_nll = -picked.mean(axis=1)
            ensemble_probs = np.exp(log_probs).mean(axis=0)
            ensemble_nll = -np.log(ensemble_probs[np.arange(len(labels)), labels]).mean()
            ensemble_accuracy = (ensemble_probs.argmax(1) == labels).mean()
            got = record["table7"]
            assert got[row][column]["nll"] == pytest.approx(member_nll.mean(), abs=1e-4)
            assert got[row + " ens2"][column]["nll"] == pytest.approx(ensemble_nll, abs=1e-4)
            assert got[row + " ens2"][column]["accuracy"] == pytest.approx(ensemble_accuracy)


def test_demo_covariance_is_the_mean_over_het_members(demo_run):
    from het_ensembles import data
    from het_ensembles.analysis import covariance

    output_dir, record = demo_run
    cov = record["covariance"]
    per_member = []
    for seed in ("0", "1"):
        member = member_dir.read_member(os.path.join(output_dir, "members", "het", seed))
        model = member.load_model()
        x = next(iter(data.load("noisy_digits", "test", batch_size=1000, is_training=False)))[0]
        per_member.append(covariance.mean_correlation(model, x.numpy())[0])
    np.testing.assert_allclose(cov["correlation"], np.mean(per_member, axis=0), atol=1e-5)
    assert len(cov["pairs"]) == 5
    assert cov["planted_pairs"] == ((1, 7), (3, 8), (4, 9), (5, 6))
    assert cov["planted_in_top"] == sum(p["classes"] in cov["planted_pairs"] for p in cov["pairs"])


def test_demo_rerun_reuses_finished_members(demo_run, tiny_config_dir, capsys):
    output_dir, record = demo_run
    model = os.path.join(output_dir, "members", "het", "1", "model.keras")
    before = os.stat(model).st_mtime_ns
    again = demo.run_demo(output_dir, config_dir=tiny_config_dir, num_members=2, progress=False)
    assert os.stat(model).st_mtime_ns == before
    assert "reusing the finished member" in capsys.readouterr().err
    assert again["table7"] == record["table7"]


def _rows(hom, hom_ens, het, het_ens):
    """Table rows from (nll, ece) per row; accuracy is irrelevant to the targets."""
    values = {"Hom": hom, "Hom ens4": hom_ens, "Het": het, "Het ens4": het_ens}
    return {
        name: {labels: {"accuracy": 0.8, "nll": nll, "ece": ece} for labels in ("noisy", "clean")}
        for name, (nll, ece) in values.items()
    }


def test_targets_are_judged_from_the_numbers():
    cov = {"planted_in_top": 3, "planted_pairs": ((1, 7), (3, 8), (4, 9), (5, 6))}
    good = demo.check_targets(_rows((0.7, 0.1), (0.6, 0.08), (0.6, 0.07), (0.5, 0.05)), cov)
    assert all(t["met"] for t in good.values())
    bad = demo.check_targets(
        _rows((0.7, 0.1), (0.55, 0.04), (0.75, 0.07), (0.58, 0.05)),
        {**cov, "planted_in_top": 2},
    )
    assert [t["met"] for t in bad.values()] == [False, False, False, False]
    summary = " ".join(
        demo.summary_lines(
            _rows((0.7, 0.1), (0.55, 0.04), (0.75, 0.07), (0.58, 0.05)),
            {**cov, "planted_in_top": 2},
            bad,
        )
    )
    assert "did NOT lower" in summary


def test_table_format_stars_the_best_values():
    text = demo.format_table7(_rows((0.7, 0.1), (0.6, 0.08), (0.65, 0.07), (0.5, 0.05)))
    het_ens = next(line for line in text.splitlines() if line.startswith("Het ens4"))
    assert "0.500*" in het_ens and "0.050*" in het_ens


def test_gap_closed():
    assert demo.gap_closed(1.0, 0.8, 0.6) == pytest.approx(0.5)
    assert demo.gap_closed(1.0, 0.6, 0.6) == pytest.approx(1.0)
    assert np.isnan(demo.gap_closed(0.6, 0.5, 0.6))


def test_epoch_progress_handler_follows_the_trainer_log():
    class Bar:
        total, n, postfix, written = None, 0, None, []

        def set_postfix_str(self, text, refresh=True):
            self.postfix = text

        def refresh(self):
            pass

        def write(self, text, file=None):
            self.written.append(text)

    bar = Bar()
    handler = progress.EpochProgress(bar)
    record = logging.LogRecord(
        "absl",
        logging.INFO,
        __file__,
        1,
        "Epoch %d/%d: train loss %.4f, accuracy %.4f; test nll %.4f, accuracy %.4f, ece %.4f",
        (3, 20, 0.5, 0.8, 0.61234, 0.7, 0.05),
        None,
    )
    handler.emit(record)
    assert (bar.n, bar.total, bar.postfix) == (3, 20, "test nll 0.612")
    handler.emit(logging.LogRecord("absl", logging.WARNING, __file__, 1, "careful", (), None))
    assert bar.written == ["WARNING: careful"]


def test_cli_reports_bad_config_dir(tmp_path, capsys):
    assert demo.cli_main(["--output_dir", str(tmp_path), "--config_dir", str(tmp_path)]) == 2
    assert "error" in capsys.readouterr().err
    with pytest.raises(ValueError, match="num_members"):
        demo.run_demo(str(tmp_path), config_dir=CONFIGS, num_members=1)


@pytest.mark.parametrize(
    "path, num_classes",
    [
        ("noisy_digits/deterministic.py", 10),
        ("noisy_digits/heteroscedastic.py", 10),
        ("synthetic/deterministic.py", 6),
        ("synthetic/heteroscedastic.py", 6),
    ],
)
def test_configs_are_complete_and_valid(path, num_classes):
    config = training.complete_config(training.load_config(os.path.join(CONFIGS, path)))
    training.validate_config(config, num_classes=num_classes)
    assert config.dataset == path.split("/")[0]
    assert config.head == path.split("/")[1][: -len(".py")]


def test_config_runs_on_users_npz_arrays(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "mine.npz"
    np.savez(
        path,
        x_train=rng.random((40, 5), dtype=np.float32),
        y_train=rng.integers(0, 3, 40),
        x_test=rng.random((10, 5), dtype=np.float32),
        y_test=rng.integers(0, 3, 10),
    )
    argv = [
        f"--config={os.path.join(CONFIGS, 'synthetic', 'heteroscedastic.py')}",
        f"--config.dataset=npz:{path}",
        "--config.train_epochs=1",
        "--config.per_core_batch_size=8",
        "--config.train_mc_samples=8",
        "--config.test_mc_samples=8",
        f"--output_dir={tmp_path / 'member'}",
    ]
    assert training.cli_main(argv) == 0
    with open(tmp_path / "member" / "metrics.json") as f:
        assert json.load(f)["test/num_examples"] == 10
