"""`mc_log_predictive` (the streaming estimator with its custom gradient), and the samplers
that share its noise: `sample_latents`, `per_sample_log_probs` and
`per_sample_label_log_probs`."""

import math

import tensorflow as tf

from het_ensembles.mc.layout import (
    DEFAULT_MEMORY_BUDGET_MIB,
    _batch_size,
    _Chunks,
    _factors_tensor,
    _Layout,
    default_chunk_size,
)
from het_ensembles.mc.noise import _check_noise, _chunk_seed

LINKS = ("softmax", "sigmoid")
# Probability space is used only where every summed probability is >= S * 2**-100: a softmax
# output below 2**-126 may be flushed to zero, so S of them lose < S * 2**-126, i.e. a relative
# error < 2**-26 of such a sum (below float32 rounding).
_MIN_PROB_SUM_PER_SAMPLE = 2.0**-100


def _grouped(t, heads):
    """[.., heads * K] -> [.., heads, K], for per-head softmaxes (MultiHeadMCSoftmaxDenseFA)."""
    return tf.reshape(t, tf.concat([tf.shape(t)[:-1], [heads, -1]], 0))


def _group_sum(t, heads):
    """Sum over the last axis within each head, broadcast back to t's shape ([.., 1] for one)."""
    if heads == 1:
        return tf.reduce_sum(t, axis=-1, keepdims=True)
    total = tf.reduce_sum(_grouped(t, heads), axis=-1, keepdims=True)
    return tf.reshape(tf.broadcast_to(total, tf.shape(_grouped(t, heads))), tf.shape(t))


def _softmax(u, heads):
    if heads == 1:
        return tf.nn.softmax(u, axis=-1)
    return tf.reshape(tf.nn.softmax(_grouped(u, heads), axis=-1), tf.shape(u))


def _log_link(u, link, heads=1):
    """Per-sample log-probabilities: [.., K] (softmax) or [.., K, 2] (sigmoid: log p, log 1-p)."""
    if link == "softmax" and heads > 1:
        return tf.reshape(tf.nn.log_softmax(_grouped(u, heads), axis=-1), tf.shape(u))
    if link == "softmax":
        return tf.nn.log_softmax(u, axis=-1)
    return tf.stack([tf.math.log_sigmoid(u), tf.math.log_sigmoid(-u)], axis=-1)


def _log_link_vjp(lp, grad_lp, link, heads=1):
    """Cotangent of u given the cotangent of `_log_link(u)`, using only its output `lp`."""
    if link == "softmax":
        return grad_lp - tf.exp(lp) * _group_sum(grad_lp, heads)
    # d log sigmoid(u)/du = sigmoid(-u) = exp(lp[..., 1]); d log sigmoid(-u)/du = -exp(lp[..., 0]).
    return grad_lp[..., 0] * tf.exp(lp[..., 1]) - grad_lp[..., 1] * tf.exp(lp[..., 0])


def _logaddexp(a, b):
    m = tf.maximum(a, b)
    m_safe = tf.where(tf.math.is_finite(m), m, tf.zeros_like(m))
    return m_safe + tf.math.log(tf.exp(a - m_safe) + tf.exp(b - m_safe))


def _project(noise, projection):
    """[.., D] x [D, K] -> [.., K], keeping static shapes (a loop-carried shape stays known)."""
    return tf.tensordot(noise, projection, axes=1)


def sample_latents(
    loc, diag_scale, factors, seed, *, num_samples, share_samples=False, noise="normal"
):
    """Draws S latent logit samples exactly as the estimator's first chunk does: [B, S, K].

    Used to check the sampler against the TFP distribution of a layer (`noise_distribution`).
    """
    _check_noise(noise)
    loc = tf.convert_to_tensor(loc, tf.float32)
    factors = _factors_tensor(loc, factors)
    layout = _Layout(share_samples, _batch_size(loc), loc.shape[-1], factors.shape[-1], noise)
    operand = layout.operand(loc, factors)
    seed = _chunk_seed(tf.cast(seed, tf.int64), 0)
    eps_k, eps_r = layout.draw(seed, num_samples)
    z = layout.latents(diag_scale, operand, eps_k, layout.with_ones(eps_r))
    return tf.transpose(z, [1, 0, 2]) if share_samples else z


