"""Validation-split training: per-epoch `val/...`, the test set once, keep-the-best-epoch.

The tiny `npz:` set and MLP config of `tests/tiny_training.py`, with a quarter of train held
out. Metrics of the stored model are recomputed with numpy on the held-out examples, chosen
independently with `np.random.default_rng(validation_seed)`.
"""

import glob
import json
import logging
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
import tiny_training
from tiny_training import BATCH, NUM_TEST, NUM_TRAIN

from het_ensembles import training
from het_ensembles.training import callbacks, checkpoints

FRACTION, NUM_VALIDATION = 0.25, 16  # int(64 * 0.25)


def tiny_config(npz, **overrides):
    return tiny_training.tiny_config(npz, **{"validation_fraction": FRACTION, **overrides})


def numpy_nll_and_accuracy(labels, logits):
    logits = logits.astype(np.float64)
    shifted = logits - logits.max(1, keepdims=True)
    log_probs = shifted - np.log(np.sum(np.exp(shifted), 1, keepdims=True))
    nll = -np.mean(log_probs[np.arange(len(labels)), labels])
    return nll, np.mean(log_probs.argmax(1) == labels)


def held_out(npz, seed=0):
    arrays = np.load(npz)
    validation = np.random.default_rng(seed).permutation(NUM_TRAIN)[:NUM_VALIDATION]
    return arrays["x_train"][validation], arrays["y_train"][validation]


def read_scalars(log_dir):
    scalars = {}
    for path in sorted(glob.glob(os.path.join(log_dir, "events.out.tfevents.*"))):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                scalars.setdefault(value.tag, {})[event.step] = float(tf.make_ndarray(value.tensor))
    return scalars


def test_validation_each_epoch_and_test_once(npz, tmp_path, caplog):
    out = str(tmp_path / "member")
    with caplog.at_level(logging.INFO):
        results = training.train_and_evaluate(tiny_config(npz), out)

    steps_per_epoch = (NUM_TRAIN - NUM_VALIDATION) // BATCH  # 6: validation is not trained on
    assert results["train/steps"] == 2 * steps_per_epoch
    assert results["val/num_examples"] == NUM_VALIDATION
    assert results["test/num_examples"] == NUM_TEST
    assert "best_epoch" not in results
    with open(os.path.join(out, "metrics.json")) as f:
        assert json.load(f) == pytest.approx(results)

    model = keras.saving.load_model(os.path.join(out, "model.keras"))
    x_val, y_val = held_out(npz)
    nll, accuracy = numpy_nll_and_accuracy(y_val, model.predict(x_val, verbose=0))
    assert results["val/nll"] == pytest.approx(nll, rel=1e-5)
    assert results["val/accuracy"] == pytest.approx(accuracy)
    arrays = np.load(npz)
    nll, _ = numpy_nll_and_accuracy(arrays["y_test"], model.predict(arrays["x_test"], verbose=0))
    assert results["test/nll"] == pytest.approx(nll, rel=1e-5)

    scalars = read_scalars(os.path.join(out, "logs"))
    for name in ("val/nll", "val/accuracy", "val/ece", "train/loss"):
        assert sorted(scalars[name]) == [1, 2]
    assert sorted(scalars["test/nll"]) == [2]  # the test set once, after training
    assert scalars["val/nll"][2] == pytest.approx(results["val/nll"], rel=1e-6)

    # The epoch log names the split; its arguments keep the layout the demo's progress bar reads
    # (`training.progress.EpochProgress`: epoch, epochs, loss, accuracy, then the eval NLL).
    epoch_logs = [r for r in caplog.records if str(r.msg).startswith("Epoch %d/%d")]
    assert len(epoch_logs) == 2 and "; val nll %.4f" in epoch_logs[-1].msg
    assert epoch_logs[-1].args[:2] == (2, 2)
    assert epoch_logs[-1].args[4] == pytest.approx(results["val/nll"])


def test_keep_best_epoch_keeps_the_epoch_with_the_lowest_validation_nll(npz, tmp_path):
    out = str(tmp_path / "member")
    # A learning rate this high makes the validation NLL jump about between epochs.
    config = tiny_config(npz, train_epochs=5, keep_best_epoch=True, base_learning_rate=8.0)
    results = training.train_and_evaluate(config, out)

    per_epoch = read_scalars(os.path.join(out, "logs"))["val/nll"]
    assert sorted(per_epoch) == [1, 2, 3, 4, 5]
    best_epoch = min(per_epoch, key=per_epoch.get)
    assert results["best_epoch"] == best_epoch
    assert best_epoch < 5  # so the test tells keeping the best from keeping the last
    assert results["val/nll"] == pytest.approx(per_epoch[best_epoch], rel=1e-5)
    assert results["train/epochs"] == 5
    # model.keras holds that epoch's weights: its metrics, recomputed in numpy, match.
    model = keras.saving.load_model(os.path.join(out, "model.keras"))
    x_val, y_val = held_out(npz)
    nll, _ = numpy_nll_and_accuracy(y_val, model.predict(x_val, verbose=0))
    assert nll == pytest.approx(per_epoch[best_epoch], rel=1e-5)
    arrays = np.load(npz)
    nll, _ = numpy_nll_and_accuracy(arrays["y_test"], model.predict(arrays["x_test"], verbose=0))
    assert results["test/nll"] == pytest.approx(nll, rel=1e-5)
    assert os.listdir(os.path.join(out, "checkpoints", checkpoints.BEST_DIR))
    # Re-running a finished member returns its metrics.
    assert training.train_and_evaluate(config, out) == pytest.approx(results)


