"""The main job: `het-ensembles demo`, the paper's result pattern in minutes on a CPU.

Where it sits: it runs the whole flow (data -> models -> **the** trainer -> member directories ->
**the** evaluator -> covariance analysis -> report) on the embedded `noisy_digits` set, with the
same code paths an ImageNet user runs:

1. trains 4 deterministic ("Hom") and 4 heteroscedastic ("Het") members, seeds 0..3, with
   `het_ensembles.training.train_and_evaluate` and the configs `configs/noisy_digits/*.py`
   (a finished member is reused when the demo is run again; a killed one resumes);
2. evaluates each group with `het_ensembles.ensemble.evaluate` on the noisy test labels and on
   the clean ones (`noisy_digits:test_clean`): members, member mean and the 4x ensemble;
3. prints the paper's Table 7 shape (Hom, Hom ens4, Het, Het ens4 x accuracy / NLL / ECE);
4. averages the Het members' predicted noise correlations (`het_ensembles.analysis`, the paper's
   Table 4) and lists the top class pairs next to the planted ones;
5. writes `leaderboard.md`, `metrics.json`, `reliability_diagrams.png` and
   `correlation_heatmap.png` to `--output_dir`, and says what the numbers show.

`--quick` trains few epochs with fewer Monte Carlo samples (a smoke run of the same pipeline);
`--synthetic` adds one Hom and one Het member on the `synthetic` set and compares their NLL with
the Bayes-optimal one.
"""

import argparse
import contextlib
import json
import logging
import os
import sys
import time

import numpy as np

from het_ensembles import member_dir as member_files

DATASET = "noisy_digits"
CLEAN_SPLIT = f"{DATASET}:test_clean"
NUM_MEMBERS = 4
TOP_PAIRS = 5
# (key, config file, row name in Table 7)
METHODS = (("hom", "deterministic.py", "Hom"), ("het", "heteroscedastic.py", "Het"))
# --quick: the same recipe, fewer epochs and Monte Carlo samples (a smoke run, not the result).
QUICK_OVERRIDES = {
    "train_epochs": 5,
    "warmup_epochs": 1,
    "train_mc_samples": 100,
    "test_mc_samples": 200,
    "checkpoint_interval": 5,
}
DEFAULT_OUTPUT_DIR = os.path.join("runs", "demo")
DEFAULT_QUICK_OUTPUT_DIR = os.path.join("runs", "demo_quick")


def default_config_dir():
    """The `configs/` directory: the checkout's (next to the package), else the installed copy.

    A wheel installs the configs under `<sys.prefix>/share/het-ensembles/configs`.

    Raises:
      ValueError: if neither holds the demo's configs.
    """
    import het_ensembles

    root = os.path.dirname(os.path.dirname(os.path.abspath(het_ensembles.__file__)))
    candidates = [
        os.path.join(root, "configs"),
        os.path.join(sys.prefix, "share", "het-ensembles", "configs"),
    ]
    for path in candidates:
        if os.path.isfile(os.path.join(path, DATASET, "deterministic.py")):
            return path
    raise ValueError(
        "The demo's configs (configs/noisy_digits/*.py) were not found; pass --config_dir. "
        f"Received: looked in {candidates!r}"
    )


def member_config(config_dir, dataset_dir, config_file, *, seed, quick):
    """The trainer config of one member: `configs/<dataset_dir>/<config_file>` with its seed."""
    from het_ensembles import training

    config = training.load_config(os.path.join(config_dir, dataset_dir, config_file))
    config.seed = seed
    if quick:
        for name, value in QUICK_OVERRIDES.items():
            config[name] = value
    return config


# ----------------------------------------------------------------------------------------------
# Training with progress bars.


class _EpochProgress(logging.Handler):
    """Advances a tqdm bar on the trainer's per-epoch log line; forwards warnings to stderr.

    The trainer logs `"Epoch %d/%d: ... test nll %.4f ..."` once per epoch (absl INFO); Keras'
    own progress bar goes to the same logger while interactive logging is off.
    """

    def __init__(self, bar):
        super().__init__()
        self.bar = bar

    def emit(self, record):
        msg = record.msg
        if isinstance(msg, str) and msg.startswith("Epoch %d/%d") and len(record.args) >= 7:
            epoch, total = int(record.args[0]), int(record.args[1])
            self.bar.total = total
            self.bar.n = epoch
            self.bar.set_postfix_str(f"test nll {record.args[4]:.3f}", refresh=False)
            self.bar.refresh()
        elif record.levelno >= logging.WARNING:
            self.bar.write(f"{record.levelname}: {record.getMessage()}", file=sys.stderr)


