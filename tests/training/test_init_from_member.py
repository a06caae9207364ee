"""config.init_from_member: the backbone comes from a member, the head is new.

A tiny MLP member is trained on the tiny npz set (4 classes, 8 features); a second set with
other labels and 3 classes is fine-tuned from it. The references are independent of the
module under test: the member's own `model.keras` loaded with `keras.saving.load_model` (its
`get_weights()` list: backbone arrays first, the head's two last), and a model built from
scratch with the same seed (what a new head must equal before training).
"""

import json
import os

import keras
import numpy as np
import pytest
from tiny_training import make_arrays, tiny_config

from het_ensembles import models, training
from het_ensembles.training import init_from_member, trainer


@pytest.fixture(scope="module")
def member(npz, tmp_path_factory):
    """A finished tiny MLP member (hidden layers 16 and 12) on the 4-class npz set."""
    path = str(tmp_path_factory.mktemp("member") / "pretrained")
    config = tiny_config(npz, model_kwargs={"hidden_units": (16, 12)}, train_epochs=1)
    training.train_and_evaluate(config, path)
    return path


def _other_set(directory, num_classes=3, num_features=8):
    """Another npz set: new labels with `num_classes` classes."""
    arrays = make_arrays(seed=5)
    rng = np.random.default_rng(1)
    arrays = {
        key: (rng.integers(0, num_classes, len(value)) if key.startswith("y") else value)
        for key, value in arrays.items()
    }
    for key in ("x_train", "x_test"):
        arrays[key] = arrays[key][:, :num_features]
    path = os.path.join(directory, f"other_{num_classes}_{num_features}.npz")
    np.savez(path, **arrays)
    return path


def _finetune_config(dataset, member_path, **overrides):
    return tiny_config(
        dataset,
        model_kwargs={"hidden_units": (16, 12)},
        init_from_member=member_path,
        **overrides,
    )


def test_backbone_copied_and_head_new(member, tmp_path):
    config = trainer.complete_config(_finetune_config(_other_set(str(tmp_path)), member))
    model = trainer.create_model(config, input_shape=(8,), num_classes=3)
    copied = init_from_member.initialise_backbone(model, init_from_member.check_member(config))

    pretrained = keras.saving.load_model(os.path.join(member, "model.keras"), compile=False)
    expected = pretrained.get_weights()
    got = model.get_weights()
    assert copied == 4  # two Dense layers: kernel and bias each
    assert len(got) == len(expected) == 6
    for ours, theirs in zip(got[:4], expected[:4]):
        np.testing.assert_array_equal(ours, theirs)
    # The head is new: 3 classes instead of 4, and exactly a fresh model's head.
    assert got[4].shape == (12, 3) and expected[4].shape == (12, 4)
    fresh = models.build_model(
        "mlp", input_shape=(8,), num_classes=3, hidden_units=(16, 12), l2=config.l2, seed=0
    ).get_weights()
    np.testing.assert_array_equal(got[4], fresh[4])
    np.testing.assert_array_equal(got[5], fresh[5])
    assert not np.array_equal(got[0], fresh[0])  # and the backbone is not a fresh one


def test_finetune_run_records_member_and_starts_from_its_weights(member, tmp_path):
    dataset = _other_set(str(tmp_path))
    output = str(tmp_path / "finetuned")
    # base_learning_rate tiny: one epoch barely moves the weights from where they started.
    config = _finetune_config(dataset, member, train_epochs=1, base_learning_rate=1e-9)
    results = training.train_and_evaluate(config, output)
    with open(os.path.join(output, "config.json")) as f:
        record = json.load(f)
    assert record["init_from_member"] == os.path.abspath(member)
    assert record["num_classes"] == 3
    assert results["test/num_examples"] == 21
    tuned = keras.saving.load_model(os.path.join(output, "model.keras"), compile=False)
    pretrained = keras.saving.load_model(os.path.join(member, "model.keras"), compile=False)
    for ours, theirs in zip(tuned.get_weights()[:4], pretrained.get_weights()[:4]):
        np.testing.assert_allclose(ours, theirs, atol=1e-6)


def test_member_with_other_model_kwargs_refused(member, tmp_path):
    config = tiny_config(
        _other_set(str(tmp_path)), model_kwargs={"hidden_units": (16,)}, init_from_member=member
    )
    with pytest.raises(ValueError) as error:
        trainer.check_config(config)
    message = str(error.value)
    assert "backbone of member" in message and os.path.abspath(member) in message
    assert "model_kwargs" in message and "[16, 12]" in message and "[16]" in message


def test_member_with_other_input_shape_refused(member, tmp_path):
    config = _finetune_config(_other_set(str(tmp_path), num_features=5), member)
    with pytest.raises(ValueError) as error:
        training.train_and_evaluate(config, str(tmp_path / "out"))
    message = str(error.value)
    assert f"Cannot initialise from member {os.path.abspath(member)}" in message
    assert "(8, 16)" in message and "(5, 16)" in message  # the first Dense kernel's shapes


def test_not_a_member_refused(tmp_path, npz):
    empty = tmp_path / "empty"
    empty.mkdir()
    for path, expected in ((empty, "no model.keras"), (tmp_path / "missing", "no such directory")):
        with pytest.raises(ValueError) as error:
            trainer.check_config(tiny_config(npz, init_from_member=str(path)))
        assert "init_from_member" in str(error.value) and expected in str(error.value)
        assert str(path) in str(error.value)


def test_init_from_member_type_checked(npz):
    with pytest.raises(ValueError, match=r"config.init_from_member. Received: init_from_member=''"):
        trainer.check_config(tiny_config(npz, init_from_member=""))
