"""Bad-input sweep over the public entry points, one table per entry point.

Every case feeds a wrong type, range, shape, empty data or NaN and must end in a `ValueError`
(or an argparse / absl usage error with a non-zero exit status) whose message names the
argument -- never a TensorFlow stack trace, a hang or a wrong number.

Entry points: the layer constructors and calls (`het_ensembles.layers`), the metric functions
and accumulators (`het_ensembles.metrics`), `evaluation.evaluate`, the in-memory data path
(`het_ensembles.data`), every config field with a range (`training.validate_config` via
`train_and_evaluate`), and each CLI subcommand through `het_ensembles.cli.main`.
"""

import math
import os
import re

import numpy as np
import pytest
from tiny_training import NUM_CLASSES, NUM_FEATURES, REPO, make_arrays, tiny_config

from het_ensembles import cli, data, evaluation, layers, metrics, training

# ------------------------------------------------------------------------------------------------
# Layers: constructors.

FA, SIGMOID, DIAG = layers.MCSoftmaxDenseFA, layers.MCSigmoidDenseFA, layers.MCSoftmaxDense
LAYER_CONSTRUCTOR_CASES = [
    (FA, {"num_classes": 1, "num_factors": 0}, "num_classes"),
    (FA, {"num_classes": -3, "num_factors": 1}, "num_classes"),
    (FA, {"num_classes": 2.5, "num_factors": 1}, "num_classes"),
    (FA, {"num_classes": "10", "num_factors": 1}, "num_classes"),
    (FA, {"num_classes": True, "num_factors": 1}, "num_classes"),
    (FA, {"num_classes": 10, "num_factors": 11}, "num_factors"),
    (FA, {"num_classes": 10, "num_factors": -1}, "num_factors"),
    (FA, {"num_classes": 10, "num_factors": 2.0}, "num_factors"),
    (FA, {"num_classes": 10, "num_factors": 2, "temperature": 0.0}, "temperature"),
    (FA, {"num_classes": 10, "num_factors": 2, "temperature": -1.5}, "temperature"),
    (FA, {"num_classes": 10, "num_factors": 2, "temperature": math.nan}, "temperature"),
    (FA, {"num_classes": 10, "num_factors": 2, "temperature": math.inf}, "temperature"),
    (FA, {"num_classes": 10, "num_factors": 2, "temperature": "1"}, "temperature"),
    (FA, {"num_classes": 10, "num_factors": 2, "train_mc_samples": 0}, "train_mc_samples"),
    (FA, {"num_classes": 10, "num_factors": 2, "test_mc_samples": 1.5}, "test_mc_samples"),
    (FA, {"num_classes": 10, "num_factors": 2, "test_mc_samples": None}, "test_mc_samples"),
    (FA, {"num_classes": 10, "num_factors": 2, "mc_chunk_size": 0}, "mc_chunk_size"),
    (FA, {"num_classes": 10, "num_factors": 2, "seed": -1}, "seed"),
    (FA, {"num_classes": 10, "num_factors": 2, "seed": "0"}, "seed"),
    (FA, {"num_classes": 10, "num_factors": 2, "eps": -1.0}, "eps"),
    (FA, {"num_classes": 10, "num_factors": 0, "parameter_efficient": True}, "num_factors"),
    (SIGMOID, {"num_outputs": 0}, "num_outputs"),
    (SIGMOID, {"num_outputs": None}, "num_outputs"),
    (SIGMOID, {"num_outputs": 5, "num_factors": 6}, "num_factors"),
    (SIGMOID, {"num_outputs": 5, "temperature": 0}, "temperature"),
    (DIAG, {"num_classes": 0}, "num_classes"),
    (DIAG, {"num_classes": 10, "temperature": -2.0}, "temperature"),
    (DIAG, {"num_classes": 10, "train_mc_samples": -5}, "train_mc_samples"),
]


@pytest.mark.parametrize(
    "cls, kwargs, argument",
    LAYER_CONSTRUCTOR_CASES,
    ids=[f"{c.__name__}-{a}-{i}" for i, (c, _, a) in enumerate(LAYER_CONSTRUCTOR_CASES)],
)
def test_layer_constructor(cls, kwargs, argument):
    with pytest.raises(ValueError, match=rf"\b{argument}\b.*Received: {argument}="):
        cls(**kwargs)


