"""Tests of the streaming Monte Carlo estimator against independent references."""

import math

import numpy as np
import pytest
import tensorflow as tf

from het_ensembles import mc

B, K, R = 3, 6, 2
SEED = tf.constant([7, 11], tf.int64)


def _params(scale=1.0, seed=0):
    rng = np.random.RandomState(seed)
    loc = tf.constant(scale * rng.randn(B, K), tf.float32)
    diag = tf.constant(0.2 + np.abs(rng.randn(B, K)), tf.float32)
    factors = tf.constant(0.7 * rng.randn(B, K, R), tf.float32)
    return loc, diag, factors, tf.constant(1.3)


def _reference(loc, diag, factors, tau, *, num_samples, chunk_size, link, share=False):
    """All S samples materialised at once, differentiated by autodiff.

    The noise contract (documented in mc.draw_noise): chunk i of n samples, h = ceil(n / 2),
    draws uniforms u [2, B, h, K] (shared: [2, h, 1, K]) in [0, 1) from
    fold_in(fold_in(seed, i), 0) and takes eps_K as the Box-Muller pair (r cos t, r sin t),
    r = sqrt(-2 log max(u0, 2**-24)), t = 2 pi u1, stacked along samples;
    eps_R = stateless_normal([B, n, R] (shared: [n, R]), fold_in(fold_in(seed, i), 1)).
    """
    fold_in = tf.random.experimental.stateless_fold_in
    eps_k, eps_r = [], []
    for i, start in enumerate(range(0, num_samples, chunk_size)):
        n = min(chunk_size, num_samples - start)
        h = (n + 1) // 2
        seed = fold_in(SEED, i)
        shape_k, shape_r = ([h, 1, K], [n, R]) if share else ([B, h, K], [B, n, R])
        u = tf.random.stateless_uniform([2, *shape_k], seed=fold_in(seed, 0)).numpy()
        r, t = np.sqrt(-2 * np.log(np.maximum(u[0], 2.0**-24))), 2 * np.pi * u[1]
        noise_r = tf.random.stateless_normal(shape_r, seed=fold_in(seed, 1)).numpy()
        if share:  # sample-major [n, 1, K] and [n, R] -> [1, n, K] and [1, n, R]
            r, t, noise_r = r.transpose(1, 0, 2), t.transpose(1, 0, 2), noise_r[None]
        eps_k.append(np.concatenate([r * np.cos(t), (r * np.sin(t))[:, : n - h]], axis=1))
        eps_r.append(noise_r)
    eps_k = tf.constant(np.concatenate(eps_k, axis=1), tf.float32)
    eps_r = tf.constant(np.concatenate(eps_r, axis=1), tf.float32)
    u = loc[:, None] + diag[:, None] * eps_k
    u += tf.einsum("bkr,bsr->bsk", factors, tf.broadcast_to(eps_r, [B, num_samples, R]))
    u /= tau
    if link == "softmax":
        log_p = tf.nn.log_softmax(u)
    else:
        log_p = tf.stack([tf.math.log_sigmoid(u), tf.math.log_sigmoid(-u)], -1)
    return tf.reduce_logsumexp(log_p, axis=1) - math.log(num_samples)


@pytest.mark.parametrize("link", ["softmax", "sigmoid"])
@pytest.mark.parametrize("share", [False, True])
@pytest.mark.parametrize("chunk_size", [1, 7, 50])
def test_streaming_matches_materialised_reference(link, share, chunk_size):
    args = _params()
    got = mc.mc_log_predictive(
        *args, SEED, num_samples=50, link=link, chunk_size=chunk_size, share_samples=share
    )
    want = _reference(*args, num_samples=50, chunk_size=chunk_size, link=link, share=share)
    np.testing.assert_allclose(got.numpy(), want.numpy(), atol=1e-5)


