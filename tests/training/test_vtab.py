"""VTAB-1k (Table 6): the split sizes, BiT's preprocessing, the schedule, the score, the CLI.

References: VTAB-1k's 800 / 200 (task_adaptation `train800` / `val200`), big_transfer's
`bit_hyperrule.get_lr` (copied below), closed forms for the preprocessing of constant and
half-black images, and hand-computed means for the score.
"""

import io
import json
import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from console import run
from PIL import Image

from het_ensembles import data, member_dir, training
from het_ensembles.data import image_preprocessing, streaming
from het_ensembles.experiments import vtab_score
from het_ensembles.training import schedule, vtab


def bit_get_lr(step, dataset_size, base_lr=0.003):
    """big_transfer bit_hyperrule.py get_lr / get_schedule (the VTAB-1k branch), verbatim."""
    supports = [100, 200, 300, 400, 500] if dataset_size < 20_000 else None
    if step < supports[0]:
        return base_lr * step / supports[0]
    elif step >= supports[-1]:
        return None
    else:
        for s in supports[1:]:
            if s < step:
                base_lr /= 10
        return base_lr


def test_schedule_is_bit_hyperrule():
    config = training.complete_config(vtab.vtab_config("dtd"))
    rate = schedule.learning_rate_schedule(config, steps_per_epoch=50, global_batch_size=512)
    assert config.steps_per_epoch * config.train_epochs == 500
    # Away from the decay steps themselves (BiT decays one step later: `s < step`).
    for step in (0, 1, 50, 99, 150, 250, 350, 450, 499):
        np.testing.assert_allclose(float(rate(step)), bit_get_lr(step, 1000), rtol=1e-5)
    assert config.l2 == 0 and not config.nesterov
    np.testing.assert_allclose(1 - config.one_minus_momentum, 0.9)
    assert config.head == "deterministic"


@pytest.mark.parametrize(
    "task, crop, resize, flip",
    [("cifar100", 128, 160, True), ("dtd", 384, 448, True), ("smallnorb_azimuth", 384, 448, False)],
)
def test_resolution_and_flip(task, crop, resize, flip):
    config = vtab.vtab_config(task)
    spec = data.spec_options.parse(config.dataset)
    assert config.image_size == crop and spec.get("bit_resize") == resize
    assert spec.get("flip", True) is flip and spec.get("train_examples") == 1000


def test_unknown_and_inexpressible_tasks_refused():
    with pytest.raises(
        ValueError, match=r"clevr_count_all is not expressible.*Received: task='clevr_count_all'"
    ):
        vtab.vtab_config("clevr_count_all")


def test_train800_val200_under_mock_data():
    name = vtab.dataset_name("cifar100")
    with tfds.testing.mock_data(num_examples=1100):
        info = data.get_info(name, image_size=8, validation_fraction=0.2)
        assert info.num_examples == {"train": 800, "validation": 200, "test": 1100}
        seen = {}
        for split in ("train", "validation"):
            batches = data.load(
                name,
                split,
                batch_size=256,
                is_training=False,
                image_size=8,
                validation_fraction=0.2,
            )
            seen[split] = sum(int(y.shape[0]) for _, y in batches)
        assert seen == {"train": 800, "validation": 200}
    # Which positions: disjoint, together the first 1,000 of TFDS' train split.
    train, val = (
        streaming.split_positions(
            {"train": 1100, "test": 1100},
            split,
            test_fraction=None,
            holdout=(200, 0),
            train_examples=1000,
        )[1]
        for split in ("train", "validation")
    )
    assert not set(train) & set(val) and sorted({*train, *val}) == list(range(1000))


def test_train_examples_beyond_the_split_refused():
    # svhn: a set no other test here counts (split sizes are counted once per process).
    refused = pytest.raises(ValueError, match=r"900 training examples.*train_examples=1000")
    with tfds.testing.mock_data(num_examples=900), refused:
        data.get_info(vtab.dataset_name("svhn"), image_size=8)


def _png(pixels):
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    return tf.constant(buffer.getvalue())


def test_bit_image_closed_forms():
    mean, std = (
        np.array(image_preprocessing.IMAGENET_MEAN),
        np.array(image_preprocessing.IMAGENET_STDDEV),
    )
    constant = _png(np.full((20, 30, 3), 51, np.uint8))
    for is_training in (True, False):
        out = image_preprocessing.bit_image(
            constant, 8, is_training, tf.constant([1, 2]), resize_size=10
        ).numpy()
        assert out.shape == (8, 8, 3)
        np.testing.assert_allclose(out, np.broadcast_to((0.2 - mean) / std, out.shape), atol=1e-5)
    # Left half black, right half white: without flip the left column stays black.
    halves = np.zeros((16, 16, 3), np.uint8)
    halves[:, 8:] = 255
    left = []
    for seed in range(8):
        for flip in (False, True):
            out = image_preprocessing.bit_image(
                _png(halves), 16, True, tf.constant([seed, 0]), resize_size=16, flip=flip
            ).numpy()
            left.append((flip, bool(np.allclose(out[:, 0], -mean / std, atol=1e-4))))
    assert all(black for flip, black in left if not flip)
    assert not all(black for flip, black in left if flip)  # some flipped among 8 seeds


