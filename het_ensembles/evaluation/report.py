"""What the evaluator writes for people: leaderboard rows, a console summary, reliability plots."""

import math

from matplotlib import figure
from matplotlib.backends import backend_agg

from het_ensembles import member_dir
from het_ensembles.evaluation.scoring import CORRUPTED, CORRUPTIONS, SEVERITIES


def leaderboard(results, members, *, method, ensemble_size):
    """uncertainty-baselines' ImageNet table: one single-model row and one ensemble row."""
    summary = results.get(CORRUPTED)
    clean = [k for k in results if k != CORRUPTED and not k.startswith(CORRUPTED + "/")]
    lines = [
        "# Leaderboard rows",
        "",
        f"Members ({len(members)}): " + ", ".join(f"`{m.path}`" for m in members),
        "",
    ]
    header = (
        "| Method | NLL | Accuracy | ECE | cNLL/cA/cCE | mCE | test ms/example | # params |\n"
        "|---|---|---|---|---|---|---|---|"
    )
    tables = clean or ([CORRUPTED] if summary else [])
    for key in tables:
        result = results.get(key) if key != CORRUPTED else None
        with_corruptions = summary is not None and key in ("imagenet2012", CORRUPTED)
        single = _table_row(
            method,
            result["member_mean"] if result else None,
            summary["member_mean"] if with_corruptions else None,
        )
        source = result or summary
        if "ensemble_subsets" in source:
            subsets = source["ensemble_subsets"]
            name = (
                f"{method} ensemble (size={subsets['ensemble_size']}, mean over "
                f"{subsets['num_subsets']} subsets of the {len(members)} members)"
            )
        else:
            name = f"{method} ensemble (size={len(members)})"
        ensemble = _table_row(
            name,
            _ensemble_row(result) if result else None,
            _ensemble_row(summary) if with_corruptions else None,
        )
        lines += [f"## {key}", "", header, single, ensemble, ""]
        if with_corruptions:
            count, full = summary["ensemble"]["num_datasets"], len(CORRUPTIONS) * len(SEVERITIES)
            lines.append(
                f"cNLL/cA/cCE: means over {count} ImageNet-C sets; mCE: corruption errors "
                "normalised by AlexNet's (Hendrycks & Dietterich 2019)"
                + (
                    f". Only {count} of the {full} sets: not comparable to published rows."
                    if count < full
                    else "."
                )
            )
            lines.append("")
        if result and len(members) > 1:
            std = result["member_std"]
            lines.append(
                f"Single-model row: mean over {len(members)} members (std: NLL "
                f"{std['nll']:.3f}, accuracy {100 * std['accuracy']:.1f}%, ECE "
                f"{std['ece']:.4f}). Ensemble: mean of the member probabilities; its "
                "test ms/example and # params are the members' sums."
            )
            lines.append("")
    return "\n".join(lines)


def _ensemble_row(result):
    """The sub-ensembles' mean when --ensemble_size asked for them, else the full ensemble."""
    if "ensemble_subsets" in result:
        return result["ensemble_subsets"]["mean"]
    return result["ensemble"]


def _table_row(name, clean, corrupted):
    def fmt(row, key, spec):
        if row is None or row.get(key) is None:
            return "-"
        value = row[key]
        return f"{100 * value:.1f}%" if spec == "%" else format(value, spec)

    if corrupted is None:
        corruption_cells = "- | -"
    else:
        corruption_cells = (
            f"{fmt(corrupted, 'nll', '.2f')} / {fmt(corrupted, 'accuracy', '%')} / "
            f"{fmt(corrupted, 'ece', '.3f')} | {fmt(corrupted, 'mce', '%')}"
        )
    cost = clean or corrupted
    params = "-" if cost is None or cost.get("num_params") is None else _params(cost["num_params"])
    return (
        f"| {name} | {fmt(clean, 'nll', '.3f')} | {fmt(clean, 'accuracy', '%')} | "
        f"{fmt(clean, 'ece', '.4f')} | {corruption_cells} | {fmt(cost, 'ms_per_example', '.3g')} "
        f"| {params} |"
    )


def _params(count):
    for scale, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if count >= scale:
            return f"{count / scale:.1f}{suffix}"
    return str(int(count))


def summary(results):
    lines = [f"{'dataset':<44} {'row':<14} {'nll':>8} {'accuracy':>9} {'ece':>8}"]
    for key, result in results.items():
        if key.startswith(CORRUPTED + "/"):
            continue
        for row in ("member_mean", "ensemble"):
            r = result[row]
            lines.append(
                f"{key:<44} {row:<14} {r['nll']:>8.4f} {r['accuracy']:>9.4f} {r['ece']:>8.4f}"
            )
    return "\n".join(lines)


def write_reliability_diagram(path, rows):
    """Accuracy vs confidence per bin, a panel per clean dataset: members thin, ensemble bold."""
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
        ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence", ylabel="accuracy", title=key)
        handles, labels = ax.get_legend_handles_labels()
        if len(handles) > 6:  # many members: one legend entry for them
            keep = [0, len(handles) - 1, 1]
            handles = [handles[i] for i in keep]
            labels = [labels[0], labels[-1], f"{len(rows[key].members)} members"]
        ax.legend(handles, labels, fontsize=7, loc="upper left")
    fig.tight_layout()
    member_dir.atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=100))