class Crash(Exception):
    pass


def test_keep_best_epoch_across_a_crash_and_resume(npz, tmp_path, monkeypatch):
    out = str(tmp_path / "member")
    config = tiny_config(npz, train_epochs=5, keep_best_epoch=True, base_learning_rate=8.0)
    original = callbacks.EpochEnd.on_epoch_end

    def crash_after_epoch_3(self, epoch, logs=None):
        original(self, epoch, logs)
        if epoch + 1 == 3:
            raise Crash  # after epoch 3's checkpoint (and, if it was the best, its weights)

    monkeypatch.setattr(callbacks.EpochEnd, "on_epoch_end", crash_after_epoch_3)
    with pytest.raises(Crash):
        training.train_and_evaluate(config, out)
    monkeypatch.setattr(callbacks.EpochEnd, "on_epoch_end", original)
    assert not os.path.exists(os.path.join(out, "model.keras"))
    results = training.train_and_evaluate(config, out)  # resumes at epoch 3

    per_epoch = read_scalars(os.path.join(out, "logs"))["val/nll"]  # both runs' event files
    assert sorted(per_epoch) == [1, 2, 3, 4, 5]
    best_epoch = min(per_epoch, key=per_epoch.get)
    assert results["best_epoch"] == best_epoch
    model = keras.saving.load_model(os.path.join(out, "model.keras"))
    x_val, y_val = held_out(npz)
    nll, _ = numpy_nll_and_accuracy(y_val, model.predict(x_val, verbose=0))
    assert nll == pytest.approx(per_epoch[best_epoch], rel=1e-5)


def test_runs_started_before_the_validation_fields_existed_still_resume(npz, tmp_path, monkeypatch):
    out = str(tmp_path / "member")
    config = tiny_config(npz, validation_fraction=0.0)
    original = callbacks.EpochEnd.on_epoch_end

    def crash_after_epoch_1(self, epoch, logs=None):
        original(self, epoch, logs)
        raise Crash

    monkeypatch.setattr(callbacks.EpochEnd, "on_epoch_end", crash_after_epoch_1)
    with pytest.raises(Crash):
        training.train_and_evaluate(config, out)
    monkeypatch.setattr(callbacks.EpochEnd, "on_epoch_end", original)
    path = os.path.join(out, "config.json")
    with open(path) as f:
        stored = json.load(f)
    for name in ("validation_fraction", "validation_seed", "keep_best_epoch"):
        del stored[name]  # a config.json written before these fields existed
    with open(path, "w") as f:
        json.dump(stored, f)

    with pytest.raises(training.ConfigError, match=r"validation_fraction=0\.0 -> 0\.25"):
        training.train_and_evaluate(tiny_config(npz), out)  # a real change is still refused
    results = training.train_and_evaluate(config, out)
    assert results["train/epochs"] == 2 and results["train/steps"] == 2 * NUM_TRAIN // BATCH


def test_best_checkpoint_survives_a_new_process_and_keeps_the_lowest(tmp_path):
    directory = str(tmp_path / "checkpoints")
    strategy = tf.distribute.get_strategy()

    def model_with(value):
        model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
        model.set_weights([np.full((2, 1), value, np.float32), np.zeros(1, np.float32)])
        return model

    first = model_with(1.0)
    best = checkpoints.BestCheckpoint(first, directory, strategy)
    assert best.epoch is None
    assert best.update(1, 0.9)
    first.set_weights([np.full((2, 1), 2.0, np.float32), np.zeros(1, np.float32)])
    assert best.update(2, 0.5)
    first.set_weights([np.full((2, 1), 3.0, np.float32), np.zeros(1, np.float32)])
    assert not best.update(3, 0.7)
    assert not best.update(4, float("nan"))

    # A resumed run (new objects, same directory) reads epoch 2 and NLL 0.5 from disk.
    second = model_with(4.0)
    resumed = checkpoints.BestCheckpoint(second, directory, strategy)
    assert (resumed.epoch, resumed.nll) == (2, 0.5)
    np.testing.assert_array_equal(second.get_weights()[0], 4.0)  # reading restored no weights
    assert not resumed.update(5, 0.6)
    assert resumed.restore_weights() == 2
    np.testing.assert_array_equal(second.get_weights()[0], 2.0)


