"""`het-ensembles study`: does the heteroscedastic head help on data nothing was tuned on?

Draws `noisy_digits:<spec>` variants at random (`noisy_digits.random_spec`, from a seed used for
nothing else: other class pairs, another image feature driving the flip rate, another rate),
runs `het-ensembles compare` of two configs on each (default: the demo's Hom and Het recipes with
a validation split, keep-the-best-epoch and, for Het, the temperature chosen on validation NLL:
`configs/noisy_digits/*_tuned.py`),
and tabulates how often and by how much the second config's ensemble beats the first's on NLL,
ECE and accuracy, each variant with its paired bootstrap 95% interval.

Files: `<output_dir>/<index>_<digest of the variant's name>/` holds each variant's
`comparison.json` (and its members);
`<output_dir>/study.json` the table.
"""

import argparse
import hashlib
import os
import sys

import numpy as np

from het_ensembles import compare as compare_lib
from het_ensembles import member_dir
from het_ensembles.arguments import check_int
from het_ensembles.metrics.bootstrap import BOOTSTRAP_METRICS, HIGHER_IS_BETTER

STUDY_SEED = 2026  # draws the variants; used for nothing else


def variant_names(num_variants, seed=STUDY_SEED):
    """The dataset names of `num_variants` random `noisy_digits` variants."""
    from het_ensembles.data import noisy_digits

    rng = np.random.default_rng(seed)
    return [noisy_digits.random_spec(rng).name for _ in range(num_variants)]


def study(config_paths, output_dir, *, num_variants=10, seeds=4, seed=STUDY_SEED, progress=True):
    """Runs `compare.compare` on each variant and summarises config B vs config A.

    Returns:
      What study.json holds: `{"configs", "seeds", "variants": [{"dataset", metric:
      {"difference", "low", "high"}}], "summary": {metric: {"b_better", "b_better_sure",
      "mean_difference"}}}`: per metric, in how many variants B's ensemble is better, in how many
      its interval excludes zero in B's favour, and the mean difference B - A.
    """
    if len(config_paths) != 2:
        raise ValueError(f"study compares two configs. Received: configs={config_paths}")
    check_int("num_variants", num_variants, 1)
    member_dir.check_writable_dir(output_dir)
    rows = []
    for index, dataset in enumerate(variant_names(num_variants, seed)):
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
            }
        )
        names = [pair["a"], pair["b"]]
    table = {"configs": names, "seeds": seeds, "variants": rows, "summary": {}}
    for metric in BOOTSTRAP_METRICS:
        sign = 1.0 if HIGHER_IS_BETTER[metric] else -1.0
        differences = np.array([r[metric]["difference"] for r in rows])
        sure = [sign * r[metric]["low" if sign > 0 else "high"] > 0 for r in rows]
        table["summary"][metric] = {
            "b_better": int(np.sum(sign * differences > 0)),
            "b_better_sure": int(np.sum(sure)),
            "mean_difference": float(differences.mean()),
            "num_variants": len(rows),
        }
    member_dir.write_json(os.path.join(output_dir, "study.json"), table)
    return table


def format_study(table):
    """The study as text: a row per variant, then the counts."""
    a, b = table["configs"]
    lines = [
        (
            f"== {b} ens{table['seeds']} - {a} ens{table['seeds']} on "
            f"{len(table['variants'])} held-out noisy_digits variants (paired bootstrap 95% over "
            "test examples) =="
        ),
        f"{'variant':<76} " + " ".join(f"{m:>26}" for m in BOOTSTRAP_METRICS),
    ]
    for row in table["variants"]:
        cells = [
            f"{row[m]['difference']:+.3f} [{row[m]['low']:+.3f}, {row[m]['high']:+.3f}]"
            for m in BOOTSTRAP_METRICS
        ]
        name = row["dataset"].removeprefix("noisy_digits:")
        lines.append(f"{name:<76} " + " ".join(f"{c:>26}" for c in cells))
    for metric, s in table["summary"].items():
        lines.append(
            f"{metric}: {b} better in {s['b_better']} of {s['num_variants']} variants "
            f"({s['b_better_sure']} with the interval excluding 0); mean difference "
            f"{s['mean_difference']:+.4f}"
        )
    return "\n".join(lines)


def _say(message):
    print(message, file=sys.stderr, flush=True)


def cli_main(argv):
    """`het-ensembles study --configs A.py B.py --variants 10 --seeds 4 --output_dir DIR`."""
    parser = argparse.ArgumentParser(
        prog="het-ensembles study",
        description="Compare two configs on random held-out noisy_digits variants; writes "
        "study.json.",
    )
    parser.add_argument(
        "--configs",
        nargs=2,
        default=None,
        help="A.py B.py (default: configs/noisy_digits/{deterministic,heteroscedastic}_tuned.py: "
        "validation split, best epoch, temperature chosen on validation)",
    )
    parser.add_argument("--variants", type=int, default=10, help="number of random variants")
    parser.add_argument("--seeds", type=int, default=4, help="members per config and variant")
    parser.add_argument("--seed", type=int, default=STUDY_SEED, help="draws the variants")
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--no_progress", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    configs = args.configs
    if configs is None:
        from het_ensembles.demo.members import default_config_dir

        root = os.path.join(default_config_dir(), "noisy_digits")
        names = ("deterministic_tuned.py", "heteroscedastic_tuned.py")
        configs = [os.path.join(root, name) for name in names]
    try:
        table = study(
            configs,
            args.output_dir,
            num_variants=args.variants,
            seeds=args.seeds,
            seed=args.seed,
            progress=not args.no_progress,
        )
    except ValueError as error:
        print(f"het-ensembles study: error: {error}", file=sys.stderr)
        return 2
    print(format_study(table))
    print(f"Wrote {os.path.join(args.output_dir, 'study.json')}")
    return 0
