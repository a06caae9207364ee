"""The trainer: member directory, metrics against numpy, schedule, seeds, bfloat16, resume, mirrored.

Runs on a tiny `npz:` set (64 train / 21 test examples of 8 features, 4 classes) with a small
MLP, so a run takes about a second. The kill/resume and MirroredStrategy tests use
subprocesses: one is killed with SIGKILL, the other must configure two logical CPU devices
before TensorFlow starts.
"""

import glob
import json
import math
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from tiny_training import (
    BATCH,
    NUM_CLASSES,
    NUM_FEATURES,
    NUM_TEST,
    NUM_TRAIN,
    REPO,
    python,
    tiny_config,
)

import het_ensembles
from het_ensembles import training
from het_ensembles.training.config import HETEROSCEDASTIC_FIELDS

SCALARS = (
    "train/loss",
    "train/nll",
    "train/accuracy",
    "test/nll",
    "test/accuracy",
    "test/ece",
    "train/ms_per_example",
    "test/ms_per_example",
    "learning_rate",
)


def reference_learning_rate(step, *, steps_per_epoch, base, warmup, decay_epochs, ratio):
    """Linear warm-up, then `base * ratio**(number of decay epochs passed)`."""
    epoch = step / steps_per_epoch
    if epoch < warmup:
        return base * epoch / warmup
    return base * ratio ** sum(epoch >= d for d in decay_epochs)


def reference_metrics(labels, logits, num_bins=15):
    """NLL, accuracy and ECE (robustness-metrics binning) from logits, in float64 numpy."""
    logits = logits.astype(np.float64)
    shifted = logits - logits.max(1, keepdims=True)
    log_probs = shifted - np.log(np.sum(np.exp(shifted), 1, keepdims=True))
    probs = np.exp(log_probs)
    confidence, predicted = probs.max(1), probs.argmax(1)
    correct = (predicted == labels).astype(np.float64)
    bins = np.clip(np.floor(confidence * num_bins), 0, num_bins - 1).astype(int)
    gaps = [abs(np.sum(correct[bins == b] - confidence[bins == b])) for b in range(num_bins)]
    return {
        "nll": -np.mean(log_probs[np.arange(len(labels)), labels]),
        "accuracy": np.mean(correct),
        "ece": np.sum(gaps) / len(labels),
    }


def read_scalars(log_dir):
    """{tag: {step: value}} from every TensorBoard event file under `log_dir`."""
    scalars = {}
    for path in sorted(glob.glob(os.path.join(log_dir, "events.out.tfevents.*"))):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                number = float(tf.make_ndarray(value.tensor))
                scalars.setdefault(value.tag, {})[event.step] = number
    return scalars


def test_member_directory_metrics_and_tensorboard(npz, tmp_path):
    out = str(tmp_path / "member")
    results = training.train_and_evaluate(tiny_config(npz), out)

    assert sorted(os.listdir(out)) == [
        "checkpoints",
        "config.json",
        "logs",
        "metrics.json",
        "model.keras",
    ]
    with open(os.path.join(out, "config.json")) as f:
        stored = json.load(f)
    assert stored["num_classes"] == NUM_CLASSES and stored["multilabel"] is False
    assert stored["dataset"] == f"npz:{npz}" and stored["seed"] == 0
    # A deterministic member records no field of a head it does not have.
    assert not set(HETEROSCEDASTIC_FIELDS) & set(stored)
    assert stored["head"] == "deterministic"
    with open(os.path.join(out, "metrics.json")) as f:
        assert json.load(f) == pytest.approx(results)
    steps_per_epoch = NUM_TRAIN // BATCH
    assert results["train/steps"] == 2 * steps_per_epoch and results["train/epochs"] == 2

    # The stored model (loadable after `import het_ensembles`) reproduces the test metrics.
    assert het_ensembles.__name__ == "het_ensembles"
    model = keras.saving.load_model(os.path.join(out, "model.keras"))
    arrays = np.load(npz)
    logits = model.predict(arrays["x_test"], verbose=0)
    expected = reference_metrics(arrays["y_test"], logits)
    assert results["test/num_examples"] == NUM_TEST
    for name in ("nll", "accuracy", "ece"):
        assert results[f"test/{name}"] == pytest.approx(expected[name], rel=1e-5, abs=1e-6)

    scalars = read_scalars(os.path.join(out, "logs"))
    assert set(SCALARS) <= set(scalars)
    assert all(sorted(scalars[tag]) == [1, 2] for tag in SCALARS)
    assert scalars["test/nll"][2] == pytest.approx(results["test/nll"], rel=1e-6)
    assert scalars["train/loss"][2] == pytest.approx(results["train/loss"], rel=1e-6)
    # The L2 terms (1e-4 * sum of squared kernels and biases) are in the loss, not the NLL.
    assert scalars["train/loss"][2] > scalars["train/nll"][2]
    for epoch in (1, 2):  # rate at the end of each epoch: 1.0 * 8 / 256, x0.1 from epoch 1
        assert scalars["learning_rate"][epoch] == pytest.approx(
            reference_learning_rate(
                epoch * steps_per_epoch,
                steps_per_epoch=steps_per_epoch,
                base=BATCH / 256,
                warmup=1,
                decay_epochs=[1],
                ratio=0.1,
            ),
            rel=1e-6,
        )

    # Re-running a finished member does nothing and returns its metrics.
    assert training.train_and_evaluate(tiny_config(npz), out) == pytest.approx(results)