@contextlib.contextmanager
def _trainer_output_to(bar):
    """Routes the trainer's absl/Keras output to `bar` (no per-step Keras progress bars)."""
    import keras
    from absl import logging as absl_logging

    logger = absl_logging.get_absl_logger()
    handler = _EpochProgress(bar)
    saved = (logger.level, logger.propagate, keras.config.is_interactive_logging_enabled())
    keras.config.disable_interactive_logging()
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]
        if saved[2]:
            keras.config.enable_interactive_logging()


def train_member(config, member_dir, *, label, progress=True):
    """Trains one member with THE trainer (or reuses it when finished); returns its metrics."""
    import keras
    from tqdm import tqdm

    from het_ensembles import training

    if os.path.isfile(member_files.paths(member_dir)["model"]):
        _say(f"{label}: reusing the finished member in {member_dir}")
        return training.train_and_evaluate(config, member_dir)
    with tqdm(
        total=config.train_epochs,
        desc=label,
        unit="epoch",
        file=sys.stderr,
        disable=not progress,
        dynamic_ncols=True,
    ) as bar:
        with _trainer_output_to(bar):
            result = training.train_and_evaluate(config, member_dir)
        bar.n = bar.total
        bar.set_postfix_str(f"test nll {result['test/nll']:.3f}", refresh=True)
    keras.backend.clear_session()
    return result


def train_members(output_dir, config_dir, *, quick, num_members=NUM_MEMBERS, progress=True):
    """Trains (or reuses) the Hom and Het members; returns {method key: [member dirs]}."""
    members = {}
    total = len(METHODS) * num_members
    index = 0
    for key, config_file, row in METHODS:
        members[key] = []
        for seed in range(num_members):
            index += 1
            member_dir = os.path.join(output_dir, "members", key, str(seed))
            config = member_config(config_dir, DATASET, config_file, seed=seed, quick=quick)
            train_member(
                config, member_dir, label=f"[{index}/{total}] {row} seed {seed}", progress=progress
            )
            members[key].append(member_dir)
    return members


# ----------------------------------------------------------------------------------------------
# Evaluation, Table 7 and the covariance analysis.


def evaluate_groups(members, output_dir, *, progress=True):
    """THE evaluator on each group, noisy and clean test labels; {key: evaluator results}."""
    from het_ensembles import ensemble

    results = {}
    for key, _, row in METHODS:
        _say(f"Evaluating {row} members and their ensemble (noisy and clean test labels)")
        results[key] = ensemble.evaluate(
            members[key],
            [DATASET, CLEAN_SPLIT],
            os.path.join(output_dir, "eval", key),
            method=row,
            progress=progress,
        )
    return results


def table7(results, num_members=NUM_MEMBERS):
    """Rows Hom, Hom ens4, Het, Het ens4 -> {"noisy"/"clean": {accuracy, nll, ece}}."""
    rows = {}
    for key, _, row in METHODS:
        for suffix, part in (("", "member_mean"), (f" ens{num_members}", "ensemble")):
            rows[row + suffix] = {
                labels: {
                    metric: float(results[key][dataset][part][metric])
                    for metric in ("accuracy", "nll", "ece")
                }
                for labels, dataset in (("noisy", DATASET), ("clean", CLEAN_SPLIT))
            }
    return rows


def _ens(rows):
    """The ensemble rows' suffix, e.g. " ens4"."""
    return next(name for name in rows if name.startswith("Hom "))[len("Hom") :]


def _best(rows, labels, metric):
    values = {name: row[labels][metric] for name, row in rows.items()}
    pick = max if metric == "accuracy" else min
    return pick(values, key=values.get)


def format_table7(rows):
    """Plain-text Table 7 (best value of each column starred)."""
    head = f"{'':<12}|{'noisy test labels':^28}|{'clean test labels':^28}"
    sub = f"{'method':<12}|" + f"{'accuracy':>10}{'NLL':>9}{'ECE':>8} |" * 2
    lines = [head, sub.rstrip("|"), "-" * len(head)]
    for name, row in rows.items():
        cells = []
        for labels in ("noisy", "clean"):
            for metric, width, fmt in (
                ("accuracy", 10, "{:.1%}"),
                ("nll", 9, "{:.3f}"),
                ("ece", 8, "{:.3f}"),
            ):
                star = "*" if _best(rows, labels, metric) == name else " "
                cells.append(f"{fmt.format(row[labels][metric]) + star:>{width}}")
            cells.append(" |")
        lines.append(f"{name:<12}|" + "".join(cells).rstrip("|").rstrip())
    lines.append(
        f"(Hom / Het: mean of the {_ens(rows)[4:]} members; {_ens(rows)[1:]}: their "
        "ensemble, mean of the member probabilities; * best in the column)"
    )
    return "\n".join(lines)


