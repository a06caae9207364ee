"""The `het-ensembles` command line: one entry point, one subcommand per job.

Each subcommand lives in the module that does the work and exposes
`cli_main(argv: list[str]) -> int`; this file only dispatches, importing that module
when the subcommand runs.
"""

import argparse
import importlib
import sys

import het_ensembles

# name -> (module holding `cli_main`, one-line help)
SUBCOMMANDS = {
    "train": ("het_ensembles.training", "train one ensemble member from a config"),
    "evaluate": (
        "het_ensembles.ensemble",
        "evaluate members and ensembles, write a leaderboard row",
    ),
    "demo": ("het_ensembles.demo", "the main job: Hom/Het members and ensembles on noisy_digits"),
    "covariance": ("het_ensembles.analysis", "top correlated class pairs of a member's Sigma(x)"),
    "bench": ("het_ensembles.bench", "time and memory of the MC head vs edward2"),
}


def _parser():
    parser = argparse.ArgumentParser(
        prog="het-ensembles",
        description="Heteroscedastic classification with deep ensembles (Keras 3).",
        epilog="Run 'het-ensembles <command> --help' for a command's options.",
    )
    parser.add_argument("--version", action="version", version=het_ensembles.__version__)
    parser.add_argument(
        "command",
        choices=sorted(SUBCOMMANDS),
        metavar="command",
        help="; ".join(f"{k}: {v[1]}" for k, v in SUBCOMMANDS.items()),
    )
    parser.add_argument("args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    return parser


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in SUBCOMMANDS:
        command, rest = argv[0], argv[1:]
    else:
        parsed = _parser().parse_args(argv)
        command, rest = parsed.command, parsed.args
    module = importlib.import_module(SUBCOMMANDS[command][0])
    return module.cli_main(rest)


if __name__ == "__main__":
    sys.exit(main())
