"""The paper's temperature protocol: one member per temperature, the lowest validation NLL wins.

Collier et al. (CVPR 2021) tune the softmax temperature of the heteroscedastic head on held-out
data. `tune_temperature(config, output_dir)` trains one member per value of
`config.temperature_grid` with the trainer (`temperature_<value>/` under `output_dir`, each an
ordinary member directory whose config has that `temperature` and an empty grid), compares
their `val/nll` (with `keep_best_epoch`, the best epoch's), and writes

    <output_dir>/temperature_choice.json   {"grid", "val_nll", "temperature", "member_dir"}

Where it sits: config -> **temperature** -> trainer (per value) -> member directories. Every
step can be re-run: finished members are reused as they are, a killed one resumes from its
checkpoints, so re-running the command after a kill finishes the grid.
"""

import copy
import os

from absl import logging

from het_ensembles import member_dir
from het_ensembles.training import distribute, trainer
from het_ensembles.training.config import ConfigError, complete_config, validate_config

CHOICE_FILE = "temperature_choice.json"


def member_path(output_dir, temperature):
    """`<output_dir>/temperature_<value>`: the member trained with `temperature`.

    The value is written as Python's `repr` of the float (`1.5`, `1.0`, `0.001`), which is
    exact, so distinct temperatures never share a directory.
    """
    return os.path.join(output_dir, f"temperature_{float(temperature)!r}")


def tune_temperature(config, output_dir, *, strategy=None):
    """Trains a member per grid temperature; picks the one with the lowest validation NLL.

    Args:
      config: a config with a non-empty `temperature_grid` (heteroscedastic head,
        `validation_fraction > 0`); its other fields are used for every member.
      output_dir: the directory holding one member per temperature and the choice file.
      strategy: a `tf.distribute.Strategy` shared by all members (default: `make_strategy`).

    Returns:
      The contents of `temperature_choice.json`: `grid` (the temperatures in order), `val_nll`
      (`{repr(temperature): val/nll}`), `temperature` (the choice; ties go to the earlier grid
      value) and `member_dir` (its member directory).

    Raises:
      ConfigError: for a bad config (including an empty `temperature_grid`) or `output_dir`,
        before any training.
    """
    config = complete_config(config)
    validate_config(config)
    grid = tuple(float(t) for t in config.temperature_grid)
    if not grid:
        raise ConfigError(
            "tune_temperature needs temperatures to try. Received: temperature_grid=(); "
            "allowed: distinct finite floats > 0"
        )
    try:
        member_dir.check_writable_dir(output_dir)
    except ValueError as error:
        raise ConfigError(str(error)) from error
    members = []
    for temperature in grid:
        member_config = copy.deepcopy(config)
        member_config.temperature = temperature
        member_config.temperature_grid = ()
        members.append(member_config)
    for member_config in members:  # every member's config is checked before any training
        trainer.check_config(member_config)

    strategy = strategy or distribute.make_strategy(config)
    val_nll = {}
    for temperature, member_config in zip(grid, members, strict=True):
        path = member_path(output_dir, temperature)
        logging.info("Temperature %r: member %s.", temperature, path)
        results = trainer.train_and_evaluate(member_config, path, strategy=strategy)
        val_nll[repr(temperature)] = float(results["val/nll"])
    choice = min(grid, key=lambda t: val_nll[repr(t)])
    record = {
        "grid": list(grid),
        "val_nll": val_nll,
        "temperature": choice,
        "member_dir": member_path(output_dir, choice),
    }
    if distribute.is_chief(strategy):
        member_dir.write_json(os.path.join(output_dir, CHOICE_FILE), record)
    logging.info("Temperature %r has the lowest val/nll (%s).", choice, val_nll)
    return record