def markdown_table7(rows):
    lines = [
        "| Method | NLL | Accuracy | ECE | NLL (clean) | Accuracy (clean) | ECE (clean) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, row in rows.items():
        n, c = row["noisy"], row["clean"]
        lines.append(
            f"| {name} | {n['nll']:.3f} | {n['accuracy']:.1%} | {n['ece']:.4f} | "
            f"{c['nll']:.3f} | {c['accuracy']:.1%} | {c['ece']:.4f} |"
        )
    return "\n".join(lines)


def covariance_analysis(het_members, *, top_k=TOP_PAIRS, progress=True):
    """Mean correlation of the (centred) Sigma(x) over the test inputs, averaged over members.

    Returns:
      dict with "correlation" [K, K], "pairs" (top_k, by |correlation|), "planted_pairs",
      "planted_in_top" (how many planted pairs are in the top k), "members" (per-member count of
      planted pairs in its own top k) and "class_names".
    """
    from tqdm import tqdm

    from het_ensembles import analysis, data

    info = data.get_info(DATASET)
    planted = analysis.planted_pairs_of(DATASET)
    correlations, per_member = [], {}
    for member_dir in tqdm(
        het_members,
        desc="covariance analysis",
        unit="member",
        file=sys.stderr,
        disable=not progress,
    ):
        model = member_files.read_member(member_dir).load_model()
        inputs = data.load(DATASET, "test", batch_size=256, is_training=False)
        correlation, _ = analysis.mean_correlation(model, inputs)
        correlations.append(correlation)
        own = analysis.top_pairs(correlation, top_k=top_k, class_names=info.class_names)
        per_member[os.path.basename(member_dir)] = sum(p["classes"] in planted for p in own)
    correlation = np.mean(correlations, axis=0)
    pairs = analysis.top_pairs(correlation, top_k=top_k, class_names=info.class_names)
    return {
        "correlation": correlation,
        "pairs": pairs,
        "planted_pairs": planted,
        "planted_in_top": sum(p["classes"] in planted for p in pairs),
        "members": per_member,
        "class_names": info.class_names,
    }


def format_pairs_next_to_planted(cov):
    from het_ensembles import analysis

    planted = cov["planted_pairs"]
    table = analysis.format_pairs(cov["pairs"], planted=planted).splitlines()
    right = ["planted pairs (label swaps)"] + [f"  {a} <-> {b}" for a, b in planted]
    width = max(len(line) for line in table) + 4
    lines = []
    for i in range(max(len(table), len(right))):
        left = table[i] if i < len(table) else ""
        lines.append(f"{left:<{width}}{right[i] if i < len(right) else ''}".rstrip())
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------
# Targets and the summary.


def check_targets(rows, cov):
    """The issue's targets, measured: {name: {"value": str, "met": bool}}."""
    noisy = {name: row["noisy"] for name, row in rows.items()}
    ens = _ens(rows)
    return {
        "Het NLL < Hom NLL": {
            "value": f"{noisy['Het']['nll']:.3f} vs {noisy['Hom']['nll']:.3f}",
            "met": noisy["Het"]["nll"] < noisy["Hom"]["nll"],
        },
        f"Het{ens} NLL < Hom{ens} NLL": {
            "value": f"{noisy['Het' + ens]['nll']:.3f} vs {noisy['Hom' + ens]['nll']:.3f}",
            "met": noisy["Het" + ens]["nll"] < noisy["Hom" + ens]["nll"],
        },
        f"Het{ens} best on NLL and ECE": {
            "value": f"best NLL: {_best(rows, 'noisy', 'nll')}, "
            f"best ECE: {_best(rows, 'noisy', 'ece')}",
            "met": _best(rows, "noisy", "nll") == "Het" + ens
            and _best(rows, "noisy", "ece") == "Het" + ens,
        },
        f">= 3 planted pairs in the top {TOP_PAIRS}": {
            "value": f"{cov['planted_in_top']} of {len(cov['planted_pairs'])}",
            "met": cov["planted_in_top"] >= 3,
        },
    }


def summary_lines(rows, cov, targets):
    """A short, honest "what this shows", built from the measured numbers."""
    noisy = {name: row["noisy"] for name, row in rows.items()}
    clean = {name: row["clean"] for name, row in rows.items()}
    ens = _ens(rows)
    lines = [
        (
            "The labels of noisy_digits are corrupted on purpose: faint digits of four class pairs "
            "get swapped with their partner, so the right answer for such an image is a calibrated "
            "'probably 4, maybe 9', not a confident guess."
        ),
    ]
    het_gain = noisy["Hom"]["nll"] - noisy["Het"]["nll"]
    if het_gain > 0:
        lines.append(
            f"- The heteroscedastic head lowers the single-model NLL on held-out noisy labels "
            f"from {noisy['Hom']['nll']:.3f} to {noisy['Het']['nll']:.3f} (ECE "
            f"{noisy['Hom']['ece']:.3f} -> {noisy['Het']['ece']:.3f}): it learns how noisy each "
            "input's label is instead of memorising the flips."
        )
    else:
        lines.append(
            f"- In this run the heteroscedastic head did NOT lower the single-model NLL "
            f"({noisy['Het']['nll']:.3f} vs Hom {noisy['Hom']['nll']:.3f})."
        )
    helps = [row for row in ("Hom", "Het") if noisy[row + ens]["nll"] < noisy[row]["nll"]]
    verdict = {2: "helps both", 1: f"helps only {''.join(helps)}", 0: "helps neither"}
    lines.append(
        f"- Ensembling {ens[4:]} members {verdict[len(helps)]} (NLL Hom "
        f"{noisy['Hom']['nll']:.3f} -> {noisy['Hom' + ens]['nll']:.3f}, Het "
        f"{noisy['Het']['nll']:.3f} -> {noisy['Het' + ens]['nll']:.3f}); "
        + (
            f"together with the heteroscedastic head it gives the best row on NLL and ECE, Het{ens}."
            if targets[f"Het{ens} best on NLL and ECE"]["met"]
            else f"Het{ens} is not the best row on both NLL and ECE here."
        )
    )
    lines.append(
        f"- Against the clean labels accuracy is Hom {clean['Hom']['accuracy']:.1%}, Hom{ens} "
        f"{clean['Hom' + ens]['accuracy']:.1%}, Het {clean['Het']['accuracy']:.1%}, Het{ens} "
        f"{clean['Het' + ens]['accuracy']:.1%}."
    )
    found = cov["planted_in_top"]
    lines.append(
        f"- The learned noise covariance points at the planted confusions: {found} of the "
        f"{len(cov['planted_pairs'])} planted pairs are among its {TOP_PAIRS} most correlated class "
        "pairs (negative correlation: the noise moves one logit up and its partner down, a "
        "label swap)."
        if found
        else f"- The learned noise covariance did not recover the planted pairs in its top {TOP_PAIRS}."
    )
    return lines


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


def _to_json(value):
    if isinstance(value, dict):
        return {str(k): _to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_json(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (np.floating, np.integer, np.bool_)):
        return value.item()
    return value


def leaderboard_markdown(rows, cov, targets, summary, *, quick, synthetic=None):
    m = _ens(rows)[4:]
    lines = [
        f"# het-ensembles demo: {DATASET}" + (" (--quick smoke run)" if quick else ""),
        "",
        (
            f"{m} deterministic (Hom) and {m} heteroscedastic (Het) small CNNs, "
            f"seeds 0..{int(m) - 1}, trained with `het_ensembles.training` from `configs/noisy_digits/*.py` and "
            "evaluated with `het_ensembles.ensemble` (Collier et al. 2021, Table 7 shape)."
        ),
        "",
        markdown_table7(rows),
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
        lines += ["", "## synthetic", "", _synthetic_text(synthetic)]
    lines += ["", "## What this shows", "", *summary, ""]
    lines += [
        "Per-group leaderboard rows: `eval/hom/leaderboard.md`, `eval/het/leaderboard.md`.",
        "",
    ]
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------
# synthetic: the gap to the Bayes-optimal NLL.


def run_synthetic(output_dir, config_dir, *, quick, progress=True):
    """One Hom and one Het member on `synthetic`; their test NLL against the Bayes-optimal one.

    Returns:
      dict with "hom_nll", "het_nll", "bayes_nll", "bayes_nll_standard_error" and
      "gap_closed" = (hom - het) / (hom - bayes).
    """
    from het_ensembles import ensemble
    from het_ensembles.data import synthetic

    nll = {}
    for index, (key, config_file, row) in enumerate(METHODS, start=1):
        config = member_config(config_dir, "synthetic", config_file, seed=0, quick=quick)
        member_dir = os.path.join(output_dir, "synthetic", "members", key, "0")
        train_member(
            config, member_dir, label=f"[synthetic {index}/2] {row} seed 0", progress=progress
        )
        result = ensemble.evaluate(
            [member_dir],
            ["synthetic"],
            os.path.join(output_dir, "synthetic", "eval", key),
            method=row,
            progress=progress,
        )
        nll[key] = result["synthetic"]["ensemble"]["nll"]  # one member: its own NLL
    _say("Computing the Bayes-optimal test NLL of synthetic (Monte Carlo)")
    bayes, bayes_se = synthetic.bayes_optimal_nll()
    return {
        "hom_nll": float(nll["hom"]),
        "het_nll": float(nll["het"]),
        "bayes_nll": bayes,
        "bayes_nll_standard_error": bayes_se,
        "gap_closed": gap_closed(nll["hom"], nll["het"], bayes),
    }


def gap_closed(hom_nll, het_nll, bayes_nll):
    """Share of the NLL gap between Hom and the Bayes-optimal NLL that Het closes.

    1 means Het reaches the Bayes-optimal NLL, 0 that it is no better than Hom, < 0 worse; nan
    when Hom is already at (or below, by chance) the Bayes-optimal NLL.
    """
    gap = hom_nll - bayes_nll
    return float((hom_nll - het_nll) / gap) if gap > 0 else float("nan")


def _synthetic_text(s):
    return (
        f"synthetic test NLL: Hom {s['hom_nll']:.4f}, Het {s['het_nll']:.4f}, Bayes-optimal "
        f"{s['bayes_nll']:.4f} (+- {s['bayes_nll_standard_error']:.4f} Monte Carlo); Het closes "
        f"{s['gap_closed']:.0%} of the gap between Hom and the Bayes-optimal NLL "
        f"(target >= 75%: {'met' if s['gap_closed'] >= 0.75 else 'NOT met'})."
    )


# ----------------------------------------------------------------------------------------------
# Entry points.


def run_demo(
    output_dir,
    *,
    quick=False,
    synthetic=False,
    config_dir=None,
    num_members=NUM_MEMBERS,
    progress=True,
):
    """Runs the whole demo (see the module docstring); returns what metrics.json holds.

    Args:
      output_dir: where members, evaluator outputs and the report go; finished members found
        there are reused.
      quick: apply `QUICK_OVERRIDES` (a smoke run of the same pipeline).
      synthetic: also run `run_synthetic`.
      config_dir: directory with `noisy_digits/` and `synthetic/` config files (default: the
        repository's `configs/`).
      num_members: members per method (the demo's result uses 4; >= 2).
      progress: show progress bars.

    Raises:
      ValueError: for a bad argument, missing configs, or a trainer / evaluator error (e.g.
        members of a different config already in `output_dir`).
    """
    if not isinstance(num_members, int) or num_members < 2:
        raise ValueError(f"num_members must be an integer >= 2. Received: {num_members!r}")
    start = time.perf_counter()
    config_dir = config_dir or default_config_dir()
    _say(
        f"het-ensembles demo on {DATASET}{' (--quick smoke run)' if quick else ''}: "
        f"{num_members} Hom + {num_members} Het members -> {output_dir}"
    )
    members = train_members(
        output_dir, config_dir, quick=quick, num_members=num_members, progress=progress
    )
    trained = time.perf_counter()
    results = evaluate_groups(members, output_dir, progress=progress)
    rows = table7(results, num_members)
    cov = covariance_analysis(members["het"], progress=progress)
    targets = check_targets(rows, cov)
    summary = summary_lines(rows, cov, targets)
    if quick:
        summary.append(
            f"(--quick trains {QUICK_OVERRIDES['train_epochs']} epochs with "
            f"{QUICK_OVERRIDES['train_mc_samples']} MC samples: a smoke run of the pipeline, not "
            "the result; run without --quick for the real comparison.)"
        )
    synthetic_result = (
        run_synthetic(output_dir, config_dir, quick=quick, progress=progress) if synthetic else None
    )

    from het_ensembles import analysis

    eval_dirs = {key: os.path.join(output_dir, "eval", key) for key, _, _ in METHODS}
    write_reliability_diagrams(
        members, eval_dirs, os.path.join(output_dir, "reliability_diagrams.png")
    )
    analysis.plot_correlation(
        cov["correlation"],
        os.path.join(output_dir, "correlation_heatmap.png"),
        class_names=cov["class_names"],
        highlight_pairs=cov["planted_pairs"],
        title=f"Het members: mean correlation of centred Sigma(x)\n{DATASET} test inputs; "
        "outlined: planted pairs",
    )
    record = {
        "dataset": DATASET,
        "quick": quick,
        "table7": rows,
        "covariance": {k: v for k, v in cov.items()},
        "targets": targets,
        "summary": summary,
        "members": members,
        "evaluator": results,
        "synthetic": synthetic_result,
        "seconds": {"training": trained - start, "total": time.perf_counter() - start},
    }
    member_files.write_text(
        os.path.join(output_dir, "metrics.json"), json.dumps(_to_json(record), indent=2) + "\n"
    )
    member_files.write_text(
        os.path.join(output_dir, "leaderboard.md"),
        leaderboard_markdown(rows, cov, targets, summary, quick=quick, synthetic=synthetic_result),
    )
    _print_report(rows, cov, targets, summary, synthetic_result, output_dir, record["seconds"])
    return record


def _print_report(rows, cov, targets, summary, synthetic_result, output_dir, seconds):
    print()
    print(f"== Table 7 shape: {DATASET}, {_ens(rows)[4:]} members per method ==")
    print(format_table7(rows))
    print()
    print(
        f"== Table 4 shape: top {TOP_PAIRS} class pairs of the learned noise correlation "
        "(Het members, centred Sigma(x)) =="
    )
    print(format_pairs_next_to_planted(cov))
    if synthetic_result:
        print()
        print("== synthetic: gap to the Bayes-optimal NLL ==")
        print(_synthetic_text(synthetic_result))
    print()
    print("== Targets ==")
    for name, target in targets.items():
        print(f"  [{'x' if target['met'] else ' '}] {name}: {target['value']}")
    print()
    print("== What this shows ==")
    for line in summary:
        print(line)
    print()
    print(
        f"Wrote {output_dir}/leaderboard.md, metrics.json, reliability_diagrams.png, "
        f"correlation_heatmap.png (evaluator outputs in {output_dir}/eval/)"
    )
    print(
        f"Time: {seconds['total']:.0f} s ({seconds['training']:.0f} s training the {DATASET} members)"
    )


def _say(message):
    print(message, file=sys.stderr, flush=True)


def _parser():
    parser = argparse.ArgumentParser(
        prog="het-ensembles demo",
        description="The main job: 4 deterministic + 4 heteroscedastic members on noisy_digits, "
        "their ensembles, Table 7 and the learned noise covariance (Collier et al. 2021).",
    )
    parser.add_argument(
        "--output_dir",
        default=None,
        help=f"default: {DEFAULT_OUTPUT_DIR} ({DEFAULT_QUICK_OUTPUT_DIR} with "
        "--quick); finished members there are reused",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"{QUICK_OVERRIDES['train_epochs']} epochs and fewer MC samples: a "
        "smoke run of the same pipeline (about 2 minutes)",
    )
    parser.add_argument(
        "--synthetic",
        action="store_true",
        help="also train Hom and Het on `synthetic` and compare their NLL with "
        "the Bayes-optimal one",
    )
    parser.add_argument(
        "--config_dir",
        default=None,
        help="directory holding noisy_digits/ and synthetic/ configs (default: "
        "the repository's configs/)",
    )
    parser.add_argument("--no_progress", action="store_true", help="no progress bars")
    return parser


def cli_main(argv):
    """`het-ensembles demo [--output_dir DIR] [--quick] [--synthetic]`; returns the exit status."""
    args = _parser().parse_args(argv)
    output_dir = args.output_dir or (DEFAULT_QUICK_OUTPUT_DIR if args.quick else DEFAULT_OUTPUT_DIR)
    try:
        run_demo(
            output_dir,
            quick=args.quick,
            synthetic=args.synthetic,
            config_dir=args.config_dir,
            progress=not args.no_progress,
        )
    except ValueError as error:
        print(f"het-ensembles demo: error: {error}", file=sys.stderr)
        return 2
    return 0
