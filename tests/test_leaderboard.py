"""Leaderboard rows against uncertainty-baselines' published READMEs, character for character.

The header and row literals below are pasted from google/uncertainty-baselines (commit
163351d4): `baselines/imagenet/README.md` (ResNet-50 table) and `baselines/cifar/README.md`
(CIFAR-10 / CIFAR-100 tables).
"""

import pytest

from het_ensembles.evaluation import leaderboard

# baselines/imagenet/README.md lines 5-6.
IMAGENET_HEADER = [
    "| Method | ImageNet | ImageNet-C | ImageNet-A | ImageNetV2 | ImageNet-Vid-Robust | YTBB-Robust | ObjectNet | Train Runtime (hours) | Test Runtime (ms / example)| # Parameters |",
    "| ----------- | ----------- | ----------- | ----------- | ----------- | -----------| ----------- | ----------- | ----------- | ----------- | ----------- |",
]
# baselines/cifar/README.md lines 5-6 (and 28-29, the same for CIFAR-100).
CIFAR_HEADER = [
    "| Method | Test NLL | Test Accuracy | Test Cal. Error | cNLL/cA/cCE | Train Runtime (hours) | Test Runtime (ms / example)| # Parameters |",
    "| ----------- | ----------- | ----------- | ----------- | ----------- | -----------| ----------- | ----------- |",
]
# baselines/imagenet/README.md line 19.
HET_ROW = "| [Heteroscedastic](heteroscedastic.py) | 0.898 / 77.5% / 0.033 | 3.20 / 42.4% / 0.111 (72.7%) | 7.94 / 0.96% / 0.436 | 1.58 / 64.8% / 0.084 | 50.6% | 45.6% | 27.9% | 7.5 (32 TPUv2 cores) | 1.28 (32 TPUv2 cores) | 58.4M |"
# baselines/imagenet/README.md line 14.
SNGP_ROW = "| [SNGP](sngp.py) | 0.931 / 76.1% / 0.013 | 3.03 / 41.1% / 0.045 (74.6%) | 7.12 / 0.82% / 0.355 | 1.54 / 64.0% / 0.040 | 49.6% | 46.4% | 26.2% | 5 (32 TPUv3 cores) | 0.017 (32 TPUv3 cores) | 26.6M |"
# baselines/cifar/README.md line 36 (CIFAR-100).
CIFAR100_SNGP_ROW = "| [SNGP](sngp.py) | 0.805 | 80.2% | 0.020 | 2.02 / 54.6% / 0.092 | 2.6 (8 TPUv2 cores) | 0.378 (8 TPUv2 cores) | 37.5M |"


def _result(**values):
    """One evaluator dataset entry (as in metrics.json) with the same values for every statistic."""
    return {"ensemble": dict(values), "member_mean": dict(values), "member_std": {}}


# Unrounded metrics whose published (rounded) values are the Heteroscedastic row.
HET_METRICS = {
    "imagenet2012": _result(nll=0.89813, accuracy=0.77482, ece=0.03304, num_params=58_437_640),
    "imagenet2012_corrupted": _result(nll=3.1984, accuracy=0.42361, ece=0.11149, mce=0.72694),
    "imagenet_a": _result(nll=7.9402, accuracy=0.0096, ece=0.43571),
    "imagenet_v2": _result(nll=1.5804, accuracy=0.64797, ece=0.08407),
    "imagenet_vid_robust": _result(accuracy=0.50621),
    "ytbb_robust": _result(accuracy=0.45598),
    "objectnet": _result(accuracy=0.27913),
}
TPU = "32 TPUv2 cores"


def test_headers_are_the_published_ones_character_for_character():
    assert leaderboard.header("imagenet") == IMAGENET_HEADER
    assert leaderboard.header("cifar") == CIFAR_HEADER
    text = leaderboard.table("cifar", ["| a |"])
    assert text == "\n".join([*CIFAR_HEADER, "| a |"]) + "\n"


