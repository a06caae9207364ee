"""A member of M heads (config.json `ensemble_size`, logits [B, M, K]) is evaluated as M members.

The model is a Dense layer reshaped to [B, M, K], so every expected number is computed here in
numpy from its weights (log-softmax per head, the heads' mean probability), not by the
evaluator's code.
"""

import json
import os

import keras
import numpy as np
import pytest
from scipy.special import log_softmax, logsumexp

from het_ensembles import evaluation, member_dir
from het_ensembles.evaluation import members as members_lib
from het_ensembles.evaluation import report

HEADS, CLASSES, FEATURES, EXAMPLES = 3, 4, 5, 37


def _write_member(path, *, heads=HEADS, seed=0):
    """A finished member directory whose model outputs logits [B, heads, K]; its weights."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((FEATURES,))
    dense = keras.layers.Dense(heads * CLASSES, kernel_initializer="random_normal")
    outputs = keras.layers.Reshape((heads, CLASSES))(dense(inputs))
    model = keras.Model(inputs, outputs)
    os.makedirs(path)
    member_dir.write_json(
        os.path.join(path, member_dir.CONFIG_FILE),
        {
            "num_classes": CLASSES,
            "multilabel": False,
            "head": "deterministic",
            "ensemble_size": heads,
        },
    )
    member_dir.write_json(os.path.join(path, member_dir.METRICS_FILE), {"train/hours": 0.5})
    model.save(os.path.join(path, member_dir.MODEL_FILE))
    kernel, bias = (np.asarray(w, np.float64) for w in dense.get_weights())
    return kernel, bias, model.count_params()


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    root = tmp_path_factory.mktemp("multi_head")
    kernel, bias, num_params = _write_member(str(root / "mimo"))
    rng = np.random.default_rng(1)
    x = rng.normal(size=(EXAMPLES, FEATURES)).astype(np.float32)
    y = rng.integers(0, CLASSES, EXAMPLES)
    out = str(root / "eval")
    results = evaluation.evaluate(
        [str(root / "mimo")], {"toy": (x, y)}, out, batch_size=8, progress=False
    )
    logits = (x.astype(np.float64) @ kernel + bias).reshape(EXAMPLES, HEADS, CLASSES)
    return results, log_softmax(logits, axis=-1), y, out, num_params


def test_heads_become_members_with_numpy_values(evaluated):
    results, log_probs, y, _, _ = evaluated
    toy = results["toy"]
    assert sorted(toy["members"]) == [f"mimo/head{i}" for i in range(HEADS)]
    rows = np.arange(EXAMPLES)
    for i in range(HEADS):
        row = toy["members"][f"mimo/head{i}"]
        assert row["nll"] == pytest.approx(-log_probs[rows, i, y].mean(), rel=1e-5)
        predicted = log_probs[:, i].argmax(-1)
        assert row["accuracy"] == pytest.approx(np.mean(predicted == y))
    mean_log_probs = logsumexp(log_probs, axis=1) - np.log(HEADS)
    assert toy["ensemble"]["nll"] == pytest.approx(-mean_log_probs[rows, y].mean(), rel=1e-5)
    assert toy["ensemble"]["accuracy"] == pytest.approx(np.mean(mean_log_probs.argmax(-1) == y))
    head_nlls = [-log_probs[rows, i, y].mean() for i in range(HEADS)]
    assert toy["member_mean"]["nll"] == pytest.approx(np.mean(head_nlls), rel=1e-5)
    argmaxes = log_probs.argmax(-1)
    pairs = [(a, b) for a in range(HEADS) for b in range(a + 1, HEADS)]
    disagreement = np.mean([np.mean(argmaxes[:, a] != argmaxes[:, b]) for a, b in pairs])
    assert toy["ensemble"]["disagreement"] == pytest.approx(disagreement)


def test_cache_holds_one_entry_per_head(evaluated):
    _, log_probs, _, out, _ = evaluated
    for i in range(HEADS):
        cached = np.load(os.path.join(out, "predictions", "toy", "mimo", f"head{i}.npy"))
        assert cached.shape == (EXAMPLES, CLASSES)
        np.testing.assert_allclose(cached, log_probs[:, i], atol=1e-5)


def test_costs_count_the_model_once(evaluated):
    results, _, _, out, num_params = evaluated
    toy = results["toy"]
    assert toy["ensemble"]["num_params"] == num_params
    assert all(row["num_params"] == num_params for row in toy["members"].values())
    with open(os.path.join(out, "metrics.json")) as f:
        assert json.load(f)["toy"]["ensemble"]["num_params"] == num_params
    with open(os.path.join(out, "leaderboard.md")) as f:
        text = f.read()
    assert f"Members ({HEADS} heads of 1 model)" in text
    assert f"one head (mean over {HEADS} heads)" in text


def test_output_without_the_configured_heads_is_refused(tmp_path):
    _write_member(str(tmp_path / "two"), heads=2)
    config_path = tmp_path / "two" / member_dir.CONFIG_FILE
    config = json.loads(config_path.read_text())
    config["ensemble_size"] = 3  # the model has 2 heads
    config_path.write_text(json.dumps(config))
    x = np.zeros((4, FEATURES), np.float32)
    with pytest.raises(ValueError, match=r"must output logits \[B, 3, K\]"):
        evaluation.evaluate(
            [str(tmp_path / "two")],
            {"toy": (x, np.zeros(4, int))},
            str(tmp_path / "e"),
            progress=False,
        )


def test_rows_are_named_by_method_or_ensemble_method(evaluated):
    results, _, _, out, _ = evaluated
    members = evaluation_members(out)
    text = report.leaderboard_text(results, members, method="MIMO", ensemble_size=None)
    assert "| MIMO | " in text and "| MIMO, one head (mean over 3 heads) | " in text
    named = report.leaderboard_text(
        results, members, method="MIMO", ensemble_size=None, ensemble_method="[M](m.py)"
    )
    assert "| [M](m.py) | " in named and "| MIMO, one head (mean over 3 heads) | " in named


def evaluation_members(out):
    """The members `evaluate` scored (the heads of the one member directory)."""
    root = os.path.dirname(out)
    return members_lib.expand_heads(member_dir.find_members([os.path.join(root, "mimo")]))
