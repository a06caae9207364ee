"""The documented workflows, at smoke size, each step a subprocess of the installed console script.

One fresh directory for the module, nothing imported in the subprocesses beforehand: train
Hom and Het members on `noisy_digits` -> evaluate them (Het alone, then mixed with Hom) ->
covariance of a Het member -> compare -> study -> bench; the `baselines/` scripts under TFDS
mock data -> `evaluate --suite imagenet` and the CIFAR-10 leaderboard on their members. Each
step asserts on the files and values it writes, not only on its exit status.

Smoke sizes: 1 epoch and fewer Monte Carlo samples (`--config.*` flags appended to the
documented commands); `compare` and `study` take no `--config.*` flags, so they run on two
small config files that load the shipped ones and shrink them, as a user would.
"""

import concurrent.futures
import glob
import json
import math
import os
import sys

import baseline_smoke
import console
import mock_sets
import numpy as np
import pytest
from scipy import special

CONFIGS = os.path.join(console.REPO, "configs", "noisy_digits")
HET_SMOKE = ["--config.train_mc_samples=16", "--config.test_mc_samples=64"]
MOCK = {"num_examples": 8}
IMAGENET_MOCK = mock_sets.IMAGENET_SUBSET_MOCK


def _parallel(function, items, workers=2):
    """`[function(item) for item in items]`, two at a time (each item a subprocess)."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(function, items))


def _read_json(path):
    with open(path) as f:
        return json.load(f)


def _test_size(name="noisy_digits", split="test"):
    from het_ensembles import data

    return data.get_info(name).num_examples[split]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("workflow")


@pytest.fixture(scope="module")
def members(workdir):
    """runs/{det,het}/{0,1}: the README's `het-ensembles train` lines, 1 epoch each."""
    commands = [
        [
            "train",
            f"--config={CONFIGS}/{config}.py",
            f"--config.seed={seed}",
            "--config.train_epochs=1",
            *(HET_SMOKE if kind == "het" else []),
            f"--output_dir=runs/{kind}/{seed}",
        ]
        for kind, config in (("det", "deterministic"), ("het", "heteroscedastic"))
        for seed in (0, 1)
    ]
    _parallel(lambda args: console.run(args, workdir), commands)
    return workdir


def test_train_writes_finished_members(members):
    for kind in ("det", "het"):
        for seed in (0, 1):
            path = members / "runs" / kind / str(seed)
            assert {"model.keras", "config.json", "metrics.json", "checkpoints"} <= set(
                os.listdir(path)
            )
            config = _read_json(path / "config.json")
            assert config["seed"] == seed and config["train_epochs"] == 1
            assert config["head"] == {"det": "deterministic", "het": "heteroscedastic"}[kind]
            if kind == "het":
                assert config["head_class"] == "MCSoftmaxDenseFA"
                assert (config["train_mc_samples"], config["test_mc_samples"]) == (16, 64)
            results = _read_json(path / "metrics.json")
            assert results["train/epochs"] == 1 and results["train/steps"] == 19
            assert results["test/num_examples"] == _test_size()
            assert 0.0 <= results["test/accuracy"] <= 1.0
            assert math.isfinite(results["test/nll"]) and results["test/nll"] > 0