def test_reproduces_the_published_heteroscedastic_row():
    row = leaderboard.row(
        "[Heteroscedastic](heteroscedastic.py)",
        HET_METRICS,
        statistic="member_mean",
        train_hours=7.5,
        train_devices=TPU,
        test_ms=1.2812,
        test_devices=TPU,
    )
    assert row == HET_ROW


def test_reproduces_the_published_sngp_rows():
    metrics = {
        "imagenet2012": {"nll": 0.9312, "accuracy": 0.76108, "ece": 0.01321},
        "imagenet2012_corrupted": {
            "nll": 3.0311,
            "accuracy": 0.41148,
            "ece": 0.0452,
            "mce": 0.7461,
        },
        "imagenet_a": {"nll": 7.1189, "accuracy": 0.00821, "ece": 0.35463},
        "imagenet_v2": {"nll": 1.5391, "accuracy": 0.64012, "ece": 0.04012},
        "imagenet_vid_robust": {"accuracy": 0.4962},
        "ytbb_robust": {"accuracy": 0.4641},
        "objectnet": {"accuracy": 0.2619},
    }
    tpu = "32 TPUv3 cores"
    row = leaderboard.row(
        "[SNGP](sngp.py)",
        metrics,
        statistic=None,
        train_hours=5.02,
        train_devices=tpu,
        test_ms=0.01709,
        test_devices=tpu,
        num_params=26_583_145,
    )
    assert row == SNGP_ROW
    cifar = {
        "cifar100": {"nll": 0.80512, "accuracy": 0.80163, "ece": 0.0201},
        "cifar100_corrupted": {"nll": 2.0213, "accuracy": 0.54612, "ece": 0.09188},
    }
    row = leaderboard.row(
        "[SNGP](sngp.py)",
        cifar,
        statistic=None,
        train_hours=2.6,
        train_devices="8 TPUv2 cores",
        test_ms=0.3781,
        test_devices="8 TPUv2 cores",
        num_params=37_525_000,
    )
    assert row == CIFAR100_SNGP_ROW


def test_every_imagenet_cell_is_the_metric_reformatted_by_hand():
    metrics = {
        "imagenet2012": _result(nll=1.23456, accuracy=0.5, ece=0.1234, ms_per_example=0.5),
        "imagenet2012_corrupted": _result(nll=12.345, accuracy=0.25, ece=0.0006, mce=0.99999),
        "imagenet_v2": _result(nll=0.012345, accuracy=0.999999, ece=0.5),
    }
    row = leaderboard.row("m", metrics, statistic="ensemble", num_params=850_123)
    cells = [c.strip() for c in row.split("|")[1:-1]]
    assert cells == [
        "m",
        "1.23 / 50.0% / 0.123",
        "12.3 / 25.0% / 0.001 (100.0%)",
        "-",  # ImageNet-A not evaluated
        "0.0123 / 100.0% / 0.500",
        "-",
        "-",
        "-",
        "-",  # no train runtime given
        "0.500",  # test ms from the clean set's ms_per_example
        "850K",
    ]


def test_missing_sets_and_values_are_dashes():
    row = leaderboard.row("[Det](deterministic.py)", {}, family="imagenet")
    assert row == "| [Det](deterministic.py) | " + " | ".join(["-"] * 10) + " |"
    only_ece_missing = {"imagenet2012": {"ensemble": {"nll": 1.0, "accuracy": 0.772}}}
    row = leaderboard.row("B1", only_ece_missing)
    assert row.startswith("| B1 | 1.00 / 77.2% / - | - |")
    no_mce = {"imagenet2012_corrupted": {"ensemble": {"nll": 2.0, "accuracy": 0.4, "ece": 0.1}}}
    assert "| 2.00 / 40.0% / 0.100 |" in leaderboard.row("x", no_mce)