def _check_options(link, noise, num_samples, memory_budget):
    """ValueError for a bad `link`, `noise`, `num_samples` or `memory_budget` (in that order)."""
    if link not in LINKS:
        raise ValueError(f"link must be one of {LINKS}. Received: link={link!r}")
    _check_noise(noise)
    if int(num_samples) < 1:
        raise ValueError(f"num_samples must be >= 1. Received: num_samples={num_samples}")
    if not (isinstance(memory_budget, (int, float)) and memory_budget >= 0):
        raise ValueError(
            f"memory_budget must be a number of MiB >= 0. Received: memory_budget={memory_budget!r}"
        )


def _check_heads(heads, num_classes, link):
    """ValueError unless `heads` divides the K latents (more than one: softmax only)."""
    if heads < 1 or num_classes % heads or (heads > 1 and link != "softmax"):
        raise ValueError(
            f"heads must divide the number of latents ({num_classes}) and needs "
            f"link='softmax'. Received: heads={heads}, link={link!r}"
        )


def _projection_tensor(projection, noise_dim, num_classes):
    """HET-XL's [D, K] float32 `projection` (checked), or a [0, 0] placeholder when None."""
    if projection is None:
        return tf.zeros([0, 0])  # a placeholder input of the custom gradient
    projection = tf.convert_to_tensor(projection, tf.float32)
    if projection.shape[0] != noise_dim or projection.shape[-1] != num_classes:
        raise ValueError(
            f"projection must be [D, K] = [{noise_dim}, {num_classes}]. "
            f"Received: projection.shape={projection.shape}"
        )
    return projection


