"""The Monte Carlo estimator of the heteroscedastic predictive: the hot path of every layer.

Collier et al. (CVPR 2021), Algorithm 1: latent logits

    u_s = loc + diag_scale * eps_K + factors @ eps_R,   eps_K ~ N(0, I_K), eps_R ~ N(0, I_R)

have covariance `diag(diag_scale**2) + factors @ factors^T`, and the predictive is estimated as

    log p_hat = logsumexp_s(log_softmax(u_s / tau)) - log S          (softmax)
    log p_hat = logsumexp_s(log_sigmoid(+-u_s / tau)) - log S        (sigmoid, per output)

`mc_log_predictive` computes this without ever holding all S samples: it streams over chunks of
samples with a running logsumexp, draws each chunk's noise with stateless RNG from
(seed, chunk index), and its custom gradient re-draws each chunk from that seed instead of storing
it. Peak memory is O(B * chunk * K) instead of O(B * S * K). The FA, PE and diagonal layers differ
only in how they compute `loc`, `diag_scale` and `factors`; they all call this one function.
"""

import math

import tensorflow as tf

# Elements of one [B, chunk, K] working tensor the default chunking aims for (4 MiB in float32).
# Measured at B=64, K=1000, S=1000 (chunk of 16 samples): peak memory ~0.1 GiB over a Dense head
# where chunks of 65 samples took ~0.27 GiB; per-chunk overhead stays small at this size.
DEFAULT_CHUNK_ELEMENTS = 2**20
# Batch size assumed when the static batch size is unknown (choosing the default chunk).
_ASSUMED_BATCH = 128
LINKS = ("softmax", "sigmoid")
# Smallest uniform fed to Box-Muller's log: keeps radii finite (<= 5.8 standard deviations, the
# same tail cut-off as float32 uniforms give TF's own normal sampler).
UNIFORM_FLOOR = 2.0**-24


def default_chunk_size(num_samples, batch_size, num_classes):
    """Samples per chunk so one [B, chunk, K] tensor holds about `DEFAULT_CHUNK_ELEMENTS` values."""
    batch_size = batch_size or _ASSUMED_BATCH
    chunk = DEFAULT_CHUNK_ELEMENTS // max(1, batch_size * num_classes)
    return int(max(1, min(num_samples, chunk)))


def _chunk_seed(seed, index):
    return tf.random.experimental.stateless_fold_in(seed, tf.cast(index, tf.int32))


def _draw_noise(seed, batch, num, num_classes, num_factors, share_samples):
    """Standard normal noise for one chunk of `num` samples, as two parts of [h, num - h] samples.

    eps_K comes from Box-Muller on uniforms, using both outputs: the cosine half is the first
    part's eps_K and the sine half the second's (no concatenation of the largest tensor), which
    costs ~40% less than `stateless_normal` on CPU. The contract, re-implemented by the tests,
    with h = ceil(num / 2), rows = 1 for shared samples and B otherwise:

        u = stateless_uniform([2, rows, h, K], fold_in(seed, 0), minval=2**-24)
        r, theta = sqrt(-2 log u[0]), 2 pi u[1]
        eps_K = (r cos theta, (r sin theta)[:, :num - h])
        eps_R = stateless_normal([rows, num, R], fold_in(seed, 1)) split as [:, :h], [:, h:]

    Returns:
      A list of (eps_K [rows, n_part, K], eps_R [rows, n_part, R]) pairs.
    """
    rows = 1 if share_samples else batch
    half = (num + 1) // 2
    u = tf.random.stateless_uniform(
        [2, rows, half, num_classes], seed=_chunk_seed(seed, 0), minval=UNIFORM_FLOOR
    )
    radius = tf.sqrt(-2.0 * tf.math.log(u[0]))
    theta = (2.0 * math.pi) * u[1]
    eps_r = tf.random.stateless_normal([rows, num, num_factors], seed=_chunk_seed(seed, 1))
    parts = [(radius * tf.cos(theta), eps_r[:, :half])]
    if num > half:
        parts.append(((radius * tf.sin(theta))[:, : num - half], eps_r[:, half:]))
    return parts


def _latents(loc, diag_scale, factors, eps_k, eps_r):
    """z = loc + diag_scale * eps_K + factors @ eps_R, shape [B, n, K]."""
    z = loc[:, None, :] + diag_scale[:, None, :] * eps_k
    if factors.shape[-1]:
        # [B|1, n, R] x [B, R, K]: a batched matmul (not einsum) broadcasting shared noise.
        z += tf.matmul(eps_r, factors, transpose_b=True)
    return z


