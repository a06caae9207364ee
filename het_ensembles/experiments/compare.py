"""`het-ensembles compare`: two or more configs, N seeds each, with their spread and paired intervals.

Where it sits: configs -> **the** trainer (one member per config and seed) -> **the** evaluator
(one ensemble per config) -> this comparison. Whether a heteroscedastic head helps on a given
dataset is an empirical question; this answers it with the numbers a reader needs to trust the
answer:

- per config: the members' mean and standard deviation, and the ensemble's accuracy, NLL, ECE;
  a config with a `temperature_grid` first has its temperature chosen on validation NLL
  (`training.tune_temperature`, seed 0, under `<output_dir>/temperature/<config>/`), then
  trains its seeds with that temperature;
- per pair of configs (A, B): the paired bootstrap 95% interval over test examples of the
  ensemble difference B - A in each metric (`metrics.bootstrap`), and the per-seed differences
  of single members (seed s of B minus seed s of A).

Files: `<output_dir>/members/<config>/<seed>/` (member directories, reused when finished),
`<output_dir>/eval/<config>/` (the evaluator's outputs and prediction cache) and
`<output_dir>/comparison.json`.
"""

import argparse
import itertools
import os
import sys

import numpy as np

from het_ensembles import member_dir, metrics
from het_ensembles.cli.arguments import check_int
from het_ensembles.metrics.bootstrap import BOOTSTRAP_METRICS, paired_bootstrap

SUMMARY_METRICS = ("accuracy", "nll", "ece")


def config_names(paths):
    """Short unique names of config files: their stems, with parent directories if needed."""
    stems = [os.path.splitext(os.path.basename(p))[0] for p in paths]
    if len(set(stems)) == len(stems):
        return stems
    return [
        os.path.splitext(os.path.relpath(p, os.path.commonpath(paths)))[0].replace(os.sep, "_")
        for p in paths
    ]


def compare(
    config_paths,
    output_dir,
    *,
    seeds=4,
    dataset=None,
    num_resamples=1000,
    progress=True,
):
    """Trains (or reuses) `seeds` members per config, evaluates them, compares the configs.

    Args:
      config_paths: two or more config files (`get_config()`), e.g. configs/noisy_digits/*.py.
      output_dir: where members, evaluator outputs and comparison.json go.
      seeds: members per config (seeds 0 .. seeds-1).
      dataset: overrides every config's `dataset` (default: theirs, which must agree).
        Members are evaluated on its test split.
      num_resamples: bootstrap resamples for the paired intervals.
      progress: show progress bars.

    Returns:
      What comparison.json holds: `{"dataset", "seeds", "configs": {name: {"path",
      "member_mean", "member_std", "ensemble"}}, "pairs": [{"a", "b", "ensemble_difference":
      {metric: {"a", "b", "difference", "low", "high", "b_better"}}, "member_differences":
      {metric: [per seed]}}]}`.

    Raises:
      ValueError: for fewer than two configs, seeds < 1, configs on different datasets, or
        any error of the trainer's or evaluator's checks.
    """
    config_paths = [os.fspath(p) for p in config_paths]
    if len(config_paths) < 2:
        raise ValueError(f"compare needs two or more configs. Received: configs={config_paths}")
    check_int("seeds", seeds, 1)
    member_dir.check_writable_dir(output_dir)
    names = config_names(config_paths)
    configs, dataset = _load_configs(names, config_paths, dataset)

    results, member_dirs, temperatures = {}, {}, {}
    for name, config in configs.items():
        if tuple(config.temperature_grid):  # the paper's protocol: chosen on validation NLL
            temperatures[name] = _choose_temperature(name, config, output_dir, progress=progress)
        member_dirs[name] = _train_members(name, config, output_dir, seeds, progress=progress)
        results[name] = _evaluate_members(
            name, member_dirs[name], output_dir, dataset, progress=progress
        )

    summary = {
        "dataset": dataset,
        "seeds": seeds,
        "configs": {
            name: {
                "path": os.path.abspath(path),
                "member_mean": _pick(results[name]["member_mean"]),
                "member_std": _pick(results[name]["member_std"]),
                "ensemble": _pick(results[name]["ensemble"]),
                "temperature_choice": temperatures.get(name),
            }
            for name, path in zip(names, config_paths)
        },
        "pairs": _pairs(
            names,
            results,
            member_dirs,
            output_dir,
            dataset,
            seeds=seeds,
            num_resamples=num_resamples,
        ),
    }
    member_dir.write_json(os.path.join(output_dir, "comparison.json"), summary)
    return summary


def _load_configs(names, config_paths, dataset):
    """The configs by name, with `dataset` (if not None) set in each, and their one dataset.

    Raises:
      ValueError: for configs on different datasets.
    """
    from het_ensembles import training

    configs = {name: training.load_config(path) for name, path in zip(names, config_paths)}
    if dataset is not None:
        for config in configs.values():
            config.dataset = dataset
    datasets = {name: config.dataset for name, config in configs.items()}
    if len(set(datasets.values())) > 1:
        raise ValueError(
            f"The configs train on different datasets; pass --dataset. Received: {datasets}"
        )
    return configs, next(iter(datasets.values()))


def _choose_temperature(name, config, output_dir, *, progress):
    """Tunes `config`'s temperature on its grid (seed 0) and sets it; returns the choice."""
    from het_ensembles import training
    from het_ensembles.training import progress as progress_lib

    config.seed = 0
    label = f"{name} temperature grid {tuple(config.temperature_grid)}"
    with progress_lib.epoch_bar(label, None, progress=progress):
        choice = training.tune_temperature(config, os.path.join(output_dir, "temperature", name))
    config.temperature, config.temperature_grid = choice["temperature"], ()
    return choice