def test_cifar_row_cells_and_statistics():
    metrics = {
        "cifar10": {
            "ensemble": {"nll": 0.1142, "accuracy": 0.9661, "ece": 0.0104},
            "member_mean": {"nll": 0.159, "accuracy": 0.96, "ece": 0.0231, "num_params": 36.5e6},
            "ensemble_subsets": {"mean": {"nll": 0.12, "accuracy": 0.963, "ece": 0.009}},
        },
        "cifar10_corrupted": {
            "ensemble": {"nll": 0.81, "accuracy": 0.779, "ece": 0.087, "mce": 0.5},
        },
    }
    assert leaderboard.family_of(metrics) == "cifar"
    assert leaderboard.row("E", metrics) == (
        "| E | 0.114 | 96.6% | 0.010 | 0.810 / 77.9% / 0.087 | - | - | - |"  # no mCE column
    )
    assert leaderboard.row("D", metrics, statistic="member_mean", train_hours=1.2) == (
        "| D | 0.159 | 96.0% | 0.023 | - | 1.2 | - | 36.5M |"
    )
    assert leaderboard.row("S", metrics, statistic="ensemble_subsets").startswith(
        "| S | 0.120 | 96.3% | 0.009 | - |"
    )


def test_generic_table_for_other_datasets():
    metrics = {
        "noisy_digits": _result(nll=0.5, accuracy=0.875, ece=0.05),
        "noisy_digits:test_clean": _result(nll=0.25, accuracy=0.9375, ece=0.0312),
    }
    assert leaderboard.family_of(metrics) == "generic"
    datasets = leaderboard.generic_datasets(metrics)
    row = leaderboard.row("Het", metrics, test_ms=12.345, num_params=1234)
    assert leaderboard.table("generic", [row], datasets=datasets) == (
        "| Method | noisy_digits | noisy_digits:test_clean | Train Runtime (hours) | "
        "Test Runtime (ms / example)| # Parameters |\n"
        "| ----------- | ----------- | ----------- | ----------- | ----------- | ----------- |\n"
        "| Het | 0.500 / 87.5% / 0.050 | 0.250 / 93.8% / 0.031 | - | 12.3 | 1K |\n"
    )


@pytest.mark.parametrize(
    "value, expected",
    [(0.898, "0.898"), (3.2, "3.20"), (7.94, "7.94"), (9.996, "10.0"), (123.4, "123"), (0, "0.00")],
)
def test_nll_has_three_significant_figures(value, expected):
    assert leaderboard.row("m", {"x": {"nll": value}}, statistic=None).split(" | ")[1] == (
        f"{expected} / - / -"
    )


@pytest.mark.parametrize(
    "family, names",
    [
        ("imagenet", ["imagenet_a"]),
        ("imagenet", ["imagenet2012_corrupted/fog_1", "cifar10"]),
        ("cifar", "cifar10_corrupted/fog_3"),
        ("generic", ["npz:/tmp/a.npz", "synthetic"]),
    ],
)
def test_family_of(family, names):
    assert leaderboard.family_of(names) == family


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: leaderboard.header("mnist"), "family"),
        (lambda: leaderboard.header("generic"), "datasets"),
        (lambda: leaderboard.row("m", {}, family="imagenet", statistic="median"), "statistic"),
        (lambda: leaderboard.row("m", {}, family="cifar", train_hours=-1), "train_hours=-1"),
        (lambda: leaderboard.row("m", {}, family="cifar", test_ms=float("nan")), "test_ms"),
        (lambda: leaderboard.row("m", {}, family="cifar", num_params="58M"), "num_params"),
        (lambda: leaderboard.row("m", {}), "datasets"),
    ],
)
def test_bad_arguments(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_imagenet_v2_column_also_reads_the_explicit_variant_name():
    metrics = {"imagenet_v2/matched-frequency": {"nll": 1.58, "accuracy": 0.648, "ece": 0.084}}
    cells = leaderboard.row("m", metrics, statistic=None).split(" | ")
    assert cells[4] == "1.58 / 64.8% / 0.084" and cells[3] == "-"