def test_learning_rate_schedule_scales_batch_and_epochs():
    config = training.default_config()  # 0.1 per 256, warm-up 5, x0.1 at 30/60/80 of 90
    config.train_epochs = 45
    schedule = training.learning_rate_schedule(config, steps_per_epoch=10, global_batch_size=512)
    assert schedule.decay_epochs == [15, 30, 40]
    steps = [0, 1, 25, 49, 50, 51, 149, 150, 299, 300, 399, 400, 449]
    expected = [
        reference_learning_rate(
            s, steps_per_epoch=10, base=0.2, warmup=5, decay_epochs=[15, 30, 40], ratio=0.1
        )
        for s in steps
    ]
    actual = [float(schedule(s)) for s in steps]
    np.testing.assert_allclose(actual, expected, rtol=1e-6)
    assert actual[4] == pytest.approx(0.2) and actual[-1] == pytest.approx(2e-4)
    # The schedule round-trips through its config (it is saved with optimizer configs).
    clone = training.WarmUpPiecewiseConstantSchedule.from_config(schedule.get_config())
    assert float(clone(123)) == pytest.approx(float(schedule(123)))


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"dataset": "imagenet2013"}, r"config\.dataset.*Received: name='imagenet2013'"),
        (
            {"head": "heteroscedastic", "num_factors": NUM_CLASSES + 1},
            rf"config\.num_factors.*Received: num_factors=5; allowed: .*num_classes={NUM_CLASSES}",
        ),
        ({"train_epochs": -1}, r"config\.train_epochs.*Received: train_epochs=-1"),
        ({"base_learning_rate": 0.0}, r"config\.base_learning_rate.*=0\.0; allowed: .*> 0"),
        ({"base_learning_rate": math.nan}, r"config\.base_learning_rate.*=nan"),
        ({"one_minus_momentum": 0.0}, r"config\.one_minus_momentum.*allowed: .*\(0, 1\]"),
        ({"lr_decay_epochs": (60, 30)}, r"config\.lr_decay_epochs.*\(60, 30\)"),
        ({"head": "heteroscedastic", "temperature": -1.0}, r"config\.temperature.*=-1\.0"),
        ({"head": "mystery"}, r"config\.head.*'mystery'.*'deterministic', 'heteroscedastic'"),
        ({"per_core_batch_size": 0}, r"config\.per_core_batch_size.*=0; allowed"),
    ],
)
def test_bad_config_values_stop_before_training(npz, tmp_path, overrides, message):
    out = str(tmp_path / "member")
    with pytest.raises(ValueError, match=message):
        training.train_and_evaluate(tiny_config(npz, **overrides), out)
    assert not os.path.exists(out)  # nothing written, nothing trained


def test_unknown_field_and_unwritable_output_dir(npz, tmp_path):
    config = tiny_config(npz).to_dict()
    config["num_factor"] = 3  # typo
    with pytest.raises(ValueError, match=r"Unknown config fields.*num_factor"):
        training.train_and_evaluate(config, str(tmp_path / "a"))
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    with pytest.raises(ValueError, match=r"output_dir is not a writable directory"):
        training.train_and_evaluate(tiny_config(npz), str(blocker / "member"))