def _fake_member(root, group, task, seed, accuracy):
    path = os.path.join(root, group, task, str(seed))
    os.makedirs(path)
    member_dir.write_json(
        os.path.join(path, "config.json"), {"dataset": vtab.dataset_name(task), "seed": seed}
    )
    member_dir.write_json(os.path.join(path, "metrics.json"), {"test/accuracy": accuracy})
    member_dir.write_text(os.path.join(path, "model.keras"), "")
    return path


ACCURACIES = {  # group -> task -> [seed 0, seed 1]
    "Hom": {"dtd": [0.60, 0.62], "cifar100": [0.50, 0.54], "eurosat": [0.90, 0.94]},
    "Het": {"dtd": [0.64, 0.66], "cifar100": [0.52, 0.56], "eurosat": [0.92, 0.90]},
}


def test_score_mean_over_tasks_by_hand(tmp_path):
    for group, tasks in ACCURACIES.items():
        for task, values in tasks.items():
            for seed, value in enumerate(values):
                _fake_member(str(tmp_path / "runs"), group, task, seed, value)
    groups = {g: str(tmp_path / "runs" / g / "*" / "*") for g in ACCURACIES}
    report = vtab_score.vtab_report(groups, str(tmp_path / "out"))
    mean = report["datasets"]["mean"]["metrics"]["accuracy"]
    # Hom: seed 0 (0.60 + 0.50 + 0.90) / 3 = 0.6667, seed 1 (0.62 + 0.54 + 0.94) / 3 = 0.70.
    assert mean["Hom"]["mean"] == pytest.approx((2.0 / 3.0 + 0.70) / 2)
    assert mean["Hom"]["std"] == pytest.approx(np.std([2.0 / 3.0, 0.70], ddof=1))
    assert mean["Het"]["mean"] == pytest.approx((0.64 + 0.52 + 0.92 + 0.66 + 0.56 + 0.90) / 6)
    assert report["datasets"]["dtd"]["best"]["accuracy"] == "Het"
    assert list(report["datasets"]) == ["cifar100", "dtd", "eurosat", "mean"]  # VTAB's order
    table = (tmp_path / "out" / "vtab.md").read_text()
    assert "| Het |" in table and "mean Top-1 (%)" in table and "68.3 ± 2.4" in table
    assert json.loads((tmp_path / "out" / "vtab.json").read_text()) == report


def test_score_needs_every_seed_of_every_task(tmp_path):
    _fake_member(str(tmp_path), "Hom", "dtd", 0, 0.5)
    _fake_member(str(tmp_path), "Hom", "dtd", 1, 0.5)
    _fake_member(str(tmp_path), "Hom", "cifar100", 0, 0.5)
    with pytest.raises(ValueError, match=r"same seeds.*cifar100: \[0\], dtd: \[0, 1\]"):
        vtab_score.vtab_report({"Hom": str(tmp_path / "Hom" / "*" / "*")})


def test_finetune_through_the_console_script(tmp_path):
    """A tiny small_cnn member pre-trained on mock tfds:mnist, fine-tuned on mock CIFAR-100
    with configs/vtab/finetune.py, then scored with `het-ensembles report --vtab`."""
    mock = {"num_examples": 1000}
    common = ["--config.model=small_cnn", "--config.image_size=8", "--config.eval_steps=2"]
    run(
        [
            "train",
            "--config=configs/noisy_digits/deterministic.py",
            "--config.dataset=tfds:mnist",
            "--config.train_epochs=1",
            "--config.steps_per_epoch=2",
            *common,
            "--output_dir=pre",
        ],
        tmp_path,
        mock_tfds=mock,
    )
    run(
        [
            "train",
            "--config=configs/vtab/finetune.py:cifar100",
            "--config.init_from_member=pre",
            "--config.per_core_batch_size=32",
            "--config.steps_per_epoch=2",
            "--config.train_epochs=1",
            *common,
            "--output_dir=vtab/het/cifar100/0",
        ],
        tmp_path,
        mock_tfds=mock,
    )
    out = tmp_path / "vtab" / "het" / "cifar100" / "0"
    record = json.loads((out / "config.json").read_text())
    assert record["init_from_member"] == str(tmp_path / "pre")
    assert record["num_classes"] == 100 and record["dataset"] == vtab.dataset_name("cifar100")
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["train/steps"] == 2 and 0 <= metrics["test/accuracy"] <= 1
    refused = run(
        [
            "train",
            "--config=configs/vtab/finetune.py:cifar100",
            "--config.init_from_member=pre",
            "--output_dir=other",
        ],  # resnet50 config, small_cnn member
        tmp_path,
        mock_tfds=mock,
        check=False,
    )
    assert refused.returncode == 2
    assert f"backbone of member {tmp_path / 'pre'}" in refused.stderr
    assert "model: member 'small_cnn', config 'resnet50'" in refused.stderr
    scored = run(["report", "Het=vtab/het/*/*", "--vtab", "--output_dir=score"], tmp_path)
    score = json.loads((tmp_path / "score" / "vtab.json").read_text())
    assert score["datasets"]["mean"]["metrics"]["accuracy"]["Het"]["mean"] == pytest.approx(
        metrics["test/accuracy"]
    )
    assert "| Het |" in scored.stdout
