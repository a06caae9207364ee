"""Noise of the Monte Carlo estimator: every noise type drawn from stateless uniforms.

`draw_noise` is the one place noise is drawn; the estimator, `sample_latents` and
`per_sample_log_probs` all call it (through `_Layout.draw`), chunk by chunk, from the chunk's seed.
"""

import math

import tensorflow as tf

# Distributions of the diagonal noise eps_K (edward2's `logit_noise`): standard Normal, Logistic
# and Gumbel (loc 0, scale 1, as tfp.distributions' defaults; Gumbel is not centred).
NOISES = ("normal", "logistic", "gumbel")
# Smallest uniform fed to Box-Muller's log (and to the inverse CDFs): keeps radii finite (<= 5.8
# standard deviations, the same tail cut-off as float32 uniforms give TF's own normal sampler).
UNIFORM_FLOOR = 2.0**-24


def _chunk_seed(seed, index):
    return tf.random.experimental.stateless_fold_in(seed, tf.cast(index, tf.int32))


def _check_noise(noise):
    if noise not in NOISES:
        raise ValueError(f"noise must be one of {NOISES}. Received: noise={noise!r}")


def _uniform(shape, seed):
    """`tf.random.stateless_uniform(shape, seed)` in [0, 1), without its affine rescaling passes.

    Same values as the public op with the default minval=0, maxval=1 (which multiplies by 1 and
    adds 0, two passes over the largest tensor of a chunk).
    """
    key, counter = tf.raw_ops.StatelessRandomGetKeyCounter(seed=seed)
    return tf.raw_ops.StatelessRandomUniformV2(
        shape=shape, key=key, counter=counter, alg=tf.raw_ops.StatelessRandomGetAlg()
    )


def _inverse_cdf(u, noise):
    """Standard Logistic or Gumbel noise from uniforms u in [2**-24, 1) (finite everywhere)."""
    if noise == "logistic":
        return tf.math.log(u) - tf.math.log1p(-u)
    return -tf.math.log(-tf.math.log(u))


def draw_noise(seed, num, *, batch, num_classes, num_factors, share, noise="normal"):
    """The noise (eps_K, eps_R) of one chunk of `num` samples.

    The one place noise is drawn, for every noise type. eps_K comes from one tensor of stateless
    uniforms u [2, *shape_K(h)], h = ceil(num / 2): u[0] gives the first h samples and u[1] the
    rest. Normal eps_K uses both Box-Muller outputs: the cosine half fills the first h samples and
    the sine half the rest, computed as one cosine over both halves (sin t = cos(t - pi/2)); this
    costs ~40% less than `stateless_normal` on CPU. Logistic and Gumbel eps_K come from the same
    uniforms by their inverse CDF, one sample per uniform. The contract, which the tests
    re-implement:

        u = stateless_uniform([2, *shape_K(h)], fold_in(seed, 0))          # in [0, 1)
        normal:   r, t = sqrt(-2 log max(u[0], 2**-24)), 2 pi u[1]
                  eps_K = (r cos t, r cos(t - pi/2)) stacked before the sample axis
        logistic: eps_K = (F^-1(v[0]), F^-1(v[1])), v = max(u, 2**-24), F^-1(v) = log v - log(1 - v)
        gumbel:   the same with F^-1(v) = -log(-log v)
        first `num` samples kept; eps_R = stateless_normal(shape_R(num), fold_in(seed, 1))

    where shape_K(n) = [B, n, K] and shape_R(n) = [B, n, R] per example, and [n, 1, K] and
    [n, R] when samples are shared.

    Args:
      seed: int64 [2] stateless seed of this chunk.
      num: samples in the chunk (a Python int).
      batch: B (static int or scalar tensor).
      num_classes: K (D for HET-XL's pre-logit noise).
      num_factors: R (0 for the diagonal model).
      share: one noise vector per sample for the whole batch.
      noise: distribution of eps_K, one of `NOISES`; eps_R is always normal.

    Returns:
      (eps_K, eps_R): [B, num, K] and [B, num, R] per example; [num, 1, K] and [num, R] shared.
    """
    half = (num + 1) // 2
    shape_k = [half, 1, num_classes] if share else [batch, half, num_classes]
    shape_r = [num, num_factors] if share else [batch, num, num_factors]
    u = _uniform(tf.stack([2, *shape_k]), _chunk_seed(seed, 0))
    pair_axis = 0 if share else 1  # [2, h, 1, K] shared, [B, 2, h, K] per example
    if noise == "normal":
        radius = tf.sqrt(-2.0 * tf.math.log(tf.maximum(u[0], UNIFORM_FLOOR)))
        offsets = tf.constant([0.0, -math.pi / 2])
        offsets = tf.reshape(offsets, [2, 1, 1, 1] if share else [2, 1, 1])
        angle = tf.expand_dims((2.0 * math.pi) * u[1], pair_axis) + offsets  # both halves
        eps_k = tf.expand_dims(radius, pair_axis) * tf.cos(angle)
    else:
        eps_k = _inverse_cdf(tf.maximum(u, UNIFORM_FLOOR), noise)  # [2, *shape_K(h)]
        if not share:
            eps_k = tf.transpose(eps_k, [1, 0, 2, 3])  # [B, 2, h, K]
    if share:
        eps_k = tf.reshape(eps_k, [2 * half, 1, num_classes])
        eps_k = eps_k[:num] if num < 2 * half else eps_k
    else:
        eps_k = tf.reshape(eps_k, [batch, 2 * half, num_classes])
        eps_k = eps_k[:, :num] if num < 2 * half else eps_k
    eps_r = tf.random.stateless_normal(shape_r, seed=_chunk_seed(seed, 1))
    return eps_k, eps_r
