"""Leaderboard rows exactly as uncertainty-baselines prints them (pure formatting, no TensorFlow).

Where it sits: ... -> evaluator (`metrics.json`) -> **leaderboard** -> `leaderboard.md`.

The tables are those of uncertainty-baselines' `baselines/imagenet/README.md` (ResNet-50) and
`baselines/cifar/README.md` (Wide ResNet 28-10), header and `---` line character for character;
any other dataset gets a generic table in the same style, and multi-label members (rows with
`gap`) a multi-label table, `| Method | gAP | mAP | prec@1 | NLL | ECE | ... |` (each column
prefixed with its dataset when there are several). Input is the evaluator's metrics
dict (`het_ensembles.evaluation.evaluate`): `{dataset: {"ensemble": {...}, "member_mean": {...}, ...}}` where
each inner dict holds `nll`, `accuracy`, `ece` (fractions, not percent), and for a corruption
summary (`imagenet2012_corrupted`, `cifar10_corrupted`) the means over its sets plus `mce`.

Cells, per the published rows (whose precision varies; one rule each, chosen so that the
published Heteroscedastic and SNGP rows come out unchanged):

- NLL: 3 significant figures (`0.898`, `3.20`, `7.94`);
- accuracy: percent with 1 decimal, 2 below 1% (`77.5%`, `0.96%`); mCE likewise;
- ECE: 3 decimals (`0.033`);
- gAP, mAP, prec@1 (multi-label): percent as accuracy (the paper's Table 3 prints gAP 47.0);
- ImageNet columns `NLL / acc% / ECE`, ImageNet-C `cNLL / cA% / cECE (mCE%)`,
  ImageNet-Vid-Robust / YTBB-Robust / ObjectNet accuracy only; CIFAR `Test NLL`, `Test
  Accuracy`, `Test Cal. Error` and `cNLL / cA% / cCE`;
- train runtime in hours with at most 1 decimal (`7.5`, `5`), test runtime in ms per example
  with 3 significant figures and at most 3 decimals (`1.28`, `0.020`), each followed by the
  devices when given (`7.5 (32 TPUv2 cores)`); parameters as `58.4M` (`850K` below a million);
- `-` for a dataset that was not evaluated or a value that is missing.

The ImageNet-A and ImageNetV2 cells are robustness-metrics' `imagenet_variants` report as the
published rows were made: 1000-way predictions on ImageNet-A (not the authors' 200-class
restriction, `het_ensembles.data.restrict_log_probs`) and the matched-frequency ImageNetV2.
ImageNet-R has no column in the published table.

Usage:

    rows = [
        leaderboard.row("[Heteroscedastic](heteroscedastic.py)", metrics,
                        statistic="member_mean", train_hours=7.5,
                        train_devices="32 TPUv2 cores", test_ms=1.28,
                        test_devices="32 TPUv2 cores", num_params=58_400_000),
        leaderboard.row("Heteroscedastic Ensemble (size=4)", metrics, statistic="ensemble"),
    ]
    text = leaderboard.table(leaderboard.family_of(metrics), rows)
"""

import math
import numbers

FAMILIES = ("imagenet", "cifar", "generic", "multilabel")
STATISTICS = ("ensemble", "member_mean", "ensemble_subsets")

# baselines/imagenet/README.md, "## ResNet-50" table (google/uncertainty-baselines).
IMAGENET_HEADER = (
    (
        "| Method | ImageNet | ImageNet-C | ImageNet-A | ImageNetV2 | ImageNet-Vid-Robust | "
        "YTBB-Robust | ObjectNet | Train Runtime (hours) | Test Runtime (ms / example)| "
        "# Parameters |"
    ),
    (
        "| ----------- | ----------- | ----------- | ----------- | ----------- | -----------| "
        "----------- | ----------- | ----------- | ----------- | ----------- |"
    ),
)
# baselines/cifar/README.md, "## CIFAR-10" and "## CIFAR-100" tables.
CIFAR_HEADER = (
    (
        "| Method | Test NLL | Test Accuracy | Test Cal. Error | cNLL/cA/cCE | Train Runtime "
        "(hours) | Test Runtime (ms / example)| # Parameters |"
    ),
    (
        "| ----------- | ----------- | ----------- | ----------- | ----------- | -----------| "
        "----------- | ----------- |"
    ),
)

