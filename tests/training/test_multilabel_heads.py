"""The three sigmoid heads trained one epoch with `het-ensembles train` on a multi-hot `npz:` set.

Each member's `test/gap`, `test/map`, `test/prec@1`, `test/nll` and `test/ece` are recomputed
from its saved model's predictions (same batches: the MC head draws its noise per batch) with
scikit-learn and numpy; the config checks allow exactly the sensible head/multilabel pairs.
"""

import concurrent.futures
import json

import console
import keras
import numpy as np
import pytest
from multilabel_sets import reference_metrics, write_config, write_multilabel_npz

from het_ensembles import training

HEADS = {
    "dense": ("Dense", {"head": "deterministic"}),
    "mc_diag": (
        "MCSigmoidDenseFA",
        {
            "head": "heteroscedastic",
            "head_class": "MCSigmoidDenseFA",
            "num_factors": 0,  # diagonal
            "temperature": 1.0,
            "train_mc_samples": 8,
            "test_mc_samples": 8,
        },
    ),
    "exact": ("ExactSigmoidDense", {"head": "heteroscedastic", "head_class": "ExactSigmoidDense"}),
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("sigmoid_heads")
    write_multilabel_npz(workdir / "tags.npz")
    for name, (_, fields) in HEADS.items():
        write_config(workdir / f"{name}.py", workdir / "tags.npz", **fields)
    commands = [["train", f"--config={name}.py", f"--output_dir=runs/{name}"] for name in HEADS]
    with concurrent.futures.ThreadPoolExecutor(len(commands)) as pool:
        list(pool.map(lambda args: console.run(args, workdir), commands))
    return workdir


@pytest.mark.parametrize("name", list(HEADS))
def test_member_test_metrics_match_their_definitions(trained, name):
    member = trained / "runs" / name
    with open(member / "metrics.json") as f:
        results = json.load(f)
    with open(member / "config.json") as f:
        assert json.load(f)["multilabel"] is True
    model = keras.saving.load_model(member / "model.keras")
    assert type(model.get_layer("head")).__name__ == HEADS[name][0]
    arrays = np.load(trained / "tags.npz")
    logits = model.predict(arrays["x_test"], batch_size=8, verbose=0).astype(np.float64)
    probs = 1.0 / (1.0 + np.exp(-logits))
    for key, value in reference_metrics(arrays["y_test"].astype(np.float64), probs).items():
        assert results[f"test/{key}"] == pytest.approx(value, rel=1e-4, abs=1e-7), key
    assert "test/accuracy" not in results


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"head": "heteroscedastic", "head_class": "MCSoftmaxDenseFA"}, "multilabel"),
        (
            {"head": "heteroscedastic", "head_class": "ExactSigmoidDense", "multilabel": False},
            "sigmoid head",
        ),
        (
            {
                "head": "heteroscedastic",
                "head_class": "ExactSigmoidDense",
                "learn_temperature": True,
            },
            "learn_temperature",
        ),
        ({"head": "heteroscedastic", "head_class": "MCSigmoidDenseFA", "num_factors": -1}, "in"),
    ],
)
def test_config_refuses_head_and_multilabel_mismatches(fields, message):
    config = training.complete_config({"dataset": "synthetic", "model": "mlp", "multilabel": True})
    config.update(fields)
    with pytest.raises(training.ConfigError, match=message):
        training.validate_config(config)


@pytest.mark.parametrize("multilabel", [False, True])
def test_config_allows_the_sensible_pairs(multilabel):
    config = training.complete_config({"dataset": "synthetic", "model": "mlp"})
    config.multilabel = multilabel
    training.validate_config(config)  # a deterministic Dense head, softmax or sigmoid
    config.head = "heteroscedastic"
    config.head_class = "ExactSigmoidDense" if multilabel else "MCSoftmaxDense"
    training.validate_config(config)
    assert training.head_kwargs(config)["type"] == config.head_class
