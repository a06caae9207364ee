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


def _value_and_grads(fn, args, weights):
    """`fn(*args)` and the gradient of `sum(weights * fn(*args))` with respect to each arg.

    A non-uniform cotangent `weights` exercises every term of a backward pass.
    """
    with tf.GradientTape() as tape:
        tape.watch(args)
        out = fn(*args)
        loss = tf.reduce_sum(weights * out)
    return out, tape.gradient(loss, args)


def _heads_reference(share):
    """heads=2 materialised: the K = 6 latents as two 3-class softmaxes, 12 samples, autodiff."""

    def reference(loc, diag, factors, tau):
        z = mc.sample_latents(loc, diag, factors, SEED, num_samples=12, share_samples=share)
        lp = tf.nn.log_softmax(tf.reshape(z / tau, [B, 12, 2, K // 2]))
        return tf.reshape(tf.reduce_logsumexp(lp, axis=1) - math.log(12), [B, K])

    return reference


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

    _, got = _value_and_grads(
        lambda *a: mc.mc_log_predictive(
            *a, SEED, num_samples=40, link=link, chunk_size=9, share_samples=share
        ),
        args,
        weights,
    )
    _, want = _value_and_grads(
        lambda *a: _reference(*a, num_samples=40, chunk_size=9, link=link, share=share),
        args,
        weights,
    )
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

    got, got_grads = _value_and_grads(
        lambda *a: mc.mc_log_predictive(
            *a, SEED, num_samples=40, chunk_size=9, share_samples=share
        ),
        args,
        weights,
    )
    want, want_grads = _value_and_grads(
        lambda *a: _reference(*a, num_samples=40, chunk_size=9, link="softmax", share=share),
        args,
        weights,
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
        ({"num_samples": 5, "noise": "cauchy"}, "noise"),
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


@pytest.mark.parametrize("share", [False, True])
@pytest.mark.parametrize("noise", ["logistic", "gumbel"])
def test_inverse_cdf_noise_matches_scipy_quantiles_and_streams(noise, share):
    """eps_K = F^-1(u) of uniforms: samples pass a KS test, and the estimator uses them."""
    from scipy import stats

    u = mc.sample_latents(
        tf.zeros([1, 4]),
        tf.ones([1, 4]),
        None,
        SEED,
        num_samples=20001,
        share_samples=share,
        noise=noise,
    ).numpy()
    dist = stats.logistic if noise == "logistic" else stats.gumbel_r
    assert stats.kstest(u.ravel(), dist.cdf).pvalue > 1e-3
    loc, diag, factors, tau = _params()
    got = mc.mc_log_predictive(
        loc, diag, factors, tau, SEED, num_samples=30, share_samples=share, noise=noise
    )
    z = mc.sample_latents(
        loc, diag, factors, SEED, num_samples=30, share_samples=share, noise=noise
    )
    want = tf.reduce_logsumexp(tf.nn.log_softmax(z / tau), axis=1) - math.log(30)
    np.testing.assert_allclose(got.numpy(), want.numpy(), atol=1e-5)


@pytest.mark.parametrize("share", [False, True])
def test_heads_softmax_per_group_matches_autodiff_reference(share):
    """heads=2: K = 6 latents are two 3-class softmaxes; value and gradients vs autodiff."""
    args = _params()
    weights = tf.constant(np.random.RandomState(2).randn(B, K), tf.float32)

    got, got_grads = _value_and_grads(
        lambda *a: mc.mc_log_predictive(*a, SEED, num_samples=12, share_samples=share, heads=2),
        args,
        weights,
    )
    want, want_grads = _value_and_grads(_heads_reference(share), args, weights)
    np.testing.assert_allclose(got.numpy(), want.numpy(), atol=1e-5)
    np.testing.assert_allclose(np.exp(got.numpy()).reshape(B, 2, -1).sum(-1), 1.0, atol=1e-5)
    for g, w in zip(got_grads, want_grads):
        np.testing.assert_allclose(g.numpy(), w.numpy(), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("link", ["softmax", "sigmoid"])
@pytest.mark.parametrize("share", [False, True])
def test_per_sample_log_probs_average_to_the_estimate(link, share):
    args = _params()
    kwargs = {
        "num_samples": 25,
        "chunk_size": 7,
        "share_samples": share,
        "link": link,
        "noise": "gumbel",
    }
    per_sample = mc.per_sample_log_probs(*args, SEED, **kwargs)
    assert per_sample.shape == (B, 25, K)
    if link == "sigmoid":
        z = per_sample
        per_sample = tf.stack([tf.math.log_sigmoid(z), tf.math.log_sigmoid(-z)], -1)
    got = tf.reduce_logsumexp(per_sample, axis=1) - math.log(25)
    want = mc.mc_log_predictive(*args, SEED, **kwargs)
    np.testing.assert_allclose(got.numpy(), want.numpy(), atol=1e-5)


@pytest.mark.parametrize("link", ["softmax", "sigmoid"])
@pytest.mark.parametrize("share", [False, True])
@pytest.mark.parametrize("num_factors", [0, 2])
def test_projected_het_xl_matches_materialised_autodiff_reference(link, share, num_factors):
    """HET-XL: noise in D = 4 dims, u_s = loc + n_s W; value and all four gradients."""
    rng = np.random.RandomState(3)
    dim = 4
    loc = tf.constant(rng.randn(B, K), tf.float32)
    diag = tf.constant(0.3 + np.abs(rng.randn(B, dim)), tf.float32)
    factors = tf.constant(0.7 * rng.randn(B, dim, num_factors), tf.float32)
    projection = tf.constant(rng.randn(dim, K), tf.float32)
    tau = tf.constant(1.3)
    args = (loc, diag, factors, tau, projection)
    weights = tf.constant(rng.randn(B, K, *([2] if link == "sigmoid" else [])), tf.float32)
    kwargs = {"num_samples": 23, "link": link, "share_samples": share, "noise": "normal"}

    def ours(loc, diag, factors, tau, projection):
        return mc.mc_log_predictive(
            loc, diag, factors, tau, SEED, chunk_size=6, projection=projection, **kwargs
        )

    def reference(loc, diag, factors, tau, projection):
        # The same draws: the estimator's chunks, materialised, in D dims, then projected.
        per_sample = mc.per_sample_log_probs(
            loc, diag, factors, tau, SEED, chunk_size=6, projection=projection, **kwargs
        )
        if link == "sigmoid":
            z = per_sample
            per_sample = tf.stack([tf.math.log_sigmoid(z), tf.math.log_sigmoid(-z)], -1)
        return tf.reduce_logsumexp(per_sample, axis=1) - math.log(23)

    got, got_grads = _value_and_grads(ours, args, weights)
    want, want_grads = _value_and_grads(reference, args, weights)
    np.testing.assert_allclose(got.numpy(), want.numpy(), atol=1e-5)
    names = ["loc", "diag", "factors", "temperature", "projection"]
    for name, g, w in zip(names, got_grads, want_grads):
        if num_factors == 0 and name == "factors":
            continue  # an empty [B, D, 0] tensor: autodiff may give None
        np.testing.assert_allclose(g.numpy(), w.numpy(), rtol=1e-4, atol=1e-5, err_msg=name)


def test_projected_samples_have_the_projected_covariance():
    """n_s W with n_s ~ N(0, diag(d^2) + V V^T) has covariance W^T Sigma_D W."""
    rng = np.random.RandomState(4)
    dim, num_samples = 3, 100_000
    diag = np.abs(rng.randn(1, dim)) + 0.2
    factors = rng.randn(1, dim, 2)
    projection = rng.randn(dim, K)
    z = mc.per_sample_log_probs(
        tf.zeros([1, K]), tf.constant(diag, tf.float32), tf.constant(factors, tf.float32),
        1.0, SEED, num_samples=num_samples, link="sigmoid",
        projection=tf.constant(projection, tf.float32),
    ).numpy()[0]  # fmt: skip
    sigma = np.diag(diag[0] ** 2) + factors[0] @ factors[0].T
    want = projection.T @ sigma @ projection
    var = np.diag(want)
    se = np.sqrt((var[:, None] * var[None, :] + want**2) / num_samples)
    assert np.all(np.abs(np.cov(z.T) - want) < 5 * se)


@pytest.mark.parametrize("share", [False, True])
@pytest.mark.parametrize("noise", ["logistic", "gumbel"])
def test_inverse_cdf_noise_follows_the_draw_contract(noise, share):
    """draw_noise's Logistic/Gumbel eps_K: F^-1 of the same uniforms as Box-Muller's, u[0] for
    the first ceil(n / 2) samples and u[1] for the rest (re-implemented here in NumPy)."""
    n, h = 7, 4
    seed = tf.constant([3, 5], tf.int64)
    fold_in = tf.random.experimental.stateless_fold_in
    shape_k = [h, 1, K] if share else [B, h, K]
    u = tf.random.stateless_uniform([2, *shape_k], seed=fold_in(seed, 0)).numpy()
    v = np.maximum(u.astype(np.float64), 2.0**-24)
    inv = (np.log(v) - np.log1p(-v)) if noise == "logistic" else -np.log(-np.log(v))
    axis = 0 if share else 1
    want = np.concatenate([inv[0], np.take(inv[1], range(n - h), axis=axis)], axis=axis)
    eps_k, eps_r = mc.draw_noise(
        seed, n, batch=B, num_classes=K, num_factors=R, share=share, noise=noise
    )
    np.testing.assert_allclose(eps_k.numpy(), want, rtol=1e-5, atol=1e-5)
    shape_r = [n, R] if share else [B, n, R]
    want_r = tf.random.stateless_normal(shape_r, seed=fold_in(seed, 1))
    np.testing.assert_array_equal(eps_r.numpy(), want_r.numpy())


def _het_xl_args():
    rng = np.random.RandomState(5)
    diag = tf.constant(0.3 + np.abs(rng.randn(B, 4)), tf.float32)
    factors = tf.constant(0.7 * rng.randn(B, 4, R), tf.float32)
    projection = tf.constant(rng.randn(4, K), tf.float32)
    return (_params()[0], diag, factors, tf.constant(1.3)), {"projection": projection}


@pytest.mark.parametrize("share", [False, True])
@pytest.mark.parametrize("mode", ["heads", "gumbel", "het_xl"])
def test_memory_budget_keeps_other_modes_unchanged(mode, share):
    """Heads, inverse-CDF noise and HET-XL: kept and re-drawn noise give identical results."""
    args, extra = _params(), {}
    if mode == "heads":
        extra = {"heads": 2}
    elif mode == "gumbel":
        extra = {"noise": "gumbel"}
    else:
        args, extra = _het_xl_args()

    def run(budget):
        with tf.GradientTape() as tape:
            tape.watch(args)
            out = mc.mc_log_predictive(
                *args, SEED, num_samples=40, chunk_size=6, share_samples=share,
                memory_budget=budget, **extra,
            )  # fmt: skip
            loss = tf.reduce_sum(out[:, 0])
        return [out, *tape.gradient(loss, args)]

    for kept, redrawn in zip(run(1.0), run(0)):
        np.testing.assert_array_equal(kept.numpy(), redrawn.numpy())


@pytest.mark.parametrize("share", [False, True])
def test_heads_tiny_probabilities_fall_back_to_log_space_exactly(share):
    """heads=2 with a class at -300: the per-head softmax sum falls back to log space; value and
    gradients still match the materialised per-head reference."""
    loc, diag, factors, tau = _params()
    loc = tf.tensor_scatter_nd_update(loc, [[0, 4]], [-300.0])
    args = (loc, diag, factors, tau)
    weights = tf.constant(np.random.RandomState(6).randn(B, K), tf.float32)

    got, got_grads = _value_and_grads(
        lambda *a: mc.mc_log_predictive(*a, SEED, num_samples=12, share_samples=share, heads=2),
        args,
        weights,
    )
    want, want_grads = _value_and_grads(_heads_reference(share), args, weights)
    assert got[0, 4] < -150
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-6, atol=1e-5)
    for g, w in zip(got_grads, want_grads):
        np.testing.assert_allclose(g.numpy(), w.numpy(), rtol=1e-4, atol=1e-6)