def _log_link(u, link):
    """Per-sample log-probabilities: [B, n, K] (softmax) or [B, n, K, 2] (sigmoid: log p, log 1-p)."""
    if link == "softmax":
        return tf.nn.log_softmax(u, axis=-1)
    return tf.stack([tf.math.log_sigmoid(u), tf.math.log_sigmoid(-u)], axis=-1)


def _log_link_vjp(lp, grad_lp, link):
    """Cotangent of u given the cotangent of `_log_link(u)`, using only its output `lp`."""
    if link == "softmax":
        return grad_lp - tf.exp(lp) * tf.reduce_sum(grad_lp, axis=-1, keepdims=True)
    # d log sigmoid(u)/du = sigmoid(-u) = exp(lp[..., 1]); d log sigmoid(-u)/du = -exp(lp[..., 0]).
    return grad_lp[..., 0] * tf.exp(lp[..., 1]) - grad_lp[..., 1] * tf.exp(lp[..., 0])


def _logaddexp(a, b):
    m = tf.maximum(a, b)
    m_safe = tf.where(tf.math.is_finite(m), m, tf.zeros_like(m))
    return m_safe + tf.math.log(tf.exp(a - m_safe) + tf.exp(b - m_safe))


def _schedule(num_samples, chunk_size):
    """(number of full chunks, chunk size, size of the final partial chunk or 0)."""
    return num_samples // chunk_size, chunk_size, num_samples % chunk_size


def _for_each_chunk(num_samples, chunk_size, body, init):
    """Folds `body(state, chunk_index, chunk_len)` over the chunks, as a tf.while_loop."""
    num_full, size, rest = _schedule(num_samples, chunk_size)
    state = init
    if num_full:
        _, state = tf.while_loop(
            lambda i, _: i < num_full,
            lambda i, s: (i + 1, body(s, i, size)),
            (tf.constant(0), state),
            parallel_iterations=1,
        )
    if rest:
        state = body(state, tf.constant(num_full), rest)
    return state


def sample_latents(loc, diag_scale, factors, seed, *, num_samples, share_samples=False):
    """Draws S latent logit samples exactly as the estimator's first chunk does: [B, S, K].

    Used to check the sampler against the TFP distribution of a layer (`noise_distribution`).
    """
    loc = tf.convert_to_tensor(loc, tf.float32)
    if factors is None:
        factors = tf.zeros(tf.concat([tf.shape(loc), [0]], 0), tf.float32)
    parts = _draw_noise(
        _chunk_seed(tf.cast(seed, tf.int64), 0),
        tf.shape(loc)[0],
        num_samples,
        loc.shape[-1],
        factors.shape[-1],
        share_samples,
    )
    return tf.concat([_latents(loc, diag_scale, factors, *part) for part in parts], axis=1)


