"""`het-ensembles demo --multilabel`: the paper's Table 3 shape (sigmoid heads) in minutes on a CPU.

Collier et al. 2021, Table 3 (ImageNet-21k and JFT, multi-label, sigmoid heads; gAP and NLL):
the heteroscedastic head beats the deterministic one ("Hom") and its diagonal variant ("Het
diag") sits between. This runs the same flow as the main demo on the embedded multi-label set
`multilabel_digits` (1-3 digits per canvas, planted missing / swapped / added labels):

1. trains `NUM_MEMBERS` members of each of `METHODS` (configs
   `configs/multilabel_digits/{deterministic,heteroscedastic_diag,heteroscedastic}.py`) with
   `het_ensembles.training` (finished members are reused, killed ones resume);
2. evaluates each group with `het_ensembles.evaluation.evaluate` on the noisy and the clean test
   labels (gAP, NLL, mAP, prec@1, ECE of every member and of the ensemble);
3. prints the Table 3 shape, member mean +- std over seeds, the ensembles beside them, and
   whether the paper's pattern appears; writes `metrics.json`, `leaderboard.md` and
   `multilabel_bars.png` (gAP and NLL bars with each seed's value) to the output directory.
"""

import json
import os
import time

import numpy as np

from het_ensembles import member_dir as member_files
from het_ensembles.demo import members as members_lib
from het_ensembles.demo import results as results_lib

DATASET = "multilabel_digits"
NUM_MEMBERS = 3
# (key, config file, row name in Table 3)
METHODS = (
    ("hom", "deterministic.py", "Hom"),
    ("het_diag", "heteroscedastic_diag.py", "Het diag"),
    ("het", "heteroscedastic.py", "Het"),
)
# (metrics.json key, column name, higher is better)
METRICS = (
    ("gap", "gAP", True),
    ("nll", "NLL", False),
    ("map", "mAP", True),
    ("prec@1", "prec@1", True),
)
LABEL_SETS = (("noisy", DATASET), ("clean", f"{DATASET}:test_clean"))
DEFAULT_OUTPUT_DIR = os.path.join("runs", "demo_multilabel")
DEFAULT_QUICK_OUTPUT_DIR = os.path.join("runs", "demo_multilabel_quick")
PLOT_FILE = "multilabel_bars.png"


def run_multilabel_demo(
    output_dir, *, quick=False, config_dir=None, num_members=NUM_MEMBERS, progress=True
):
    """Trains, evaluates and reports the three sigmoid heads; returns what metrics.json holds.

    Args:
      output_dir: where members, evaluator outputs and the report go; finished members found
        there are reused.
      quick: apply the main demo's `QUICK_OVERRIDES` (a smoke run of the same pipeline).
      config_dir: directory holding `multilabel_digits/` configs (default: the shipped ones).
      num_members: members (seeds 0..n-1) per method, >= 2 for a spread.
      progress: show progress bars.

    Raises:
      ValueError: for a bad argument, missing configs, or a trainer / evaluator error.
    """
    if isinstance(num_members, bool) or not isinstance(num_members, int) or num_members < 2:
        raise ValueError(f"num_members must be an integer >= 2. Received: {num_members!r}")
    start = time.perf_counter()
    config_dir = config_dir or members_lib.default_config_dir(DATASET)
    members_lib.say(
        f"het-ensembles demo --multilabel on {DATASET}{' (--quick smoke run)' if quick else ''}: "
        f"{num_members} members each of {', '.join(row for _, _, row in METHODS)} -> {output_dir}"
    )
    members = members_lib.train_members(
        output_dir,
        config_dir,
        quick=quick,
        num_members=num_members,
        progress=progress,
        dataset=DATASET,
        methods=METHODS,
    )
    trained = time.perf_counter()
    results = results_lib.evaluate_groups(
        members, output_dir, progress=progress, dataset=DATASET, methods=METHODS
    )
    rows, ensembles = table3(results)
    targets = check_targets(rows)
    summary = summary_lines(rows, targets, num_members, quick=quick)
    write_bars(rows, os.path.join(output_dir, PLOT_FILE))
    record = {
        "dataset": DATASET,
        "quick": quick,
        "table3": rows,
        "ensembles": ensembles,
        "targets": targets,
        "summary": summary,
        "members": members,
        "evaluator": results,
        "seconds": {"training": trained - start, "total": time.perf_counter() - start},
    }
    from het_ensembles.demo import outputs

    member_files.write_text(
        os.path.join(output_dir, "metrics.json"),
        json.dumps(outputs.to_json(record), indent=2) + "\n",
    )
    report = format_report(rows, ensembles, targets, summary, num_members)
    member_files.write_text(
        os.path.join(output_dir, "leaderboard.md"),
        f"# het-ensembles demo --multilabel: {DATASET}{' (--quick smoke run)' if quick else ''}"
        f"\n\n```text\n{report}\n```\n\nPlot: `{PLOT_FILE}`. Evaluator outputs: `eval/<method>/`.\n",
    )
    print()
    print(report)
    print()
    print(
        f"Wrote {output_dir}/leaderboard.md, metrics.json, {PLOT_FILE} (evaluator outputs in "
        f"{output_dir}/eval/)"
    )
    seconds = record["seconds"]
    print(f"Time: {seconds['total']:.0f} s ({seconds['training']:.0f} s training the members)")
    return record