# Layers: calls (inputs of the wrong rank, dtype or width).
LAYER_CALL_CASES = [
    ("rank 1", np.zeros((3,), np.float32), r"rank 2 \[batch, features\].*input_shape=\(3,\)"),
    ("rank 3", np.zeros((2, 3, 4), np.float32), r"rank 2.*input_shape=\(2, 3, 4\)"),
    ("integer dtype", np.zeros((2, 3), np.int32), r"floating-point inputs.*inputs\.dtype=.*int32"),
    ("string dtype", np.array([["a", "b", "c"]]), r"floating-point inputs.*inputs\.dtype"),
]


@pytest.mark.parametrize("layer_cls", [FA, SIGMOID, DIAG], ids=lambda c: c.__name__)
@pytest.mark.parametrize("name, x, message", LAYER_CALL_CASES, ids=[c[0] for c in LAYER_CALL_CASES])
def test_layer_call(layer_cls, name, x, message):
    factors = {} if layer_cls is DIAG else {"num_factors": 2}
    layer = layer_cls(4, **factors, test_mc_samples=3, logits_only=True, seed=1)
    with pytest.raises(ValueError, match=message):
        layer(x)


def test_layer_call_with_a_different_feature_width_after_build():
    layer = FA(4, 2, test_mc_samples=3, logits_only=True, seed=1)
    layer(np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match=r"expected axis -1 of input shape to have value 3"):
        layer(np.zeros((2, 5), np.float32))


def test_layer_nan_input_gives_nan_not_a_finite_number():
    # NaN in, NaN out (per example): never a plausible-looking finite probability.
    layer = FA(4, 2, test_mc_samples=3, logits_only=True, seed=1)
    x = np.array([[0.1, 0.2, 0.3], [np.nan, 0.0, 0.0]], np.float32)
    logits = np.asarray(layer(x))
    assert np.isfinite(logits[0]).all()
    assert np.isnan(logits[1]).all()


# ------------------------------------------------------------------------------------------------
# Metrics.

P = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1]])
LP = np.log(P)
Y = np.array([0, 1])
NAN = np.full_like(P, np.nan)
EMPTY_Y, EMPTY_P = np.zeros(0, int), np.zeros((0, 3))
METRIC_CASES = [
    ("accuracy/short labels", lambda: metrics.accuracy([0], P), r"`labels` must have shape \[2\]"),
    ("accuracy/1-d probs", lambda: metrics.accuracy(Y, P[0]), r"`probs` must have shape \[N, K\]"),
    ("accuracy/k=0", lambda: metrics.accuracy(Y, P, k=0), r"`k` must be an integer >= 1"),
    ("accuracy/k=1.5", lambda: metrics.accuracy(Y, P, k=1.5), r"Received: k=1.5"),
    ("accuracy/empty", lambda: metrics.accuracy(EMPTY_Y, EMPTY_P), r"`probs` holds no examples"),
    ("accuracy/NaN", lambda: metrics.accuracy(Y, NAN), r"`probs` contains NaN"),
    ("accuracy/label=K", lambda: metrics.accuracy([0, 3], P), r"`labels` must be class ids in"),
    ("accuracy/label<0", lambda: metrics.accuracy([0, -1], P), r"labels\.min\(\)=-1"),
    ("accuracy/label 0.5", lambda: metrics.accuracy([0, 0.5], P), r"`labels` \[N\] must be int"),
    ("accuracy/str labels", lambda: metrics.accuracy(["a", "b"], P), r"`labels` must be numeric"),
    ("nll/probs given", lambda: metrics.nll(Y, P), r"`log_probs` must be log-probabilities"),
    ("nll/logits given", lambda: metrics.nll(Y, -LP), r"`log_probs`.*log_probs\.max\(\)=2\.3"),
    ("nll/+inf", lambda: metrics.nll(Y, np.full_like(P, np.inf)), r"log_probs\.max\(\)=inf"),
    ("nll/NaN", lambda: metrics.nll(Y, NAN), r"`log_probs` contains NaN"),
    ("nll/empty", lambda: metrics.nll(EMPTY_Y, EMPTY_P), r"`log_probs` holds no examples"),
    (
        "nll/multilabel targets 2",
        lambda: metrics.nll(np.array([[0, 2, 1], [1, 0, 0]]), LP, multilabel=True),
        r"`labels` \[N, K\] must be targets in \[0, 1\]",
    ),
    (
        "nll/multilabel class ids",
        lambda: metrics.nll(Y, LP, multilabel=True),
        r"Multilabel metrics need 0/1 targets.*labels\.shape=\(2,\)",
    ),
    (
        "ece/num_bins=0",
        lambda: metrics.expected_calibration_error(Y, P, num_bins=0),
        r"`num_bins` must be an integer >= 1",
    ),
    (
        "ece/num_bins=2.5",
        lambda: metrics.expected_calibration_error(Y, P, num_bins=2.5),
        r"Received: num_bins=2.5",
    ),
    (
        "ece/probs > 1",
        lambda: metrics.expected_calibration_error(Y, 3 * P),
        r"`probs` must be probabilities in \[0, 1\]",
    ),
    (
        "ece/log-probs given",
        lambda: metrics.expected_calibration_error(Y, LP),
        r"`probs` must be probabilities.*probs\.min\(\)=-2\.3",
    ),
    ("ece/NaN", lambda: metrics.expected_calibration_error(Y, NAN), r"`probs` contains NaN"),
    (
        "ece/empty",
        lambda: metrics.expected_calibration_error(EMPTY_Y, EMPTY_P),
        r"`probs` holds no examples",
    ),
    ("brier/NaN", lambda: metrics.brier(Y, NAN), r"`probs` contains NaN"),
    ("brier/3-d", lambda: metrics.brier(Y, P[:, :, None]), r"probs\.shape=\(2, 3, 1\)"),
    ("brier/empty", lambda: metrics.brier(EMPTY_Y, EMPTY_P), r"`probs` holds no examples"),
    ("ensemble_nll/2-d", lambda: metrics.ensemble_nll(Y, LP), r"\[M, N, K\].*shape=\(2, 3\)"),
    (
        "ensemble_nll/no members",
        lambda: metrics.ensemble_nll(Y, np.zeros((0, 2, 3))),
        r"M >= 1.*shape=\(0, 2, 3\)",
    ),
    (
        "ensemble_nll/NaN",
        lambda: metrics.ensemble_nll(Y, np.stack([LP, NAN])),
        r"`member_log_probs` contains NaN",
    ),
    (
        "ensemble_nll/empty",
        lambda: metrics.ensemble_nll(EMPTY_Y, np.zeros((2, 0, 3))),
        r"`log_probs` holds no examples",
    ),
    ("gibbs_nll/2-d", lambda: metrics.gibbs_nll(Y, LP), r"\[M, N, K\]"),
    (
        "gibbs_nll/probs given",
        lambda: metrics.gibbs_nll(Y, np.stack([P, P])),
        r"`log_probs` must be log-probabilities",
    ),
    ("disagreement/2-d", lambda: metrics.disagreement(P), r"\[M, N, K\]"),
    (
        "disagreement/empty",
        lambda: metrics.disagreement(np.zeros((2, 0, 3))),
        r"`member_probs` holds no examples",
    ),
    ("kl_to_ensemble/2-d", lambda: metrics.kl_to_ensemble(LP), r"\[M, N, K\]"),
    (
        "kl_to_ensemble/probs given",
        lambda: metrics.kl_to_ensemble(np.stack([P, P])),
        r"`member_log_probs` must be log-probabilities",
    ),
    (
        "log_probs_from_logits/NaN",
        lambda: metrics.log_probs_from_logits(NAN),
        r"`logits` contain NaN or \+inf",
    ),
    (
        "log_probs_from_logits/1-d",
        lambda: metrics.log_probs_from_logits(np.zeros(3)),
        r"`logits` must have shape \[N, K\]",
    ),
    ("ExpectedCalibrationError/0", lambda: metrics.ExpectedCalibrationError(0), r"`num_bins`"),
    ("Accuracy/k=-1", lambda: metrics.Accuracy(k=-1), r"Received: k=-1"),
    (
        "update_state/sample_weight shape",
        lambda: metrics.Accuracy().update_state(Y, P, sample_weight=[1.0]),
        r"`sample_weight` must have shape \[2\]",
    ),
    (
        "update_state/negative sample_weight",
        lambda: metrics.NegativeLogLikelihood().update_state(Y, LP, sample_weight=[-1.0, 1.0]),
        r"`sample_weight` must be finite and >= 0",
    ),
    (
        "update_state/NaN sample_weight",
        lambda: metrics.BrierScore().update_state(Y, P, sample_weight=[np.nan, 1.0]),
        r"`sample_weight` must be finite",
    ),
    (
        "ClassificationMetrics/probs given",
        lambda: metrics.ClassificationMetrics().update_state(Y, P),
        r"`log_probs` must be log-probabilities",
    ),
    (
        "EnsembleMetrics/NaN",
        lambda: metrics.EnsembleMetrics().update_state(Y, np.stack([LP, NAN])),
        r"`member_log_probs` contains NaN",
    ),
    (
        "SubEnsembleMetrics/bad subset",
        lambda: metrics.SubEnsembleMetrics([(0, 0)]),
        r"`subsets` must be.*distinct",
    ),
]


