"""Training a member with one progress bar (an epoch a tick) instead of Keras' per-step output.

Used where many members train in one process: `het-ensembles demo`, `compare`, `study`.
"""

import contextlib
import logging
import os
import sys

from het_ensembles.member_dir import paths


class EpochProgress(logging.Handler):
    """Advances a tqdm bar on the trainer's per-epoch log line; forwards warnings to stderr.

    The trainer logs `"Epoch %d/%d: ...; val nll %.4f ..."` (or `test nll` without a validation
    split) once per epoch (absl INFO); Keras' own progress bar goes to the same logger while
    interactive logging is off.
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
            split = "val" if "val nll" in msg else "test"
            self.bar.set_postfix_str(f"{split} nll {record.args[4]:.3f}", refresh=False)
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


@contextlib.contextmanager
def epoch_bar(label, total, *, progress=True):
    """A tqdm bar (`total` epochs, on stderr) that the trainer's output inside the block drives."""
    from tqdm import tqdm

    with (
        tqdm(
            total=total,
            desc=label,
            unit="epoch",
            file=sys.stderr,
            disable=not progress,
            dynamic_ncols=True,
        ) as bar,
        trainer_output_to(bar),
    ):
        yield bar


def train_member(config, member_dir, *, label, progress=True):
    """Trains one member with THE trainer (or reuses it when finished); returns its metrics."""
    import keras

    from het_ensembles.training import trainer

    if os.path.isfile(paths(member_dir)["model"]):
        print(f"{label}: reusing the finished member in {member_dir}", file=sys.stderr, flush=True)
        return trainer.train_and_evaluate(config, member_dir)
    with epoch_bar(label, config.train_epochs, progress=progress) as bar:
        result = trainer.train_and_evaluate(config, member_dir)
        bar.n = bar.total
        bar.set_postfix_str(f"test nll {result['test/nll']:.3f}", refresh=True)
    keras.backend.clear_session()
    return result