@pytest.mark.parametrize("link", ["softmax", "sigmoid"])
@pytest.mark.parametrize("share", [False, True])
def test_custom_gradient_matches_autodiff(link, share):
    args = _params()
    # A non-uniform cotangent exercises every term of the backward pass.
    weights = tf.constant(
        np.random.RandomState(1).randn(B, K, *([2] if link == "sigmoid" else [])), tf.float32
    )

    def grads(fn):
        with tf.GradientTape() as tape:
            tape.watch(args)
            out = tf.reduce_sum(weights * fn(*args))
        return tape.gradient(out, args)

    got = grads(
        lambda *a: mc.mc_log_predictive(
            *a, SEED, num_samples=40, link=link, chunk_size=9, share_samples=share
        )
    )
    want = grads(lambda *a: _reference(*a, num_samples=40, chunk_size=9, link=link, share=share))
    for name, g, w in zip(["loc", "diag", "factors", "temperature"], got, want):
        np.testing.assert_allclose(g.numpy(), w.numpy(), rtol=1e-4, atol=1e-6, err_msg=name)


@pytest.mark.parametrize("share", [False, True])
def test_tiny_probabilities_fall_back_to_log_space_exactly(share):
    """A class at -300 below the rest has p ~ e**-230: float32 softmax flushes it to zero, so the
    estimator must take its log-space path; value and gradient still match the reference."""
    loc, diag, factors, tau = _params()
    loc = tf.tensor_scatter_nd_update(loc, [[0, 0]], [-300.0])
    weights = tf.constant(np.random.RandomState(2).randn(B, K), tf.float32)
    args = (loc, diag, factors, tau)

    def value_and_grads(fn):
        with tf.GradientTape() as tape:
            tape.watch(args)
            log_p = fn(*args)
            out = tf.reduce_sum(weights * log_p)
        return log_p, tape.gradient(out, args)

    got, got_grads = value_and_grads(
        lambda *a: mc.mc_log_predictive(*a, SEED, num_samples=40, chunk_size=9, share_samples=share)
    )
    want, want_grads = value_and_grads(
        lambda *a: _reference(*a, num_samples=40, chunk_size=9, link="softmax", share=share)
    )
    assert got[0, 0] < -150  # far below what probability space can represent
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-6, atol=1e-5)
    for g, w in zip(got_grads, want_grads):
        np.testing.assert_allclose(g.numpy(), w.numpy(), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("link", ["softmax", "sigmoid"])
@pytest.mark.parametrize("share", [False, True])
def test_memory_budget_changes_neither_value_nor_gradient(link, share):
    """Kept noise (budget large) and re-drawn noise (budget 0) are the same draws."""
    args = _params()

    def run(budget):
        with tf.GradientTape() as tape:
            tape.watch(args)
            out = mc.mc_log_predictive(
                *args, SEED, num_samples=40, link=link, chunk_size=6, share_samples=share,
                memory_budget=budget,
            )  # fmt: skip
            loss = tf.reduce_sum(out[..., 0] if link == "sigmoid" else out[:, 0])
        return [out, *tape.gradient(loss, args)]

    # 4 KiB keeps some of the 6 full chunks of this shape and re-draws the rest.
    for kept, redrawn in zip(run(1.0), run(0)):
        np.testing.assert_array_equal(kept.numpy(), redrawn.numpy())
    for partial, redrawn in zip(run(4 / 1024), run(0)):
        np.testing.assert_array_equal(partial.numpy(), redrawn.numpy())


def test_gradient_under_tf_function_matches_eager():
    args = _params()

    def loss(*a):
        return -tf.reduce_sum(mc.mc_log_predictive(*a, SEED, num_samples=30, chunk_size=8)[:, 0])

    def eager_grads():
        with tf.GradientTape() as tape:
            tape.watch(args)
            out = loss(*args)
        return tape.gradient(out, args)

    graph_grads = tf.function(eager_grads)
    for g, w in zip(graph_grads(), eager_grads()):
        np.testing.assert_allclose(g.numpy(), w.numpy(), rtol=1e-5, atol=1e-7)


def test_sigmoid_converges_to_gauss_hermite_quadrature():
    """One output: E[sigmoid(u / tau)], u ~ N(mu, d^2 + |v|^2), against 100-point quadrature."""
    mu, d, v, tau = 0.4, 0.8, np.array([1.1, -0.5]), 1.5
    sd = math.sqrt(d**2 + v @ v)
    nodes, w = np.polynomial.hermite_e.hermegauss(100)
    exact = float(np.sum(w / (1 + np.exp(-(mu + sd * nodes) / tau))) / math.sqrt(2 * math.pi))
    num_samples = 20000
    log_p, var = mc.mc_log_predictive(
        tf.constant([[mu]]),
        tf.constant([[d]]),
        tf.constant(v[None, None], tf.float32),
        tf.constant(tau),
        SEED,
        num_samples=num_samples,
        link="sigmoid",
        compute_variance=True,
    )
    estimate = float(np.exp(log_p[0, 0, 0]))
    stderr = math.sqrt(float(var[0, 0]) / num_samples)
    assert 0 < stderr < 0.01
    assert abs(estimate - exact) < 3 * stderr, (estimate, exact, stderr)


def test_softmax_two_classes_matches_probit_free_quadrature():
    """Two classes: softmax(u/tau)_1 = sigmoid((u1 - u0)/tau), u1 - u0 Gaussian; quadrature."""
    loc = np.array([[0.3, -0.2]])
    diag = np.array([[0.5, 0.9]])
    factors = np.array([[[0.4], [-0.6]]])
    tau = 0.9
    cov = np.diag(diag[0] ** 2) + factors[0] @ factors[0].T
    m = loc[0, 1] - loc[0, 0]
    sd = math.sqrt(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1])
    nodes, w = np.polynomial.hermite_e.hermegauss(100)
    exact = float(np.sum(w / (1 + np.exp(-(m + sd * nodes) / tau))) / math.sqrt(2 * math.pi))
    num_samples = 20000
    log_p, var = mc.mc_log_predictive(
        tf.constant(loc, tf.float32),
        tf.constant(diag, tf.float32),
        tf.constant(factors, tf.float32),
        tf.constant(tau),
        SEED,
        num_samples=num_samples,
        compute_variance=True,
    )
    stderr = math.sqrt(float(var[0, 1]) / num_samples)
    assert abs(float(np.exp(log_p[0, 1])) - exact) < 3 * stderr


