"""Checkpoints: save, find, restore the newest readable one, and never save non-finite weights.

A killed run resumes from the newest checkpoint in `<member>/checkpoints` (same epoch and step
counters); a damaged checkpoint is skipped with a warning in favour of the one before it.
With `keep_best_epoch`, `<member>/checkpoints/best` holds the weights of the epoch with the
lowest validation NLL so far, with that epoch and NLL (`BestCheckpoint`).
"""

import glob
import math
import os
import shutil

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from het_ensembles.training import distribute

CHECKPOINTS_TO_KEEP = 3
BEST_DIR = "best"  # under <member>/checkpoints


class TrainingError(RuntimeError):
    """Training cannot go on (diverged, or no readable checkpoint to resume from)."""


class NonFiniteError(TrainingError):
    """The loss or the weights became NaN or inf; no checkpoint of such weights is written."""


def writable_checkpoint_dir(checkpoint_dir, strategy):
    """The chief writes `checkpoint_dir`; other workers (who must save too) a private one."""
    if distribute.is_chief(strategy):
        return checkpoint_dir
    resolver = strategy.cluster_resolver
    return os.path.join(checkpoint_dir, f".{resolver.task_type}_{resolver.task_id}")


def checkpoint_prefixes(checkpoint_dir):
    """The `ckpt-<n>` checkpoints on disk (those with an index file), newest first.

    Read from the directory rather than from TF's `checkpoint` state file, so that a damaged
    state file does not hide the checkpoints.
    """
    found = []
    for index in glob.glob(os.path.join(glob.escape(checkpoint_dir), "ckpt-*.index")):
        prefix = index[: -len(".index")]
        number = prefix.rsplit("-", 1)[1]
        if number.isdigit():
            found.append((int(number), prefix))
    return [prefix for _, prefix in sorted(found, reverse=True)]


def restore_latest(checkpoint, checkpoint_dir, *, counters=None):
    """Restores the newest readable checkpoint; returns its prefix (None: nothing to resume).

    A checkpoint that cannot be read (truncated or corrupt files: TF checks every tensor's
    CRC) is skipped with a warning and the previous one is tried; the damaged one is
    overwritten when training saves that epoch again.

    Args:
      checkpoint: a `tf.train.Checkpoint` of what every checkpoint must hold.
      checkpoint_dir: where the `ckpt-<n>` checkpoints are.
      counters: a `tf.train.Checkpoint` of values restored where present (checkpoints written
        by an older version lack them) and left as they are otherwise.

    Raises:
      TrainingError: if there are checkpoints but none of them can be read.
    """
    prefixes = checkpoint_prefixes(checkpoint_dir)
    for prefix in prefixes:
        try:
            checkpoint.restore(prefix).assert_existing_objects_matched()
            if counters is not None:
                counters.restore(prefix).expect_partial()
            return prefix
        # Truncated files raise IndexError ("Read less bytes than requested"), bad CRCs
        # DataLossError, a missing variable AssertionError.
        except (tf.errors.OpError, LookupError, ValueError, AssertionError, OSError) as error:
            logging.warning(
                "Checkpoint %s is unreadable or incomplete (%s: %s); falling back to the "
                "previous checkpoint.",
                prefix,
                type(error).__name__,
                _first_line(error),
            )
    if prefixes:
        raise TrainingError(
            f"No readable checkpoint in {checkpoint_dir} (tried {len(prefixes)}). Remove the "
            "directory to train this member from scratch."
        )
    return None


def _first_line(error):
    return (str(error).strip().splitlines() or [""])[0][:300]


def check_finite_weights(model, *, step):
    """NonFiniteError if a weight of `model` is NaN or inf (checked before each save)."""
    bad = [w.path for w in model.weights if not np.all(np.isfinite(keras.ops.convert_to_numpy(w)))]
    if bad:
        raise NonFiniteError(
            f"Non-finite weights after step {step} (in {', '.join(bad[:3])}); stopping without "
            "saving them. Lower base_learning_rate, check the data, or resume from the last "
            "checkpoint with a different config."
        )