def _check_evaluation(out, datasets, ensemble_size):
    """metrics.json, leaderboard.md, the plot, and the ensemble NLL recomputed from the cache."""
    assert {"metrics.json", "leaderboard.md", "reliability_diagram.png", "predictions"} <= set(
        os.listdir(out)
    )
    assert os.path.getsize(out / "reliability_diagram.png") > 1000
    results = _read_json(out / "metrics.json")
    for dataset, cache_name in datasets.items():
        split = dataset.partition(":")[2] or "test"
        ensemble = results[dataset]["ensemble"]
        assert ensemble["ensemble_size"] == ensemble_size
        assert ensemble["num_examples"] == _test_size(split=split)
        assert len(results[dataset]["members"]) == ensemble_size
        for row in (
            ensemble,
            results[dataset]["member_mean"],
            *results[dataset]["members"].values(),
        ):
            assert 0.0 <= row["accuracy"] <= 1.0
            assert math.isfinite(row["nll"]) and row["nll"] > 0
            assert 0.0 <= row["ece"] <= 1.0
        # The cache: float32 log-probabilities per member, labels beside them, and each
        # member's joint-NLL table (pairs of examples x the 11 count vectors of tau 10, kappa 2).
        cache = out / "predictions" / cache_name
        labels = np.load(cache / "labels.npy")
        joint_files = sorted(glob.glob(str(cache / "*.joint.npy")))
        member_files = sorted(set(glob.glob(str(cache / "*.npy"))) - set(joint_files))
        member_files.remove(str(cache / "labels.npy"))
        assert len(member_files) == len(joint_files) == ensemble_size
        assert {np.load(f).shape for f in joint_files} == {(len(labels) // 2, 11)}
        log_probs = np.stack([np.load(f) for f in member_files])
        assert log_probs.dtype == np.float32
        assert log_probs.shape == (ensemble_size, len(labels), 10)
        np.testing.assert_allclose(special.logsumexp(log_probs, axis=2), 0.0, atol=1e-4)
        picked = log_probs.astype(np.float64)[:, np.arange(len(labels)), labels]
        nll = np.mean(-special.logsumexp(picked, axis=0) + np.log(ensemble_size))
        assert ensemble["nll"] == pytest.approx(nll, rel=1e-5, abs=1e-6)
        accuracy = np.mean(special.logsumexp(log_probs, axis=0).argmax(1) == labels)
        assert ensemble["accuracy"] == pytest.approx(accuracy)
    text = (out / "leaderboard.md").read_text()
    assert f"ensemble (size={ensemble_size})" in text
    return results


def test_evaluate_het_members(members):
    done = console.run(
        [
            "evaluate",
            "--members",
            "runs/het/*",
            "--dataset",
            "noisy_digits",
            "noisy_digits:test_clean",
            "--output_dir",
            "runs/eval_het",
        ],
        members,
    )
    assert "Wrote runs/eval_het/metrics.json" in done.stdout
    results = _check_evaluation(
        members / "runs" / "eval_het",
        {"noisy_digits": "noisy_digits", "noisy_digits:test_clean": "noisy_digits_test_clean"},
        ensemble_size=2,
    )
    assert "Heteroscedastic" in (members / "runs" / "eval_het" / "leaderboard.md").read_text()
    assert results["noisy_digits"]["ensemble"]["num_params"] > 0


def test_evaluate_mixed_members(members):
    console.run(
        [
            "evaluate",
            "--members",
            "runs/het/*",
            "runs/det/*",
            "--dataset",
            "noisy_digits",
            "--output_dir",
            "runs/eval_mixed",
        ],
        members,
    )
    results = _check_evaluation(
        members / "runs" / "eval_mixed", {"noisy_digits": "noisy_digits"}, ensemble_size=4
    )
    # Four members, two of each kind: none lost to the two `0` and two `1` directory names.
    assert sorted(results["noisy_digits"]["members"]) == ["det_0", "det_1", "het_0", "het_1"]
    assert results["noisy_digits"]["member_std"]["nll"] > 0
    text = (members / "runs" / "eval_mixed" / "leaderboard.md").read_text()
    assert "Mixed (2 deterministic + 2 heteroscedastic)" in text


def test_evaluate_without_members_exits_2_naming_the_argument(members):
    done = console.run(
        ["evaluate", "--members", "nothing/*", "--dataset", "noisy_digits", "--output_dir", "x"],
        members,
        check=False,
    )
    assert done.returncode == 2, done.stderr[-3000:]
    error = done.stderr.strip().splitlines()[-1]
    assert error.startswith("het-ensembles evaluate: error:"), done.stderr[-3000:]
    assert "nothing/*" in error and "members" in error
    assert "Traceback" not in done.stderr
    assert not (members / "x" / "metrics.json").exists()


def test_covariance_of_a_het_member(members):
    done = console.run(["covariance", "--member", "runs/het/0"], members)
    assert "top 5 pairs" in done.stdout
    out = members / "runs" / "het" / "0" / "covariance"
    assert {"correlation.npy", "covariance_pairs.json", "correlation.png"} <= set(os.listdir(out))
    correlation = np.load(out / "correlation.npy")
    assert correlation.shape == (10, 10)
    np.testing.assert_allclose(correlation, correlation.T, atol=1e-6)
    assert np.all(np.abs(correlation) <= 1 + 1e-6)
    pairs = _read_json(out / "covariance_pairs.json")
    printed = [line for line in done.stdout.splitlines() if "<->" in line]
    assert len(printed) >= 5, done.stdout
    assert pairs["num_examples"] == _test_size()
    assert len(pairs["pairs"]) == 5


def _smoke_configs(directory):
    """Two config files that load the shipped noisy_digits recipes and shrink them."""
    directory.mkdir(exist_ok=True)
    paths = []
    for name, extra in (
        ("deterministic", []),
        ("heteroscedastic", ["config.train_mc_samples = 16", "config.test_mc_samples = 64"]),
    ):
        body = [
            f"config = training.load_config({os.path.join(CONFIGS, name + '.py')!r})",
            "config.train_epochs = 2",
            *extra,
            "return config",
        ]
        path = directory / f"{name}.py"
        path.write_text(
            "from het_ensembles import training\n\n\ndef get_config():\n"
            + "".join(f"    {line}\n" for line in body)
        )
        paths.append(str(path))
    return paths


def test_compare_two_configs(members):
    det, het = _smoke_configs(members / "smoke_configs")
    done = console.run(
        [
            "compare",
            "--configs",
            det,
            het,
            "--dataset",
            "noisy_digits",
            "--seeds",
            "2",
            "--output_dir",
            "runs/compare",
            "--num_resamples",
            "200",
        ],
        members,
    )
    assert "heteroscedastic - deterministic (paired bootstrap 95%" in done.stdout
    summary = _read_json(members / "runs" / "compare" / "comparison.json")
    assert summary["dataset"] == "noisy_digits" and summary["seeds"] == 2
    assert set(summary["configs"]) == {"deterministic", "heteroscedastic"}
    for name, row in summary["configs"].items():
        for seed in (0, 1):
            member = members / "runs" / "compare" / "members" / name / str(seed)
            assert _read_json(member / "config.json")["train_epochs"] == 2
        assert 0 <= row["ensemble"]["accuracy"] <= 1 and math.isfinite(row["ensemble"]["nll"])
    (pair,) = summary["pairs"]
    assert (pair["a"], pair["b"]) == ("deterministic", "heteroscedastic")
    for metric, d in pair["ensemble_difference"].items():
        assert d["low"] <= d["difference"] <= d["high"], metric
        assert d["difference"] == pytest.approx(d["b"] - d["a"])
    assert len(pair["member_differences"]["nll"]) == 2


def test_study_one_variant(members):
    det, het = _smoke_configs(members / "smoke_configs")
    done = console.run(
        [
            "study",
            "--configs",
            det,
            het,
            "--variants",
            "1",
            "--seeds",
            "1",
            "--output_dir",
            "runs/study",
            "--no_progress",
        ],
        members,
    )
    assert "Wrote runs/study/study.json and study.png" in done.stdout
    table = _read_json(members / "runs" / "study" / "study.json")
    (variant,) = table["variants"]
    assert variant["dataset"].startswith("noisy_digits:")
    assert table["seeds"] == 1 and table["configs"] == ["deterministic", "heteroscedastic"]
    for metric, summary in table["summary"].items():
        assert summary["num_variants"] == 1
        assert variant[metric]["low"] <= variant[metric]["difference"] <= variant[metric]["high"]
    assert os.path.getsize(members / "runs" / "study" / "study.png") > 1000


def _train_baselines(workdir):
    """Each baselines script, run as `python <script> ...` under TFDS mock data, in turn."""
    for script in sorted(baseline_smoke.SCRIPTS):
        overrides = baseline_smoke.SCRIPTS[script]
        command = [
            sys.executable,
            os.path.join(console.REPO, "baselines", f"{script}.py"),
            *baseline_smoke.COMMON,
            *overrides,
            f"--output_dir=runs/{script}/3",
        ]
        console.run_command(command, workdir, mock_tfds=MOCK)


@pytest.fixture(scope="module")
def baseline_members(background, workdir):
    background["baselines"].result()  # raises the failing script's AssertionError
    return workdir


@pytest.mark.parametrize("script", sorted(baseline_smoke.SCRIPTS))
def test_baselines_script_leaves_a_member(script, baseline_members):
    path = baseline_members / "runs" / script / "3"
    assert {"model.keras", "config.json", "metrics.json", "checkpoints"} <= set(os.listdir(path))
    config = _read_json(path / "config.json")
    het = script.endswith("heteroscedastic")
    assert config["head"] == ("heteroscedastic" if het else "deterministic")
    assert config["num_classes"] == (1000 if script.startswith("imagenet") else 10)
    if het:
        assert config["test_mc_samples"] == 16
    results = _read_json(path / "metrics.json")
    assert results["train/epochs"] == 2 and results["train/steps"] == 4
    assert results["test/num_examples"] == 4
    assert all(math.isfinite(results[f"test/{k}"]) for k in ("nll", "accuracy", "ece"))


def _leaderboard_rows(text, header):
    lines = text.splitlines()
    start = lines.index(header[0])
    assert lines[start + 1] == header[1]
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([c.strip() for c in line.strip("|").split("|")])
    return rows


def test_evaluate_imagenet_suite(baseline_members):
    from het_ensembles.evaluation import leaderboard

    console.run(
        [
            "evaluate",
            "--members",
            "runs/imagenet/heteroscedastic/*",
            "--suite",
            "imagenet",
            "--corruptions",
            "gaussian_noise",
            "--severities",
            "1",
            "--output_dir",
            "runs/eval_imagenet",
        ],
        baseline_members,
        mock_tfds=IMAGENET_MOCK,
    )
    out = baseline_members / "runs" / "eval_imagenet"
    results = _read_json(out / "metrics.json")
    for name in ("imagenet2012", "imagenet_a", "imagenet_v2", "imagenet_r"):
        assert results[name]["ensemble"]["num_examples"] == 8, name
        assert math.isfinite(results[name]["ensemble"]["nll"])
    assert "imagenet2012_corrupted/gaussian_noise_1" in results
    assert math.isfinite(results["imagenet2012_corrupted"]["member_mean"]["mce"])
    rows = _leaderboard_rows((out / "leaderboard.md").read_text(), leaderboard.IMAGENET_HEADER)
    assert [r[0] for r in rows] == ["Heteroscedastic", "Heteroscedastic ensemble (size=1)"]
    assert all(len(r) == 11 for r in rows)
    nll, accuracy, ece = rows[0][1].split(" / ")
    mean = results["imagenet2012"]["member_mean"]
    assert float(nll) == pytest.approx(mean["nll"], rel=5e-3)
    assert float(accuracy.rstrip("%")) == pytest.approx(100 * mean["accuracy"], abs=0.06)
    assert ece == f"{mean['ece']:.3f}"


def test_evaluate_cifar10_leaderboard(baseline_members):
    from het_ensembles.evaluation import leaderboard

    # `--corruptions` picks the suite's CIFAR-10-C sets (all 75 take ~2 minutes on mock data).
    console.run(
        [
            "evaluate",
            "--members",
            "runs/cifar/*/*",
            "--suite",
            "cifar10",
            "--corruptions",
            "gaussian_noise",
            "--severities",
            "1",
            "--output_dir",
            "runs/eval_cifar",
        ],
        baseline_members,
        mock_tfds=MOCK,
    )
    out = baseline_members / "runs" / "eval_cifar"
    results = _read_json(out / "metrics.json")
    assert set(results) == {"cifar10", "cifar10_corrupted/gaussian_noise_1", "cifar10_corrupted"}
    assert results["cifar10"]["ensemble"]["ensemble_size"] == 2
    assert results["cifar10"]["ensemble"]["num_examples"] == 8
    rows = _leaderboard_rows((out / "leaderboard.md").read_text(), leaderboard.CIFAR_HEADER)
    assert rows and all(len(r) == 8 for r in rows)
    corrupted = results["cifar10_corrupted"]["member_mean"]
    assert rows[0][4].startswith(f"{corrupted['nll']:.2f} / ")


BENCH = [
    "bench",
    "--only",
    "het_ensembles,edward2",
    "--samples",
    "10",
    "--classes",
    "16",
    "--steps",
    "5",
    "--rounds",
    "3",
    "--json",
    "bench.json",
]


@pytest.fixture(scope="module", autouse=True)
def background(workdir):
    """Jobs that need nothing else, started with the module's first test and run beside the
    other steps: the baselines scripts, and the bench (its 15 row processes are the minimum
    with edward2's rows: 3 rounds of dense, ours and edward2's, each noise; only its table is
    checked, not its timings)."""
    import importlib.util

    pool = concurrent.futures.ThreadPoolExecutor(max_workers=2)
    jobs = {"baselines": pool.submit(_train_baselines, workdir), "bench": None}
    if importlib.util.find_spec("edward2") is not None:
        jobs["bench"] = pool.submit(console.run, BENCH, workdir, check=False)
    yield jobs
    pool.shutdown(wait=True)


def test_bench_tiny(background, workdir):
    bench = background["bench"]
    if bench is None:
        pytest.skip(
            "edward2 is not installed (pip install -e '.[test]'): the bench compares with it"
        )
    done = bench.result()
    assert done.returncode == 0, f"het-ensembles {' '.join(BENCH)}\n{done.stderr[-6000:]}"
    assert "| het_ensembles | per-example | 10 |" in done.stdout
    report = _read_json(workdir / "bench.json")
    assert report["protocol"]["classes"] == 16 and report["rounds"] == 3
    rows = {(r["impl"], r["share_samples"]): r for r in report["rows"]}
    assert set(rows) == {
        ("dense", False),
        ("het_ensembles", False),
        ("het_ensembles", True),
        ("edward2", False),
        ("edward2", True),
    }
    assert not [r for r in report["rows"] if "error" in r]
    for share in (False, True):
        ours = rows[("het_ensembles", share)]
        assert ours["seconds_min"] > 0 and ours["vs_edward2"]["median"] > 0
        # The same head in both: the parameter counts agree.
        assert ours["parameters"] == rows[("edward2", share)]["parameters"]
