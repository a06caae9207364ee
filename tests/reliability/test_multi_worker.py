"""Multi-worker training: two local worker processes under `MultiWorkerMirroredStrategy`.

Each worker is a separate Python process with its own `TF_CONFIG` (a two-worker cluster on
127.0.0.1 ports), running the same `train_and_evaluate` call on the same output directory, as
the same command does on two hosts with a shared filesystem. Worker 0 is the chief: it writes
the checkpoints and the member directory; worker 1 only trains. Both must end with identical
weights (all-reduced gradients), and after both are killed mid-run the same commands resume
from the chief's last checkpoint.
"""

import json
import os
import signal
import time

import numpy as np
import pytest
from tiny_training import BATCH, NUM_TRAIN, free_ports, python

import het_ensembles  # noqa: F401
from het_ensembles import training

TIMEOUT_S = 240
EPOCHS = 3


def _worker_code(npz, out, weights_path, epochs, overrides=None, slow_chief_save=False):
    # The trainer keeps its model to itself; the test catches it as compile_model sees it and
    # dumps its weights after training, so the two workers' weights can be compared.
    # `slow_chief_save`: the chief takes a second longer over every checkpoint it writes (a
    # slow shared filesystem), so a worker that reads one too early reads the previous one.
    return f"""
        import time
        import numpy as np
        from absl import logging
        from het_ensembles import training
        from het_ensembles.training import checkpoints, distribute, trainer
        logging.set_verbosity(logging.INFO)
        seen = []
        original = trainer.compile_model
        def compile_and_keep(model, *args, **kwargs):
            seen.append(model)
            return original(model, *args, **kwargs)
        trainer.compile_model = compile_and_keep
        original_save = checkpoints.save_checkpoint
        def slow_save(manager, strategy, epoch):
            if distribute.is_chief(strategy):
                time.sleep(1.0)
            return original_save(manager, strategy, epoch)
        if {slow_chief_save!r}:
            checkpoints.save_checkpoint = slow_save
        config = training.default_config()
        config.dataset = "npz:{npz}"
        config.model = "mlp"
        config.model_kwargs = {{"hidden_units": (16,)}}
        config.per_core_batch_size = {BATCH // 2}
        config.train_epochs = {epochs}
        config.base_learning_rate = 0.5
        config.warmup_epochs = 1
        config.update({overrides or {}!r})
        results = training.train_and_evaluate(config, "{out}")
        np.savez("{weights_path}", *seen[0].get_weights())
        print("STEPS", results["train/steps"])
        """


def _start_workers(npz, out, weights, epochs, overrides=None, slow_chief_save=False):
    ports = free_ports(2)
    workers = []
    for index in range(2):
        tf_config = {
            "cluster": {"worker": [f"127.0.0.1:{port}" for port in ports]},
            "task": {"type": "worker", "index": index},
        }
        workers.append(
            python(
                _worker_code(npz, out, weights[index], epochs, overrides, slow_chief_save),
                env_overrides={"TF_CONFIG": json.dumps(tf_config)},
            )
        )
    return workers


def _finish(workers):
    outputs = []
    try:
        for worker in workers:
            outputs.append(worker.communicate(timeout=TIMEOUT_S))
    except Exception:
        for worker in workers:
            worker.kill()
        raise
    return outputs


def _load(path):
    with np.load(path) as arrays:
        return [arrays[f"arr_{i}"] for i in range(len(arrays.files))]


