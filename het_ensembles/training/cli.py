"""`het-ensembles train` (and the baselines scripts): flags in, one member directory out."""

import sys

from absl import flags, logging
from ml_collections import config_flags

from het_ensembles.training.config import (
    ConfigError,
    complete_config,
    default_config,
    load_config,
    resolve_config_path,
)


def cli_main(argv, *, config_file=None):
    """`het-ensembles train --config=<file> [--config.field=value ...] --output_dir=<dir>`.

    With a non-empty `--config.temperature_grid` it runs `tune_temperature` instead: one
    member per temperature under `<output_dir>/temperature_<value>`.

    Args:
      argv: the arguments after the program / subcommand name.
      config_file: the config file used when `--config` is not given (the baselines scripts
        pass theirs).

    Returns:
      The exit status: 0 on success, 2 for bad flags or config values.
    """
    program = "het-ensembles train"
    try:
        argv, config_file = _resolve_config_flag(argv, config_file)
    except ConfigError as error:
        print(f"{program}: error: {error}", file=sys.stderr)
        return 2
    flag_values = flags.FlagValues()
    config_flags.DEFINE_config_file(
        "config",
        config_file,
        "Config file with get_config() (configs/...); override fields with --config.<field>.",
        flag_values=flag_values,
        lock_config=True,
        sys_argv=[program, *argv],  # where it looks for --config.<field> (default: sys.argv)
    )
    flags.DEFINE_string(
        "output_dir",
        None,
        "Member directory to write. Re-running a command resumes from its checkpoints.",
        flag_values=flag_values,
    )
    if {"-h", "--help", "--helpshort", "--helpfull"} & set(argv):
        print(f"usage: {program} --config=<file> [--config.<field>=<value> ...] --output_dir=<dir>")
        print(flag_values.get_help())
        shown = complete_config(load_config(config_file)) if config_file else default_config()
        print(f"\nConfig fields ({config_file or 'default_config()'}, before overrides):")
        for name, value in sorted(shown.to_dict().items()):
            print(f"  --config.{name}={value!r}")
        return 0
    try:
        flag_values([program, *argv])
        if flag_values.config is None or not flag_values.output_dir:
            raise flags.Error("--config=<file> and --output_dir=<dir> are required.")
        flag_values.config.to_dict()  # config_flags loads the file lazily: fail here
    except flags.Error as error:
        print(f"{program}: error: {error}", file=sys.stderr)
        return 2
    except (AttributeError, KeyError) as error:  # ml_collections: override of a missing field
        print(f"{program}: error: the config has no field {error}.", file=sys.stderr)
        return 2
    except OSError as error:  # config_flags loads the file lazily, on first access
        print(
            f"{program}: error: cannot load --config: {str(error).splitlines()[0]} "
            f"Received: --config={_flag_value(argv, 'config')!r}",
            file=sys.stderr,
        )
        return 2
    logging.set_verbosity(logging.INFO)
    # Imported only now: flag errors and --help are reported without starting TensorFlow.
    from het_ensembles.training import checkpoints, temperature, trainer

    try:
        if flag_values.config.temperature_grid:
            choice = temperature.tune_temperature(flag_values.config, flag_values.output_dir)
            print(
                f"temperature={choice['temperature']!r} (lowest val/nll); member "
                f"{choice['member_dir']}; see {temperature.CHOICE_FILE}"
            )
        else:
            trainer.train_and_evaluate(flag_values.config, flag_values.output_dir)
    except ConfigError as error:
        print(f"{program}: error: {error}", file=sys.stderr)
        return 2
    except checkpoints.TrainingError as error:
        print(f"{program}: error: {error}", file=sys.stderr)
        return 1
    return 0


def _resolve_config_flag(argv, config_file):
    """`argv` with `--config`'s file resolved (`resolve_config_path`), and the config file used.

    The file given with `--config` wins over `config_file` (a baselines script's default), for
    training and for `--help` alike.
    """
    given = _flag_value(argv, "config")
    if given is None:
        return argv, config_file
    resolved = resolve_config_path(given)
    out, skip = [], False
    for i, arg in enumerate(argv):
        if skip:
            skip = False
        elif arg.startswith("--config="):
            out.append(f"--config={resolved}")
        elif arg == "--config" and i + 1 < len(argv):
            out.append(f"--config={resolved}")
            skip = True
        else:
            out.append(arg)
    return out, resolved


def _flag_value(argv, name):
    """The value of `--name=value` / `--name value` in `argv` (None if absent)."""
    for i, arg in enumerate(argv):
        if arg.startswith(f"--{name}="):
            return arg.split("=", 1)[1]
        if arg == f"--{name}" and i + 1 < len(argv):
            return argv[i + 1]
    return None
