"""`het-ensembles report`: named groups of members -> the paper's table form, with t-test daggers.

Where it sits: member directories (one per seed) -> **the** evaluator (one evaluation per
group, cached under `<output_dir>/eval/<group>/`) -> this report. Collier et al. (CVPR 2021)
give each method as the mean +- one standard deviation over its seeds and mark with a dagger
the results that differ from the best method under an unpaired two-tailed t-test at p < 0.05;
this writes those tables for any groups and datasets:

- `report.md` (Markdown) and `report.tex` (a LaTeX `tabular`): a row per group, a column per
  dataset and metric, the best group in bold and a dagger on every group whose members differ
  from the best group's with p < `alpha`;
- `report.json`: per dataset, metric and group `{"mean", "std", "n", "p_value", "dagger"}`,
  plus `"best"`, the best group of each dataset and metric.

The t-test is Student's (`scipy.stats.ttest_ind` with equal variances: the paper says
"unpaired two-tailed t-test" without naming Welch's correction); the standard deviation is the
sample one (ddof=1). The best group has `p_value` None; so does every group when a group has
fewer than two members (no variance to test with). Accuracies are shown in percent, as the
paper's tables do.
"""

import argparse
import os
import sys

import numpy as np
import scipy.stats

from het_ensembles import member_dir

ALPHA = 0.05  # the paper's significance level
DAGGER = "\u2020"
# Metric -> (+1 if higher is better else -1, column title, shown in percent).
METRICS = {
    "accuracy": (1, "Top-1", True),
    "top5_accuracy": (1, "Top-5", True),
    "gap": (1, "gAP", True),
    "map": (1, "mAP", True),
    "prec@1": (1, "Prec@1", True),
    "nll": (-1, "NLL", False),
    "ece": (-1, "ECE", False),
    "brier": (-1, "Brier", False),
    # Out-of-distribution detection (`evaluation.ood`), by max probability and by entropy.
    "auroc_msp": (1, "AUROC", False),
    "auprc_msp": (1, "AUPRC", False),
    "fpr@95tpr_msp": (-1, "FPR@95", False),
    "auroc_entropy": (1, "AUROC (entropy)", False),
    "auprc_entropy": (1, "AUPRC (entropy)", False),
    "fpr@95tpr_entropy": (-1, "FPR@95 (entropy)", False),
}
DEFAULT_METRICS = (
    "accuracy",
    "top5_accuracy",
    "gap",
    "nll",
    "ece",
    "auroc_msp",
    "auprc_msp",
    "fpr@95tpr_msp",
)
REPORT_FILES = ("report.md", "report.tex", "report.json")


def group_statistics(values_by_group, metric, *, alpha=ALPHA):
    """Mean, std, n, and the t-test against the best group, for one metric.

    Args:
      values_by_group: `{group: [per-member values]}`, in table order.
      metric: a key of `METRICS` (its direction picks the best group).
      alpha: significance level of the dagger.

    Returns:
      `(best group, {group: {"mean", "std", "n", "p_value", "dagger"}})`.
    """
    direction = METRICS[metric][0]
    stats = {}
    for group, values in values_by_group.items():
        values = np.asarray(values, dtype=np.float64)
        stats[group] = {
            "mean": float(np.mean(values)),
            "std": float(np.std(values, ddof=1)) if len(values) > 1 else None,
            "n": len(values),
            "p_value": None,
            "dagger": False,
        }
    best = max(stats, key=lambda g: direction * stats[g]["mean"])
    testable = all(s["n"] > 1 for s in stats.values())
    for group, values in values_by_group.items():
        if group == best or not testable:
            continue
        p_value = float(scipy.stats.ttest_ind(values, values_by_group[best]).pvalue)
        stats[group]["p_value"] = None if np.isnan(p_value) else p_value
        stats[group]["dagger"] = bool(p_value < alpha)  # nan (no variance at all) -> False
    return best, stats


