"""`het-ensembles study`: does the heteroscedastic head help on data nothing was tuned on?

Draws variants of an embedded family at random, from a seed used for nothing else:
`noisy_digits:<spec>` (`noisy_digits.random_spec`: other class pairs, another image feature
driving the flip rate, another rate) or `synthetic:<spec>` (`synthetic.random_spec`: a random
planted Sigma(x), other class and factor counts, a 10,000-example test set). It runs
`het-ensembles compare` of two configs on each (default: the family's Hom and Het recipes with a
validation split, keep-the-best-epoch and, for Het, the temperature chosen on validation NLL:
`configs/<family>/*_tuned.py`), and tabulates how often and by how much the second config's
ensemble beats the first's on NLL, ECE and accuracy, each variant with its paired bootstrap 95%
interval, the ensembles' own metrics, the chosen temperatures and, for `synthetic`, the
Bayes-optimal NLL (the planted model's own, `synthetic.bayes_optimal_nll`).

Files: `<output_dir>/<index>_<digest of the variant's name>/` holds each variant's
`comparison.json` (and its members);
`<output_dir>/study.json` the table, and `<output_dir>/study.png` its forest plot.
"""

import argparse
import hashlib
import os
import sys

import numpy as np

from het_ensembles import member_dir
from het_ensembles.cli.arguments import check_int
from het_ensembles.experiments import compare as compare_lib
from het_ensembles.metrics.bootstrap import BOOTSTRAP_METRICS, HIGHER_IS_BETTER

# Draws the variants; used for nothing else. 2026's noisy_digits variants informed the Het
# temperature grid (configs/noisy_digits/heteroscedastic_tuned.py), so they are no longer held out.
STUDY_SEED = 2027
FAMILIES = ("noisy_digits", "synthetic")


def _family_module(family):
    if family not in FAMILIES:
        raise ValueError(f"Unknown family. Received: family={family!r}; allowed: {FAMILIES}")
    from het_ensembles.data import noisy_digits, synthetic

    return {"noisy_digits": noisy_digits, "synthetic": synthetic}[family]


def variant_names(num_variants, seed=STUDY_SEED, family="noisy_digits"):
    """The dataset names of `num_variants` random variants of `family` (one of `FAMILIES`)."""
    module = _family_module(family)
    rng = np.random.default_rng(seed)
    return [module.random_spec(rng).name for _ in range(num_variants)]


def default_configs(family):
    """The shipped tuned Hom and Het recipes of `family`: `configs/<family>/*_tuned.py`."""
    from het_ensembles.demo.members import default_config_dir

    root = os.path.join(default_config_dir(), family)
    return [os.path.join(root, f"{kind}_tuned.py") for kind in ("deterministic", "heteroscedastic")]


def bayes_nll(dataset):
    """The Bayes-optimal test NLL of a `synthetic:<spec>` variant (None for other families)."""
    if not dataset.startswith("synthetic:"):
        return None
    from het_ensembles.data import synthetic

    spec = synthetic.SyntheticSpec.parse(dataset.partition(":")[2])
    arrays = synthetic.make_arrays(spec)
    nll, _ = synthetic.bayes_optimal_nll(arrays["x_test"], arrays["y_test"], model=spec.model())
    return nll