@pytest.mark.parametrize("name, call, message", METRIC_CASES, ids=[c[0] for c in METRIC_CASES])
def test_metrics(name, call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_metrics_tolerate_float32_rounding_and_zero_probabilities():
    # What must still pass: log-softmax a hair above 0, p = 0 (log p = -inf), k > K.
    log_probs = np.array([[1e-7, -np.inf, -30.0], [-np.inf, 0.0, -np.inf]])
    assert metrics.nll([0, 1], log_probs) == pytest.approx(-5e-8)
    assert metrics.accuracy([0, 1], np.exp(log_probs), k=5) == 1.0
    assert metrics.brier([0, 1], np.exp(log_probs)) == pytest.approx(0.0, abs=1e-12)


# ------------------------------------------------------------------------------------------------
# Data: in-memory sets (the path npz files and the embedded sets share).


def _arrays(**changes):
    arrays = make_arrays()
    arrays.update(changes)
    return arrays


DATA_CASES = [
    ("NaN inputs", _arrays(x_train=np.full((8, 3), np.nan, np.float32)), r"x_train must be finite"),
    ("inf inputs", _arrays(x_test=np.full((21, 8), np.inf, np.float32)), r"x_test must be finite"),
    (
        "empty train",
        _arrays(x_train=np.zeros((0, 8)), y_train=np.zeros(0, int)),
        r"x_train holds no",
    ),
    ("empty test", _arrays(x_test=np.zeros((0, 8)), y_test=np.zeros(0, int)), r"x_test holds no"),
    ("float labels", _arrays(y_train=np.zeros(64)), r"y_train must hold integer labels"),
    ("negative labels", _arrays(y_test=-np.ones(21, int)), r"labels must lie in.*min\(y_test\)"),
    ("label count", _arrays(y_train=np.zeros(63, int)), r"y_train has 63 labels for 64 examples"),
    ("missing key", {"x_train": np.zeros((2, 2))}, r"missing arrays \['y_train', 'x_test'"),
    ("string inputs", _arrays(x_train=np.array([["a"] * 8] * 64)), r"x_train must be numeric"),
    ("feature mismatch", _arrays(x_test=np.zeros((21, 7), np.float32)), r"same example shape"),
]


@pytest.mark.parametrize("name, arrays, message", DATA_CASES, ids=[c[0] for c in DATA_CASES])
def test_data_arrays(tmp_path, name, arrays, message):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match=message):
        data.get_info(f"npz:{path}")


def test_data_unknown_name_and_missing_file(tmp_path):
    with pytest.raises(ValueError, match=r"Unknown dataset.*name='nope'"):
        data.get_info("nope")
    with pytest.raises(ValueError, match=r"npz dataset file not found"):
        data.get_info(f"npz:{tmp_path / 'missing.npz'}")


