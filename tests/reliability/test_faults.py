"""Fault injection: SIGKILL at seeded random points, damaged checkpoints, bad output dirs, NaN.

What a lost host or a bad step must cost is the work since the last checkpoint, never the run,
and nothing may be silently wrong:

- a run killed with SIGKILL at any point (startup, mid-epoch, mid-save, while writing the member
  directory) and re-run with the same command resumes from the newest checkpoint on disk and
  ends in a valid member with the full step count;
- a truncated or corrupt latest checkpoint is skipped with a logged warning and the previous
  one is restored;
- an unwritable or full output directory fails before any TensorFlow work, naming the path;
- a NaN / inf loss stops training naming the step, and no checkpoint of such weights is written.

A damaged prediction-cache file of the evaluator is recomputed, not trusted: that is
`tests/test_ensemble.py::TestCache::test_damaged_file_is_recomputed_not_trusted` (not repeated
here).
"""

import errno
import glob
import json
import logging
import os
import re
import signal
import time

import keras
import numpy as np
import pytest
from tiny_training import BATCH, NUM_TRAIN, REPO, python, tiny_config

import het_ensembles  # noqa: F401  (registers the layers for load_model)
from het_ensembles import member_dir, metrics, training
from het_ensembles.training import checkpoints, trainer

NUM_KILLS = 5
KILL_SEED = 0  # kills after 3, 2, 0, 0, 2 new checkpoints (0: timed from start)


def _newest_checkpoint(checkpoint_dir):
    prefixes = training.checkpoint_prefixes(checkpoint_dir)
    return int(prefixes[0].rsplit("-", 1)[1]) if prefixes else None


def _wait(child, checkpoint_dir, *, seconds, limit, timeout=False):
    """Waits `seconds` or until checkpoint `limit` is on disk, whichever comes first.

    With `timeout`, the checkpoint must come first.
    """
    deadline = time.monotonic() + seconds
    while (_newest_checkpoint(checkpoint_dir) or 0) < limit:
        assert child.poll() is None, child.communicate()[1][-3000:]
        if time.monotonic() > deadline:
            assert not timeout, f"no checkpoint {limit} after {seconds} s"
            return
        time.sleep(0.01)


def test_sigkill_at_seeded_random_points_then_resume(npz, tmp_path):
    out = str(tmp_path / "member")
    checkpoints = os.path.join(out, "checkpoints")
    epochs, steps = 20, 2
    argv = [
        f"--config={REPO}/configs/imagenet/deterministic.py",
        f"--config.dataset=npz:{npz}",
        "--config.model=mlp",
        f"--config.per_core_batch_size={BATCH}",
        f"--config.train_epochs={epochs}",
        f"--config.steps_per_epoch={steps}",
        "--config.use_bfloat16=False",
        "--config.checkpoint_interval=1",  # the config's 25 (uncertainty-baselines)
        f"--output_dir={out}",
    ]
    command = f"import sys; from het_ensembles import cli; sys.exit(cli.main({['train', *argv]!r}))"
    # Kill points, seeded: a run is killed either a random time after it starts (during
    # startup or the restore) or a random delay after it has written `gap` new checkpoints
    # (mid-epoch, mid-evaluation or mid-save). Either way it is killed at once when it gets
    # two checkpoints past its start (timed) or one past its target: on a fast machine a
    # random time alone can let the run finish (a CI run did, writing model.keras).
    rng = np.random.default_rng(KILL_SEED)
    resumed_from, kinds = [], []
    for _ in range(NUM_KILLS):
        start = _newest_checkpoint(checkpoints)
        gap = int(rng.integers(0, 4))
        target = min((start or 0) + gap, epochs - 3)
        child = python(command)
        if gap == 0:
            _wait(child, checkpoints, seconds=rng.uniform(0.5, 4.0), limit=(start or 0) + 2)
        else:
            _wait(child, checkpoints, seconds=120, limit=target, timeout=True)
            _wait(child, checkpoints, seconds=rng.uniform(0.0, 0.4), limit=target + 1)
        assert child.poll() is None, "the run finished before it could be killed"
        child.send_signal(signal.SIGKILL)
        _, stderr = child.communicate(timeout=60)
        assert child.returncode == -signal.SIGKILL
        if "Resuming from" in stderr:  # it got far enough to restore: from the newest one
            assert f"ckpt-{start}: epoch {start}, step {start * steps}." in stderr, stderr[-3000:]
        assert not os.path.exists(os.path.join(out, "model.keras"))
        resumed_from.append(_newest_checkpoint(checkpoints))
        kinds.append("timed" if gap == 0 else "after_checkpoint")
        assert (resumed_from[-1] or 0) >= (start or 0)  # progress is never lost
    assert sorted(set(kinds)) == ["after_checkpoint", "timed"]  # the seed covers both kinds

    final = python(command)
    _, stderr = final.communicate(timeout=300)
    assert final.returncode == 0, stderr[-3000:]
    k = resumed_from[-1]
    assert k is not None and k > 0
    assert f"ckpt-{k}: epoch {k}, step {k * steps}." in stderr
    assert "unreadable" not in stderr  # no kill left a damaged checkpoint behind
    with open(os.path.join(out, "metrics.json")) as f:
        results = json.load(f)
    assert results["train/epochs"] == epochs
    assert results["train/steps"] == epochs * steps  # counted across the 6 processes
    # The member is valid: it loads and reproduces its own test metrics (numpy reference).
    model = keras.saving.load_model(os.path.join(out, "model.keras"))
    arrays = np.load(npz)
    logits = model.predict(arrays["x_test"], verbose=0).astype(np.float64)
    log_probs = (
        logits
        - np.log(np.sum(np.exp(logits - logits.max(1, keepdims=True)), 1))[:, None]
        - logits.max(1, keepdims=True)
    )
    expected_nll = -np.mean(log_probs[np.arange(len(logits)), arrays["y_test"]])
    assert results["test/nll"] == pytest.approx(expected_nll, rel=1e-4)
    assert np.isfinite([results[k] for k in ("test/nll", "test/ece", "train/loss")]).all()