# ImageNet table: (dataset key in the metrics dict, or keys tried in turn; cell kind) per column
# after "Method".
IMAGENET_COLUMNS = (
    ("imagenet2012", "nll_acc_ece"),
    ("imagenet2012_corrupted", "corrupted"),  # the evaluator's ImageNet-C summary entry
    ("imagenet_a", "nll_acc_ece"),  # 1000-way predictions, as robustness-metrics
    (("imagenet_v2", "imagenet_v2/matched-frequency"), "nll_acc_ece"),
    ("imagenet_vid_robust", "accuracy"),  # pm-k accuracy; not in TFDS
    ("ytbb_robust", "accuracy"),  # pm-k accuracy; not in TFDS
    ("objectnet", "accuracy"),  # not in TFDS
)
# CIFAR table: the clean test set and its corruption summary, first one present.
CIFAR_DATASETS = (
    ("cifar10", "cifar10_corrupted"),
    ("cifar100", "cifar100_corrupted"),
    ("cifar10_n", "cifar10_corrupted"),
)


def family_of(datasets):
    """The table for a dataset name or the names in a metrics dict.

    Args:
      datasets: a dataset name, or an iterable of them (a metrics dict gives its keys).

    Returns:
      "multilabel" for a metrics dict of multi-label members (rows with `gap`), else
      "imagenet" if any name is an ImageNet set (`imagenet2012`, `imagenet2012_corrupted/...`,
      `imagenet_a`, `imagenet_r`, `imagenet_v2`, ...), else "cifar" if any is a CIFAR set
      (`cifar10`, `cifar100`, `cifar10_n`, `cifar10_corrupted/...`), else "generic".
    """
    if isinstance(datasets, dict) and any(_is_multilabel(entry) for entry in datasets.values()):
        return "multilabel"
    names = [datasets] if isinstance(datasets, str) else list(datasets)
    if any(name.startswith("imagenet") for name in names):
        return "imagenet"
    if any(name.startswith("cifar") for name in names):
        return "cifar"
    return "generic"


def generic_datasets(metrics):
    """The columns of a generic table: the dataset keys, without per-corruption entries
    (`<set>_corrupted/<corruption>_<severity>`) or class-subset scores (`<set>@<classes>`)."""
    return [name for name in metrics if "_corrupted/" not in name and "@" not in name]


def header(family, datasets=None):
    """The table's two header lines (column names, then the `---` line).

    Args:
      family: "imagenet", "cifar", "generic" or "multilabel".
      datasets: for "generic" and "multilabel", the dataset names of its columns (see
        `generic_datasets`).

    Returns:
      A list of two strings.

    Raises:
      ValueError: for an unknown family, or a generic table without datasets.
    """
    _check_family(family)
    if family == "imagenet":
        return list(IMAGENET_HEADER)
    if family == "cifar":
        return list(CIFAR_HEADER)
    datasets = _check_datasets(datasets)
    if family == "multilabel":
        prefixes = [f"{d} " if len(datasets) > 1 else "" for d in datasets]
        columns = [f"{p}{name}" for p in prefixes for _, name, _ in MULTILABEL_COLUMNS]
    else:
        columns = datasets
    names = ["Method", *columns, "Train Runtime (hours)"]
    first = "| " + " | ".join(names) + " | Test Runtime (ms / example)| # Parameters |"
    second = "| " + " | ".join(["-----------"] * (len(names) + 2)) + " |"
    return [first, second]