# ------------------------------------------------------------------------------------------------
# Training config: every field with a range, wrong types and values, checked before any work.

CONFIG_CASES = [
    ({"seed": -1}, "seed"),
    ({"seed": 1.5}, "seed"),
    ({"dataset": ""}, "dataset"),
    ({"dataset": "nope"}, "dataset"),
    ({"model": "vgg"}, "model"),
    ({"head": "bayesian"}, "head"),
    ({"head": "heteroscedastic", "head_class": "Dense"}, "head_class"),
    ({"image_size": 0}, "image_size"),
    ({"steps_per_epoch": 0}, "steps_per_epoch"),
    ({"eval_steps": -2}, "eval_steps"),
    ({"per_core_batch_size": 0}, "per_core_batch_size"),
    ({"per_core_batch_size": "8"}, "per_core_batch_size"),
    ({"train_epochs": 0}, "train_epochs"),
    ({"base_learning_rate": 0.0}, "base_learning_rate"),
    ({"base_learning_rate": math.inf}, "base_learning_rate"),
    ({"base_learning_rate": math.nan}, "base_learning_rate"),
    ({"base_batch_size": 0}, "base_batch_size"),
    ({"one_minus_momentum": 0.0}, "one_minus_momentum"),
    ({"one_minus_momentum": 1.5}, "one_minus_momentum"),
    ({"l2": -1e-4}, "l2"),
    ({"l2": math.nan}, "l2"),
    ({"warmup_epochs": -1}, "warmup_epochs"),
    ({"warmup_epochs": "5"}, "warmup_epochs"),
    ({"lr_decay_base_epochs": 0}, "lr_decay_base_epochs"),
    ({"lr_decay_epochs": (60, 30)}, "lr_decay_epochs"),
    ({"lr_decay_epochs": (30, 120)}, "lr_decay_epochs"),
    ({"lr_decay_ratio": 0.0}, "lr_decay_ratio"),
    ({"lr_decay_ratio": 2.0}, "lr_decay_ratio"),
    ({"label_smoothing": -0.1}, "label_smoothing"),
    ({"label_smoothing": 1.5}, "label_smoothing"),
    ({"num_bins": 0}, "num_bins"),
    ({"checkpoint_interval": 0}, "checkpoint_interval"),
    ({"use_bfloat16": "yes"}, "use_bfloat16"),
    ({"multilabel": 1}, "multilabel"),
    ({"head": "heteroscedastic", "temperature": 0.0}, "temperature"),
    ({"head": "heteroscedastic", "temperature": -1.0}, "temperature"),
    ({"head": "heteroscedastic", "temperature": math.inf}, "temperature"),
    ({"head": "heteroscedastic", "train_mc_samples": 0}, "train_mc_samples"),
    ({"head": "heteroscedastic", "test_mc_samples": -1}, "test_mc_samples"),
    ({"head": "heteroscedastic", "mc_chunk_size": 0}, "mc_chunk_size"),
    ({"head": "heteroscedastic", "num_factors": 0}, "num_factors"),
    ({"head": "heteroscedastic", "num_factors": NUM_CLASSES + 1}, "num_factors"),
    ({"head": "heteroscedastic", "multilabel": True}, "multilabel"),
    ({"head": "heteroscedastic", "share_samples_across_batch": "no"}, "share_samples_across_batch"),
    ({"head": "heteroscedastic", "parameter_efficient": 1}, "parameter_efficient"),
    ({"head": "heteroscedastic", "learn_temperature": "true"}, "learn_temperature"),
]


@pytest.mark.parametrize(
    "overrides, field", CONFIG_CASES, ids=[f"{f}={list(o.values())[-1]!r}" for o, f in CONFIG_CASES]
)
def test_config_field(npz, tmp_path, monkeypatch, overrides, field):
    monkeypatch.setattr(training, "create_model", pytest.fail)  # rejected before any TF work
    out = tmp_path / "member"
    config = tiny_config(npz).to_dict()  # a dict: wrong types reach the trainer's checks
    config.update(overrides)
    with pytest.raises(ValueError, match=rf"config\.{field}\b"):
        training.train_and_evaluate(config, str(out))
    assert not out.exists()


