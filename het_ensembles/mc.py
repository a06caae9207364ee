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
# Distributions of the diagonal noise eps_K (edward2's `logit_noise`): standard Normal, Logistic
# and Gumbel (loc 0, scale 1, as tfp.distributions' defaults; Gumbel is not centred).
NOISES = ("normal", "logistic", "gumbel")
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


def _batch_size(loc):
    """The static batch size where known (keeps loop-carried shapes static), else dynamic."""
    return loc.shape[0] if loc.shape[0] is not None else tf.shape(loc)[0]


class _Layout:
    """Where the sample axis sits, and how the factor term is multiplied, for one noise mode.

    Per-example noise works on [B, n, K] tensors: eps_R [B, n, R] times V(x)^T [B, R, K] is a
    batched matmul. Shared noise works sample-major, [n, B, K]: eps_R [n, R] is the same for every
    example, so eps_R times V^T laid out as [R, B * K] is one large GEMM, ~2-3x faster on CPU.
    """

    def __init__(self, share_samples, batch, num_classes, num_factors, noise="normal"):
        self.share = share_samples
        self.noise = noise
        self.axis = 0 if share_samples else 1  # the sample axis of [.., K] tensors
        self.batch, self.num_classes, self.num_factors = batch, num_classes, num_factors

    def expand(self, t):
        """[B, K, ...] per-example tensor -> broadcastable against [.., K] sample tensors."""
        return tf.expand_dims(t, self.axis)

    def factor_operand(self, factors):
        """V(x) [B, K, R] rearranged once per call for the sampling matmul."""
        if self.share:
            return tf.reshape(tf.transpose(factors, [2, 0, 1]), [self.num_factors, -1])
        return tf.transpose(factors, [0, 2, 1])  # [B, R, K]

    def split(self, t, start, stop):
        return t[start:stop] if self.share else t[:, start:stop]

    def draw(self, seed, num):
        """Standard normal noise for one chunk of `num` samples, as two parts [h, num - h].

        eps_K comes from Box-Muller on uniforms, using both outputs: the cosine half is the
        first part's eps_K and the sine half the second's (no concatenation of the largest
        tensor); this costs ~40% less than `stateless_normal` on CPU. The contract, which the
        tests re-implement, with h = ceil(num / 2):

            u = stateless_uniform([2, *shape_K(h)], fold_in(seed, 0), minval=2**-24)
            r, theta = sqrt(-2 log u[0]), 2 pi u[1]
            eps_K = (r cos theta, r sin theta) split over the sample axis
            eps_R = stateless_normal(shape_R(num), fold_in(seed, 1)) split as [:h], [h:]

        where shape_K(n) = [B, n, K] and shape_R(n) = [B, n, R] per example, and
        [n, 1, K] and [n, R] when samples are shared. Logistic and Gumbel eps_K come from the
        same uniforms by their inverse CDF, one sample per uniform: F^-1(u[0]) is the first
        part's eps_K and F^-1(u[1]) the second's, with F^-1(u) = log(u) - log(1 - u)
        (Logistic) and -log(-log(u)) (Gumbel).

        Returns:
          A list of (eps_K, eps_R) pairs, one per part.
        """
        half = (num + 1) // 2
        k = self.num_classes
        shape_k = [half, 1, k] if self.share else [self.batch, half, k]
        shape_r = [num, self.num_factors] if self.share else [self.batch, num, self.num_factors]
        u = tf.random.stateless_uniform(
            [2, *shape_k], seed=_chunk_seed(seed, 0), minval=UNIFORM_FLOOR
        )
        eps_r = tf.random.stateless_normal(shape_r, seed=_chunk_seed(seed, 1))
        if self.noise == "normal":
            radius = tf.sqrt(-2.0 * tf.math.log(u[0]))
            theta = (2.0 * math.pi) * u[1]
            first, second = radius * tf.cos(theta), radius * tf.sin(theta)
        else:
            first, second = _inverse_cdf(u[0], self.noise), _inverse_cdf(u[1], self.noise)
        parts = [(first, self.split(eps_r, 0, half))]
        if num > half:
            parts.append((self.split(second, 0, num - half), self.split(eps_r, half, num)))
        return parts

    def latents(self, loc, diag_scale, factor_operand, eps_k, eps_r):
        """z = loc + diag_scale * eps_K + V eps_R: [B, n, K] per example, [n, B, K] shared."""
        z = self.expand(loc) + self.expand(diag_scale) * eps_k
        if self.num_factors:
            if self.share:
                # [n, R] x [R, B * K] -> [n, B, K]
                z += tf.reshape(
                    tf.matmul(eps_r, factor_operand), [-1, self.batch, self.num_classes]
                )
            else:
                z += tf.matmul(eps_r, factor_operand)  # [B, n, R] x [B, R, K] -> [B, n, K]
        return z

    def factor_grad(self, grad_z, eps_r):
        """d/dV of sum(grad_z * (V eps_R)), as [B, K, R]."""
        if self.share:
            flat = tf.reshape(grad_z, [tf.shape(eps_r)[0], -1])  # [n, B * K]
            grad = tf.matmul(flat, eps_r, transpose_a=True)  # [B * K, R]
            return tf.reshape(grad, [self.batch, self.num_classes, self.num_factors])
        return tf.matmul(grad_z, eps_r, transpose_a=True)  # [B, K, n] x [B, n, R]


