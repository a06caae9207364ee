"""`het-ensembles study` on two random variants with tiny configs: bookkeeping and counts."""

import hashlib
import json
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest

from het_ensembles.data import noisy_digits, synthetic
from het_ensembles.experiments import study

CONFIG = """
from het_ensembles import training


def get_config():
    config = training.default_config()
    config.dataset = "{dataset}"
    config.model = "mlp"
    config.model_kwargs = {{"hidden_units": {hidden_units}}}
    config.per_core_batch_size = 64
    config.train_epochs = 1
    config.steps_per_epoch = 4
    config.base_learning_rate = 1.0
    config.warmup_epochs = 0
    config.head = "{head}"
    config.num_factors = 1
    config.temperature = 0.5
    config.train_mc_samples = 8
    config.test_mc_samples = 16
{extra}
    return config
"""


def _configs(directory, dataset, hidden_units, extra=None):
    """Tiny Hom and Het configs; `extra` maps a head to more lines of `get_config`."""
    paths = []
    for head in ("deterministic", "heteroscedastic"):
        path = directory / f"{head}.py"
        lines = (extra or {}).get(head, [])
        text = CONFIG.format(
            dataset=dataset,
            hidden_units=hidden_units,
            head=head,
            extra="\n".join(f"    {line}" for line in lines),
        )
        path.write_text(text)
        paths.append(str(path))
    return paths


def test_study_counts_match_its_variants(tmp_path, capsys):
    paths = _configs(tmp_path, "noisy_digits", "(16,)")
    out = tmp_path / "study"
    argv = ["--configs", *paths, "--variants", "2", "--seeds", "1", "--seed", "5"]
    assert study.cli_main([*argv, "--output_dir", str(out), "--no_progress"]) == 0
    assert "held-out noisy_digits variants" in capsys.readouterr().out
    table = json.loads(Path(out, "study.json").read_text())
    # The variants are the seed's random specs, each compared in its own directory.
    rng = np.random.default_rng(5)
    expected = [noisy_digits.random_spec(rng).name for _ in range(2)]
    assert [row["dataset"] for row in table["variants"]] == expected
    for index, row in enumerate(table["variants"]):
        digest = hashlib.sha256(row["dataset"].encode()).hexdigest()[:8]
        comparison = json.loads(Path(out, f"{index}_{digest}", "comparison.json").read_text())
        assert comparison["dataset"] == row["dataset"]
        for metric in ("accuracy", "nll", "ece"):
            d = comparison["pairs"][0]["ensemble_difference"][metric]
            assert row[metric] == {k: d[k] for k in ("difference", "low", "high")}
    # The forest plot beside it: a PNG with a panel per metric.
    image = matplotlib.image.imread(out / "study.png")
    assert image.ndim == 3 and image.shape[1] > image.shape[0] > 100
    nll = table["summary"]["nll"]
    differences = [row["nll"]["difference"] for row in table["variants"]]
    assert nll["b_better"] == sum(d < 0 for d in differences)
    assert nll["b_better_sure"] == sum(row["nll"]["high"] < 0 for row in table["variants"])
    assert nll["mean_difference"] == np.mean(differences)


def test_a_synthetic_study_draws_planted_sigma_variants_and_reports_their_bayes_nll(
    tmp_path, capsys
):
    held_out = ["config.validation_fraction = 0.1", "config.keep_best_epoch = True"]
    extra = {
        "deterministic": held_out,
        "heteroscedastic": [*held_out, "config.temperature_grid = (0.5, 1.0)"],
    }
    paths = _configs(tmp_path, "synthetic", "()", extra)
    out = tmp_path / "study"
    argv = ["--configs", *paths, "--family", "synthetic", "--variants", "1", "--seeds", "1"]
    # Study seed 11 draws a 4-class variant, the cheapest to integrate.
    assert study.cli_main([*argv, "--seed", "11", "--output_dir", str(out), "--no_progress"]) == 0
    printed = capsys.readouterr().out
    assert "held-out synthetic variants" in printed
    table = json.loads(Path(out, "study.json").read_text())
    (row,) = table["variants"]
    spec = synthetic.random_spec(np.random.default_rng(11))
    assert table["family"] == "synthetic" and row["dataset"] == spec.name in printed
    assert spec.sigma == "random"
    # The temperature is the one chosen on validation, and the Bayes-optimal NLL is the planted
    # model's own: below what a 4-step model reaches on the same 10,000 test labels.
    choice = json.loads(
        Path(
            out,
            f"0_{hashlib.sha256(row['dataset'].encode()).hexdigest()[:8]}",
            "temperature",
            "heteroscedastic",
            "temperature_choice.json",
        ).read_text()
    )
    assert row["temperatures"] == {"heteroscedastic": choice["temperature"]}
    assert choice["temperature"] in (0.5, 1.0)
    arrays = synthetic.make_arrays(spec)
    # An independent estimate (other draws, 250 vs the study's 1,000 samples) agrees within 5
    # standard errors of the difference.
    expected, standard_error = synthetic.bayes_optimal_nll(
        arrays["x_test"], arrays["y_test"], model=spec.model(), num_samples=250, seed=1
    )
    assert abs(row["bayes_nll"] - expected) < 5 * standard_error * np.sqrt(1 + 250 / 1000)
    for name in ("deterministic", "heteroscedastic"):
        assert row["ensembles"][name]["nll"] > row["bayes_nll"]


def test_study_rejects_an_unknown_family(tmp_path):
    with pytest.raises(ValueError, match="Unknown family. Received: family='digits'"):
        study.study(["a.py", "b.py"], str(tmp_path), family="digits")