def test_keep_best_epoch_without_finite_validation_nll_raises(tmp_path):
    best = checkpoints.BestCheckpoint(
        keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)]),
        str(tmp_path),
        tf.distribute.get_strategy(),
    )
    assert not best.update(1, float("inf"))
    with pytest.raises(checkpoints.TrainingError, match="no epoch had a finite"):
        best.restore_weights()


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"validation_fraction": 1.0}, r"config\.validation_fraction.*=1\.0; allowed: .*\[0, 1\)"),
        ({"validation_fraction": -0.5}, r"config\.validation_fraction"),
        ({"validation_fraction": 0.001}, r"validation_fraction.*holds out 0"),
        ({"validation_seed": -1}, r"config\.validation_seed.*=-1"),
        (
            {"validation_fraction": 0.0, "keep_best_epoch": True},
            r"config\.keep_best_epoch.*True with validation_fraction > 0",
        ),
        ({"temperature_grid": (1.0, 2.0)}, r"config\.temperature_grid.*heteroscedastic"),
        (
            {"head": "heteroscedastic", "temperature_grid": (1.0, -2.0)},
            r"config\.temperature_grid.*=\(1\.0, -2\.0\)",
        ),
        (
            {"head": "heteroscedastic", "temperature_grid": (1.0, 1.0)},
            r"config\.temperature_grid.*distinct",
        ),
        (
            {"head": "heteroscedastic", "validation_fraction": 0.0, "temperature_grid": (1.0,)},
            r"config\.temperature_grid.*validation_fraction > 0",
        ),
    ],
)
def test_bad_validation_config_values_stop_before_training(npz, tmp_path, overrides, message):
    out = str(tmp_path / "member")
    with pytest.raises(training.ConfigError, match=message):
        training.train_and_evaluate(tiny_config(npz, **overrides), out)
    assert not os.path.exists(out)


def het_config(npz, **overrides):
    return tiny_config(
        npz,
        head="heteroscedastic",
        head_class="MCSoftmaxDenseFA",
        num_factors=2,
        train_mc_samples=4,
        test_mc_samples=4,
        train_epochs=1,
        **overrides,
    )


def test_tune_temperature_trains_one_member_per_value_and_picks_the_lowest_val_nll(npz, tmp_path):
    out = str(tmp_path / "tuning")
    grid = (0.25, 4.0)
    choice = training.tune_temperature(het_config(npz, temperature_grid=grid), out)

    assert sorted(os.listdir(out)) == [
        "temperature_0.25",
        "temperature_4.0",
        "temperature_choice.json",
    ]
    val_nll = {}
    for temperature in grid:
        member = os.path.join(out, f"temperature_{temperature!r}")
        with open(os.path.join(member, "config.json")) as f:
            stored = json.load(f)
        assert stored["temperature"] == temperature and stored["temperature_grid"] == []
        with open(os.path.join(member, "metrics.json")) as f:
            val_nll[repr(temperature)] = json.load(f)["val/nll"]
    best = min(grid, key=lambda t: val_nll[repr(t)])
    with open(os.path.join(out, "temperature_choice.json")) as f:
        assert json.load(f) == choice
    assert choice["grid"] == list(grid) and choice["val_nll"] == pytest.approx(val_nll)
    assert choice["temperature"] == best
    assert choice["member_dir"] == os.path.join(out, f"temperature_{best!r}")

    # Re-running reuses the finished members: nothing is trained again.
    models = [os.path.join(out, f"temperature_{t!r}", "model.keras") for t in grid]
    mtimes = [os.stat(path).st_mtime_ns for path in models]
    assert training.tune_temperature(het_config(npz, temperature_grid=grid), out) == choice
    assert [os.stat(path).st_mtime_ns for path in models] == mtimes


def test_train_and_evaluate_refuses_a_grid_and_the_cli_runs_it(npz, tmp_path, capsys):
    config = het_config(npz, temperature_grid=(1.0,))
    with pytest.raises(training.ConfigError, match="use training.tune_temperature"):
        training.train_and_evaluate(config, str(tmp_path / "member"))
    with pytest.raises(training.ConfigError, match=r"temperature_grid=\(\); allowed"):
        training.tune_temperature(het_config(npz), str(tmp_path / "tuning"))

    config_file = tmp_path / "config.py"
    config_file.write_text(
        "from het_ensembles import training\n"
        "def get_config():\n"
        f"    return training.complete_config({het_config(npz).to_dict()!r})\n"
    )
    out = tmp_path / "cli"
    argv = [
        f"--config={config_file}",
        "--config.temperature_grid=(0.5, 2.0)",
        f"--output_dir={out}",
    ]
    assert training.cli_main(argv) == 0
    assert "(lowest val/nll)" in capsys.readouterr().out
    with open(out / "temperature_choice.json") as f:
        assert json.load(f)["grid"] == [0.5, 2.0]
    assert training.cli_main(["--help"], config_file=str(config_file)) == 0
    help_text = capsys.readouterr().out
    for field in ("validation_fraction", "validation_seed", "keep_best_epoch", "temperature_grid"):
        assert f"--config.{field}=" in help_text
