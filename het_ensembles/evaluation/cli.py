"""`het-ensembles evaluate`: flags in, `evaluate(...)` run, a summary printed."""

import argparse
import os
import sys

from het_ensembles import metrics
from het_ensembles.evaluation import mc_samples, report
from het_ensembles.evaluation.datasets import SUITE_FAMILIES, SUITES, corrupted_datasets
from het_ensembles.evaluation.evaluator import evaluate
from het_ensembles.evaluation.scoring import CORRUPTED


def cli_main(argv):
    """`het-ensembles evaluate ...`; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        results = _run(args, _datasets(args))
    except ValueError as e:
        print(f"het-ensembles evaluate: error: {e}", file=sys.stderr)
        return 2
    print(report.summary(results))
    plot = f", {mc_samples.PLOT_FILE}" if args.test_mc_samples else ""
    print(
        f"Wrote {os.path.join(args.output_dir, 'metrics.json')}, {report.LEADERBOARD_FILE}"
        f"{plot} and {report.RELIABILITY_DIAGRAM_FILE}"
    )
    return 0


def _parser():
    """The argument parser of `het-ensembles evaluate`."""
    parser = argparse.ArgumentParser(
        prog="het-ensembles evaluate",
        description="Evaluate ensemble members and their ensemble; write metrics.json, "
        "leaderboard.md and reliability_diagram.png to --output_dir.",
    )
    parser.add_argument(
        "--members",
        nargs="+",
        action="extend",
        required=True,
        help="glob(s) of member directories (quote them), e.g. 'runs/het/*'; recursive with **",
    )
    parser.add_argument(
        "--dataset",
        nargs="+",
        action="extend",
        default=[],
        help="dataset name(s) for het_ensembles.data, optionally '<name>:<split>' "
        "(e.g. noisy_digits:test_clean)",
    )
    parser.add_argument(
        "--suite",
        choices=sorted(SUITES),
        default=None,
        help="every set of that leaderboard table in TFDS: imagenet = imagenet2012, ImageNet-C, "
        "imagenet_a, imagenet_v2 (+ imagenet_r beside the table); cifar10 = cifar10, CIFAR-10-C; "
        "cifar100 = cifar100, CIFAR-100-C (17 corruptions, from --cifar100_c_path)",
    )
    parser.add_argument(
        "--output_dir", required=True, help="predictions cache, metrics.json, leaderboard.md, plot"
    )
    parser.add_argument(
        "--corruptions",
        default=None,
        help="also evaluate corrupted sets: 'all' (the benchmark corruptions) or a comma "
        "list; ImageNet-C, or CIFAR-10-C / CIFAR-100-C with --suite cifar10 / cifar100",
    )
    parser.add_argument(
        "--severities", default="1,2,3,4,5", help="severities of --corruptions (1..5)"
    )
    parser.add_argument(
        "--ensemble_size",
        type=int,
        default=None,
        help="also report the mean +- std over all sub-ensembles of this size",
    )
    parser.add_argument("--batch_size", type=int, default=256, help="prediction batch size")
    parser.add_argument("--num_bins", type=int, default=metrics.DEFAULT_NUM_BINS, help="ECE bins")
    parser.add_argument("--data_dir", default=None, help="TFDS data dir (default: the members')")
    parser.add_argument(
        "--cifar100_c_path",
        default=None,
        help="folder of the CIFAR-100-C files (not in TFDS): the authors' '<corruption>.npy' "
        "+ 'labels.npy', or uncertainty-baselines' '<corruption>-<severity>.tfrecords'",
    )
    parser.add_argument(
        "--image_size", type=int, default=None, help="image side (default: the members' config)"
    )
    parser.add_argument("--label_field", default=None, help="cifar10_n label field")
    parser.add_argument(
        "--method", default=None, help="leaderboard row name (default: from the members' head)"
    )
    parser.add_argument(
        "--ensemble_method",
        default=None,
        help="the ensemble row's name (default: '<method> ensemble (size=N)'), e.g. "
        "'[Heteroscedastic Ensemble (size=4)](het_ensemble.py)'",
    )
    parser.add_argument(
        "--max_subsets", type=int, default=100, help="cap on the number of sub-ensembles"
    )
    parser.add_argument(
        "--ood_dataset",
        nargs="+",
        action="extend",
        default=[],
        help="out-of-distribution set(s), detected against the first --dataset: AUROC, AUPRC, "
        "FPR@95%%TPR by max probability and entropy (metrics.json 'ood/<name>')",
    )
    parser.add_argument(
        "--test_mc_samples",
        default=None,
        help="comma-separated numbers of test Monte Carlo samples S (e.g. 10,100,1000,5000): "
        "also score every MC member and the ensemble at each S, with ms per example "
        "(metrics.json '<dataset>'/'mc_samples', mc_samples.png); the plain rows stay at the "
        "members' own S",
    )
    parser.add_argument("--no_progress", action="store_true", help="no progress bars")
    return parser


def _datasets(args):
    """The datasets to evaluate: --dataset, then --suite's, then --corruptions' sets (of the
    suite's corrupted family: CIFAR-10-C / CIFAR-100-C with --suite cifar10 / cifar100, else
    ImageNet-C).

    Raises:
      ValueError: for bad --severities, or when no dataset is named.
    """
    datasets = list(args.dataset)
    family = SUITE_FAMILIES.get(args.suite, CORRUPTED)
    if args.suite:  # --corruptions, when given, picks the corrupted sets instead of all 75
        suite = [n for n in SUITES[args.suite] if not (args.corruptions and n == family)]
        datasets += [name for name in suite if name not in datasets]
    if args.corruptions:
        corruptions = "all" if args.corruptions == "all" else args.corruptions.split(",")
        try:
            severities = [int(s) for s in args.severities.split(",")]
        except ValueError:
            raise ValueError(
                "--severities must be comma-separated integers in 1..5. "
                f"Received: --severities={args.severities!r}"
            ) from None
        datasets += corrupted_datasets(corruptions, severities, family=family)
    if not datasets:
        raise ValueError(
            "No dataset. Received: --dataset=[]; allowed: one or more names, or --suite"
        )
    return datasets


def _run(args, datasets):
    """Runs `evaluate` with the parsed flags; returns its results."""
    return evaluate(
        args.members,
        datasets,
        args.output_dir,
        ensemble_size=args.ensemble_size,
        batch_size=args.batch_size,
        num_bins=args.num_bins,
        data_dir=args.data_dir,
        cifar100_c_path=args.cifar100_c_path,
        image_size=args.image_size,
        label_field=args.label_field,
        method=args.method,
        ensemble_method=args.ensemble_method,
        max_subsets=args.max_subsets,
        ood_datasets=args.ood_dataset,
        test_mc_samples=args.test_mc_samples,
        progress=not args.no_progress,
    )
