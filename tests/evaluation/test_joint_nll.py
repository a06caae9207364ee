"""`het-ensembles evaluate` reports uncertainty-baselines' joint NLL: checked against numpy.

Two members, written here: a deterministic MLP and a heteroscedastic one (MCSoftmaxDenseFA,
S = 16 test MC samples). The console script evaluates them on an `npz:` set of 21 examples in
batches of 5 (pairs of consecutive examples span batches; the 21st forms no pair). The
reference follows the definition directly: per pair of consecutive examples, the anchors drawn
with the documented seed (one multinomial call), and -log mean over ENN samples of exp(the
drawn anchors' summed label log-likelihoods). The heteroscedastic member's ENN samples are its
explicit per-sample logits (the layer rebuilt with `return_unaveraged_logits=True`, as
uncertainty-baselines' heteroscedastic.py asks for them); the deterministic member's is its
cached prediction; the ensemble's are both members' samples together.

A member of two heads (a `MultiHeadMCSoftmaxDenseFA` on a shared trunk inside a wrapper
model, as a MIMO member; config.json ensemble_size 2) is evaluated as two head members: each
head's S samples, and the ensemble all 2 S together, as uncertainty-baselines' het_mimo.py
concatenates its heads' unaveraged logits. A rank-1 model's head samples are regrouped into its
heads (checked in-process against each head's own prediction).
"""

import json
import os

import keras
import numpy as np
import pytest
from console import run
from scipy import special

from het_ensembles import layers, member_dir, models
from het_ensembles.evaluation import predict
from het_ensembles.metrics import joint

NUM_EXAMPLES, NUM_FEATURES, NUM_CLASSES, NUM_MC_SAMPLES = 21, 6, 5, 16
TAU, KAPPA = 10, 2  # uncertainty-baselines' make_nll_polyadic_calculator(tau=10, kappa=2)


def _write_member(directory, head, seed):
    model = models.build_model(
        "mlp",
        input_shape=(NUM_FEATURES,),
        num_classes=NUM_CLASSES,
        head=head,
        seed=seed,
        hidden_units=(12,),
    )
    os.makedirs(directory)
    model.save(os.path.join(directory, "model.keras"))
    config = {"num_classes": NUM_CLASSES, "multilabel": False}
    config["head"] = "deterministic" if head is None else "heteroscedastic"
    with open(os.path.join(directory, "config.json"), "w") as f:
        json.dump(config, f)


def _definition(label_log_probs):
    """The joint NLL of [S, N] label log-likelihoods, block by block as the definition reads."""
    num_blocks = label_log_probs.shape[1] // KAPPA
    counts = np.random.default_rng(joint.SEED).multinomial(TAU, [0.5, 0.5], num_blocks)
    nlls = []
    for block, (first, second) in enumerate(counts):
        a, b = label_log_probs[:, 2 * block], label_log_probs[:, 2 * block + 1]
        per_sample = first * a + second * b  # the tau drawn anchors' summed log-likelihoods
        nlls.append(-(special.logsumexp(per_sample) - np.log(len(per_sample))))
    return float(np.mean(nlls))


def _het_label_log_probs(member, x, y):
    """[S, N] from the member's explicit per-sample logits (return_unaveraged_logits=True)."""
    model = member.load_model()
    head = model.layers[-1]
    config = dict(head.get_config(), return_unaveraged_logits=True)
    sampler = type(head).from_config(config)
    features = keras.Model(model.inputs, head.input)(x)
    sampler(features)
    sampler.set_weights(head.get_weights())
    _, samples = sampler(features)  # [N, S, K] per-sample log-softmax
    samples = np.asarray(samples, np.float64)
    assert samples.shape == (NUM_EXAMPLES, NUM_MC_SAMPLES, NUM_CLASSES)
    return samples[np.arange(len(y)), :, y].T


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    root = tmp_path_factory.mktemp("joint_nll")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(NUM_EXAMPLES, NUM_FEATURES)).astype(np.float32)
    y = rng.integers(0, NUM_CLASSES, NUM_EXAMPLES)
    np.savez(root / "set.npz", x_train=x, y_train=y, x_test=x, y_test=y)
    _write_member(str(root / "members" / "det"), None, seed=1)
    het_head = {"type": "MCSoftmaxDenseFA", "num_factors": 2, "test_mc_samples": NUM_MC_SAMPLES}
    _write_member(str(root / "members" / "het"), het_head, seed=2)
    done = run(
        [
            "evaluate",
            "--members",
            f"{root}/members/*",
            "--dataset",
            f"npz:{root}/set.npz",
            "--output_dir",
            "eval",
            "--batch_size",
            "5",
            "--no_progress",
        ],
        root,
    )
    (result,) = json.loads((root / "eval" / "metrics.json").read_text()).values()
    (cache,) = [p for p in (root / "eval" / "predictions").iterdir() if p.is_dir()]
    return root, done, result, cache, x, y