def paper_report(
    groups,
    datasets,
    output_dir,
    *,
    ood_datasets=None,
    metrics=None,
    alpha=ALPHA,
    batch_size=256,
    progress=True,
):
    """Evaluates each group of members and writes report.md, report.tex and report.json.

    Args:
      groups: `{name: members}` in table order; `members` as `evaluation.evaluate` takes them
        (glob patterns or member directories), one member per seed.
      datasets: dataset names for the evaluator (see `evaluation.evaluate`).
      ood_datasets: out-of-distribution sets detected against the first of `datasets`
        (`evaluation.evaluate`'s `ood_datasets`); each is a column group `ood/<set>` with the
        AUROC, AUPRC and FPR@95%TPR of the max-probability score by default.
      output_dir: gets `eval/<group>/` (the evaluator's outputs and prediction cache, reused by
        later reports) and the three report files.
      metrics: metric keys (of `METRICS`) for the columns, each shown for every dataset that
        has it; default: those of `DEFAULT_METRICS` the evaluator reports for each dataset.
      alpha: significance level of the daggers, in (0, 1).
      batch_size: the evaluator's prediction batch size.
      progress: show the evaluator's progress bars.

    Returns:
      What report.json holds.

    Raises:
      ValueError: no or badly named groups, an unknown metric, an alpha outside (0, 1), or
        whatever the evaluator refuses.
    """
    from het_ensembles import evaluation

    _check_arguments(groups, metrics, alpha)
    member_dir.check_writable_dir(output_dir)
    results = {
        name: evaluation.evaluate(
            members,
            datasets,
            os.path.join(output_dir, "eval", name),
            method=name,
            batch_size=batch_size,
            ood_datasets=ood_datasets,
            progress=progress,
        )
        for name, members in groups.items()
    }
    report = {"alpha": alpha, "groups": list(groups), "datasets": {}}
    reported = set()
    for dataset in next(iter(results.values())):
        rows = {name: results[name][dataset]["members"] for name in groups}
        available = set.intersection(*(set(r) for m in rows.values() for r in m.values()))
        chosen = [m for m in (metrics or DEFAULT_METRICS) if m in available]
        reported.update(chosen)
        entry = {"best": {}, "metrics": {}}
        for metric in chosen:
            values = {name: [row[metric] for row in rows[name].values()] for name in groups}
            entry["best"][metric], entry["metrics"][metric] = group_statistics(
                values, metric, alpha=alpha
            )
        if chosen:
            report["datasets"][dataset] = entry
    missing = sorted(set(metrics or ()) - reported)
    if missing:
        raise ValueError(
            f"The evaluator reports no {missing} for these datasets. Received: "
            f"metrics={list(metrics)}"
        )
    member_dir.write_text(os.path.join(output_dir, "report.md"), markdown_table(report))
    member_dir.write_text(os.path.join(output_dir, "report.tex"), latex_table(report))
    member_dir.write_json(os.path.join(output_dir, "report.json"), report, sort_keys=False)
    return report


def _check_arguments(groups, metrics, alpha):
    if not isinstance(groups, dict) or not groups:
        raise ValueError(f"Expected at least one group {{name: members}}. Received: {groups!r}")
    for name in groups:
        if not isinstance(name, str) or not name or "/" in name or name in (".", ".."):
            raise ValueError(
                f"Group names must be non-empty and hold no '/'. Received: group={name!r}"
            )
    unknown = [m for m in metrics or () if m not in METRICS]
    if unknown:
        raise ValueError(f"Unknown metric. Received: metrics={unknown}; allowed: {list(METRICS)}")
    if not (isinstance(alpha, float) and 0.0 < alpha < 1.0):
        raise ValueError(f"alpha must be a float in (0, 1). Received: alpha={alpha!r}")


def _columns(report):
    return [
        (dataset, metric)
        for dataset, entry in report["datasets"].items()
        for metric in entry["metrics"]
    ]


def _cell(report, dataset, metric, group, *, latex):
    stat = report["datasets"][dataset]["metrics"][metric][group]
    scale = 100.0 if METRICS[metric][2] else 1.0
    decimals = 1 if METRICS[metric][2] else 3
    mean = f"{scale * stat['mean']:.{decimals}f}"
    std = "" if stat["std"] is None else f"{scale * stat['std']:.{decimals}f}"
    best = report["datasets"][dataset]["best"][metric] == group
    if latex:
        text = mean + (rf" \pm {std}" if std else "") + (r"^\dagger" if stat["dagger"] else "")
        text = rf"\mathbf{{{text}}}" if best else text
        return f"${text}$"
    text = mean + (f" ± {std}" if std else "") + (DAGGER if stat["dagger"] else "")
    return f"**{text}**" if best else text


def markdown_table(report):
    """report.md: groups x (dataset, metric), mean ± std, best in bold, daggers."""
    columns = _columns(report)
    several = len(report["datasets"]) > 1
    titles = [
        (f"{dataset} " if several else "") + METRICS[metric][1] + (" (%)" * METRICS[metric][2])
        for dataset, metric in columns
    ]
    lines = [
        "| Method | " + " | ".join(titles) + " |",
        "|---|" + "---|" * len(columns),
    ]
    for group in report["groups"]:
        cells = [_cell(report, d, m, group, latex=False) for d, m in columns]
        lines.append(f"| {group} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(
        f"Mean ± one standard deviation over each group's members (seeds); best in bold; "
        f"{DAGGER}: differs from the best group (unpaired two-tailed t-test, "
        f"p < {report['alpha']})."
    )
    if not several:
        lines.append(f"Dataset: {next(iter(report['datasets']))}.")
    return "\n".join(lines) + "\n"


