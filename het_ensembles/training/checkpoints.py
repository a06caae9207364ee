"""Checkpoints: save, find, restore the newest readable one, and never save non-finite weights.

A killed run resumes from the newest checkpoint in `<member>/checkpoints` (same epoch and step
counters); a damaged checkpoint is skipped with a warning in favour of the one before it.
"""

import glob
import os
import shutil

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from het_ensembles.training import distribute

CHECKPOINTS_TO_KEEP = 3


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


def restore_latest(checkpoint, checkpoint_dir):
    """Restores the newest readable checkpoint; returns its prefix (None: nothing to resume).

    A checkpoint that cannot be read (truncated or corrupt files: TF checks every tensor's
    CRC) is skipped with a warning and the previous one is tried; the damaged one is
    overwritten when training saves that epoch again.

    Raises:
      TrainingError: if there are checkpoints but none of them can be read.
    """
    prefixes = checkpoint_prefixes(checkpoint_dir)
    for prefix in prefixes:
        try:
            checkpoint.restore(prefix).assert_existing_objects_matched()
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
    # TF writes the data files first and the `checkpoint` index last (atomically), so a kill
    # mid-save leaves the previous checkpoint as the latest one.
    path = manager.save(checkpoint_number=epoch)
    if not distribute.is_chief(strategy):
        shutil.rmtree(manager.directory, ignore_errors=True)
    return path