def _damage(path, how):
    with open(path, "rb") as f:
        raw = f.read()
    if how == "truncated":
        raw = raw[: len(raw) // 2]
    elif how == "bit_flip":
        raw = bytearray(raw)
        raw[len(raw) // 2] ^= 0xFF
        raw = bytes(raw)
    elif how == "garbage":
        raw = b"not a checkpoint"
    with open(path, "wb") as f:
        f.write(raw)


@pytest.mark.parametrize(
    "how, file",
    [
        ("truncated", "data-00000-of-00001"),
        ("bit_flip", "data-00000-of-00001"),
        ("garbage", "index"),
    ],
)
def test_damaged_latest_checkpoint_falls_back_with_warning(npz, tmp_path, caplog, how, file):
    out = str(tmp_path / "member")
    steps = NUM_TRAIN // BATCH
    config = tiny_config(npz, train_epochs=3)
    training.train_and_evaluate(config, out)
    # As if killed after the last checkpoint, before the member files: then damage ckpt-3.
    os.remove(os.path.join(out, "model.keras"))
    os.remove(os.path.join(out, "metrics.json"))
    checkpoints = os.path.join(out, "checkpoints")
    good = keras.ops.convert_to_numpy(_restore_weights(config, os.path.join(checkpoints, "ckpt-2")))
    _damage(os.path.join(checkpoints, f"ckpt-3.{file}"), how)

    with caplog.at_level(logging.WARNING):
        results = training.train_and_evaluate(config, out)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("ckpt-3 is unreadable" in w and "falling back" in w for w in warnings), warnings
    assert results["train/steps"] == 3 * steps  # epoch 3 trained again from ckpt-2
    assert results["train/epochs"] == 3
    # ckpt-3 was rewritten by the resumed run and is readable again.
    rewritten = _restore_weights(config, os.path.join(checkpoints, "ckpt-3"))
    assert not np.array_equal(keras.ops.convert_to_numpy(rewritten), good)


def _restore_weights(config, prefix):
    """The first kernel stored in checkpoint `prefix`, read into a fresh model."""
    import tensorflow as tf

    model = training.create_model(config, input_shape=(8,), num_classes=4)
    status = tf.train.Checkpoint(model=model).restore(prefix)
    status.expect_partial()
    return model.weights[0]


def test_no_readable_checkpoint_is_an_error_not_a_fresh_start(npz, tmp_path, capsys):
    out = str(tmp_path / "member")
    config = tiny_config(npz, train_epochs=1, steps_per_epoch=1)
    training.train_and_evaluate(config, out)
    os.remove(os.path.join(out, "model.keras"))
    for index in glob.glob(os.path.join(out, "checkpoints", "ckpt-*.index")):
        _damage(index, "garbage")
    with pytest.raises(training.TrainingError, match=r"No readable checkpoint in .*checkpoints"):
        training.train_and_evaluate(config, out)


@pytest.mark.parametrize(
    "error, message",
    [
        (OSError(errno.ENOSPC, "No space left on device"), r"No space left on device"),
        (PermissionError(errno.EACCES, "Permission denied"), r"Permission denied"),
    ],
)
def test_full_or_unwritable_output_dir_fails_fast(npz, tmp_path, monkeypatch, error, message):
    out = str(tmp_path / "member")

    def refuse(*args, **kwargs):
        raise error

    # Root ignores permission bits and a full disk cannot be made in a test: the write probe
    # that check_output_dir runs before any TensorFlow work is made to fail as the OS would.
    monkeypatch.setattr(member_dir.tempfile, "NamedTemporaryFile", refuse)
    monkeypatch.setattr(trainer, "create_model", pytest.fail)  # must not get that far
    with pytest.raises(ValueError, match=rf"output_dir is not a writable directory \({message}"):
        training.train_and_evaluate(tiny_config(npz), out)
    assert not os.path.exists(os.path.join(out, "checkpoints"))


def test_output_dir_under_a_read_only_filesystem(npz):
    out = "/proc/het_ensembles_member"  # /proc refuses new entries, even for root
    with pytest.raises(ValueError, match=r"output_dir is not a writable directory.*proc"):
        training.train_and_evaluate(tiny_config(npz), out)


def test_nan_loss_stops_naming_the_step_and_keeps_checkpoints_finite(npz, tmp_path, capsys):
    out = tmp_path / "member"
    argv = [
        f"--config={REPO}/configs/imagenet/deterministic.py",
        f"--config.dataset=npz:{npz}",
        "--config.model=mlp",
        f"--config.per_core_batch_size={BATCH}",
        "--config.train_epochs=2",
        "--config.warmup_epochs=0",
        "--config.base_learning_rate=1e30",  # in range, but the first step overflows
        "--config.use_bfloat16=False",
        f"--output_dir={out}",
    ]
    assert training.cli_main(argv) == 1
    err = capsys.readouterr().err
    match = re.search(r"Non-finite training loss \((nan|inf)\) at step (\d+)", err)
    assert match, err[-2000:]
    assert 1 <= int(match.group(2)) <= NUM_TRAIN // BATCH  # within the first epoch
    assert "Traceback" not in err
    assert not (out / "model.keras").exists()
    assert not (out / "metrics.json").exists()
    # Only the initial checkpoint exists, and it holds finite weights.
    assert [
        os.path.basename(p) for p in training.checkpoint_prefixes(str(out / "checkpoints"))
    ] == ["ckpt-0"]
    import tensorflow as tf

    reader = tf.train.load_checkpoint(str(out / "checkpoints" / "ckpt-0"))
    for name in reader.get_variable_to_shape_map():
        value = reader.get_tensor(name)
        if np.issubdtype(np.asarray(value).dtype, np.floating):
            assert np.isfinite(value).all(), name


def test_non_finite_weights_are_never_saved(npz):
    config = tiny_config(npz)
    model = training.create_model(config, input_shape=(8,), num_classes=4)
    checkpoints.check_finite_weights(model, step=3)  # finite: no error
    weights = model.get_weights()
    weights[1][2] = np.inf
    model.set_weights(weights)
    with pytest.raises(
        training.NonFiniteError, match=r"Non-finite weights after step 3 \(in .*bias"
    ):
        checkpoints.check_finite_weights(model, step=3)


def test_metrics_refuse_nan_predictions():
    # A NaN that reaches the metrics is an error, not a NaN (or worse, finite) number.
    with pytest.raises(ValueError, match=r"`logits` contain NaN"):
        metrics.log_probs_from_logits(np.array([[0.0, np.nan]]))
