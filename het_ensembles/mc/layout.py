"""How the estimator lays out one chunk of samples, and which chunks keep their noise."""

import tensorflow as tf

from het_ensembles.mc.noise import _chunk_seed, draw_noise

# Elements of one [B, chunk, K] working tensor the default chunking aims for (4 MiB in float32).
# Measured at B=64, K=1000, S=1000 (chunk of 16 samples): peak memory ~0.1 GiB over a Dense head
# where chunks of 65 samples took ~0.27 GiB; per-chunk overhead stays small at this size.
DEFAULT_CHUNK_ELEMENTS = 2**20
# Noise (in MiB) the forward pass may keep for the backward pass instead of re-drawing it.
# 64 MiB keeps a quarter of the per-example noise at B=64, K=1000, S=1000 (and all shared noise
# up to S ~ 16000) while the step's working memory stays under 1/8 of edward2's.
DEFAULT_MEMORY_BUDGET_MIB = 64
# Batch size assumed when the static batch size is unknown (choosing the default chunk).
_ASSUMED_BATCH = 128


def default_chunk_size(num_samples, batch_size, num_classes):
    """Samples per chunk so one [B, chunk, K] tensor holds about `DEFAULT_CHUNK_ELEMENTS` values."""
    batch_size = batch_size or _ASSUMED_BATCH
    chunk = DEFAULT_CHUNK_ELEMENTS // max(1, batch_size * num_classes)
    return int(max(1, min(num_samples, chunk)))


def _batch_size(loc):
    """The static batch size where known (keeps loop-carried shapes static), else dynamic."""
    return loc.shape[0] if loc.shape[0] is not None else tf.shape(loc)[0]


def _factors_tensor(loc, factors):
    """`factors` as a float32 [B, K, R] tensor; None (diagonal model) becomes [B, K, 0]."""
    if factors is None:
        return tf.zeros(tf.concat([tf.shape(loc), [0]], 0), tf.float32)
    return tf.convert_to_tensor(factors, tf.float32)


class _Layout:
    """Where the sample axis sits, and how the factor term is multiplied, for one noise mode.

    Per-example noise works on [B, n, K] tensors: [eps_R, 1] [B, n, R+1] times [V(x)^T; loc]
    [B, R+1, K] is a batched matmul that also adds loc. Shared noise works sample-major, [n, B, K]:
    eps_R [n, R] is the same for every example, so [eps_R, 1] times [V^T; loc] laid out as
    [R+1, B * K] is one large GEMM, ~2x faster on CPU than the batched form.
    """

    def __init__(self, share_samples, batch, num_classes, num_factors, noise="normal"):
        self.share = share_samples
        self.noise = noise
        self.axis = 0 if share_samples else 1  # the sample axis of [.., K] tensors
        self.batch, self.num_classes, self.num_factors = batch, num_classes, num_factors

    def expand(self, t):
        """[B, K, ...] per-example tensor -> broadcastable against [.., K] sample tensors."""
        return tf.expand_dims(t, self.axis)

    def operand(self, loc, factors):
        """[V(x)^T; loc] arranged once per call for the sampling matmul."""
        stacked = tf.concat([factors, loc[:, :, None]], axis=-1)  # [B, K, R + 1]
        if self.share:
            return tf.reshape(tf.transpose(stacked, [2, 0, 1]), [self.num_factors + 1, -1])
        return tf.transpose(stacked, [0, 2, 1])  # [B, R + 1, K]

    def draw(self, seed, num):
        return draw_noise(
            seed,
            num,
            batch=self.batch,
            num_classes=self.num_classes,
            num_factors=self.num_factors,
            share=self.share,
            noise=self.noise,
        )

    def with_ones(self, eps_r):
        """[eps_R, 1]: the 1 picks loc out of the operand (and its gradient out of the GEMM)."""
        ones = tf.ones(tf.concat([tf.shape(eps_r)[:-1], [1]], 0))
        return tf.concat([eps_r, ones], axis=-1)

    def latents(self, diag_scale, operand, eps_k, eps_r1):
        """z = loc + diag_scale * eps_K + V eps_R: [B, n, K] per example, [n, B, K] shared."""
        if self.share:
            # [n, R+1] x [R+1, B * K] -> [n, B, K]
            mean = tf.reshape(tf.matmul(eps_r1, operand), [-1, self.batch, self.num_classes])
        else:
            mean = tf.matmul(eps_r1, operand)  # [B, n, R+1] x [B, R+1, K] -> [B, n, K]
        return mean + self.expand(diag_scale) * eps_k

    def operand_grad(self, grad_z, eps_r1):
        """d/d[V, loc] of sum(grad_z * ([eps_R, 1] operand)), as [B, K, R+1]: one GEMM gives the
        factor gradient and (last column) the sum of grad_z over samples, i.e. loc's gradient."""
        if self.share:
            flat = tf.reshape(grad_z, [tf.shape(eps_r1)[0], -1])  # [n, B * K]
            grad = tf.matmul(flat, eps_r1, transpose_a=True)  # [B * K, R+1]
            return tf.reshape(grad, [self.batch, self.num_classes, self.num_factors + 1])
        return tf.matmul(grad_z, eps_r1, transpose_a=True)  # [B, K, n] x [B, n, R+1]


