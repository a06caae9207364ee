"""The demo's members: its configs and constants, and training them with progress bars."""

import contextlib
import logging
import os
import sys

from het_ensembles import member_dir as member_files

DATASET = "noisy_digits"
CLEAN_SPLIT = f"{DATASET}:test_clean"
NUM_MEMBERS = 4
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


class EpochProgress(logging.Handler):
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
def trainer_output_to(bar):
    """Routes the trainer's absl/Keras output to `bar` (no per-step Keras progress bars)."""
    import keras
    from absl import logging as absl_logging

    logger = absl_logging.get_absl_logger()
    handler = EpochProgress(bar)
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
        say(f"{label}: reusing the finished member in {member_dir}")
        return training.train_and_evaluate(config, member_dir)
    with tqdm(
        total=config.train_epochs,
        desc=label,
        unit="epoch",
        file=sys.stderr,
        disable=not progress,
        dynamic_ncols=True,
    ) as bar:
        with trainer_output_to(bar):
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


def say(message):
    """A progress line on stderr (stdout holds the report)."""
    print(message, file=sys.stderr, flush=True)
