"""A mixup member, trained and evaluated with the console script: `+rescaling` in both outputs.

The member's `test/nll+rescaling` (the trainer's pass) and the evaluator's `nll+rescaling` (its
own cached prediction pass over the same test set) are two computations of one number; the
ensemble rule (rescale each member, then average) is checked against numpy on the cache.
"""

import json
import shutil

import numpy as np
import pytest
import scipy.special
from console import run

from het_ensembles import evaluation, member_dir
from het_ensembles.evaluation import rescaling

TRAIN = [
    "train",
    "--config=configs/noisy_digits/heteroscedastic.py",
    "--config.train_epochs=1",
    "--config.steps_per_epoch=3",
    "--config.per_core_batch_size=16",
    "--config.train_mc_samples=8",
    "--config.test_mc_samples=8",
    "--config.mixup_alpha=0.2",
    "--output_dir=mix",
]


def _json(path):
    with open(path) as f:
        return json.load(f)


def test_mixup_member_reports_rescaled_metrics_in_train_and_evaluate(tmp_path):
    run(TRAIN, tmp_path)
    member = _json(tmp_path / "mix" / "metrics.json")
    assert (tmp_path / "mix" / member_dir.MIXUP_RESCALING_STATS_FILE).is_file()
    for metric in ("nll", "accuracy", "ece"):
        assert f"test/{metric}+rescaling" in member and f"test/{metric}" in member
    run(["evaluate", "--members", "mix", "--dataset", "noisy_digits", "--output_dir=ev"], tmp_path)
    rows = _json(tmp_path / "ev" / "metrics.json")["noisy_digits"]
    evaluated = rows["members"]["mix"]
    for metric in ("nll", "accuracy", "ece"):
        assert evaluated[f"{metric}+rescaling"] == pytest.approx(
            member[f"test/{metric}+rescaling"], rel=1e-5, abs=1e-7
        )
        assert evaluated[metric] == pytest.approx(member[f"test/{metric}"], rel=1e-5, abs=1e-7)
        assert rows["ensemble"][f"{metric}+rescaling"] == pytest.approx(
            evaluated[f"{metric}+rescaling"]
        )
    assert evaluated["nll+rescaling"] != pytest.approx(evaluated["nll"])  # a different model
    # The row's name: uncertainty-baselines' "Heteroscedastic with Mixup".
    assert "\n| Heteroscedastic with Mixup | " in (tmp_path / "ev" / "leaderboard.md").read_text()

    # A second mixup member (the same weights, its own statistics file) and a plain one.
    shutil.copytree(tmp_path / "mix", tmp_path / "mix2")
    stats_path = tmp_path / "mix2" / member_dir.MIXUP_RESCALING_STATS_FILE
    stats = member_dir.read_npz(str(stats_path))
    member_dir.write_npz(str(stats_path), {**stats, "mean_theta": np.float64(0.75)})
    shutil.copytree(tmp_path / "mix", tmp_path / "plain")
    (tmp_path / "plain" / member_dir.MIXUP_RESCALING_STATS_FILE).unlink()
    config = _json(tmp_path / "plain" / "config.json")
    member_dir.write_json(str(tmp_path / "plain" / "config.json"), {**config, "mixup_alpha": 0.0})

    both = evaluation.evaluate(
        [str(tmp_path / "mix"), str(tmp_path / "mix2")],
        ["noisy_digits"],
        str(tmp_path / "ev2"),
        progress=False,
    )["noisy_digits"]
    labels, _ = evaluation.cached_predictions(
        str(tmp_path / "ev2"), [str(tmp_path / "mix")], "noisy_digits"
    )
    rescaled = [
        np.load(tmp_path / "ev2" / "predictions" / rescaling.VARIANT / "noisy_digits" / f"{m}.npy")
        for m in ("mix", "mix2")
    ]
    ensemble = scipy.special.logsumexp(np.stack(rescaled), axis=0) - np.log(2)
    nll = -ensemble[np.arange(len(labels)), labels].mean()
    assert both["ensemble"]["nll+rescaling"] == pytest.approx(nll, rel=1e-6)
    assert both["members"]["mix2"]["nll+rescaling"] != pytest.approx(
        both["members"]["mix"]["nll+rescaling"]
    )
    assert both["members"]["mix"]["nll+rescaling"] == pytest.approx(evaluated["nll+rescaling"])

    mixed = evaluation.evaluate(
        [str(tmp_path / "mix"), str(tmp_path / "plain")],
        ["noisy_digits"],
        str(tmp_path / "ev3"),
        progress=False,
    )["noisy_digits"]
    assert "nll+rescaling" in mixed["members"]["mix"]
    assert not any(k.endswith("+rescaling") for k in mixed["members"]["plain"])
    assert not any(k.endswith("+rescaling") for k in mixed["ensemble"])  # not every member
    assert "\n| Heteroscedastic | " in (tmp_path / "ev3" / "leaderboard.md").read_text()


def test_mixup_member_without_its_statistics_is_refused(tmp_path):
    (tmp_path / "m").mkdir()
    member_dir.write_json(str(tmp_path / "m" / "config.json"), {"mixup_alpha": 0.2})
    member = member_dir.read_member(tmp_path / "m")
    with pytest.raises(ValueError, match="trained with mixup.*mixup_rescaling_stats.npz"):
        rescaling.mixup_members([member])