def test_config_unknown_field(npz, tmp_path):
    config = tiny_config(npz).to_dict()
    config["num_factor"] = 3
    with pytest.raises(ValueError, match=r"Unknown config fields.*'num_factor'"):
        training.train_and_evaluate(config, str(tmp_path / "member"))


# ------------------------------------------------------------------------------------------------
# evaluation.evaluate (with a real member, so each case fails on the argument, not the member).


@pytest.fixture(scope="module")
def member(npz, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("members") / "m0")
    training.train_and_evaluate(tiny_config(npz, train_epochs=1, steps_per_epoch=1), out)
    return out


def _xy(n=5, features=NUM_FEATURES, classes=NUM_CLASSES):
    rng = np.random.default_rng(0)
    return rng.normal(size=(n, features)).astype(np.float32), rng.integers(0, classes, n)


EVALUATE_CASES = [
    ({"batch_size": 0}, r"batch_size must be an integer >= 1. Received: batch_size=0"),
    ({"batch_size": 2.5}, r"Received: batch_size=2.5"),
    ({"num_bins": 0}, r"num_bins must be an integer >= 1"),
    ({"max_subsets": 0}, r"max_subsets must be an integer >= 1"),
    ({"ensemble_size": 0}, r"ensemble_size must be an integer >= 1"),
    ({"ensemble_size": 2}, r"ensemble_size must be <= the number of members \(1\)"),
    ({"members": "/nonexistent/*"}, r"No member directory matches.*nonexistent"),
    ({"members": []}, r"No members. Received: members=\[\]"),
    ({"datasets": []}, r"No datasets. Received: datasets=\[\]"),
    ({"datasets": [""]}, r"Dataset names must be strings. Received: ''"),
    ({"datasets": ["nope"]}, r"Unknown dataset.*'nope'"),
    ({"datasets": {"d": _xy()[0]}}, r"must map a name to \(x, y\)"),
    ({"datasets": {"d": (np.zeros((0, 8)), np.zeros(0, int))}}, r"same non-zero length"),
    ({"datasets": {"d": (np.zeros((3, 8)), np.zeros(4, int))}}, r"len\(x\)=3, len\(y\)=4"),
    ({"datasets": {"d": _xy(classes=NUM_CLASSES + 3)}}, r"labels of d do not fit 4 classes"),
    ({"datasets": {"d": _xy(features=5)}}, r"takes inputs of shape \(None, 8\).*x\.shape=\(5, 5\)"),
    # Checked on the inputs, never through the model: on some CPUs max/ReLU kernels map NaN
    # inputs to finite logits, so a model-side check would depend on the kernels.
    (
        {"datasets": {"d": (np.full((5, 8), np.nan, np.float32), _xy()[1])}},
        r"inputs of dataset d contain NaN or inf values \(at least 5 example\(s\), the first at "
        + r"index 0\)",
    ),
    (
        {"datasets": {"d": (np.where(np.arange(5)[:, None] == 3, np.inf, _xy()[0]), _xy()[1])}},
        r"inputs of dataset d contain NaN or inf values \(at least 1 example\(s\), the first at "
        + r"index 3\)",
    ),
]


@pytest.mark.parametrize(
    "arguments, message", EVALUATE_CASES, ids=[str(i) for i in range(len(EVALUATE_CASES))]
)
def test_evaluate(member, tmp_path, arguments, message):
    call = {"members": [member], "datasets": {"d": _xy()}, "progress": False, **arguments}
    with pytest.raises(ValueError, match=message):
        evaluation.evaluate(call.pop("members"), call.pop("datasets"), str(tmp_path / "e"), **call)