def test_stable_for_extreme_logits():
    loc, diag, factors, tau = _params(scale=1e4)
    log_p = mc.mc_log_predictive(loc, diag * 1e3, factors * 1e3, tau, SEED, num_samples=100)
    assert np.all(np.isfinite(log_p.numpy()))
    np.testing.assert_allclose(np.exp(log_p.numpy()).sum(-1), 1.0, atol=1e-5)
    log_q = mc.mc_log_predictive(loc, diag, factors, tau, SEED, num_samples=100, link="sigmoid")
    assert np.all(np.isfinite(log_q.numpy()))


def test_sample_latents_match_first_chunk_of_estimator():
    loc, diag, factors, _tau = _params()
    u = mc.sample_latents(loc, diag, factors, SEED, num_samples=20)
    want = _reference(
        loc, diag, factors, tf.constant(1.0), num_samples=20, chunk_size=20, link="softmax"
    )
    got = tf.reduce_logsumexp(tf.nn.log_softmax(u), axis=1) - math.log(20)
    np.testing.assert_allclose(got.numpy(), want.numpy(), atol=1e-5)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"num_samples": 0}, "num_samples"),
        ({"num_samples": 5, "chunk_size": 0}, "chunk_size"),
        ({"num_samples": 5, "link": "tanh"}, "link"),
        ({"num_samples": 5, "memory_budget": -1}, "memory_budget"),
    ],
)
def test_bad_arguments_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        mc.mc_log_predictive(*_params(), SEED, **kwargs)


def test_default_chunk_size_bounds_working_set():
    assert mc.default_chunk_size(1000, 64, 1000) == 2**20 // 64000
    assert mc.default_chunk_size(10, 64, 1000) == 10
    assert mc.default_chunk_size(1000, 64, 10**7) == 1