class _Chunks:
    """The chunk schedule of one call, and the noise of each chunk: kept or (re-)drawn.

    Chunks [0, num_kept) keep their noise from the forward pass (in TensorArrays, which the
    custom gradient's closure holds until the backward pass); later chunks are re-drawn from their
    seed. `fold` runs a body over every chunk as tf.while_loops; chunks depend on each other
    only through the small accumulators, so two iterations may run at once.
    """

    def __init__(self, layout, seed, num_samples, chunk_size, memory_budget_mib):
        self.layout, self.seed, self.chunk_size = layout, seed, chunk_size
        self.num_full, self.rest = divmod(num_samples, chunk_size)
        per_chunk = 4 * chunk_size * (layout.num_classes + layout.num_factors)
        if not layout.share:
            per_chunk *= layout.batch if isinstance(layout.batch, int) else _ASSUMED_BATCH
        self.num_kept = min(self.num_full, int(memory_budget_mib * 2**20) // per_chunk)
        self.kept = None

    def fold(self, body, init):
        """Folds `body(state, eps_k, eps_r)` over all chunks; the first fold keeps the noise."""
        draw = self.layout.draw
        state = init
        if self.num_kept:
            if self.kept is None:
                kept = [
                    tf.TensorArray(tf.float32, self.num_kept, clear_after_read=False)
                    for _ in range(2)
                ]

                def kept_step(i, s, ta_k, ta_r):
                    eps_k, eps_r = draw(_chunk_seed(self.seed, i), self.chunk_size)
                    return i + 1, body(s, eps_k, eps_r), ta_k.write(i, eps_k), ta_r.write(i, eps_r)

                _, state, *kept = tf.while_loop(
                    lambda i, *_: i < self.num_kept,
                    kept_step,
                    (tf.constant(0), state, *kept),
                    parallel_iterations=2,
                )
                self.kept = kept
            else:
                ta_k, ta_r = self.kept
                _, state = tf.while_loop(
                    lambda i, _: i < self.num_kept,
                    lambda i, s: (i + 1, body(s, ta_k.read(i), ta_r.read(i))),
                    (tf.constant(0), state),
                    parallel_iterations=2,
                )
        if self.num_full > self.num_kept:
            _, state = tf.while_loop(
                lambda i, _: i < self.num_full,
                lambda i, s: (i + 1, body(s, *draw(_chunk_seed(self.seed, i), self.chunk_size))),
                (tf.constant(self.num_kept), state),
                parallel_iterations=2,
            )
        if self.rest:
            state = body(state, *draw(_chunk_seed(self.seed, self.num_full), self.rest))
        return state
