"""The one trainer, one concern a module (as Keras splits its trainers):

- `config`: the schema of every field, defaults and ranges (imports no TensorFlow);
- `schedule`: the learning-rate schedule; `losses`: the loss and `fit` metrics;
- `mixup`: mixup training batches and the `+rescaling` statistics and metrics;
- `distribute`: the `tf.distribute` strategy and who writes files;
- `checkpoints`: save, find and restore checkpoints, the non-finite guard;
- `callbacks`: the per-step and per-epoch work (test pass, TensorBoard, checkpoints);
- `trainer`: `train_and_evaluate(config, output_dir)`, a config in, a member directory out;
- `temperature`: `tune_temperature(config, output_dir)`, one member per `temperature_grid`
  value, the lowest validation NLL chosen;
- `cli`: `het-ensembles train` and the baselines scripts.

The names below are the public API (`het_ensembles.training.train_and_evaluate`, ...).
"""

import importlib

# Public name -> the module defining it. Resolved on first use (PEP 562), so that importing
# `het_ensembles.training.config` (or running `het-ensembles train --help`) starts no TensorFlow.
_EXPORTS = {
    "NonFiniteError": "checkpoints",
    "TrainingError": "checkpoints",
    "checkpoint_prefixes": "checkpoints",
    "cli_main": "cli",
    "ConfigError": "config",
    "complete_config": "config",
    "config_record": "config",
    "default_config": "config",
    "head_kwargs": "config",
    "load_config": "config",
    "validate_config": "config",
    "make_strategy": "distribute",
    "CrossEntropy": "losses",
    "WarmUpPiecewiseConstantSchedule": "schedule",
    "learning_rate_schedule": "schedule",
    "compile_model": "trainer",
    "create_model": "trainer",
    "make_datasets": "trainer",
    "train_and_evaluate": "trainer",
    "tune_temperature": "temperature",
}


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