def test_cli_reports_bad_values_and_flags_with_exit_status_2(npz, tmp_path, capsys):
    base = [
        f"--config={REPO}/configs/imagenet/deterministic.py",
        f"--config.dataset=npz:{npz}",
        "--config.model=mlp",
        f"--output_dir={tmp_path / 'member'}",
    ]
    assert training.cli_main([*base, "--config.train_epochs=-3"]) == 2
    assert "Received: train_epochs=-3" in capsys.readouterr().err
    assert training.cli_main([*base, "--config.no_such_field=1"]) == 2  # locked config
    assert "no_such_field" in capsys.readouterr().err
    assert training.cli_main(base[:-1]) == 2
    assert "--output_dir" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "member")
    # --help lists the fields with the values of the default config file.
    assert training.cli_main(["--help"], config_file=base[0].split("=", 1)[1]) == 0
    assert "--config.use_bfloat16=True" in capsys.readouterr().out


def test_seed_fixes_initial_weights_and_data_order(npz, tmp_path):
    def initial_weights(seed):
        out = str(tmp_path / f"seed{seed}_{len(os.listdir(tmp_path))}")
        config = tiny_config(npz, seed=seed, train_epochs=1, steps_per_epoch=1, eval_steps=1)
        training.train_and_evaluate(config, out)
        # Read ckpt-0 (written before the first step) into a differently seeded twin.
        model = training.create_model(
            tiny_config(npz, seed=seed + 100), input_shape=(NUM_FEATURES,), num_classes=4
        )
        other = model.get_weights()
        status = tf.train.Checkpoint(model=model).restore(
            os.path.join(out, "checkpoints", "ckpt-0")
        )
        status.assert_existing_objects_matched().expect_partial()
        weights = model.get_weights()
        assert len(weights) == 4  # hidden and head kernels and biases
        assert not np.array_equal(weights[0], other[0])
        return weights

    def first_batches(seed, start_epoch=0):
        config = tiny_config(npz, seed=seed)
        train, _ = training.make_datasets(config, batch_size=BATCH, start_epoch=start_epoch)
        return [x.numpy() for x, _ in train.take(3)]

    same = list(zip(initial_weights(0), initial_weights(0), initial_weights(1), strict=True))
    assert all(np.array_equal(a, b) for a, b, _ in same)
    assert not all(np.array_equal(a, c) for a, _, c in same)
    np.testing.assert_array_equal(first_batches(0), first_batches(0))
    assert not np.array_equal(first_batches(0), first_batches(1))
    # A run resumed at epoch 1 reads a fresh order, not epoch 0's again.
    assert not np.array_equal(first_batches(0), first_batches(0, start_epoch=1))


def test_bfloat16_body_with_float32_head(npz, tmp_path):
    out = str(tmp_path / "member")
    results = training.train_and_evaluate(tiny_config(npz, use_bfloat16=True), out)
    assert keras.config.dtype_policy().name == "float32"  # global policy restored
    model = keras.saving.load_model(os.path.join(out, "model.keras"))
    hidden = next(layer for layer in model.layers if isinstance(layer, keras.layers.Dense))
    assert hidden.dtype_policy.name == "mixed_bfloat16"
    assert model.get_layer("head").dtype_policy.name == "float32"
    assert model(np.zeros((2, NUM_FEATURES), np.float32)).dtype == "float32"
    assert all(np.isfinite(results[k]) for k in ("train/loss", "test/nll", "test/ece"))


@pytest.mark.parametrize("multilabel", [False, True])
@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_cross_entropy_matches_numpy(multilabel, smoothing):
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(5, NUM_CLASSES)) * 3
    labels = rng.integers(0, NUM_CLASSES, 5)
    one_hot = np.eye(NUM_CLASSES)[labels]
    if multilabel:  # independent Bernoullis, summed over labels
        targets = one_hot * (1 - smoothing) + smoothing / 2
        log_p, log_not_p = -np.logaddexp(0, -logits), -np.logaddexp(0, logits)
        expected = -np.sum(targets * log_p + (1 - targets) * log_not_p, axis=1)
    else:
        targets = one_hot * (1 - smoothing) + smoothing / NUM_CLASSES
        log_probs = logits - np.log(np.sum(np.exp(logits), axis=1, keepdims=True))
        expected = -np.sum(targets * log_probs, axis=1)
    loss = training.CrossEntropy(NUM_CLASSES, multilabel=multilabel, label_smoothing=smoothing)
    actual = loss.call(tf.constant(labels, tf.int32), tf.constant(logits, tf.float32))
    np.testing.assert_allclose(actual.numpy(), expected, rtol=1e-5)
    # 0/1 target vectors give the same loss as the integer labels.
    same = loss.call(tf.constant(one_hot, tf.float32), tf.constant(logits, tf.float32))
    np.testing.assert_allclose(same.numpy(), expected, rtol=1e-5)