def _train_members(name, config, output_dir, seeds, *, progress):
    """Trains (or reuses) seeds 0 .. seeds-1 of `config`; returns their member directories."""
    from het_ensembles.training import progress as progress_lib

    paths = []
    for seed in range(seeds):
        config.seed = seed
        path = os.path.join(output_dir, "members", name, str(seed))
        progress_lib.train_member(config, path, label=f"{name} seed {seed}", progress=progress)
        paths.append(path)
    return paths


def _evaluate_members(name, paths, output_dir, dataset, *, progress):
    """The evaluator's results for `dataset` of the members at `paths` (cached under eval/)."""
    from het_ensembles import evaluation

    return evaluation.evaluate(
        paths,
        [dataset],
        os.path.join(output_dir, "eval", name),
        method=name,
        progress=progress,
    )[dataset]


def _pairs(names, results, member_dirs, output_dir, dataset, *, seeds, num_resamples):
    """comparison.json's "pairs": for each pair (A, B) of configs, the differences B - A."""
    ensembles = {
        name: cached_ensemble(os.path.join(output_dir, "eval", name), member_dirs[name], dataset)
        for name in names
    }
    pairs = []
    for a, b in itertools.combinations(names, 2):
        pairs.append(
            {
                "a": a,
                "b": b,
                "ensemble_difference": ensemble_difference(
                    ensembles[a], ensembles[b], num_resamples=num_resamples
                ),
                "member_differences": {
                    metric: [
                        results[b]["members"][str(s)][metric]
                        - results[a]["members"][str(s)][metric]
                        for s in range(seeds)
                    ]
                    for metric in SUMMARY_METRICS
                },
            }
        )
    return pairs


def cached_ensemble(eval_dir, member_dirs, dataset):
    """`(labels, ensemble log-probs [N, K])` of members whose predictions `evaluate` cached."""
    from het_ensembles import evaluation

    labels, member_log_probs = evaluation.cached_predictions(eval_dir, member_dirs, dataset)
    return labels, metrics.ensemble_log_probs(member_log_probs)


def ensemble_difference(a, b, *, num_resamples=1000):
    """Paired bootstrap of B - A for two `cached_ensemble`s, which must share their labels."""
    if not np.array_equal(a[0], b[0]):
        raise RuntimeError("The two ensembles were evaluated on different labels.")
    return paired_bootstrap(a[0], a[1], b[1], num_resamples=num_resamples)


def format_comparison(summary):
    """The comparison as text: a row per config, then each pair's differences and intervals."""
    seeds = summary["seeds"]
    lines = [
        f"== {summary['dataset']}: {len(summary['configs'])} configs x {seeds} seeds ==",
        f"{'config':<24} {'':>10} {'accuracy':>17} {'NLL':>17} {'ECE':>17}",
    ]
    for name, row in summary["configs"].items():
        mean, std, ens = row["member_mean"], row["member_std"], row["ensemble"]
        lines.append(
            f"{name:<24} {'member':>10} "
            + " ".join(f"{mean[m]:>8.4f} +- {std[m]:<5.3f}" for m in SUMMARY_METRICS)
        )
        lines.append(
            f"{'':<24} {f'ens{seeds}':>10} " + " ".join(f"{ens[m]:>17.4f}" for m in SUMMARY_METRICS)
        )
    for pair in summary["pairs"]:
        lines.append(f"\n{pair['b']} - {pair['a']} (paired bootstrap 95% over test examples):")
        for metric in BOOTSTRAP_METRICS:
            d = pair["ensemble_difference"][metric]
            per_seed = ", ".join(f"{v:+.4f}" for v in pair["member_differences"][metric])
            lines.append(
                f"  {metric:<9} ensemble {d['difference']:+.4f} [{d['low']:+.4f}, {d['high']:+.4f}]"
                f"  ({100 * d['b_better']:.0f}% of resamples favour {pair['b']}); "
                f"members by seed: {per_seed}"
            )
    return "\n".join(lines)


def _pick(row):
    return {metric: row[metric] for metric in SUMMARY_METRICS}


def cli_main(argv):
    """`het-ensembles compare --configs A.py B.py [...] --seeds N --output_dir DIR`."""
    parser = argparse.ArgumentParser(
        prog="het-ensembles compare",
        description="Train (or reuse) N members per config, evaluate each config's ensemble, and "
        "compare them: member mean +- std, ensemble metrics, paired bootstrap intervals of the "
        "ensemble differences and per-seed member differences. Writes comparison.json.",
    )
    parser.add_argument("--configs", nargs="+", required=True, help="two or more config files")
    parser.add_argument(
        "--dataset", default=None, help="dataset for every config (default: theirs)"
    )
    parser.add_argument("--seeds", type=int, default=4, help="members per config (seeds 0..N-1)")
    parser.add_argument("--output_dir", required=True, help="members, eval/ and comparison.json")
    parser.add_argument(
        "--num_resamples", type=int, default=1000, help="bootstrap resamples (>= 100)"
    )
    parser.add_argument("--no_progress", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    try:
        summary = compare(
            args.configs,
            args.output_dir,
            seeds=args.seeds,
            dataset=args.dataset,
            num_resamples=args.num_resamples,
            progress=not args.no_progress,
        )
    except ValueError as error:
        print(f"het-ensembles compare: error: {error}", file=sys.stderr)
        return 2
    print(format_comparison(summary))
    print(f"Wrote {os.path.join(args.output_dir, 'comparison.json')}")
    return 0
