"""What the evaluator writes for people: leaderboard rows, a console summary, reliability plots."""

import math

import numpy as np
from matplotlib import figure
from matplotlib.backends import backend_agg

from het_ensembles import member_dir
from het_ensembles.data import cifar100_c, tfds_sets
from het_ensembles.evaluation import leaderboard, mc_samples, ood, scoring
from het_ensembles.evaluation.scoring import CORRUPTED, CORRUPTIONS, SEVERITIES

# The files an evaluation (and the demo, which reports the same way) writes beside metrics.json.
LEADERBOARD_FILE = "leaderboard.md"
RELIABILITY_DIAGRAM_FILE = "reliability_diagram.png"
# CIFAR corruption summaries: (metrics.json key, name, sets in uncertainty-baselines' summary).
_CIFAR_C_SUMMARIES = (
    (scoring.CIFAR10_CORRUPTED, "CIFAR-10-C", len(tfds_sets.CIFAR10_C_BENCHMARK_CORRUPTIONS) * 5),
    (scoring.CIFAR100_CORRUPTED, "CIFAR-100-C", len(cifar100_c.BENCHMARK_CORRUPTIONS) * 5),
)


def leaderboard_text(
    results, members, *, method, ensemble_size, ensemble_method=None, test_devices=None
):
    """leaderboard.md: uncertainty-baselines' table for the datasets' family, then notes.

    Two rows, ready to paste under the published table (ImageNet or CIFAR, header and `---`
    line verbatim; a generic table in the same style for other datasets, a multi-label table of
    gAP / mAP / prec@1 / NLL / ECE for multi-label members): the single model (mean
    over the members) and the ensemble (the mean over sub-ensembles with `ensemble_size`).
    Train runtime: the members' `train/hours` (mean for the single model, sum for the
    ensemble) with their devices; test runtime: `ms_per_example` with `test_devices`.

    Args:
      results: the evaluator's metrics dict.
      members: the `member_dir.Member`s evaluated.
      method: the Method cell of the single-model row.
      ensemble_method: the Method cell of the ensemble row (default "<method> ensemble
        (size=N)", with the sub-ensembles it averages when `ensemble_size` picks some).
      ensemble_size: the sub-ensemble size asked for (None: the full ensemble).
      test_devices: where the test runtime was measured, e.g. "2 CPU cores".
    """
    family = leaderboard.family_of(results)
    tabled = family in ("generic", "multilabel")
    datasets = leaderboard.generic_datasets(results) if tabled else None
    if any(m.head_index is not None for m in members):
        names = (ensemble_method or method, f"{method}, one head (mean over {len(members)} heads)")
        return _heads_text(results, members, names, family, datasets, test_devices)
    hours = [(m.metrics or {}).get("train/hours") for m in members]
    devices = {(m.metrics or {}).get("train/devices") for m in members}
    train_devices = devices.pop() if len(devices) == 1 else None
    known = None not in hours
    subsets = next(
        (r["ensemble_subsets"] for r in results.values() if "ensemble_subsets" in r), None
    )
    if subsets:
        size = subsets["ensemble_size"]
        name = (
            f"{method} ensemble (size={size}, mean over {subsets['num_subsets']} subsets of the "
            f"{len(members)} members)"
        )
    else:
        size, name = len(members), f"{method} ensemble (size={len(members)})"
    name = ensemble_method or name
    common = {"family": family, "datasets": datasets, "test_devices": test_devices}
    rows = [
        leaderboard.row(
            method,
            results,
            statistic="member_mean",
            train_hours=float(np.mean(hours)) if known else None,
            train_devices=train_devices,
            **common,
        ),
        leaderboard.row(
            name,
            results,
            statistic="ensemble_subsets" if subsets else "ensemble",
            train_hours=float(np.mean(hours)) * size if known else None,
            train_devices=train_devices,
            **common,
        ),
    ]
    lines = [
        "# Leaderboard rows",
        "",
        f"Members ({len(members)}): " + ", ".join(f"`{m.path}`" for m in members),
        "",
        leaderboard.table(family, rows, datasets=datasets),
        *_notes(results, members, family),
    ]
    return "\n".join(lines)