def _chunk_size(chunk_size, num_samples, batch_size, num_classes):
    """Samples per chunk: `chunk_size` (None: `default_chunk_size`) checked, at most S."""
    if chunk_size is None:
        chunk_size = default_chunk_size(num_samples, batch_size, num_classes)
    if int(chunk_size) < 1:
        raise ValueError(f"chunk_size must be >= 1 or None. Received: chunk_size={chunk_size}")
    return min(int(chunk_size), num_samples)


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
    memory_budget=DEFAULT_MEMORY_BUDGET_MIB,
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
      memory_budget: MiB of noise the forward pass may keep for the backward pass (>= 0); chunks
        beyond it are re-drawn. Results do not depend on it, only time and memory do.
      noise: distribution of eps_K, one of `NOISES` (edward2's `logit_noise`); eps_R stays
        normal.
      heads: softmax only: the K latents are `heads` groups of K / heads logits (in that
        order), each with its own softmax (edward2's MultiHeadMCSoftmaxDenseFA).
      projection: HET-XL (Collier et al., ICLR 2023): a [D, K] matrix W. The noise lives in
        the D-dim pre-logit space -- `diag_scale` is [B, D] and `factors` [B, D, R] -- and
        every sample goes through the logit layer: u_s = loc + (d * eps_D + V eps_R) W.
        Differentiable in W too (dW = sum_s n_s^T du_s, accumulated in the backward pass).

    Returns:
      `log_probs`: [B, K] for softmax; [B, K, 2] for sigmoid holding (log p, log(1 - p)) per
      output. With `compute_variance`, a tuple (log_probs, variance) where `variance` [B, K] is the
      variance over samples of p_s (softmax) or sigmoid(u_s / tau), without a gradient.

    Raises:
      ValueError: on a bad `link`, `noise`, `heads`, `projection`, `num_samples`, `chunk_size`
        or `memory_budget`.
    """
    _check_options(link, noise, num_samples, memory_budget)
    num_samples = int(num_samples)
    loc = tf.convert_to_tensor(loc, tf.float32)
    num_classes = loc.shape[-1]
    _check_heads(heads, num_classes, link)
    diag_scale = tf.convert_to_tensor(diag_scale, tf.float32)
    noise_dim = diag_scale.shape[-1]  # K, or D with a projection
    factors = _factors_tensor(diag_scale, factors)
    num_factors = factors.shape[-1]
    projected = projection is not None
    projection = _projection_tensor(projection, noise_dim, num_classes)
    temperature = tf.convert_to_tensor(temperature, tf.float32)
    seed = tf.cast(tf.convert_to_tensor(seed), tf.int64)
    chunk_size = _chunk_size(chunk_size, num_samples, loc.shape[0], num_classes)
    layout = _Layout(share_samples, _batch_size(loc), noise_dim, num_factors, noise)
    axis = layout.axis
    out_shape = tf.shape(loc) if link == "softmax" else tf.concat([tf.shape(loc), [2]], 0)
    # Probability space needs the softmax link. HET-XL keeps to log space: its dW sums over the
    # batch, so the prob-space backward's per-example rescaling of c (below) cannot be undone on
    # it. The noise type does not matter (the sum over samples is the same for any eps_K).
    prob_space_ok = link == "softmax" and not projected

    # One closure on purpose: tf.custom_gradient's `grad` must see the forward pass's state
    # (lse or p_sum, which space it used) and recompute the same chunks from the same seed,
    # layout and operand; the helpers below share those tensors instead of passing them around.
    @tf.custom_gradient
    def estimate(loc, diag_scale, factors, projection):
        # Without a projection loc is folded into the sampling matmul; with one it is added to
        # the projected K-dim samples and the D-dim noise has no mean.
        operand = layout.operand(tf.zeros_like(diag_scale) if projected else loc, factors)
        chunks = _Chunks(layout, seed, num_samples, chunk_size, memory_budget)
        zeros = tf.zeros(tf.shape(loc))

        def latents(eps_k, eps_r):
            """(z [.., K], the pre-logit noise n_s [.., D] or None)."""
            pre = layout.latents(diag_scale, operand, eps_k, layout.with_ones(eps_r))
            if not projected:
                return pre, None
            return layout.expand(loc) + _project(pre, projection), pre

        def add_grads(state, grad_z, pre, eps_k, eps_r):
            """(d/d[V, loc], d/d diag_scale[, d/d loc, d/dW]) accumulated over one chunk."""
            if projected:
                g_operand, g_diag, g_loc, g_proj = state
                g_loc += tf.reduce_sum(grad_z, axis=axis)
                g_proj += tf.tensordot(pre, grad_z, axes=[[0, 1], [0, 1]])  # [D, K]
                grad_z = tf.tensordot(grad_z, projection, axes=[[2], [1]])  # d/dn_s: [.., D]
                extra = (g_loc, g_proj)
            else:
                (g_operand, g_diag), extra = state, ()
            return (
                g_operand + layout.operand_grad(grad_z, layout.with_ones(eps_r)),
                g_diag + tf.reduce_sum(grad_z * eps_k, axis=axis),
                *extra,
            )

        def split_grads(g_operand, g_diag, *extra):
            """(g_loc, g_diag, g_factors, g_projection) from the accumulated state."""
            g_factors = g_operand[..., :num_factors]
            if projected:
                return extra[0], g_diag, g_factors, extra[1]
            return g_operand[..., num_factors], g_diag, g_factors, tf.zeros_like(projection)

        grad_init = (
            tf.zeros(tf.concat([tf.shape(factors)[:-1], [num_factors + 1]], 0)),
            tf.zeros_like(diag_scale),
        )
        if projected:
            grad_init += (tf.zeros_like(loc), tf.zeros_like(projection))

        # ---- log space: exact for any logits; sigmoid, HET-XL, and softmax's fallback.
        def log_space_forward():
            def body(state, eps_k, eps_r):
                lse, p_sum, p_sq = state
                lp = _log_link(latents(eps_k, eps_r)[0], link, heads)
                lse = _logaddexp(lse, tf.reduce_logsumexp(lp, axis=axis))
                if compute_variance:
                    p = tf.exp(lp if link == "softmax" else lp[..., 0])
                    p_sum += tf.reduce_sum(p, axis=axis)
                    p_sq += tf.reduce_sum(tf.square(p), axis=axis)
                return lse, p_sum, p_sq

            return chunks.fold(body, (tf.fill(out_shape, -math.inf), zeros, zeros))

        def log_space_backward(grad_log_probs, lse):
            grad_log_probs = layout.expand(grad_log_probs)
            lse_expanded = layout.expand(lse)

            def body(state, eps_k, eps_r):
                z, pre = latents(eps_k, eps_r)
                lp = _log_link(z, link, heads)
                # d log_probs / d lp_s = exp(lp_s - lse): each sample's share of the mean.
                grad_lp = grad_log_probs * tf.exp(lp - lse_expanded)
                grad_z = _log_link_vjp(lp, grad_lp, link, heads)  # like z: [.., K]
                return add_grads(state, grad_z, pre, eps_k, eps_r)

            return split_grads(*chunks.fold(body, grad_init))

        # ---- probability space (softmax, per head): sum_s softmax(z_s), one fused op per chunk.
        def prob_space_forward():
            def body(state, eps_k, eps_r):
                p_sum, p_sq = state
                p = _softmax(latents(eps_k, eps_r)[0], heads)
                if compute_variance:
                    p_sq += tf.reduce_sum(tf.square(p), axis=axis)
                return p_sum + tf.reduce_sum(p, axis=axis), p_sq

            return chunks.fold(body, (zeros, zeros))

        def prob_space_backward(grad_log_probs, p_sum):
            # log p_hat = log p_sum - log S, so d/dp_s = c = g / p_sum and, through the softmax,
            # d/dz_s = p_s * (c - <p_s, c>) (the inner product within each head). c is scaled per
            # example to max |c| = 1 (so no product overflows) and the scale is put back on the
            # three gradients at the end.
            c = grad_log_probs / p_sum
            c_scale = tf.reduce_max(tf.abs(c), axis=-1, keepdims=True)  # [B, 1]
            c_scale = tf.where(c_scale > 0, c_scale, tf.ones_like(c_scale))
            c_expanded = layout.expand(c / c_scale)

            def body(state, eps_k, eps_r):
                p = _softmax(latents(eps_k, eps_r)[0], heads)
                pc = _group_sum(p * c_expanded, heads)
                return add_grads(state, p * (c_expanded - pc), None, eps_k, eps_r)

            g_loc, g_diag, g_factors, g_proj = split_grads(*chunks.fold(body, grad_init))
            return g_loc * c_scale, g_diag * c_scale, g_factors * c_scale[..., None], g_proj

        if prob_space_ok:
            p_sum, p_sq = prob_space_forward()
            in_range = tf.reduce_all(p_sum >= num_samples * _MIN_PROB_SUM_PER_SAMPLE)
            use_probs = tf.logical_and(in_range, tf.reduce_all(tf.math.is_finite(p_sum)))
            lse, p_sum_v, p_sq_v = tf.cond(
                use_probs, lambda: (tf.math.log(p_sum), p_sum, p_sq), log_space_forward
            )
        else:
            use_probs = None
            lse, p_sum_v, p_sq_v = log_space_forward()
        log_probs = lse - math.log(num_samples)
        mean = p_sum_v / num_samples
        variance = tf.maximum(p_sq_v / num_samples - tf.square(mean), 0.0)

        def grad(grad_log_probs, grad_variance=None):
            del grad_variance  # The variance is a diagnostic output, not differentiated.
            if use_probs is None:
                return log_space_backward(grad_log_probs, lse)
            return tf.cond(
                use_probs,
                lambda: prob_space_backward(grad_log_probs, p_sum),
                lambda: log_space_backward(grad_log_probs, lse),
            )

        return (log_probs, variance), grad

    # u / tau = loc / tau + ((d / tau) * eps_K + (V / tau) eps_R) [W]: scaling the small
    # tensors instead of every [B, n, K] sample, and autodiff carries the gradient to tau.
    inv_tau = 1.0 / temperature
    log_probs, variance = estimate(
        loc * inv_tau, diag_scale * inv_tau, factors * inv_tau, projection
    )
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

    Same arguments (`projection` too) and noise (chunk by chunk, from the same seeds, through
    `draw_noise`) as `mc_log_predictive`, so `logsumexp` over the sample axis of this, minus
    log S, is its estimate. It materialises [B, S, K] (differentiated by autodiff): for edward2's
    `return_unaveraged_logits`, not for the training loss.

    Returns:
      [B, S, K] log-softmax (per head) of u_s / tau for softmax; for sigmoid the logits
      u_s / tau themselves (the inverse sigmoid of the per-sample probabilities).
    """
    setup = _SampleSetup(
        loc,
        diag_scale,
        factors,
        temperature,
        seed,
        num_samples,
        chunk_size,
        share_samples,
        noise,
        projection,
    )
    chunks = []
    for index, start in enumerate(range(0, int(num_samples), setup.chunk_size)):
        size = min(setup.chunk_size, int(num_samples) - start)
        chunks.append(setup.latents(*setup.layout.draw(_chunk_seed(setup.seed, index), size)))
    z = tf.concat(chunks, setup.layout.axis)
    if share_samples:
        z = tf.transpose(z, [1, 0, 2])  # [S, B, K] -> [B, S, K]
    return _log_link(z, "softmax", heads) if link == "softmax" else z


def per_sample_label_log_probs(
    loc,
    diag_scale,
    factors,
    temperature,
    seed,
    labels,
    *,
    num_samples,
    chunk_size=None,
    share_samples=False,
    noise="normal",
    heads=1,
    projection=None,
    **unused_options,
):
    """log p_s(label) of each of the S softmax samples of `per_sample_log_probs`: [S, B]
    ([S, B, heads] for several heads: the label's log-probability under each head).

    The same samples (same arguments, chunks and seeds), but only the label's log-probability
    of each is kept, one chunk at a time in a tf.while_loop (`_Chunks.fold`), so memory stays at
    about one [chunk, B, K] tensor rather than [B, S, K] (S = 5000, K = 1000: the joint NLL of
    `het_ensembles.metrics.joint`). Softmax link only; `unused_options` (e.g. `link`,
    `memory_budget`) are accepted so a layer's inference options pass as they are.

    Args:
      labels: [B] int class indices (of each head's K / heads classes).

    Raises:
      ValueError: if `unused_options` asks for a sigmoid link, or `heads` does not divide K.
    """
    if unused_options.get("link", "softmax") != "softmax":
        raise ValueError(
            "per_sample_label_log_probs needs link='softmax'. Received: "
            f"link={unused_options.get('link')!r}"
        )
    setup = _SampleSetup(
        loc,
        diag_scale,
        factors,
        temperature,
        seed,
        num_samples,
        chunk_size,
        share_samples,
        noise,
        projection,
    )
    layout = setup.layout
    _check_heads(heads, setup.num_classes, "softmax")
    one_hot = tf.one_hot(tf.cast(labels, tf.int32), setup.num_classes // heads)
    one_hot = layout.expand(tf.tile(one_hot, [1, heads]))  # the label in every head
    order = [1, 0] if heads == 1 else [1, 0, 2]  # [B, chunk, ..] -> [chunk, B, ..]

    def body(state, eps_k, eps_r):
        picked, index = state
        lp = _log_link(setup.latents(eps_k, eps_r), "softmax", heads) * one_hot
        lp = tf.reduce_sum(lp, -1) if heads == 1 else tf.reduce_sum(_grouped(lp, heads), -1)
        return picked.write(index, lp if share_samples else tf.transpose(lp, order)), index + 1

    picked = tf.TensorArray(tf.float32, size=0, dynamic_size=True, infer_shape=False)
    chunks = _Chunks(layout, setup.seed, int(num_samples), setup.chunk_size, 0)
    picked, _ = chunks.fold(body, (picked, tf.constant(0)))
    return picked.concat()  # [S, B(, heads)]


class _SampleSetup:
    """What `per_sample_log_probs` and `per_sample_label_log_probs` sample with: the inputs
    scaled by 1 / tau, the layout, chunk size and seed, and `latents(eps_k, eps_r)` (u_s / tau
    of one chunk's noise)."""

    def __init__(
        self,
        loc,
        diag_scale,
        factors,
        temperature,
        seed,
        num_samples,
        chunk_size,
        share,
        noise,
        projection,
    ):
        _check_noise(noise)
        loc = tf.convert_to_tensor(loc, tf.float32)
        diag_scale = tf.convert_to_tensor(diag_scale, tf.float32)
        factors = _factors_tensor(diag_scale, factors)  # [B, K or D, R]
        inv_tau = 1.0 / tf.convert_to_tensor(temperature, tf.float32)
        loc, diag_scale, factors = loc * inv_tau, diag_scale * inv_tau, factors * inv_tau
        if chunk_size is None:
            chunk_size = default_chunk_size(num_samples, loc.shape[0], loc.shape[-1])
        self.chunk_size = min(int(chunk_size), int(num_samples))
        self.num_classes = loc.shape[-1]
        self.layout = _Layout(
            share, _batch_size(loc), diag_scale.shape[-1], factors.shape[-1], noise
        )
        noise_loc = loc if projection is None else tf.zeros_like(diag_scale)
        self.operand = self.layout.operand(noise_loc, factors)
        self.seed = tf.cast(tf.convert_to_tensor(seed), tf.int64)
        self.loc, self.diag_scale, self.projection = loc, diag_scale, projection

    def latents(self, eps_k, eps_r):
        layout = self.layout
        z = layout.latents(self.diag_scale, self.operand, eps_k, layout.with_ones(eps_r))
        if self.projection is not None:
            z = layout.expand(self.loc) + _project(z, self.projection)
        return z