def test_evaluate_unwritable_output_dir(member, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    with pytest.raises(ValueError, match=r"output_dir is not a writable directory.*a_file/e"):
        evaluation.evaluate([member], {"d": _xy()}, str(blocker / "e"), progress=False)


# ------------------------------------------------------------------------------------------------
# The command line: each subcommand's usage errors exit non-zero with a message naming the flag.


def _cli_cases(npz, tmp):
    config = f"--config={REPO}/configs/imagenet/deterministic.py"
    train = ["train", config, f"--config.dataset=npz:{npz}", "--config.model=mlp"]
    out = f"--output_dir={tmp}/m"
    blocker = os.path.join(tmp, "a_file")
    evaluate = ["evaluate", "--members", f"{tmp}/none*", "--output_dir", f"{tmp}/e"]
    cov = ["covariance", "--member", f"{tmp}/none"]
    return [
        ([], r"required: command"),
        (["nope"], r"invalid choice: 'nope'"),
        (["train"], r"--config=<file> and --output_dir=<dir> are required"),
        (train, r"--output_dir"),
        (["train", "--config=/nonexistent.py", out], r"No config file.*config='/nonexistent\.py'"),
        ([*train, "--config.train_epochs=abc", out], r"--config\.train_epochs=abc"),
        ([*train, "--config.per_core_batch_size=1.5", out], r"--config\.per_core_batch_size"),
        ([*train, "--config.train_epochs=0", out], r"config\.train_epochs.*train_epochs=0"),
        ([*train, "--config.no_such_field=1", out], r"no_such_field"),
        ([*train, "--config.model_kwargs.bogus=1", out], r"bogus"),
        ([*train, "--bogus_flag=1", out], r"Unknown command line flag 'bogus_flag'"),
        ([*train, f"--output_dir={blocker}/m"], r"output_dir is not a writable directory"),
        (["evaluate"], r"required: --members, --output_dir"),
        ([*evaluate, "--dataset", f"npz:{npz}", "--batch_size", "abc"], r"--batch_size"),
        ([*evaluate, "--dataset", f"npz:{npz}", "--batch_size", "0"], r"batch_size=0"),
        ([*evaluate, "--dataset", f"npz:{npz}", "--ensemble_size", "0"], r"ensemble_size=0"),
        ([*evaluate, "--dataset", f"npz:{npz}", "--num_bins", "-1"], r"num_bins=-1"),
        (evaluate, r"No dataset. Received: --dataset=\[\]"),
        ([*evaluate, "--corruptions", "all", "--severities", "x"], r"--severities='x'"),
        ([*evaluate, "--corruptions", "all", "--severities", "9"], r"severities=\[9\]"),
        ([*evaluate, "--dataset", f"npz:{npz}"], r"No member directory matches"),
        (["covariance"], r"required: --member"),
        (cov, r"no model.keras.*member="),
        ([*cov, "--top_k", "0"], r"--top_k must be >= 1"),
        ([*cov, "--batch_size", "x"], r"--batch_size: invalid int"),
        ([*cov, "--rank_by", "x"], r"--rank_by: invalid choice"),
        ([*cov, "--max_examples", "-3"], r"--max_examples must be >= 1"),
        ([*cov, "--max_examples", "0"], r"--max_examples must be >= 1"),
        (["bench", "--steps", "1"], r"--steps must be >= 5"),
        (["bench", "--samples", "a"], r"--samples must be comma-separated integers"),
        (["bench", "--samples", "0"], r"--samples values must be >= 1"),
        (["bench", "--bogus"], r"unrecognized arguments: --bogus"),
        (["bench", "--only", "bogus"], r"--only takes a subset of"),
        (["demo", "--bogus"], r"unrecognized arguments: --bogus"),
        (
            ["demo", "--output_dir", f"{tmp}/demo", "--config_dir", f"{tmp}/noconfigs"],
            r"No config file at this path.*noconfigs",
        ),
    ]


CLI_CASE_COUNT = 35


@pytest.mark.parametrize("index", range(CLI_CASE_COUNT))
def test_cli(npz, tmp_path, capsys, index):
    (tmp_path / "a_file").write_text("")
    cases = _cli_cases(npz, str(tmp_path))
    assert len(cases) == CLI_CASE_COUNT
    argv, message = cases[index]
    try:
        status = cli.main(argv)
    except SystemExit as exit_:  # argparse usage errors
        status = exit_.code
    err = capsys.readouterr().err
    assert status not in (0, None), err
    assert "Traceback" not in err
    assert re.search(message, err), err[-2000:]
    assert not os.path.exists(tmp_path / "m" / "checkpoints")  # nothing trained