def _heads_text(results, members, names, family, datasets, test_devices):
    """leaderboard.md of the heads of multi-head models (MIMO, rank-1 BNN): the first of
    `names` (`ensemble_method`, else `method`) is the row of the heads' mean prediction, as
    uncertainty-baselines reports those models, the second one head (the mean over heads);
    train runtime and # parameters count each model once."""
    models = {m.path: m for m in members}
    hours = [(m.metrics or {}).get("train/hours") for m in models.values()]
    devices = {(m.metrics or {}).get("train/devices") for m in models.values()}
    common = {
        "family": family,
        "datasets": datasets,
        "test_devices": test_devices,
        "train_hours": None if None in hours else float(np.sum(hours)),
        "train_devices": devices.pop() if len(devices) == 1 else None,
    }
    rows = [
        leaderboard.row(names[0], results, statistic="ensemble", **common),
        leaderboard.row(names[1], results, statistic="member_mean", **common),
    ]
    described = ", ".join(f"`{m.path}` ({m.ensemble_size} heads)" for m in models.values())
    lines = [
        "# Leaderboard rows",
        "",
        f"Members ({len(members)} heads of {len(models)} model{'s' * (len(models) > 1)}): "
        + described,
        "",
        leaderboard.table(family, rows, datasets=datasets),
        *_notes(results, members, family),
    ]
    return "\n".join(lines)


def _notes(results, members, family):
    notes = []
    summary = results.get(CORRUPTED)
    if family == "imagenet" and summary is not None:
        count, full = summary["ensemble"]["num_datasets"], len(CORRUPTIONS) * len(SEVERITIES)
        notes.append(
            f"ImageNet-C: cNLL / cA / cECE are means over {count} sets; mCE: corruption errors "
            "normalised by AlexNet's (Hendrycks & Dietterich 2019)"
            + (
                f". Only {count} of the {full} sets: not comparable to published rows."
                if count < full
                else "."
            )
        )
    for name, title, full in _CIFAR_C_SUMMARIES:
        if family == "cifar" and name in results:
            count = results[name]["ensemble"]["num_datasets"]
            notes.append(
                f"{title}: cNLL / cA / cCE are means over {count} sets"
                + (
                    f" (only {count} of the {full}: not comparable to published rows)."
                    if count < full
                    else "."
                )
            )
    if family == "imagenet":
        notes.append(
            "ImageNet-A and ImageNetV2 cells are 1000-way predictions on imagenet_a and the "
            "matched-frequency imagenet_v2, as the published rows (robustness-metrics' "
            "imagenet_variants report). ImageNet-Vid-Robust, YTBB-Robust and ObjectNet are not in "
            "TFDS: `-`."
        )
    for key, result in results.items():
        if "@" in key:  # scored on the set's class subset, beside the table
            notes.append(
                f"{key} (beside the table: only its {key.split('@')[1]} classes, renormalised, as "
                f"the set's authors evaluate): single model {_cell(result['member_mean'])}, "
                f"ensemble {_cell(result['ensemble'])} (NLL / accuracy / ECE)."
            )
    if "imagenet_r" in results:
        notes.append(
            f"imagenet_r (1000-way, no column in the published table): single model "
            f"{_cell(results['imagenet_r']['member_mean'])}, ensemble "
            f"{_cell(results['imagenet_r']['ensemble'])}."
        )
    clean = next((k for k in results if "/" not in k and "@" not in k), None)
    if clean and len(members) > 1:
        std = results[clean]["member_std"]
        top1 = (
            f"gAP {100 * std['gap']:.1f}%"
            if family == "multilabel"
            else f"accuracy {100 * std['accuracy']:.1f}%"
        )
        spread = f"(std on {clean}: NLL {std['nll']:.3f}, {top1}, ECE {std['ece']:.4f})"
        if any(m.head_index is not None for m in members):
            notes.append(
                f"Heads of one model evaluated as ensemble members: the first row is the mean "
                f"of the {len(members)} heads' probabilities, the second the heads' mean "
                f"metrics {spread}. Test runtime, train runtime and # parameters count each "
                "model once (the heads share its pass)."
            )
        else:
            notes.append(
                f"Single-model row: mean over {len(members)} members {spread}. "
                "Ensemble: mean of the member probabilities; its test runtime, train runtime "
                "and # parameters are the members' sums."
            )
    if family == "multilabel":
        notes.append(
            "Multi-label: gAP as YouTube-8M's calculate_gap (top 20 classes per example), mAP "
            "the mean per-class average precision over classes with a positive, prec@1 over "
            "examples with a positive, NLL the summed binary cross-entropy, ECE over all "
            "(example, class) pairs; the ensemble averages each label's probability."
        )
    return [line for note in notes for line in (note, "")]