def _inverse_cdf(u, noise):
    """Standard Logistic or Gumbel noise from uniforms u in [2**-24, 1) (finite everywhere)."""
    if noise == "logistic":
        return tf.math.log(u) - tf.math.log1p(-u)
    return -tf.math.log(-tf.math.log(u))


def _grouped(t, heads):
    """[.., heads * K] -> [.., heads, K], for per-head softmaxes (MultiHeadMCSoftmaxDenseFA)."""
    return tf.reshape(t, tf.concat([tf.shape(t)[:-1], [heads, -1]], 0))


def _log_link(u, link, heads=1):
    """Per-sample log-probabilities: [.., K] (softmax) or [.., K, 2] (sigmoid: log p, log 1-p)."""
    if link == "softmax" and heads > 1:
        return tf.reshape(tf.nn.log_softmax(_grouped(u, heads), axis=-1), tf.shape(u))
    if link == "softmax":
        return tf.nn.log_softmax(u, axis=-1)
    return tf.stack([tf.math.log_sigmoid(u), tf.math.log_sigmoid(-u)], axis=-1)


def _log_link_vjp(lp, grad_lp, link, heads=1):
    """Cotangent of u given the cotangent of `_log_link(u)`, using only its output `lp`."""
    if link == "softmax" and heads > 1:
        total = tf.reduce_sum(_grouped(grad_lp, heads), axis=-1, keepdims=True)
        return grad_lp - tf.exp(lp) * tf.reshape(
            tf.broadcast_to(total, tf.shape(_grouped(lp, heads))), tf.shape(lp)
        )
    if link == "softmax":
        return grad_lp - tf.exp(lp) * tf.reduce_sum(grad_lp, axis=-1, keepdims=True)
    # d log sigmoid(u)/du = sigmoid(-u) = exp(lp[..., 1]); d log sigmoid(-u)/du = -exp(lp[..., 0]).
    return grad_lp[..., 0] * tf.exp(lp[..., 1]) - grad_lp[..., 1] * tf.exp(lp[..., 0])


def _logaddexp(a, b):
    m = tf.maximum(a, b)
    m_safe = tf.where(tf.math.is_finite(m), m, tf.zeros_like(m))
    return m_safe + tf.math.log(tf.exp(a - m_safe) + tf.exp(b - m_safe))


def _check_noise(noise):
    if noise not in NOISES:
        raise ValueError(f"noise must be one of {NOISES}. Received: noise={noise!r}")


def _factors_tensor(loc, factors):
    """`factors` as a float32 [B, K, R] tensor; None (diagonal model) becomes [B, K, 0]."""
    if factors is None:
        return tf.zeros(tf.concat([tf.shape(loc), [0]], 0), tf.float32)
    return tf.convert_to_tensor(factors, tf.float32)


def _for_each_chunk(num_samples, chunk_size, body, init):
    """Folds `body(state, chunk_index, chunk_len)` over the chunks, as a tf.while_loop.

    Chunks depend on each other only through the small accumulators, so two iterations may run
    at once (sampling and log-softmax of the next chunk overlap the current one's reductions).
    """
    num_full, rest = divmod(num_samples, chunk_size)
    state = init
    if num_full:
        _, state = tf.while_loop(
            lambda i, _: i < num_full,
            lambda i, s: (i + 1, body(s, i, chunk_size)),
            (tf.constant(0), state),
            parallel_iterations=2,
        )
    if rest:
        state = body(state, tf.constant(num_full), rest)
    return state