def table3(results):
    """The members' mean, std and per-seed values, and the ensembles', per method and label set.

    Returns:
      (rows, ensembles): `rows[row][labels][metric] = {"mean", "std", "seeds": [...]}` and
      `ensembles[row][labels][metric] = value` ("noisy"/"clean" labels; metrics `METRICS`).
    """
    rows, ensembles = {}, {}
    for key, _, row in METHODS:
        rows[row], ensembles[row] = {}, {}
        for labels, dataset in LABEL_SETS:
            result = results[key][dataset]
            rows[row][labels] = {
                metric: {
                    "mean": float(result["member_mean"][metric]),
                    "std": float(result["member_std"][metric]),
                    "seeds": [float(m[metric]) for m in result["members"].values()],
                }
                for metric, _, _ in METRICS
            }
            ensembles[row][labels] = {
                metric: float(result["ensemble"][metric]) for metric, _, _ in METRICS
            }
    return rows, ensembles


def _best(rows, labels, metric, higher):
    values = {row: r[labels][metric]["mean"] for row, r in rows.items()}
    return (max if higher else min)(values, key=values.get)


def format_table3(rows, ensembles, num_members):
    """Plain-text Table 3: per label set, members' mean +- std (best starred) and ensembles."""
    lines = []
    width = 17
    for labels, _ in LABEL_SETS:
        head = f"{labels + ' test labels':<20}|" + "".join(
            f"{name:^{width}}|" for _, name, _ in METRICS
        )
        lines += [head.rstrip("|"), "-" * len(head)]
        for row, r in rows.items():
            cells = []
            for metric, _, higher in METRICS:
                star = "*" if _best(rows, labels, metric, higher) == row else " "
                value = r[labels][metric]
                cells.append(f" {value['mean']:.3f} +- {value['std']:.3f}{star}".ljust(width))
            lines.append(f"{row:<20}|" + "|".join(cells))
        for row, e in ensembles.items():
            cells = [f" {e[labels][metric]:.3f}".ljust(width) for metric, _, _ in METRICS]
            lines.append(f"{row + f' ens{num_members}':<20}|" + "|".join(cells))
        lines.append("")
    lines.append(
        f"(rows Hom / Het diag / Het: mean +- std (ddof=1) over {num_members} seeds, * best mean in the "
        f"column; ens{num_members}: the ensemble of the seeds, mean of their probabilities. gAP: "
        "global average precision (YouTube-8M's, top 20); NLL: binary cross-entropy summed over "
        "the 10 labels)"
    )
    return "\n".join(lines)


def check_targets(rows):
    """The paper's pattern on the noisy test labels, measured: {name: {"value", "met"}}.

    Each value also says how the difference compares with the seeds' spread, so a "met" within
    seed noise reads as such.
    """
    noisy = {row: r["noisy"] for row, r in rows.items()}

    def versus(metric, a, b):
        diff = noisy[a][metric]["mean"] - noisy[b][metric]["mean"]
        spread = np.hypot(noisy[a][metric]["std"], noisy[b][metric]["std"])
        return (
            f"{noisy[a][metric]['mean']:.4f} vs {noisy[b][metric]['mean']:.4f} "
            f"(difference {diff:+.4f}; seed std of the two combined {spread:.4f})"
        )

    gap = {row: v["gap"]["mean"] for row, v in noisy.items()}
    nll = {row: v["nll"]["mean"] for row, v in noisy.items()}
    return {
        "Het gAP > Hom gAP": {"value": versus("gap", "Het", "Hom"), "met": gap["Het"] > gap["Hom"]},
        "Het NLL < Hom NLL": {"value": versus("nll", "Het", "Hom"), "met": nll["Het"] < nll["Hom"]},
        "Het diag NLL between Het and Hom": {
            "value": f"Het {nll['Het']:.4f}, Het diag {nll['Het diag']:.4f}, Hom {nll['Hom']:.4f}",
            "met": nll["Het"] <= nll["Het diag"] <= nll["Hom"],
        },
        "Het gAP and NLL best of the three": {
            "value": f"best gAP: {_best(rows, 'noisy', 'gap', True)}, best NLL: "
            f"{_best(rows, 'noisy', 'nll', False)}",
            "met": _best(rows, "noisy", "gap", True) == "Het"
            and _best(rows, "noisy", "nll", False) == "Het",
        },
    }