def save_checkpoint(manager, strategy, epoch):
    # TF writes a checkpoint's data files, then its `.index` file (what `checkpoint_prefixes`
    # finds), then the `checkpoint` state file. A kill mid-save leaves the previous checkpoint
    # the newest one found, or at worst a new one that `restore_latest` cannot read and skips;
    # the state file can lag the directory by one checkpoint, so it is never read here.
    path = manager.save(checkpoint_number=epoch)
    if not distribute.is_chief(strategy):
        shutil.rmtree(manager.directory, ignore_errors=True)
    return path


class BestCheckpoint:
    """The weights of the epoch with the lowest validation NLL so far, in `<checkpoints>/best`.

    Each checkpoint there holds the model's weights (no optimizer state) with its own epoch
    and NLL, so it is self-describing: a resumed run reads the best so far from it rather than
    from the main checkpoint. It is saved before the main checkpoint of the same epoch; a run
    killed in between re-trains that epoch after resuming, and the saved best stays what it
    was: the lowest validation NLL of any epoch evaluated, re-trained epochs included.

    Args:
      model: the model being trained.
      checkpoint_dir: the member's checkpoint directory (`<member>/checkpoints`).
      strategy: the training strategy (only the chief writes the shared directory).
    """

    def __init__(self, model, checkpoint_dir, strategy):
        self.directory = os.path.join(checkpoint_dir, BEST_DIR)
        self.strategy = strategy
        self._epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="best_epoch")
        self._nll = tf.Variable(0.0, dtype=tf.float64, trainable=False, name="best_nll")
        record = {"best_epoch": self._epoch, "best_nll": self._nll}
        self._model_checkpoint = tf.train.Checkpoint(model=model, **record)
        self._manager = tf.train.CheckpointManager(
            self._model_checkpoint, writable_checkpoint_dir(self.directory, strategy), 1
        )
        self.epoch, self.nll = None, math.inf
        self.prefix = self._read_record(tf.train.Checkpoint(**record))
        if self.prefix is not None:
            self.epoch, self.nll = int(self._epoch.numpy()), float(self._nll.numpy())

    def _read_record(self, record_checkpoint):
        """Reads epoch and NLL of the newest readable best checkpoint; returns its prefix."""
        for prefix in checkpoint_prefixes(self.directory):
            try:
                record_checkpoint.restore(prefix).expect_partial().assert_existing_objects_matched()
                return prefix
            except (tf.errors.OpError, LookupError, ValueError, AssertionError, OSError) as error:
                logging.warning(
                    "Best-epoch checkpoint %s is unreadable (%s); ignoring it.",
                    prefix,
                    _first_line(error),
                )
        return None

    def update(self, epoch, nll):
        """Saves the model as the best if `nll` is lower than the best so far; returns whether.

        A non-finite `nll` never counts as the best.
        """
        if not (math.isfinite(nll) and nll < self.nll):
            return False
        self._epoch.assign(epoch)
        self._nll.assign(nll)
        self.prefix = save_checkpoint(self._manager, self.strategy, epoch)
        self.epoch, self.nll = int(epoch), float(nll)
        return True

    def restore_weights(self):
        """Loads the best epoch's weights into the model; returns that epoch.

        Every worker must call it: they wait for each other first, since the other workers
        read the checkpoint the chief may still be writing.

        Raises:
          TrainingError: if no best epoch was saved (every validation NLL was non-finite) or
            its checkpoint cannot be read or holds another epoch.
        """
        distribute.barrier(self.strategy)
        prefixes = checkpoint_prefixes(self.directory)
        if self.epoch is None or not prefixes:
            raise TrainingError(
                f"No best-epoch checkpoint in {self.directory}: no epoch had a finite "
                "validation NLL."
            )
        try:
            self._model_checkpoint.restore(prefixes[0]).assert_existing_objects_matched()
        except (tf.errors.OpError, LookupError, ValueError, AssertionError, OSError) as error:
            raise TrainingError(
                f"The best-epoch checkpoint {prefixes[0]} cannot be read "
                f"({_first_line(error)}). Remove {self.directory} and the member's other "
                "checkpoints to train it again."
            ) from error
        restored = int(self._epoch.numpy())
        if restored != self.epoch:
            raise TrainingError(
                f"The best-epoch checkpoint {prefixes[0]} holds epoch {restored}, not the best "
                f"epoch {self.epoch}: another run is writing {self.directory}?"
            )
        return restored