def row(
    method,
    metrics,
    *,
    family=None,
    statistic="ensemble",
    datasets=None,
    train_hours=None,
    train_devices=None,
    test_ms=None,
    test_devices=None,
    num_params=None,
):
    """One table row, `| <method> | ... |`.

    Args:
      method: the Method cell, verbatim (e.g. "[Heteroscedastic](heteroscedastic.py)").
      metrics: the evaluator's metrics dict `{dataset: {statistic: {"nll": ..., ...}}}`.
      family: "imagenet", "cifar", "generic" or "multilabel"; default `family_of(metrics)`.
      statistic: which entry of each dataset's result to print: "ensemble", "member_mean"
        (the single-model row) or "ensemble_subsets" (its "mean"); None when `metrics` maps
        each dataset straight to its metric dict.
      datasets: for "generic" and "multilabel", the column datasets (default
        `generic_datasets(metrics)`).
      train_hours: training time in hours (None: `-`).
      train_devices: e.g. "32 TPUv2 cores", printed after the training time.
      test_ms: test time in ms per example; default the clean set's `ms_per_example` (else
        the first evaluated set's).
      test_devices: e.g. "32 TPUv2 cores", printed after the test time.
      num_params: parameter count; default the clean set's `num_params`.

    Returns:
      The row as one string.

    Raises:
      ValueError: for an unknown family or statistic, or a negative or non-finite
        train_hours, test_ms or num_params.
    """
    family = family_of(metrics) if family is None else family
    _check_family(family)
    if statistic is not None and statistic not in STATISTICS:
        raise ValueError(
            f"statistic must be one of {list(STATISTICS)} or None. Received: "
            f"statistic={statistic!r}"
        )
    for name, value in (("train_hours", train_hours), ("test_ms", test_ms)):
        _check_amount(name, value)
    _check_amount("num_params", num_params)

    def pick(dataset):
        keys = (dataset,) if isinstance(dataset, str) else dataset
        entry = next((metrics[key] for key in keys if key in metrics), None)
        if entry is None or statistic is None:
            return entry
        if statistic == "ensemble_subsets":
            return (entry.get("ensemble_subsets") or {}).get("mean")
        return entry.get(statistic)

    if family == "imagenet":
        clean = pick("imagenet2012")
        picked = [pick(dataset) for dataset, _ in IMAGENET_COLUMNS]
        cells = [_CELLS[kind](entry) for (_, kind), entry in zip(IMAGENET_COLUMNS, picked)]
    elif family == "cifar":
        clean_name, corrupted_name = next(
            (pair for pair in CIFAR_DATASETS if pair[0] in metrics), CIFAR_DATASETS[0]
        )
        clean = pick(clean_name)
        picked = [clean, pick(corrupted_name)]
        cells = [
            _value(clean, "nll", _nll),
            _value(clean, "accuracy", _percent),
            _value(clean, "ece", _ece),
            _nll_acc_ece(picked[1]),
        ]
    else:
        datasets = _check_datasets(generic_datasets(metrics) if datasets is None else datasets)
        picked = [pick(dataset) for dataset in datasets]
        clean = picked[0]
        if family == "multilabel":
            cells = [_value(e, k, fmt) for e in picked for k, _, fmt in MULTILABEL_COLUMNS]
        else:
            cells = [_nll_acc_ece(entry) for entry in picked]
    # Costs from the clean set, else from the first set evaluated (e.g. ImageNet-C alone).
    cost = clean if clean is not None else next((e for e in picked if e is not None), None)
    if test_ms is None and cost is not None:
        test_ms = cost.get("ms_per_example")
    if num_params is None and cost is not None:
        num_params = cost.get("num_params")
    cells += [
        _runtime(train_hours, train_devices, _hours),
        _runtime(test_ms, test_devices, _milliseconds),
        "-" if num_params is None else _params(num_params),
    ]
    return "| " + " | ".join([str(method).replace("|", "\\|"), *cells]) + " |"


def table(family, rows, *, datasets=None):
    """The header lines followed by `rows` (strings from `row`), newline-terminated.

    Args:
      family: "imagenet", "cifar" or "generic" (see `family_of`).
      rows: row strings, in order.
      datasets: for "generic", the column datasets the rows were made with.

    Returns:
      The markdown table as one string.
    """
    return "\n".join([*header(family, datasets), *rows]) + "\n"


