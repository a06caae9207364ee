"""`het-ensembles study` on two random variants with tiny configs: bookkeeping and counts."""

import hashlib
import json
from pathlib import Path

import numpy as np

from het_ensembles import study
from het_ensembles.data import noisy_digits

CONFIG = """
from het_ensembles import training


def get_config():
    config = training.default_config()
    config.dataset = "noisy_digits"
    config.model = "mlp"
    config.model_kwargs = {{"hidden_units": (16,)}}
    config.per_core_batch_size = 64
    config.train_epochs = 1
    config.steps_per_epoch = 4
    config.base_learning_rate = 1.0
    config.warmup_epochs = 0
    config.head = "{head}"
    config.num_factors = 2
    config.temperature = 1.0
    config.train_mc_samples = 8
    config.test_mc_samples = 16
    return config
"""


def test_study_counts_match_its_variants(tmp_path, capsys):
    paths = []
    for head in ("deterministic", "heteroscedastic"):
        path = tmp_path / f"{head}.py"
        path.write_text(CONFIG.format(head=head))
        paths.append(str(path))
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
    nll = table["summary"]["nll"]
    differences = [row["nll"]["difference"] for row in table["variants"]]
    assert nll["b_better"] == sum(d < 0 for d in differences)
    assert nll["b_better_sure"] == sum(row["nll"]["high"] < 0 for row in table["variants"])
    assert nll["mean_difference"] == np.mean(differences)