def test_sigmoid_head_member_reports_multilabel_nll(npz, tmp_path):
    out = str(tmp_path / "member")
    config = tiny_config(
        npz,
        head="heteroscedastic",
        head_class="MCSigmoidDenseFA",
        multilabel=True,
        num_factors=2,
        train_mc_samples=8,
        test_mc_samples=8,
    )
    results = training.train_and_evaluate(config, out)
    with open(os.path.join(out, "config.json")) as f:
        stored = json.load(f)
    assert stored["multilabel"] is True
    assert {n: stored[n] for n in ("head_class", "num_factors", "test_mc_samples")} == {
        "head_class": "MCSigmoidDenseFA",
        "num_factors": 2,
        "test_mc_samples": 8,
    }
    model = keras.saving.load_model(os.path.join(out, "model.keras"))
    assert type(model.get_layer("head")).__name__ == "MCSigmoidDenseFA"
    arrays = np.load(npz)
    # Same batches as the trainer's evaluation: the layer's MC noise is drawn per batch.
    logits = model.predict(arrays["x_test"], batch_size=BATCH, verbose=0).astype(np.float64)
    targets = np.eye(NUM_CLASSES)[arrays["y_test"]]
    log_p, log_not_p = -np.logaddexp(0, -logits), -np.logaddexp(0, logits)
    expected_nll = -np.mean(np.sum(targets * log_p + (1 - targets) * log_not_p, axis=1))
    assert results["test/nll"] == pytest.approx(expected_nll, rel=1e-5)
    # One-hot targets: every example has a positive, so prec@1 is the top-1 accuracy.
    assert results["test/prec@1"] == pytest.approx(np.mean(logits.argmax(1) == arrays["y_test"]))


def test_sigkill_then_same_command_resumes(npz, tmp_path):
    out = str(tmp_path / "member")
    epochs = 20
    argv = [
        f"--config={REPO}/configs/imagenet/deterministic.py",
        f"--config.dataset=npz:{npz}",
        "--config.model=mlp",
        f"--config.per_core_batch_size={BATCH}",
        f"--config.train_epochs={epochs}",
        "--config.use_bfloat16=False",
        "--config.checkpoint_interval=1",  # the config's 25 (uncertainty-baselines)
        f"--output_dir={out}",
    ]
    command = f"import sys; from het_ensembles import cli; sys.exit(cli.main({['train', *argv]!r}))"
    state = os.path.join(out, "checkpoints", "checkpoint")

    first = python(command)
    deadline = time.monotonic() + 120
    while not (os.path.exists(state) and "ckpt-2" in Path(state).read_text()):
        assert first.poll() is None, first.communicate()[1][-3000:]
        assert time.monotonic() < deadline, "no checkpoint after 120 s"
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)
    first.communicate()
    assert first.returncode == -signal.SIGKILL
    assert not os.path.exists(os.path.join(out, "model.keras"))  # killed mid-training
    # The newest checkpoint on disk is the one the trainer restores (it reads the directory,
    # not TF's `checkpoint` state file, which a kill mid-save can leave one epoch behind).
    killed_at = int(training.checkpoint_prefixes(os.path.dirname(state))[0].rsplit("-", 1)[1])
    assert 2 <= killed_at < epochs

    # The same command again, this time as a one-worker cluster: TF_CONFIG selects
    # MultiWorkerMirroredStrategy, which restores the checkpoint the default strategy wrote.
    with socket.socket() as s:
        s.bind(("localhost", 0))
        port = s.getsockname()[1]
    tf_config = {
        "cluster": {"worker": [f"localhost:{port}"]},
        "task": {"type": "worker", "index": 0},
    }
    second = python(command, env_overrides={"TF_CONFIG": json.dumps(tf_config)})
    _, stderr = second.communicate(timeout=300)
    assert second.returncode == 0, stderr[-3000:]
    assert "Strategy: MultiWorkerMirroredStrategy" in stderr
    assert f"epoch {killed_at}, step {killed_at * NUM_TRAIN // BATCH}" in stderr
    with open(os.path.join(out, "metrics.json")) as f:
        results = json.load(f)
    assert results["train/epochs"] == epochs
    assert results["train/steps"] == epochs * NUM_TRAIN // BATCH  # counted on, not restarted
    # The second run's event file holds exactly the epochs after the checkpoint.
    files = sorted(glob.glob(os.path.join(out, "logs", "events.out.tfevents.*")))
    last = {}
    for event in tf.compat.v1.train.summary_iterator(files[-1]):
        for value in event.summary.value:
            last.setdefault(value.tag, set()).add(event.step)
    assert last["train/loss"] == set(range(killed_at + 1, epochs + 1))
    model = keras.saving.load_model(os.path.join(out, "model.keras"))
    assert model.output_shape == (None, NUM_CLASSES)