def sample_latents(
    loc, diag_scale, factors, seed, *, num_samples, share_samples=False, noise="normal"
):
    """Draws S latent logit samples exactly as the estimator's first chunk does: [B, S, K].

    Used to check the sampler against the TFP distribution of a layer (`noise_distribution`).
    """
    loc = tf.convert_to_tensor(loc, tf.float32)
    factors = _factors_tensor(loc, factors)
    _check_noise(noise)
    layout = _Layout(share_samples, _batch_size(loc), loc.shape[-1], factors.shape[-1], noise)
    operand = layout.factor_operand(factors)
    seed = _chunk_seed(tf.cast(seed, tf.int64), 0)
    parts = layout.draw(seed, num_samples)
    z = tf.concat([layout.latents(loc, diag_scale, operand, *p) for p in parts], layout.axis)
    return tf.transpose(z, [1, 0, 2]) if share_samples else z


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
    noise="normal",
    heads=1,
    projection=None,
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
      noise: distribution of eps_K, one of `NOISES` (edward2's `logit_noise`); eps_R stays
        normal.
      heads: softmax only: the K latents are `heads` groups of K / heads logits (in that
        order), each with its own softmax (edward2's MultiHeadMCSoftmaxDenseFA).
      projection: HET-XL (Collier et al., ICLR 2023): a [D, K] matrix W. The noise lives in
        the D-dim pre-logit space -- `diag_scale` is [B, D] and `factors` [B, D, R] -- and
        every sample goes through the logit layer: u_s = loc + (d * eps_D + V eps_R) W.
        Differentiable in W too (see `_mc_log_predictive_projected`).

    Returns:
      `log_probs`: [B, K] for softmax; [B, K, 2] for sigmoid holding (log p, log(1 - p)) per
      output. With `compute_variance`, a tuple (log_probs, variance) where `variance` [B, K] is the
      variance over samples of p_s (softmax) or sigmoid(u_s / tau), without a gradient.

    Raises:
      ValueError: on a bad `link`, `noise`, `num_samples` or `chunk_size`.
    """
    if link not in LINKS:
        raise ValueError(f"link must be one of {LINKS}. Received: link={link!r}")
    _check_noise(noise)
    if int(num_samples) < 1:
        raise ValueError(f"num_samples must be >= 1. Received: num_samples={num_samples}")
    num_samples = int(num_samples)
    loc = tf.convert_to_tensor(loc, tf.float32)
    if heads < 1 or loc.shape[-1] % heads or (heads > 1 and link != "softmax"):
        raise ValueError(
            f"heads must divide the number of latents ({loc.shape[-1]}) and needs "
            f"link='softmax'. Received: heads={heads}, link={link!r}"
        )
    diag_scale = tf.convert_to_tensor(diag_scale, tf.float32)
    num_classes = loc.shape[-1]
    factors = _factors_tensor(loc, factors)
    num_factors = factors.shape[-1]
    temperature = tf.convert_to_tensor(temperature, tf.float32)
    seed = tf.cast(tf.convert_to_tensor(seed), tf.int64)
    if chunk_size is None:
        chunk_size = default_chunk_size(num_samples, loc.shape[0], num_classes)
    if int(chunk_size) < 1:
        raise ValueError(f"chunk_size must be >= 1 or None. Received: chunk_size={chunk_size}")
    chunk_size = min(int(chunk_size), num_samples)
    if projection is not None:
        return _mc_log_predictive_projected(
            loc, diag_scale, factors, temperature, seed, projection,
            num_samples=num_samples, link=link, chunk_size=chunk_size,
            share_samples=share_samples, compute_variance=compute_variance, noise=noise,
            heads=heads,
        )  # fmt: skip
    layout = _Layout(share_samples, _batch_size(loc), num_classes, num_factors, noise)
    out_shape = tf.shape(loc) if link == "softmax" else tf.concat([tf.shape(loc), [2]], 0)

    def chunk_terms(loc, diag_scale, operand, index, size):
        """Per-sample log-probabilities of one chunk's parts (temperature already folded in)."""
        for eps_k, eps_r in layout.draw(_chunk_seed(seed, index), size):
            z = layout.latents(loc, diag_scale, operand, eps_k, eps_r)
            yield _log_link(z, link, heads), eps_k, eps_r

    @tf.custom_gradient
    def estimate(loc, diag_scale, factors):
        operand = layout.factor_operand(factors)
        axis = layout.axis

        def forward(state, index, size):
            lse, p_sum, p_sq = state
            for lp, _, _ in chunk_terms(loc, diag_scale, operand, index, size):
                lse = _logaddexp(lse, tf.reduce_logsumexp(lp, axis=axis))
                if compute_variance:
                    p = tf.exp(lp if link == "softmax" else lp[..., 0])
                    p_sum += tf.reduce_sum(p, axis=axis)
                    p_sq += tf.reduce_sum(tf.square(p), axis=axis)
            return lse, p_sum, p_sq

        zeros = tf.zeros(tf.shape(loc))
        init = (tf.fill(out_shape, -math.inf), zeros, zeros)
        lse, p_sum, p_sq = _for_each_chunk(num_samples, chunk_size, forward, init)
        log_probs = lse - math.log(num_samples)
        mean = p_sum / num_samples
        variance = tf.maximum(p_sq / num_samples - tf.square(mean), 0.0)

        def grad(grad_log_probs, grad_variance=None):
            del grad_variance  # The variance is a diagnostic output, not differentiated.
            grad_log_probs = layout.expand(grad_log_probs)
            lse_expanded = layout.expand(lse)

            def backward(state, index, size):
                g_loc, g_diag, g_factors = state
                for lp, eps_k, eps_r in chunk_terms(loc, diag_scale, operand, index, size):
                    # d log_probs / d lp_s = exp(lp_s - lse): each sample's share of the mean.
                    grad_lp = grad_log_probs * tf.exp(lp - lse_expanded)
                    grad_z = _log_link_vjp(lp, grad_lp, link, heads)  # like z: [.., K]
                    g_loc += tf.reduce_sum(grad_z, axis=axis)
                    g_diag += tf.reduce_sum(grad_z * eps_k, axis=axis)
                    if num_factors:
                        g_factors += layout.factor_grad(grad_z, eps_r)
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


def per_sample_log_probs(
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
    noise="normal",
    heads=1,
    projection=None,
):
    """The per-sample log-probabilities that `mc_log_predictive` averages, all S at once.

    Same arguments (`projection` too) and noise (chunk by chunk, from the same seeds) as
    `mc_log_predictive`, so
    `logsumexp` over the sample axis of this, minus log S, is its estimate. It materialises
    [B, S, K] (differentiated by autodiff): for edward2's `return_unaveraged_logits`, not for
    the training loss.

    Returns:
      [B, S, K] log-softmax (per head) of u_s / tau for softmax; for sigmoid the logits
      u_s / tau themselves (the inverse sigmoid of the per-sample probabilities).
    """
    _check_noise(noise)
    loc = tf.convert_to_tensor(loc, tf.float32)
    diag_scale = tf.convert_to_tensor(diag_scale, tf.float32)
    factors = _factors_tensor(diag_scale, factors)  # [B, K or D, R]
    inv_tau = 1.0 / tf.convert_to_tensor(temperature, tf.float32)
    loc, diag_scale, factors = loc * inv_tau, diag_scale * inv_tau, factors * inv_tau
    if chunk_size is None:
        chunk_size = default_chunk_size(num_samples, loc.shape[0], loc.shape[-1])
    chunk_size = min(int(chunk_size), int(num_samples))
    noise_dim = diag_scale.shape[-1]
    layout = _Layout(share_samples, _batch_size(loc), noise_dim, factors.shape[-1], noise)
    operand = layout.factor_operand(factors)
    seed = tf.cast(tf.convert_to_tensor(seed), tf.int64)
    chunks = []
    for index, start in enumerate(range(0, int(num_samples), chunk_size)):
        size = min(chunk_size, int(num_samples) - start)
        for eps_k, eps_r in layout.draw(_chunk_seed(seed, index), size):
            if projection is None:
                chunks.append(layout.latents(loc, diag_scale, operand, eps_k, eps_r))
            else:
                pre = layout.latents(tf.zeros([1, 1]), diag_scale, operand, eps_k, eps_r)
                chunks.append(layout.expand(loc) + _project(pre, projection))
    z = tf.concat(chunks, layout.axis)
    if share_samples:
        z = tf.transpose(z, [1, 0, 2])  # [S, B, K] -> [B, S, K]
    return _log_link(z, "softmax", heads) if link == "softmax" else z


def _project(noise, projection):
    """[.., D] x [D, K] -> [.., K], keeping static shapes (a loop-carried shape stays known)."""
    return tf.tensordot(noise, projection, axes=1)


def _mc_log_predictive_projected(
    loc,
    diag_scale,
    factors,
    temperature,
    seed,
    projection,
    *,
    num_samples,
    link,
    chunk_size,
    share_samples,
    compute_variance,
    noise,
    heads,
):
    """`mc_log_predictive` for HET-XL: noise drawn in D dims, each sample projected by W.

    Same chunking, stateless seeds and recomputed backward pass as the K-dim path: the noise
    n_s = d * eps_D + V eps_R is drawn by `_Layout` in D dims (exactly as the K-dim path draws
    with K replaced by D), u_s = loc + n_s W, and the backward pass re-draws each chunk and
    accumulates dW = sum_s n_s^T du_s. Peak memory O(B * chunk * (D + K)).
    """
    projection = tf.convert_to_tensor(projection, tf.float32)
    latent_dim = diag_scale.shape[-1]
    if factors.shape[-1] == 0:  # the diagonal model: an empty [B, D, 0] factor
        factors = tf.zeros(tf.concat([tf.shape(diag_scale), [0]], 0))
    if projection.shape[0] != latent_dim or projection.shape[-1] != loc.shape[-1]:
        raise ValueError(
            f"projection must be [D, K] = [{latent_dim}, {loc.shape[-1]}]. "
            f"Received: projection.shape={projection.shape}"
        )
    layout = _Layout(share_samples, _batch_size(loc), latent_dim, factors.shape[-1], noise)
    out_shape = tf.shape(loc) if link == "softmax" else tf.concat([tf.shape(loc), [2]], 0)
    no_loc = tf.zeros([1, 1])

    def chunk_terms(loc, diag_scale, operand, projection, index, size):
        for eps_k, eps_r in layout.draw(_chunk_seed(seed, index), size):
            pre = layout.latents(no_loc, diag_scale, operand, eps_k, eps_r)  # n_s: [.., D]
            z = layout.expand(loc) + _project(pre, projection)  # [.., K]
            yield _log_link(z, link, heads), pre, eps_k, eps_r

    @tf.custom_gradient
    def estimate(loc, diag_scale, factors, projection):
        operand = layout.factor_operand(factors)
        axis = layout.axis

        def forward(state, index, size):
            lse, p_sum, p_sq = state
            for lp, _, _, _ in chunk_terms(loc, diag_scale, operand, projection, index, size):
                lse = _logaddexp(lse, tf.reduce_logsumexp(lp, axis=axis))
                if compute_variance:
                    p = tf.exp(lp if link == "softmax" else lp[..., 0])
                    p_sum += tf.reduce_sum(p, axis=axis)
                    p_sq += tf.reduce_sum(tf.square(p), axis=axis)
            return lse, p_sum, p_sq

        zeros = tf.zeros(tf.shape(loc))
        init = (tf.fill(out_shape, -math.inf), zeros, zeros)
        lse, p_sum, p_sq = _for_each_chunk(num_samples, chunk_size, forward, init)
        log_probs = lse - math.log(num_samples)
        mean = p_sum / num_samples
        variance = tf.maximum(p_sq / num_samples - tf.square(mean), 0.0)

        def grad(grad_log_probs, grad_variance=None):
            del grad_variance
            grad_log_probs = layout.expand(grad_log_probs)
            lse_expanded = layout.expand(lse)

            def backward(state, index, size):
                g_loc, g_diag, g_factors, g_proj = state
                terms = chunk_terms(loc, diag_scale, operand, projection, index, size)
                for lp, pre, eps_k, eps_r in terms:
                    grad_lp = grad_log_probs * tf.exp(lp - lse_expanded)
                    grad_z = _log_link_vjp(lp, grad_lp, link, heads)  # [.., K]
                    g_loc += tf.reduce_sum(grad_z, axis=axis)
                    g_proj += tf.tensordot(pre, grad_z, axes=[[0, 1], [0, 1]])  # [D, K]
                    grad_pre = tf.tensordot(grad_z, projection, axes=[[2], [1]])  # [.., D]
                    g_diag += tf.reduce_sum(grad_pre * eps_k, axis=axis)
                    if layout.num_factors:
                        g_factors += layout.factor_grad(grad_pre, eps_r)
                return g_loc, g_diag, g_factors, g_proj

            init = (
                tf.zeros_like(loc),
                tf.zeros_like(diag_scale),
                tf.zeros_like(factors),
                tf.zeros_like(projection),
            )
            return _for_each_chunk(num_samples, chunk_size, backward, init)

        return (log_probs, variance), grad

    # u / tau = loc / tau + ((d / tau) * eps + (V / tau) eps_R) W.
    inv_tau = 1.0 / temperature
    log_probs, variance = estimate(
        loc * inv_tau, diag_scale * inv_tau, factors * inv_tau, projection
    )
    if compute_variance:
        return log_probs, tf.stop_gradient(variance)
    return log_probs
