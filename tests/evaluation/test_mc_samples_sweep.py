"""`evaluate(..., test_mc_samples=[...])` against the exact predictive and MC-error theory.

Members are small Keras models saved as member directories: one `MCSoftmaxDense` head (K = 3,
diagonal Normal logit noise) with the same weights and different layer seeds, so their spread
at each S is Monte Carlo error alone. The exact predictive `E[softmax(mu + d * eps)]` is computed
by tensor-product Gauss-Hermite quadrature (numpy), the MC error of the dataset NLL by the delta
method over numpy draws; neither uses the package's estimator.
"""

import functools
import itertools
import json

import keras
import numpy as np
import pytest
import scipy.special

from het_ensembles.evaluation import evaluate
from het_ensembles.evaluation import members as members_lib
from het_ensembles.layers import MCSoftmaxDense
from het_ensembles.layers.base import MIN_SCALE

K, D, N = 3, 4, 200
SEEDS = range(8)
COUNTS = [10, 100, 1000, 10000]
OWN_S = 7  # the members' saved test_mc_samples


def _weights():
    rng = np.random.default_rng(0)
    return {
        "loc": (1.5 * rng.normal(size=(D, K)), 0.3 * rng.normal(size=K)),
        "diag": (0.3 * rng.normal(size=(D, K)), np.full(K, 1.2)),  # scales ~ softplus(1.2) = 1.5
    }


def _model(seed, weights):
    inputs = keras.Input((D,))
    head = MCSoftmaxDense(K, logits_only=True, test_mc_samples=OWN_S, seed=seed, name="head")
    model = keras.Model(inputs, head(inputs))
    for role, (kernel, bias) in weights.items():
        layer = getattr(head, f"{role}_layer")
        layer.kernel.assign(kernel.astype(np.float32))
        layer.bias.assign(bias.astype(np.float32))
    return model


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    root = tmp_path_factory.mktemp("mc_sweep")
    weights = _weights()
    for seed in SEEDS:
        (root / "het" / str(seed)).mkdir(parents=True)
        _model(seed, weights).save(root / "het" / str(seed) / "model.keras")
    dense = keras.Sequential([keras.Input((D,)), keras.layers.Dense(K, name="head")])
    (root / "dense").mkdir()
    dense.save(root / "dense" / "model.keras")
    rng = np.random.default_rng(1)
    x = rng.normal(size=(N, D)).astype(np.float32)
    loc = x @ weights["loc"][0] + weights["loc"][1]
    scale = np.logaddexp(0.0, x @ weights["diag"][0] + weights["diag"][1]) + MIN_SCALE
    probs = _exact_predictive(loc, scale)
    y = np.array([rng.choice(K, p=p / p.sum()) for p in probs])
    return root, x, y, loc, scale, probs


def _exact_predictive(loc, scale, nodes=40):
    """E[softmax(loc + scale * eps)], eps ~ N(0, I_K): Gauss-Hermite on each of the K axes."""
    t, w = np.polynomial.hermite_e.hermegauss(nodes)  # weight exp(-t^2 / 2)
    w = w / np.sqrt(2 * np.pi)
    grid = np.array(list(itertools.product(t, repeat=K)))  # [G, K]
    weight = np.prod(np.array(list(itertools.product(w, repeat=K))), axis=1)  # [G]
    out = np.empty_like(loc)
    for n in range(len(loc)):
        out[n] = weight @ scipy.special.softmax(loc[n] + scale[n] * grid, axis=1)
    return out


def _nll_mc_error(loc, scale, y, probs, count):
    """(std, bias) of the dataset NLL estimated with `count` noise draws shared by all examples.

    Inference shares the S draws across examples (the layer seed fixes them), so the errors of
    the N examples do not average out. For S <= 100 numpy simulates the estimator itself (400
    passes). For larger S the delta method: NLL_S - NLL ~ -(1/N) sum_n (r_n - 1) with
    r_n = p_S[n, y_n] / p[n, y_n] has std sigma_1 / sqrt(S), sigma_1 = std over one draw eps of
    (1/N) sum_n softmax(loc_n + scale_n eps)[y_n] / p_n[y_n]; the bias of -log of a mean
    (Jensen) is v / (2 S), v = mean_n Var r_n.
    """
    rng = np.random.default_rng(2)
    rows = np.arange(len(y))
    true = probs[rows, y]
    if count <= 100:
        nll = []
        for _ in range(400):
            eps = rng.normal(size=(count, 1, K))
            p = scipy.special.softmax(loc + scale * eps, axis=2).mean(0)  # [N, K]
            nll.append(np.mean(-np.log(p[rows, y])))
        return float(np.std(nll)), float(np.mean(nll) + np.mean(np.log(true)))
    sigma_1, variance = _delta_method(loc, scale, y, true)
    return sigma_1 / np.sqrt(count), variance / (2 * count)


@functools.cache
def _delta_method_of(key):
    loc, scale, y, true = (np.frombuffer(b).reshape(shape) for b, shape in key)
    eps = np.random.default_rng(2).normal(size=(50_000, K))
    total, variance = 0.0, 0.0
    for n in range(len(y)):
        ratio = scipy.special.softmax(loc[n] + scale[n] * eps, axis=1)[:, int(y[n])] / true[n]
        total = total + ratio
        variance += np.var(ratio) / len(y)
    return float(np.std(total / len(y))), float(variance)


def _delta_method(*arrays):
    """(sigma_1, v) of `_nll_mc_error`, computed once per set of arrays."""
    return _delta_method_of(tuple((np.asarray(a, np.float64).tobytes(), a.shape) for a in arrays))