def test_members_and_ensemble_match_the_definition(evaluated):
    root, done, result, cache, x, y = evaluated
    np.testing.assert_array_equal(np.load(cache / "labels.npy"), y)
    det_log_probs = np.load(cache / "det.npy").astype(np.float64)
    det = det_log_probs[np.arange(NUM_EXAMPLES), y][None]  # one ENN sample: the prediction
    (het_member,) = member_dir.find_members(str(root / "members" / "het"))
    het = _het_label_log_probs(het_member, x, y)
    # Those samples are the ones behind the member's prediction: their mean is it.
    het_log_probs = np.load(cache / "het.npy")[np.arange(NUM_EXAMPLES), y]
    np.testing.assert_allclose(
        special.logsumexp(het, axis=0) - np.log(16), het_log_probs, atol=1e-5
    )

    members = result["members"]
    assert members["det"]["joint_nll"] == pytest.approx(_definition(det), rel=1e-5)
    assert members["het"]["joint_nll"] == pytest.approx(_definition(het), rel=1e-5)
    ensemble = _definition(np.concatenate([det, het]))
    assert result["ensemble"]["joint_nll"] == pytest.approx(ensemble, rel=1e-5)
    mean = (members["det"]["joint_nll"] + members["het"]["joint_nll"]) / 2
    assert result["member_mean"]["joint_nll"] == pytest.approx(mean, rel=1e-12)
    # The console summary shows it beside NLL, accuracy and ECE.
    lines = [line.split() for line in done.stdout.splitlines()]
    assert ["dataset", "row", "nll", "accuracy", "ece", "joint_nll"] in lines
    assert any(
        line[1] == "ensemble" and line[-1] == f"{result['ensemble']['joint_nll']:.4f}"
        for line in lines
        if len(line) == 6
    )


def test_tables_are_cached_with_their_sample_counts(evaluated):
    _, _, _, cache, _, _ = evaluated
    for name, samples in (("det", 1), ("het", NUM_MC_SAMPLES)):
        sidecar = json.loads((cache / f"{name}.json").read_text())
        assert sidecar["joint_nll"] == {"tau": TAU, "kappa": KAPPA}
        assert sidecar["joint_nll_table"]["num_samples"] == samples
        table = np.load(cache / f"{name}.joint.npy")
        assert table.shape == (NUM_EXAMPLES // KAPPA, TAU + 1) and table.dtype == np.float32


def _write_two_head_member(directory):
    inputs = keras.Input((NUM_FEATURES,))
    features = keras.layers.Dense(12, activation="relu")(inputs)
    head = layers.MultiHeadMCSoftmaxDenseFA(
        NUM_CLASSES, ensemble_size=2, num_factors=2, test_mc_samples=8, logits_only=True, seed=4
    )
    trunk = keras.Model(inputs, head(features))
    images = keras.Input((NUM_FEATURES,))
    os.makedirs(directory)
    keras.Model(images, trunk(images)).save(os.path.join(directory, "model.keras"))
    config = {"num_classes": NUM_CLASSES, "multilabel": False, "head": "heteroscedastic"}
    with open(os.path.join(directory, "config.json"), "w") as f:
        json.dump({**config, "ensemble_size": 2}, f)


def test_two_head_member_pools_its_heads_samples(evaluated):
    root, _, _, _, x, y = evaluated
    _write_two_head_member(str(root / "mimo" / "m"))
    run(
        [
            "evaluate",
            "--members",
            f"{root}/mimo/m",
            "--dataset",
            f"npz:{root}/set.npz",
            "--output_dir",
            "eval_mimo",
            "--batch_size",
            "4",
            "--no_progress",
        ],
        root,
    )
    (result,) = json.loads((root / "eval_mimo" / "metrics.json").read_text()).values()
    (member,) = member_dir.find_members(str(root / "mimo" / "m"))
    model = member.load_model()
    (head,) = [layer for layer in model._flatten_layers() if hasattr(layer, "test_mc_samples")]
    sampler = type(head).from_config(dict(head.get_config(), return_unaveraged_logits=True))
    trunk = model.layers[-1]
    features = keras.Model(trunk.inputs, head.input)(x)
    sampler(features)
    sampler.set_weights(head.get_weights())
    _, samples = sampler(features)  # [N, S, 2, K]
    samples = np.asarray(samples, np.float64)[np.arange(NUM_EXAMPLES), :, :, y]  # [N, S, 2]
    heads = [samples[:, :, i].T for i in range(2)]  # each [S, N]
    rows = result["members"]
    assert set(rows) == {"m/head0", "m/head1"}
    for i, head_samples in enumerate(heads):
        assert rows[f"m/head{i}"]["joint_nll"] == pytest.approx(_definition(head_samples), rel=1e-5)
    pooled = _definition(np.concatenate(heads))
    assert result["ensemble"]["joint_nll"] == pytest.approx(pooled, rel=1e-5)


def test_rank1_members_samples_are_its_heads():
    """A rank-1 model runs its head on the batch tiled M times (member-major) and regroups the
    rows into heads: each head's S label samples must average (in probability) to that head's
    own prediction, which a wrong row-to-head mapping would break (the heads differ)."""
    model = models.build_model(
        "small_cnn_rank1",
        input_shape=(8, 8, 1),
        num_classes=NUM_CLASSES,
        ensemble_size=2,
        seed=2,
        head={"type": "MCSoftmaxDenseFA", "num_factors": 2, "test_mc_samples": 6},
        filters=(4,),
        hidden_units=8,
    )
    x = np.random.default_rng(1).normal(size=(7, 8, 8, 1)).astype(np.float32)
    y = np.array([0, 4, 2, 1, 3, 3, 0])
    runner = predict.ModelRunner(model, enn_samples=True)
    log_probs, _ = runner(x, y)  # [B, 2, K]
    samples = runner.label_log_probs.astype(np.float64)  # [S, B, 2]
    assert samples.shape == (6, 7, 2)
    at_label = np.take_along_axis(log_probs, y[:, None, None], axis=2)[..., 0]  # [B, 2]
    np.testing.assert_allclose(special.logsumexp(samples, axis=0) - np.log(6), at_label, atol=1e-5)
    assert np.abs(at_label[:, 0] - at_label[:, 1]).max() > 1e-3
