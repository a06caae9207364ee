"""The demo's members: its configs and constants, and training them with progress bars."""

import os
import sys

from het_ensembles.training import config as training_config
from het_ensembles.training import progress as progress_lib

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


def default_config_dir(dataset=DATASET):
    """The shipped `configs/` directory that holds the demo's configs for `dataset`
    (`training.config.shipped_config_dirs`: the checkout's, else a wheel's).

    Raises:
      ValueError: if none holds them.
    """
    candidates = training_config.shipped_config_dirs()
    for path in candidates:
        if os.path.isfile(os.path.join(path, dataset, "deterministic.py")):
            return path
    raise ValueError(
        f"The demo's configs (configs/{dataset}/*.py) were not found; pass --config_dir. "
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


def train_members(
    output_dir,
    config_dir,
    *,
    quick,
    num_members=NUM_MEMBERS,
    progress=True,
    dataset=DATASET,
    methods=METHODS,
):
    """Trains (or reuses) the members of each method; returns {method key: [member dirs]}.

    Args:
      dataset: the configs' directory under `config_dir` (the main demo's: noisy_digits).
      methods: (key, config file, row name) of each method (the main demo's: Hom and Het).
    """
    members = {}
    total = len(methods) * num_members
    index = 0
    for key, config_file, row in methods:
        members[key] = []
        for seed in range(num_members):
            index += 1
            member_dir = os.path.join(output_dir, "members", key, str(seed))
            config = member_config(config_dir, dataset, config_file, seed=seed, quick=quick)
            progress_lib.train_member(
                config, member_dir, label=f"[{index}/{total}] {row} seed {seed}", progress=progress
            )
            members[key].append(member_dir)
    return members


def say(message):
    """A progress line on stderr (stdout holds the report)."""
    print(message, file=sys.stderr, flush=True)
