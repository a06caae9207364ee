"""`het-ensembles demo`: `run_demo` runs the whole main job and prints its report."""

import argparse
import json
import os
import sys
import time

from het_ensembles import member_dir as member_files
from het_ensembles.demo import multilabel, outputs
from het_ensembles.demo import results as results_lib
from het_ensembles.demo.members import (
    DATASET,
    DEFAULT_OUTPUT_DIR,
    DEFAULT_QUICK_OUTPUT_DIR,
    METHODS,
    NUM_MEMBERS,
    QUICK_OVERRIDES,
    default_config_dir,
    say,
    train_members,
)
from het_ensembles.demo.synthetic import run_synthetic, synthetic_text

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
    say(
        f"het-ensembles demo on {DATASET}{' (--quick smoke run)' if quick else ''}: "
        f"{num_members} Hom + {num_members} Het members -> {output_dir}"
    )
    members = train_members(
        output_dir, config_dir, quick=quick, num_members=num_members, progress=progress
    )
    trained = time.perf_counter()
    results = results_lib.evaluate_groups(members, output_dir, progress=progress)
    rows = results_lib.table7(results, num_members)
    spread = results_lib.spread_and_intervals(results, members, output_dir)
    cov = results_lib.covariance_analysis(members["het"], progress=progress)
    targets = results_lib.check_targets(rows, cov)
    summary = results_lib.summary_lines(rows, cov, targets)
    if quick:
        summary.append(
            f"(--quick trains {QUICK_OVERRIDES['train_epochs']} epochs with "
            f"{QUICK_OVERRIDES['train_mc_samples']} MC samples: a smoke run of the pipeline, not "
            "the result; run without --quick for the real comparison.)"
        )
    synthetic_result = (
        run_synthetic(output_dir, config_dir, quick=quick, progress=progress) if synthetic else None
    )

    from het_ensembles.analysis import covariance
    from het_ensembles.evaluation import report

    eval_dirs = {key: os.path.join(output_dir, "eval", key) for key, _, _ in METHODS}
    outputs.write_reliability_diagrams(
        members, eval_dirs, os.path.join(output_dir, report.RELIABILITY_DIAGRAM_FILE)
    )
    covariance.plot_correlation(
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
        "spread": spread,
        "covariance": {k: v for k, v in cov.items()},
        "targets": targets,
        "summary": summary,
        "members": members,
        "evaluator": results,
        "synthetic": synthetic_result,
        "seconds": {"training": trained - start, "total": time.perf_counter() - start},
    }
    member_files.write_text(
        os.path.join(output_dir, "metrics.json"),
        json.dumps(outputs.to_json(record), indent=2) + "\n",
    )
    member_files.write_text(
        os.path.join(output_dir, report.LEADERBOARD_FILE),
        outputs.leaderboard_markdown(
            rows, spread, cov, targets, summary, quick=quick, synthetic=synthetic_result
        ),
    )
    _print_report(
        rows, spread, cov, targets, summary, synthetic_result, output_dir, record["seconds"]
    )
    return record


def _print_report(rows, spread, cov, targets, summary, synthetic_result, output_dir, seconds):
    from het_ensembles.evaluation import report

    num_members = int(results_lib.ens_suffix(rows)[4:])
    print()
    print(f"== Table 7 shape: {DATASET}, {num_members} members per method ==")
    print(results_lib.format_table7(rows))
    print()
    print("== Spread over seeds, and how sure the ensemble difference is ==")
    print(results_lib.format_spread(spread, num_members))
    print()
    print(
        f"== Table 4 shape: top {results_lib.TOP_PAIRS} class pairs of the learned noise correlation "
        "(Het members, centred Sigma(x)) =="
    )
    print(results_lib.format_pairs_next_to_planted(cov))
    if synthetic_result:
        print()
        print("== synthetic: gap to the Bayes-optimal NLL ==")
        print(synthetic_text(synthetic_result))
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
        f"Wrote {output_dir}/{report.LEADERBOARD_FILE}, metrics.json, "
        f"{report.RELIABILITY_DIAGRAM_FILE}, correlation_heatmap.png (evaluator outputs in "
        f"{output_dir}/eval/)"
    )
    print(
        f"Time: {seconds['total']:.0f} s ({seconds['training']:.0f} s training the {DATASET} members)"
    )


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
        "--multilabel",
        action="store_true",
        help="instead: the paper's Table 3 shape, Hom / Het diag / Het sigmoid heads (3 seeds "
        f"each) on multilabel_digits, gAP and NLL (default output_dir: "
        f"{multilabel.DEFAULT_OUTPUT_DIR}, {multilabel.DEFAULT_QUICK_OUTPUT_DIR} with --quick)",
    )
    parser.add_argument(
        "--config_dir",
        default=None,
        help="directory holding noisy_digits/ and synthetic/ configs (multilabel_digits/ with "
        "--multilabel; default: the repository's configs/)",
    )
    parser.add_argument("--no_progress", action="store_true", help="no progress bars")
    return parser


def cli_main(argv):
    """`het-ensembles demo [--output_dir DIR] [--quick] [--synthetic | --multilabel]`; returns
    the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.multilabel:
        if args.synthetic:
            parser.error(
                "--synthetic belongs to the main demo; it cannot be combined with --multilabel"
            )
        return _cli_multilabel(args)
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


def _cli_multilabel(args):
    default = multilabel.DEFAULT_QUICK_OUTPUT_DIR if args.quick else multilabel.DEFAULT_OUTPUT_DIR
    try:
        multilabel.run_multilabel_demo(
            args.output_dir or default,
            quick=args.quick,
            config_dir=args.config_dir,
            progress=not args.no_progress,
        )
    except ValueError as error:
        print(f"het-ensembles demo --multilabel: error: {error}", file=sys.stderr)
        return 2
    return 0