def test_two_workers_end_with_identical_weights_and_resume_after_a_kill(npz, tmp_path):
    out = str(tmp_path / "member")
    weights = [str(tmp_path / f"weights_{i}.npz") for i in range(2)]
    steps_per_epoch = NUM_TRAIN // BATCH  # global batch = 2 workers x BATCH // 2

    # 1. Start both, kill worker 1 once the chief has checkpointed epoch 1; worker 0 then
    #    cannot finish its collectives and is killed too (a host died: restart the job).
    first = _start_workers(npz, out, weights, epochs=EPOCHS)
    checkpoints = os.path.join(out, "checkpoints")
    deadline = time.monotonic() + TIMEOUT_S
    try:
        while not training.checkpoint_prefixes(checkpoints) or not any(
            p.endswith("ckpt-1") for p in training.checkpoint_prefixes(checkpoints)
        ):
            for worker in first:
                if worker.poll() is not None:
                    stderr = worker.communicate()[1]
                    if "MultiWorkerMirroredStrategy" not in stderr:
                        pytest.skip(
                            f"MultiWorkerMirroredStrategy cannot start here: {stderr[-500:]}"
                        )
                    pytest.fail(f"a worker exited early:\n{stderr[-3000:]}")
            assert time.monotonic() < deadline, "no checkpoint 1 from the chief in time"
            time.sleep(0.05)
    finally:
        first[1].send_signal(signal.SIGKILL)
        time.sleep(0.5)
        first[0].send_signal(signal.SIGKILL)
        for worker in first:
            worker.communicate(timeout=60)
    killed_at = int(training.checkpoint_prefixes(checkpoints)[0].rsplit("-", 1)[1])
    assert 1 <= killed_at < EPOCHS
    assert not os.path.exists(os.path.join(out, "model.keras"))

    # 2. The same two commands again: both resume from the chief's checkpoint and finish.
    second = _start_workers(npz, out, weights, epochs=EPOCHS)
    outputs = _finish(second)
    for worker, (stdout, stderr) in zip(second, outputs, strict=True):
        assert worker.returncode == 0, stderr[-3000:]
        assert "Strategy: MultiWorkerMirroredStrategy" in stderr
        assert f"ckpt-{killed_at}: epoch {killed_at}, step {killed_at * steps_per_epoch}." in stderr
        assert f"STEPS {EPOCHS * steps_per_epoch}" in stdout

    # 3. Identical weights on both workers, and the chief's member holds them.
    chief, other = _load(weights[0]), _load(weights[1])
    assert len(chief) == 4
    for a, b in zip(chief, other, strict=True):
        np.testing.assert_array_equal(a, b)
    import keras

    member = keras.saving.load_model(os.path.join(out, "model.keras"))
    for a, b in zip(member.get_weights(), chief, strict=True):
        np.testing.assert_array_equal(a, b)
    with open(os.path.join(out, "metrics.json")) as f:
        results = json.load(f)
    assert results["train/steps"] == EPOCHS * steps_per_epoch
    assert results["test/num_examples"] == 21  # every test example counted once
    # Only the chief wrote: no private checkpoint directory of worker 1 is left behind.
    assert not any(name.startswith(".worker") for name in os.listdir(checkpoints))


@pytest.mark.parametrize(
    "learning_rate, slow_chief_save",
    [
        (4.0, False),  # large steps: the best epoch is often not the last
        (0.5, True),  # the last epoch is the best, and its save is slow (a CI run failed)
    ],
)
def test_two_workers_keep_the_same_best_epoch_and_only_the_chief_writes_it(
    npz, tmp_path, learning_rate, slow_chief_save
):
    out = str(tmp_path / "member")
    weights = [str(tmp_path / f"weights_{i}.npz") for i in range(2)]
    overrides = {
        "validation_fraction": 0.25,
        "keep_best_epoch": True,
        "base_learning_rate": learning_rate,
    }
    workers = _start_workers(
        npz, out, weights, epochs=EPOCHS, overrides=overrides, slow_chief_save=slow_chief_save
    )
    for worker, (_, stderr) in zip(workers, _finish(workers), strict=True):
        if worker.returncode != 0 and "MultiWorkerMirroredStrategy" not in stderr:
            pytest.skip(f"MultiWorkerMirroredStrategy cannot start here: {stderr[-500:]}")
        assert worker.returncode == 0, stderr[-3000:]

    # Both workers restored the same best epoch's weights, and the member holds them.
    chief, other = _load(weights[0]), _load(weights[1])
    for a, b in zip(chief, other, strict=True):
        np.testing.assert_array_equal(a, b)
    import keras

    member = keras.saving.load_model(os.path.join(out, "model.keras"))
    for a, b in zip(member.get_weights(), chief, strict=True):
        np.testing.assert_array_equal(a, b)
    with open(os.path.join(out, "metrics.json")) as f:
        results = json.load(f)
    assert 1 <= results["best_epoch"] <= EPOCHS
    if slow_chief_save:  # the case that races: the chief is still saving when training ends
        assert results["best_epoch"] == EPOCHS
    assert results["val/num_examples"] == 16 and results["test/num_examples"] == 21
    best = os.path.join(out, "checkpoints", "best")
    assert os.listdir(best) and not any(name.startswith(".worker") for name in os.listdir(best))