# ------------------------------------------------------------------------------------------------
# Number formats.


def _significant(value, digits, max_decimals=None):
    """Fixed-point `value` with `digits` significant figures (`0.898`, `3.20`, `7.94`)."""
    if not math.isfinite(value):
        return str(value)
    decimals = digits - 1
    if value != 0:
        exponent = math.floor(math.log10(abs(value)))
        decimals = max(0, digits - 1 - exponent)
        rounded = round(abs(value), decimals)
        if rounded and math.floor(math.log10(rounded)) > exponent:  # 9.996 -> 10.0
            decimals = max(0, decimals - 1)
    if max_decimals is not None:
        decimals = min(decimals, max_decimals)
    return f"{value:.{decimals}f}"


def _nll(value):
    return _significant(value, 3)


def _percent(fraction):
    """`0.775` -> `77.5%`; below 1% two decimals, `0.0096` -> `0.96%`."""
    percent = 100.0 * fraction
    if not math.isfinite(percent):
        return f"{percent}%"
    return f"{percent:.1f}%" if abs(round(percent, 2)) >= 1 else f"{percent:.2f}%"


def _ece(value):
    return f"{value:.3f}"


def _hours(value):
    return f"{value:.1f}".removesuffix(".0")  # 7.5, 5, 17.5


def _milliseconds(value):
    return _significant(value, 3, max_decimals=3)  # 1.28, 0.020, 0.205


def _params(count):
    """`58_400_000` -> `58.4M`, `850_000` -> `850K`, `1_330_000_000` -> `1.3B`."""
    if count >= 1e9:
        return f"{count / 1e9:.1f}B"
    if count >= 1e6:
        return f"{count / 1e6:.1f}M"
    if count >= 1e3:
        return f"{count / 1e3:.0f}K"
    return str(int(count))


def _value(entry, key, fmt):
    if entry is None or entry.get(key) is None:
        return "-"
    return fmt(float(entry[key]))


def _nll_acc_ece(entry):
    if entry is None:
        return "-"
    values = [("nll", _nll), ("accuracy", _percent), ("ece", _ece)]
    return " / ".join(_value(entry, key, fmt) for key, fmt in values)


def _corrupted(entry):
    """ImageNet-C: `cNLL / cA% / cECE (mCE%)`; without an mCE the parenthesis is left out."""
    if entry is None or entry.get("mce") is None:
        return _nll_acc_ece(entry)
    return f"{_nll_acc_ece(entry)} ({_percent(float(entry['mce']))})"


def _accuracy(entry):
    return _value(entry, "accuracy", _percent)


_CELLS = {"nll_acc_ece": _nll_acc_ece, "corrupted": _corrupted, "accuracy": _accuracy}
# The multi-label table's columns per dataset: (metrics.json key, column name, format).
MULTILABEL_COLUMNS = (
    ("gap", "gAP", _percent),
    ("map", "mAP", _percent),
    ("prec@1", "prec@1", _percent),
    ("nll", "NLL", _nll),
    ("ece", "ECE", _ece),
)


def _is_multilabel(entry):
    """Whether a dataset's result (`{"ensemble": {...}, ...}`) holds multi-label rows."""
    return isinstance(entry, dict) and "gap" in (entry.get("ensemble") or {})


def _runtime(value, devices, fmt):
    if value is None:
        return "-"
    text = fmt(float(value))
    return f"{text} ({devices})" if devices else text


# ------------------------------------------------------------------------------------------------
# Argument checks.


def _check_family(family):
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {list(FAMILIES)}. Received: family={family!r}")


def _check_datasets(datasets):
    if datasets is None or isinstance(datasets, str) or not list(datasets):
        raise ValueError(
            "A generic table needs a non-empty list of dataset names. Received: "
            f"datasets={datasets!r}"
        )
    return list(datasets)


def _check_amount(name, value):
    if value is None:
        return
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not math.isfinite(value)
        or value < 0
    ):
        raise ValueError(f"{name} must be None or a finite number >= 0. Received: {name}={value!r}")