def latex_table(report):
    """report.tex: the same table as a LaTeX `tabular` (booktabs rules)."""
    columns = _columns(report)
    several = len(report["datasets"]) > 1

    def escape(text):
        return text.replace("_", r"\_").replace("%", r"\%").replace("&", r"\&")

    titles = [
        escape((f"{dataset} " if several else "") + METRICS[metric][1])
        for dataset, metric in columns
    ]
    lines = [
        r"\begin{tabular}{l" + "c" * len(columns) + "}",
        r"\toprule",
        "Method & " + " & ".join(titles) + r" \\",
        r"\midrule",
    ]
    for group in report["groups"]:
        cells = [_cell(report, d, m, group, latex=True) for d, m in columns]
        lines.append(escape(group) + " & " + " & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


def parse_groups(entries):
    """`["Hom=runs/det/*", "Het=runs/het/*"]` -> `{"Hom": "runs/det/*", ...}` (order kept)."""
    groups = {}
    for entry in entries:
        name, sep, pattern = entry.partition("=")
        if not sep or not name or not pattern:
            raise ValueError(f"Expected GROUP=MEMBERS (e.g. 'Het=runs/het/*'). Received: {entry!r}")
        if name in groups:
            raise ValueError(f"Group {name!r} is given twice. Received: {entries}")
        groups[name] = pattern
    return groups


def cli_main(argv):
    """`het-ensembles report Hom='runs/det/*' Het='runs/het/*' --dataset D --output_dir DIR`."""
    parser = argparse.ArgumentParser(
        prog="het-ensembles report",
        description="Evaluate named groups of members (one member per seed) and write the "
        "paper's table form: mean +- std over seeds, best in bold, a dagger where an unpaired "
        "two-tailed t-test against the best group gives p < alpha. Writes report.md, "
        "report.tex and report.json.",
    )
    parser.add_argument("groups", nargs="+", metavar="GROUP=MEMBERS", help="e.g. 'Het=runs/het/*'")
    parser.add_argument(
        "--dataset", nargs="+", help="one or more dataset names, as evaluate's (not with --vtab)"
    )
    parser.add_argument(
        "--vtab",
        action="store_true",
        help="VTAB-1k score of fine-tuned members: test accuracy per task from their "
        "metrics.json and the mean over tasks (writes vtab.md, vtab.tex, vtab.json)",
    )
    parser.add_argument(
        "--ood_dataset",
        nargs="+",
        default=None,
        help="out-of-distribution set(s), detected against the first --dataset",
    )
    parser.add_argument("--output_dir", required=True, help="eval/<group>/ and the report files")
    parser.add_argument("--metrics", default=None, help=f"comma-separated, of {', '.join(METRICS)}")
    parser.add_argument("--alpha", type=float, default=ALPHA, help="t-test level (0.05)")
    parser.add_argument("--batch_size", type=int, default=256, help="prediction batch size")
    parser.add_argument("--no_progress", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    if args.vtab:
        return _vtab_main(args)
    if not args.dataset:
        parser.error("--dataset is required (or --vtab)")
    try:
        report = paper_report(
            parse_groups(args.groups),
            args.dataset,
            args.output_dir,
            ood_datasets=args.ood_dataset,
            metrics=args.metrics.split(",") if args.metrics else None,
            alpha=args.alpha,
            batch_size=args.batch_size,
            progress=not args.no_progress,
        )
    except ValueError as error:
        print(f"het-ensembles report: error: {error}", file=sys.stderr)
        return 2
    print(markdown_table(report))
    print("Wrote " + ", ".join(os.path.join(args.output_dir, f) for f in REPORT_FILES))
    return 0


def _vtab_main(args):
    """`het-ensembles report --vtab`: `experiments.vtab_score.vtab_report` of the groups."""
    from het_ensembles.experiments import vtab_score

    try:
        report = vtab_score.vtab_report(
            parse_groups(args.groups), args.output_dir, alpha=args.alpha
        )
    except ValueError as error:
        print(f"het-ensembles report: error: {error}", file=sys.stderr)
        return 2
    print(markdown_table(report))
    print("Wrote " + ", ".join(os.path.join(args.output_dir, f) for f in vtab_score.SCORE_FILES))
    return 0