def study(
    config_paths,
    output_dir,
    *,
    num_variants=10,
    seeds=4,
    seed=STUDY_SEED,
    family="noisy_digits",
    progress=True,
):
    """Runs `compare.compare` on each variant and summarises config B vs config A.

    Returns:
      What study.json holds: `{"family", "configs", "seeds", "variants": [{"dataset", metric:
      {"difference", "low", "high"}, "ensembles": {config: {metric: value}}, "temperatures":
      {config: chosen temperature}, "bayes_nll"}], "summary": {metric: {"b_better",
      "b_better_sure", "mean_difference", "num_variants"}}}`: per metric, in how many variants
      B's ensemble is better, in how many its interval excludes zero in B's favour, and the mean
      difference B - A. `bayes_nll` is None except for `synthetic`.
    """
    if len(config_paths) != 2:
        raise ValueError(f"study compares two configs. Received: configs={config_paths}")
    check_int("num_variants", num_variants, 1)
    names = variant_names(num_variants, seed, family)
    member_dir.check_writable_dir(output_dir)
    rows = []
    for index, dataset in enumerate(names):
        _say(f"[{index + 1}/{num_variants}] {dataset}")
        # A directory per variant (its index and a digest of its name): another --seed or
        # --variants never meets members of a different variant.
        digest = hashlib.sha256(dataset.encode()).hexdigest()[:8]
        summary = compare_lib.compare(
            config_paths,
            os.path.join(output_dir, f"{index}_{digest}"),
            seeds=seeds,
            dataset=dataset,
            progress=progress,
        )
        (pair,) = summary["pairs"]
        rows.append(
            {
                "dataset": dataset,
                **{
                    m: {k: pair["ensemble_difference"][m][k] for k in ("difference", "low", "high")}
                    for m in BOOTSTRAP_METRICS
                },
                "ensembles": {name: c["ensemble"] for name, c in summary["configs"].items()},
                "temperatures": {
                    name: c["temperature_choice"]["temperature"]
                    for name, c in summary["configs"].items()
                    if c["temperature_choice"]
                },
                "bayes_nll": bayes_nll(dataset),
            }
        )
        configs = [pair["a"], pair["b"]]
    table = {"family": family, "configs": configs, "seeds": seeds, "variants": rows, "summary": {}}
    for metric in BOOTSTRAP_METRICS:
        sign = 1.0 if HIGHER_IS_BETTER[metric] else -1.0
        differences = np.array([r[metric]["difference"] for r in rows])
        sure = [_favours(r[metric], metric) > 0 for r in rows]
        table["summary"][metric] = {
            "b_better": int(np.sum(sign * differences > 0)),
            "b_better_sure": int(np.sum(sure)),
            "mean_difference": float(differences.mean()),
            "num_variants": len(rows),
        }
    member_dir.write_json(os.path.join(output_dir, "study.json"), table)
    write_study_plot(os.path.join(output_dir, "study.png"), table)
    return table


def _favours(interval, metric):
    """1 if the 95% interval of B - A lies wholly on B's better side, -1 if on A's, else 0."""
    sign = 1.0 if HIGHER_IS_BETTER[metric] else -1.0
    low, high = sorted((sign * interval["low"], sign * interval["high"]))
    return 1 if low > 0 else -1 if high < 0 else 0


def write_study_plot(path, table):
    """A forest plot of a study: per metric, each variant's B - A with its 95% interval.

    Intervals that exclude zero are drawn in the colour of the config they favour (B: red,
    A: blue); the others grey.
    """
    from matplotlib import figure
    from matplotlib.backends import backend_agg

    a, b = table["configs"]
    rows = table["variants"]
    fig = figure.Figure(figsize=(4.0 * len(BOOTSTRAP_METRICS), 1.2 + 0.35 * len(rows)))
    backend_agg.FigureCanvasAgg(fig)
    for index, metric in enumerate(BOOTSTRAP_METRICS):
        ax = fig.add_subplot(1, len(BOOTSTRAP_METRICS), index + 1)
        sign = 1.0 if HIGHER_IS_BETTER[metric] else -1.0
        for y, row in enumerate(rows):
            d = row[metric]
            color = {1: "C3", -1: "C0", 0: "0.5"}[_favours(d, metric)]
            ax.plot([d["low"], d["high"]], [y, y], color=color, linewidth=2)
            ax.plot([d["difference"]], [y], "o", color=color, markersize=4)
        ax.axvline(0.0, color="k", linewidth=1, linestyle="--")
        s = table["summary"][metric]
        better = "lower" if sign < 0 else "higher"
        ax.set(
            yticks=range(len(rows)),
            ylim=(len(rows) - 0.5, -0.5),
            xlabel=f"{metric}, B - A ({better}: B better)",
            title=f"{metric}: B better in {s['b_better']}/{s['num_variants']}, "
            f"{s['b_better_sure']} with 0 outside",
        )
        ax.title.set_fontsize(9)
        ax.set_yticklabels([f"#{i}" for i in range(len(rows))] if index == 0 else [])
    fig.suptitle(
        f"B - A = {b} ens{table['seeds']} - {a} ens{table['seeds']} on {len(rows)} held-out "
        f"{table.get('family', 'noisy_digits')} variants\npaired bootstrap 95% intervals; red: B "
        "better, blue: A better, grey: the interval includes 0",
        fontsize=10,
    )
    fig.tight_layout()
    member_dir.atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=100))