def _cell(row):
    return f"{row['nll']:.3f} / {100 * row['accuracy']:.1f}% / {row['ece']:.3f}"


def summary(results):
    """The console table: NLL, accuracy (multi-label: gAP), ECE and joint NLL (softmax sets,
    "-" where a row has none) of each dataset's rows."""
    multilabel = leaderboard.family_of(results) == "multilabel"
    top1 = "gap" if multilabel else "accuracy"
    joint = "" if multilabel else f" {'joint_nll':>9}"
    lines = [f"{'dataset':<44} {'row':<14} {'nll':>8} {top1:>9} {'ece':>8}{joint}"]
    for key, result in results.items():
        if scoring.corruption_summary_of(key) is not None or ood.is_ood_key(key):
            continue
        for row in ("member_mean", "ensemble"):
            r = result[row]
            line = f"{key:<44} {row:<14} {r['nll']:>8.4f} {r[top1]:>9.4f} {r['ece']:>8.4f}"
            if not multilabel:
                value = r.get("joint_nll")
                line += f" {'-' if value is None else f'{value:.4f}':>9}"
            lines.append(line)
    for table in appended_tables(results):
        lines += ["", *table]
    return "\n".join(lines).rstrip("\n")


def appended_tables(results):
    """The tables shown below the main ones, in the console summary and leaderboard.md alike:
    out-of-distribution detection and the test MC-sample sweep (those present), as lines."""
    return [t for t in (ood.table_lines(results), mc_samples.table_lines(results)) if t]


def write_reliability_diagram(path, rows):
    """Accuracy vs confidence per bin, a panel per clean dataset: members thin, ensemble bold.

    Multi-label rows (with `gap`) plot their label-wise ECE bins: the fraction of positive
    labels against the label probability, over all (example, class) pairs.
    """
    keys = [k for k, r in rows.items() if not r.is_corrupted] or list(rows)[:1]
    columns = min(3, len(keys))
    fig = figure.Figure(figsize=(4.2 * columns, 4.2 * math.ceil(len(keys) / columns)))
    backend_agg.FigureCanvasAgg(fig)
    for index, key in enumerate(keys):
        ax = fig.add_subplot(math.ceil(len(keys) / columns), columns, index + 1)
        ax.plot([0, 1], [0, 1], "k--", linewidth=1, label="perfect calibration")
        curves = [*rows[key].member_bins.items(), (None, rows[key].ensemble_bins)]
        for name, (counts, correct, confidence) in curves:
            full = counts > 0
            is_ensemble = name is None
            ax.plot(
                confidence[full] / counts[full],
                correct[full] / counts[full],
                marker="o",
                markersize=4 if is_ensemble else 2,
                linewidth=2.5 if is_ensemble else 1,
                alpha=1.0 if is_ensemble else 0.5,
                color="C3" if is_ensemble else "C0",
                label=(
                    f"ensemble (ECE {rows[key].ensemble['ece']:.3f})"
                    if is_ensemble
                    else f"member {name} (ECE {rows[key].members[name]['ece']:.3f})"
                ),
            )
        if "gap" in rows[key].ensemble:
            axes = {"xlabel": "label probability", "ylabel": "fraction positive"}
            title = f"{key} (all example-class pairs)"
        else:
            axes, title = {"xlabel": "confidence", "ylabel": "accuracy"}, key
        ax.set(xlim=(0, 1), ylim=(0, 1), title=title, **axes)
        handles, labels = ax.get_legend_handles_labels()
        if len(handles) > 6:  # many members: one legend entry for them
            keep = [0, len(handles) - 1, 1]
            handles = [handles[i] for i in keep]
            labels = [labels[0], labels[-1], f"{len(rows[key].members)} members"]
        ax.legend(handles, labels, fontsize=7, loc="upper left")
    fig.tight_layout()
    member_dir.atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=100))
