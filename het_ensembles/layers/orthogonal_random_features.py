"""`OrthogonalRandomFeatures`: the random-feature kernel initialiser of the SNGP output layer.

Yu et al., "Orthogonal Random Features" (NeurIPS 2016), Theorem 1; edward2's
`edward2/tensorflow/initializers.py` `OrthogonalRandomFeatures` (GitHub main), which
uncertainty-baselines' SNGP models use with `stddev=0.05` (`gp_random_feature_type='orf'`).
"""

import keras


@keras.saving.register_keras_serializable(package="het_ensembles")
class OrthogonalRandomFeatures(keras.initializers.Orthogonal):
    """W = stddev * Q S: orthogonal columns Q with Gaussian-like column norms S.

    Q is a random orthogonal matrix (for fewer rows than columns, square orthogonal blocks
    side by side, cut to the width); S is diagonal with chi-distributed entries (df = rows),
    the norms of the columns of a Gaussian matrix, or sqrt(rows) with `random_norm=False`.

    Differs from edward2 on purpose: edward2 (seed 0 on GitHub main, unseeded in 0.0.2 under
    tf-keras) draws every square block from the same seed, so the blocks repeat and a
    128 -> 1024 feature map has only 128 distinct directions; here each block gets its own
    seed (seed, seed + 1, ...).

    Args:
      stddev: scale of the matrix (the orthogonal initialiser's gain).
      random_norm: draw the column norms (True) or fix them to sqrt(rows).
      seed: None (Keras' global RNG) or an integer.
    """

    def __init__(self, stddev=1.0, random_norm=True, seed=None):
        super().__init__(gain=stddev, seed=seed)
        self.stddev = stddev
        self.random_norm = bool(random_norm)
        self._base_seed = seed

    def _block_seed(self, index):
        return None if self._base_seed is None else self._base_seed + index

    def _orthogonal(self, shape, dtype, index):
        return keras.initializers.Orthogonal(gain=self.stddev, seed=self._block_seed(index))(
            shape, dtype=dtype
        )

    def __call__(self, shape, dtype=None):
        num_rows, num_cols = shape
        if num_rows < num_cols:
            num_blocks = -(-num_cols // num_rows)
            blocks = [self._orthogonal((num_rows, num_rows), dtype, i) for i in range(num_blocks)]
            ortho = keras.ops.concatenate(blocks, axis=-1)[:, :num_cols]
        else:
            num_blocks = 1
            ortho = self._orthogonal(shape, dtype, 0)
        if self.random_norm:
            gaussian = keras.random.normal(shape, dtype=dtype, seed=self._block_seed(num_blocks))
            norms_square = keras.ops.square(gaussian)
        else:
            norms_square = keras.ops.ones(shape, dtype=dtype)
        return ortho * keras.ops.sqrt(keras.ops.sum(norms_square, axis=0))

    def get_config(self):
        return {"stddev": self.stddev, "random_norm": self.random_norm, "seed": self._base_seed}
