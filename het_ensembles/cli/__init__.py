"""The `het-ensembles` command line: one entry point, one subcommand per job.

Each subcommand lives in the module that does the work and exposes
`cli_main(argv: list[str]) -> int`; this package only dispatches, importing that module
when the subcommand runs. `arguments` holds the argument checks every entry point shares,
layer constructors included.
"""

import argparse
import contextlib
import importlib
import os
import sys
import tempfile

import het_ensembles

# name -> (module holding `cli_main`, one-line help)
SUBCOMMANDS = {
    "train": ("het_ensembles.training.cli", "train one ensemble member from a config"),
    "evaluate": (
        "het_ensembles.evaluation.cli",
        "evaluate members and ensembles, write a leaderboard row",
    ),
    "demo": ("het_ensembles.demo", "the main job: Hom/Het members and ensembles on noisy_digits"),
    "covariance": (
        "het_ensembles.analysis.covariance",
        "top correlated class pairs of a member's Sigma(x)",
    ),
    "bench": ("het_ensembles.tools.bench", "time and memory of the MC head vs edward2"),
    "compare": (
        "het_ensembles.experiments.compare",
        "two or more configs, N seeds each: spread and paired bootstrap intervals",
    ),
    "report": (
        "het_ensembles.experiments.report",
        "groups of members as the paper's tables: mean +- std over seeds, t-test daggers",
    ),
    "study": (
        "het_ensembles.experiments.study",
        "two configs on random held-out variants of an embedded dataset: how often B wins",
    ),
}


# Lines TensorFlow's C++ runtime prints to stderr while it loads, before any logging setting
# applies, on every machine without a GPU: information, not errors.
STARTUP_NOISE = (
    "All log messages before absl::InitializeLog() is called",
    "oneDNN custom operations are on",
    "cudart_stub.cc",
    "failed call to cuInit",
    "Unable to register cu",
    "computation_placer.cc",
    "This TensorFlow binary is optimized to use available CPU instructions",
    "To enable the following instructions",
)


@contextlib.contextmanager
def _without_startup_noise(*, load_tensorflow=True):
    """Runs the body (importing a subcommand's module) with `STARTUP_NOISE` lines removed from
    stderr, first loading TensorFlow and its devices if `load_tensorflow`.

    The C++ runtime writes to file descriptor 2 directly, so it is captured there; every other
    line is passed on once the body has run. `--help` does not load TensorFlow itself, but a
    subcommand whose module imports it prints the same lines, so they are filtered too.
    """
    if "tensorflow" in sys.modules:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            if load_tensorflow:
                import tensorflow as tf

                tf.config.list_physical_devices()  # the CUDA platform probe happens here
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            sys.stderr.write(drop_startup_noise(captured.read().decode(errors="replace")))


def drop_startup_noise(text):
    """`text` without its `STARTUP_NOISE` lines."""
    lines = text.splitlines(keepends=True)
    return "".join(line for line in lines if not any(noise in line for noise in STARTUP_NOISE))


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
    wants_help = bool({"-h", "--help", "--helpshort", "--helpfull"} & set(rest))
    with _without_startup_noise(load_tensorflow=not wants_help):
        module = importlib.import_module(SUBCOMMANDS[command][0])
    return module.cli_main(rest)
