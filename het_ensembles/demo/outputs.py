"""The demo's files: reliability diagrams, metrics.json values, leaderboard.md."""

import numpy as np

from het_ensembles import member_dir as member_files
from het_ensembles.demo.members import CLEAN_SPLIT, DATASET, METHODS
from het_ensembles.demo.results import TOP_PAIRS, ens_suffix, format_spread, markdown_table7
from het_ensembles.demo.synthetic import synthetic_text

# ----------------------------------------------------------------------------------------------
# Plots and files.


def write_reliability_diagrams(members, eval_dirs, path, *, num_bins=15):
    """Accuracy vs confidence for Hom, Hom ens4, Het, Het ens4 on noisy and clean test labels.

    Reads the member predictions the evaluator cached (`evaluation.cached_predictions`, which
    verifies their checksums); single-model curves pool the members' bins.
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    from het_ensembles import evaluation, metrics

    fig, axes = plt.subplots(1, 2, figsize=(10, 4.6), dpi=100)
    for ax, (title, dataset) in zip(
        axes, (("noisy test labels", DATASET), ("clean test labels", CLEAN_SPLIT))
    ):
        ax.plot([0, 1], [0, 1], "k--", lw=1, label="perfect calibration")
        for color, (key, _, row) in zip(("C0", "C3"), METHODS):
            expected, member_log_probs = evaluation.cached_predictions(
                eval_dirs[key], members[key], dataset
            )
            single = metrics.ExpectedCalibrationError(num_bins)
            for log_probs in member_log_probs:
                single.update_state(expected, np.exp(log_probs))
            ensemble = metrics.ExpectedCalibrationError(num_bins)
            ensemble.update_state(expected, np.exp(metrics.ensemble_log_probs(member_log_probs)))
            curves = (
                (single, "-", f"{row} members, pooled"),
                (ensemble, "-o", f"{row} ens{len(member_log_probs)}"),
            )
            for ece, style, name in curves:
                full = ece.bin_counts > 0
                ax.plot(
                    ece.bin_confidence[full] / ece.bin_counts[full],
                    ece.bin_correct[full] / ece.bin_counts[full],
                    style,
                    color=color,
                    lw=2.2 if style == "-o" else 1.2,
                    ms=4,
                    label=f"{name} (ECE {ece.result():.3f})",
                )
        ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence", ylabel="accuracy", title=title)
        ax.legend(fontsize=8, loc="upper left")
    fig.suptitle(f"Reliability diagrams, {DATASET} ({num_bins} bins)", fontsize=11)
    fig.tight_layout()
    member_files.atomic_write(path, lambda f: fig.savefig(f, format="png"))
    plt.close(fig)


def to_json(value):
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (np.floating, np.integer, np.bool_)):
        return value.item()
    return value


def leaderboard_markdown(rows, spread, cov, targets, summary, *, quick, synthetic=None):
    m = ens_suffix(rows)[4:]
    lines = [
        f"# het-ensembles demo: {DATASET}" + (" (--quick smoke run)" if quick else ""),
        "",
        (
            f"{m} deterministic (Hom) and {m} heteroscedastic (Het) small CNNs, "
            f"seeds 0..{int(m) - 1}, trained with `het_ensembles.training` from `configs/noisy_digits/*.py` and "
            "evaluated with `het_ensembles.evaluation` (Collier et al. 2021, Table 7 shape)."
        ),
        "",
        markdown_table7(rows),
        "",
        format_spread(spread, int(m)).replace("\n  ", "\n\n"),
        "",
        (
            f"Top {TOP_PAIRS} class pairs of the Het members' noise correlation (centred Sigma(x), mean "
            "over members and test inputs; paper Table 4 shape):"
        ),
        "",
        "| Rank | Pair | Correlation | Planted |",
        "|---|---|---|---|",
    ]
    planted = cov["planted_pairs"]
    for p in cov["pairs"]:
        lines.append(
            f"| {p['rank']} | {p['names'][0]} <-> {p['names'][1]} | {p['correlation']:+.3f} | "
            f"{'yes' if p['classes'] in planted else 'no'} |"
        )
    lines += ["", "Planted pairs: " + ", ".join(f"{a} <-> {b}" for a, b in planted), ""]
    lines += ["## Targets", "", "| Target | Measured | Met |", "|---|---|---|"]
    lines += [f"| {k} | {v['value']} | {'yes' if v['met'] else 'no'} |" for k, v in targets.items()]
    if synthetic:
        lines += ["", "## synthetic", "", synthetic_text(synthetic)]
    lines += ["", "## What this shows", "", *summary, ""]
    lines += [
        "Per-group leaderboard rows: `eval/hom/leaderboard.md`, `eval/het/leaderboard.md`.",
        "",
    ]
    return "\n".join(lines)