def mc_log_predictive(
    loc,
    diag_scale,
    factors,
    temperature,
    seed,
    *,
    num_samples,
    link="softmax",
    chunk_size=None,
    share_samples=False,
    compute_variance=False,
):
    """Monte Carlo estimate of the log predictive of the heteroscedastic model.

    Args:
      loc: [B, K] float32, the mean mu(x) of the latent logits.
      diag_scale: [B, K] float32, the diagonal standard deviations d(x) (> 0).
      factors: [B, K, R] float32 low-rank factor V(x) of the covariance, or None (diagonal).
      temperature: scalar float32 tensor tau > 0 (differentiable).
      seed: int [2] stateless seed; the same seed gives the same estimate.
      num_samples: S >= 1.
      link: "softmax" or "sigmoid".
      chunk_size: samples per chunk (None: `default_chunk_size`).
      share_samples: draw one set of S noise vectors for the whole batch.
      compute_variance: also return the MC variance of the per-sample probabilities.

    Returns:
      `log_probs`: [B, K] for softmax; [B, K, 2] for sigmoid holding (log p, log(1 - p)) per
      output. With `compute_variance`, a tuple (log_probs, variance) where `variance` [B, K] is the
      variance over samples of p_s (softmax) or sigmoid(u_s / tau), without a gradient.

    Raises:
      ValueError: on a bad `link`, `num_samples` or `chunk_size`.
    """
    if link not in LINKS:
        raise ValueError(f"link must be one of {LINKS}. Received: link={link!r}")
    if int(num_samples) < 1:
        raise ValueError(f"num_samples must be >= 1. Received: num_samples={num_samples}")
    num_samples = int(num_samples)
    loc = tf.convert_to_tensor(loc, tf.float32)
    diag_scale = tf.convert_to_tensor(diag_scale, tf.float32)
    num_classes = loc.shape[-1]
    if factors is None:
        factors = tf.zeros(tf.concat([tf.shape(loc), [0]], 0), tf.float32)
    factors = tf.convert_to_tensor(factors, tf.float32)
    num_factors = factors.shape[-1]
    temperature = tf.convert_to_tensor(temperature, tf.float32)
    seed = tf.cast(tf.convert_to_tensor(seed), tf.int64)
    if chunk_size is None:
        chunk_size = default_chunk_size(num_samples, loc.shape[0], num_classes)
    if int(chunk_size) < 1:
        raise ValueError(f"chunk_size must be >= 1 or None. Received: chunk_size={chunk_size}")
    chunk_size = min(int(chunk_size), num_samples)
    batch = tf.shape(loc)[0]
    out_shape = tf.shape(loc) if link == "softmax" else tf.concat([tf.shape(loc), [2]], 0)

    def chunk_terms(loc, diag_scale, factors, index, size):
        """Per-sample log-probabilities of one chunk's parts (temperature already folded in)."""
        parts = _draw_noise(
            _chunk_seed(seed, index), batch, size, num_classes, num_factors, share_samples
        )
        for eps_k, eps_r in parts:
            yield _log_link(_latents(loc, diag_scale, factors, eps_k, eps_r), link), eps_k, eps_r

    @tf.custom_gradient
    def estimate(loc, diag_scale, factors):
        def forward(state, index, size):
            lse, p_sum, p_sq = state
            for lp, _, _ in chunk_terms(loc, diag_scale, factors, index, size):
                lse = _logaddexp(lse, tf.reduce_logsumexp(lp, axis=1))
                if compute_variance:
                    p = tf.exp(lp if link == "softmax" else lp[..., 0])
                    p_sum += tf.reduce_sum(p, axis=1)
                    p_sq += tf.reduce_sum(tf.square(p), axis=1)
            return lse, p_sum, p_sq

        zeros = tf.zeros(tf.shape(loc))
        init = (tf.fill(out_shape, -math.inf), zeros, zeros)
        lse, p_sum, p_sq = _for_each_chunk(num_samples, chunk_size, forward, init)
        log_probs = lse - math.log(num_samples)
        mean = p_sum / num_samples
        variance = tf.maximum(p_sq / num_samples - tf.square(mean), 0.0)

        def grad(grad_log_probs, grad_variance=None):
            del grad_variance  # The variance is a diagnostic output, not differentiated.

            def backward(state, index, size):
                g_loc, g_diag, g_factors = state
                for lp, eps_k, eps_r in chunk_terms(loc, diag_scale, factors, index, size):
                    # d log_probs / d lp_s = exp(lp_s - lse): each sample's share of the mean.
                    grad_lp = grad_log_probs[:, None] * tf.exp(lp - lse[:, None])
                    grad_u = _log_link_vjp(lp, grad_lp, link)  # [B, n, K]
                    g_loc += tf.reduce_sum(grad_u, axis=1)
                    g_diag += tf.reduce_sum(grad_u * eps_k, axis=1)
                    if num_factors:
                        # [B, K, n] x [B|1, n, R] -> [B, K, R]
                        g_factors += tf.matmul(grad_u, eps_r, transpose_a=True)
                return g_loc, g_diag, g_factors

            init = (tf.zeros_like(loc), tf.zeros_like(diag_scale), tf.zeros_like(factors))
            return _for_each_chunk(num_samples, chunk_size, backward, init)

        return (log_probs, variance), grad

    # u / tau = loc / tau + (d / tau) * eps_K + (V / tau) eps_R: scaling the three small
    # tensors instead of every [B, n, K] sample, and autodiff carries the gradient to tau.
    inv_tau = 1.0 / temperature
    log_probs, variance = estimate(loc * inv_tau, diag_scale * inv_tau, factors * inv_tau)
    if compute_variance:
        return log_probs, tf.stop_gradient(variance)
    return log_probs