def test_quadrature_reference_is_exact_for_zero_noise_and_matches_plain_mc():
    rng = np.random.default_rng(3)
    loc, scale = rng.normal(size=(2, K)), np.array([[0.0] * K, [1.0, 2.0, 0.5]])
    exact = _exact_predictive(loc, scale)
    np.testing.assert_allclose(exact[0], scipy.special.softmax(loc[0]), rtol=1e-12)
    eps = rng.normal(size=(400_000, K))
    mc = scipy.special.softmax(loc[1] + scale[1] * eps, axis=1).mean(0)
    np.testing.assert_allclose(exact[1], mc, atol=3e-3)


def test_sweep_approaches_the_exact_predictive_with_mc_error_like_one_over_sqrt_s(toy, tmp_path):
    root, x, y, loc, scale, probs = toy
    results = evaluate(
        f"{root}/het/*",
        {"toy": (x, y)},
        tmp_path / "eval",
        test_mc_samples=COUNTS,
        progress=False,
    )
    exact_nll = float(np.mean(-np.log(probs[np.arange(N), y])))
    sweep = results["toy"]["mc_samples"]
    assert list(sweep) == [str(s) for s in COUNTS]
    stds = []
    for count in COUNTS:
        rows = sweep[str(count)]
        expected_std, bias = _nll_mc_error(loc, scale, y, probs, count)
        stds.append(rows["member_std"]["nll"])
        # 8 seeds: 99% of sample stds lie within [0.38, 1.70] x the true one (chi, 7 dof).
        assert 0.35 * expected_std < rows["member_std"]["nll"] < 1.75 * expected_std, count
        # The members' mean (8 passes) and the ensemble (8 x S draws) within 4 sigma of the
        # exact NLL plus the estimator's bias.
        margin = 4 * expected_std / np.sqrt(8)
        assert abs(rows["member_mean"]["nll"] - exact_nll - bias) < margin, count
        assert abs(rows["ensemble"]["nll"] - exact_nll - bias / 8) < margin, count
        for name, member in rows["members"].items():
            assert member["test_mc_samples"] == count
            assert abs(member["nll"] - exact_nll - bias) < 4 * expected_std, (count, name)
    # Past the second-order regime of S = 10, the spread shrinks like 1 / sqrt(S).
    ratios = np.array(stds[1:-1]) / np.array(stds[2:])
    assert np.all((ratios > np.sqrt(10) / 2.5) & (ratios < np.sqrt(10) * 2.5)), ratios
    # At S = 10,000 the predictions themselves match the quadrature.
    cached = np.load(tmp_path / "eval" / "predictions" / "mc_samples=10000" / "toy" / "0.npy")
    np.testing.assert_allclose(np.exp(cached), probs, atol=0.02)
    top = sweep["10000"]["ensemble"]["accuracy"]
    assert top == pytest.approx(np.mean(np.argmax(probs, 1) == y), abs=2 / N)
    # The plain rows stay at the members' own S, and say so.
    assert all(m["test_mc_samples"] == OWN_S for m in results["toy"]["members"].values())
    on_disk = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert on_disk["toy"]["mc_samples"]["100"]["member_mean"]["nll"] == pytest.approx(
        sweep["100"]["member_mean"]["nll"]
    )
    assert (tmp_path / "eval" / "mc_samples.png").stat().st_size > 10_000
    leaderboard = (tmp_path / "eval" / "leaderboard.md").read_text()
    assert "| toy | 1000 | ensemble |" in leaderboard


def test_deterministic_members_are_predicted_once_and_the_same_at_every_s(toy, tmp_path):
    root, x, y, *_ = toy
    members = [f"{root}/het/0", f"{root}/het/1", f"{root}/dense"]
    results = evaluate(members, {"toy": (x, y)}, tmp_path, test_mc_samples="100,10", progress=False)
    plain = results["toy"]["members"]["dense"]
    assert plain["test_mc_samples"] is None
    for count in ("10", "100"):
        row = results["toy"]["mc_samples"][count]["members"]["dense"]
        assert row["test_mc_samples"] is None
        for key in ("nll", "accuracy", "ece", "brier", "ms_per_example"):
            assert row[key] == plain[key], key
        assert not (tmp_path / "predictions" / f"mc_samples={count}" / "toy" / "dense.npy").exists()
        assert (tmp_path / "predictions" / f"mc_samples={count}" / "toy" / "het_0.npy").exists()
    assert "Members without an MC head (dense)" in (tmp_path / "leaderboard.md").read_text()


def test_a_set_without_mc_heads_and_bad_counts_are_refused(toy, tmp_path):
    root, x, y, *_ = toy
    with pytest.raises(ValueError, match="no member has one"):
        evaluate(f"{root}/dense", {"toy": (x, y)}, tmp_path / "a", test_mc_samples=[10])
    assert not (tmp_path / "a" / "metrics.json").exists()
    for bad in ("10,x", "0", [], [2.5]):
        with pytest.raises(ValueError, match="test_mc_samples"):
            evaluate(f"{root}/het/0", {"toy": (x, y)}, tmp_path / "b", test_mc_samples=bad)


def test_override_sets_every_nested_head_and_restores_on_error():
    inner = _model(0, _weights())
    outer_input = keras.Input((D,))
    outer = keras.Model(outer_input, inner(outer_input))
    heads = members_lib.mc_heads(outer)
    assert [h.name for h in heads] == ["head"]
    assert members_lib.own_mc_samples(outer) == OWN_S
    with pytest.raises(RuntimeError), members_lib.override_test_mc_samples([outer], 123):
        assert heads[0].test_mc_samples == 123
        raise RuntimeError("interrupted")
    assert heads[0].test_mc_samples == OWN_S