def summary_lines(rows, targets, num_members, *, quick):
    """A short, honest "what this shows" from the measured numbers (seed by seed too)."""
    lines = []
    for labels, _ in LABEL_SETS:
        r = {row: v[labels] for row, v in rows.items()}
        wins_gap = sum(h > d for h, d in zip(r["Het"]["gap"]["seeds"], r["Hom"]["gap"]["seeds"]))
        wins_nll = sum(h < d for h, d in zip(r["Het"]["nll"]["seeds"], r["Hom"]["nll"]["seeds"]))
        lines.append(
            f"- {labels} test labels: Het vs Hom, seed by seed: higher gAP in {wins_gap} of "
            f"{num_members}, lower NLL in {wins_nll} of {num_members}."
        )
    met = [name for name, t in targets.items() if t["met"]]
    lines.append(
        f"- {len(met)} of {len(targets)} targets met on the noisy labels"
        + (f" ({'; '.join(met)})." if met else ".")
        + " A difference smaller than the seeds' spread (see each target) is not a result."
    )
    if quick:
        lines.append(
            f"- --quick trains {members_lib.QUICK_OVERRIDES['train_epochs']} epochs with "
            f"{members_lib.QUICK_OVERRIDES['train_mc_samples']} MC samples: a smoke run of the "
            "pipeline, not the result."
        )
    return lines


def format_report(rows, ensembles, targets, summary, num_members):
    """The printed (and leaderboard.md's) report: Table 3, the targets, what this shows."""
    lines = [
        f"== Table 3 shape: {DATASET} (sigmoid heads), {num_members} seeds per method ==",
        format_table3(rows, ensembles, num_members),
        "",
        "== Targets (noisy test labels, member means; Collier et al. 2021 Table 3 pattern) ==",
    ]
    lines += [f"  [{'x' if t['met'] else ' '}] {name}: {t['value']}" for name, t in targets.items()]
    lines += ["", "== What this shows ==", *summary]
    return "\n".join(lines)


def write_bars(rows, path):
    """gAP and NLL per method, noisy and clean labels: mean bars, std error bars, seed dots.

    Each panel's axis is fitted to its values (it does not start at 0), so differences of a few
    thousandths are visible; the dots show whether they exceed the seeds' spread.
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    methods = list(rows)
    x = np.arange(len(methods))
    fig, axes = plt.subplots(2, 2, figsize=(9, 7), dpi=100)
    for ax_row, (metric, name, higher) in zip(axes, METRICS[:2]):
        for ax, (labels, _) in zip(ax_row, LABEL_SETS):
            cells = [rows[m][labels][metric] for m in methods]
            ax.bar(
                x,
                [c["mean"] for c in cells],
                0.6,
                yerr=[c["std"] for c in cells],
                capsize=5,
                color=["C0", "C1", "C3"][: len(methods)],
                alpha=0.6,
            )
            for i, c in enumerate(cells):
                ax.plot(np.full(len(c["seeds"]), x[i]), c["seeds"], "k.", ms=6)
            values = [v for c in cells for v in c["seeds"]]
            pad = 0.6 * (max(values) - min(values)) + 1e-3
            ax.set_ylim(min(values) - pad, max(values) + pad)
            ax.set_xticks(x, methods)
            better = "higher" if higher else "lower"
            ax.set_title(f"{name} on {labels} test labels ({better} is better)", fontsize=10)
    fig.suptitle(f"{DATASET}: mean over seeds (bars), std (error bars), each seed (dots)")
    fig.tight_layout()
    member_files.atomic_write(path, lambda f: fig.savefig(f, format="png"))
    plt.close(fig)