def format_study(table):
    """The study as text: a row per variant, the counts, then the variants' names."""
    a, b = table["configs"]
    seeds, rows = table["seeds"], table["variants"]
    family = table.get("family", "noisy_digits")
    lines = [
        (
            f"== B - A = {b} ens{seeds} - {a} ens{seeds} on {len(rows)} held-out {family} "
            "variants (paired bootstrap 95% over test examples) =="
        ),
        f"{'#':>2} "
        + " ".join(f"{m:>26}" for m in BOOTSTRAP_METRICS)
        + f" {'NLL A':>7} {'NLL B':>7} {'Bayes':>7}  temperature",
    ]
    for index, row in enumerate(rows):
        cells = [
            f"{row[m]['difference']:+.3f} [{row[m]['low']:+.3f}, {row[m]['high']:+.3f}]"
            for m in BOOTSTRAP_METRICS
        ]
        ensembles = row.get("ensembles", {})
        nll = [f"{ensembles[c]['nll']:.4f}" if c in ensembles else "-" for c in (a, b)]
        bayes = "-" if row.get("bayes_nll") is None else f"{row['bayes_nll']:.4f}"
        temperatures = ", ".join(f"{t:g}" for t in row.get("temperatures", {}).values()) or "-"
        lines.append(
            f"{index:>2} "
            + " ".join(f"{c:>26}" for c in cells)
            + f" {nll[0]:>7} {nll[1]:>7} {bayes:>7}  {temperatures}"
        )
    for metric, s in table["summary"].items():
        lines.append(
            f"{metric}: {b} better in {s['b_better']} of {s['num_variants']} variants "
            f"({s['b_better_sure']} with the interval excluding 0); mean difference "
            f"{s['mean_difference']:+.4f}"
        )
    lines.append("variants:")
    lines += [f"{index:>2} {row['dataset']}" for index, row in enumerate(rows)]
    return "\n".join(lines)


def _say(message):
    print(message, file=sys.stderr, flush=True)


def cli_main(argv):
    """`het-ensembles study --configs A.py B.py --variants 10 --seeds 4 --output_dir DIR`."""
    parser = argparse.ArgumentParser(
        prog="het-ensembles study",
        description="Compare two configs on random held-out variants of an embedded data set; "
        "writes study.json.",
    )
    parser.add_argument(
        "--configs",
        nargs=2,
        default=None,
        help="A.py B.py (default: configs/<family>/{deterministic,heteroscedastic}_tuned.py: "
        "validation split, best epoch, temperature chosen on validation)",
    )
    parser.add_argument(
        "--family",
        choices=FAMILIES,
        default="noisy_digits",
        help="noisy_digits: planted label noise on the digits; synthetic: a random planted "
        "Sigma(x) whose Bayes-optimal NLL is known",
    )
    parser.add_argument("--variants", type=int, default=10, help="number of random variants")
    parser.add_argument("--seeds", type=int, default=4, help="members per config and variant")
    parser.add_argument("--seed", type=int, default=STUDY_SEED, help="draws the variants")
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--no_progress", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    configs = args.configs or default_configs(args.family)
    try:
        table = study(
            configs,
            args.output_dir,
            num_variants=args.variants,
            seeds=args.seeds,
            seed=args.seed,
            family=args.family,
            progress=not args.no_progress,
        )
    except ValueError as error:
        print(f"het-ensembles study: error: {error}", file=sys.stderr)
        return 2
    print(format_study(table))
    print(f"Wrote {os.path.join(args.output_dir, 'study.json')} and study.png")
    return 0