def test_mirrored_strategy_over_two_logical_cpus(npz, tmp_path):
    out = str(tmp_path / "member")
    child = python(
        f"""
        import json
        import tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        from het_ensembles import training
        config = training.default_config()
        config.dataset = "npz:{npz}"
        config.model = "mlp"
        config.model_kwargs = {{"hidden_units": (16,)}}
        config.per_core_batch_size = 4
        config.train_epochs = 2
        strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
        results = training.train_and_evaluate(config, "{out}", strategy=strategy)
        print("RESULTS", json.dumps(results))
        """
    )
    stdout, stderr = child.communicate(timeout=300)
    assert child.returncode == 0, stderr[-3000:]
    results = json.loads(stdout.split("RESULTS", 1)[1])
    # Global batch 2 x 4 = 8: 8 steps per epoch; the 21 test examples (a partial last batch
    # split over the replicas) are each counted once.
    assert results["train/steps"] == 2 * NUM_TRAIN // 8
    assert results["test/num_examples"] == NUM_TEST
    model = keras.saving.load_model(os.path.join(out, "model.keras"))
    arrays = np.load(npz)
    expected = reference_metrics(arrays["y_test"], model.predict(arrays["x_test"], verbose=0))
    assert results["test/nll"] == pytest.approx(expected["nll"], rel=1e-5)


def test_loading_and_checking_a_config_starts_no_tensorflow():
    # Launchers and --help read configs on machines (or in processes) without TensorFlow.
    script = textwrap.dedent(
        f"""
        import sys
        from het_ensembles.training import config
        loaded = config.complete_config(
            config.load_config({os.path.join(REPO, "configs", "imagenet", "heteroscedastic.py")!r})
        )
        assert loaded.head == "heteroscedastic", loaded.head
        print(sorted(m for m in ("tensorflow", "keras") if m in sys.modules))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip().splitlines()[-1] == "[]"


def test_killed_after_the_final_checkpoint_reports_the_same_metrics(npz, tmp_path):
    # A kill between the last checkpoint and the member files: the re-run trains nothing, and
    # must still report the last epoch's training figures (kept in the checkpoint).
    out = str(tmp_path / "member")
    first = training.train_and_evaluate(tiny_config(npz), out)
    assert first["train/hours"] > 0 and first["train/devices"].endswith("CPU cores")
    for name in ("model.keras", "metrics.json"):
        os.remove(os.path.join(out, name))
    again = training.train_and_evaluate(tiny_config(npz), out)
    assert again["train/steps"] == first["train/steps"]
    assert set(again) == set(first)
    for name in ("train/loss", "train/nll", "train/accuracy", "learning_rate", "train/hours"):
        assert again[name] == pytest.approx(first[name], rel=1e-6), name
    for name in ("test/nll", "test/accuracy", "test/ece"):
        assert again[name] == pytest.approx(first[name], rel=1e-6), name


def test_a_checkpoint_from_before_the_progress_counters_still_resumes(npz, tmp_path):
    # Checkpoints written before train_record / train_seconds existed hold only the model, the
    # optimizer and the epoch: a run killed then must resume after an upgrade.
    from het_ensembles.training import trainer

    config = training.complete_config(tiny_config(npz))
    out = tmp_path / "member"
    checkpoint_dir = out / "checkpoints"
    checkpoint_dir.mkdir(parents=True)
    steps_per_epoch = NUM_TRAIN // BATCH
    model = trainer.create_model(config, input_shape=(NUM_FEATURES,), num_classes=NUM_CLASSES)
    trainer.compile_model(
        model,
        config,
        num_classes=NUM_CLASSES,
        steps_per_epoch=steps_per_epoch,
        global_batch_size=BATCH,
    )
    model.optimizer.iterations.assign(steps_per_epoch)  # as after epoch 1
    epoch = tf.Variable(1, dtype=tf.int64)
    old = tf.train.Checkpoint(model=model, optimizer=model.optimizer, epoch=epoch)
    assert old.save(str(checkpoint_dir / "ckpt")).endswith("ckpt-1")
    (out / "config.json").write_text(
        json.dumps(training.config_record(config, num_classes=NUM_CLASSES))
    )
    results = training.train_and_evaluate(tiny_config(npz), str(out))
    assert results["train/epochs"] == 2
    assert results["train/steps"] == 2 * steps_per_epoch  # one epoch resumed, one trained
