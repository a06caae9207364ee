"""Per-layer initializer seeds for `build_model(..., seed=...)`.

Keras initializers built with the same integer seed draw the same values, so every layer needs
its own. The stream hashes (model seed, layer index) with `np.random.SeedSequence`, so members
with neighbouring seeds (0, 1, 2, ...) get unrelated weights. With `seed=None` the initializers
are unseeded and follow Keras' global RNG (`keras.utils.set_random_seed`).
"""

import numpy as np


class SeedStream:
    """Hands out a fresh initializer seed per call (or None when the model seed is None)."""

    def __init__(self, seed):
        self._seed = seed
        self._count = 0

    def __call__(self):
        if self._seed is None:
            return None
        self._count += 1
        state = np.random.SeedSequence([self._seed, self._count]).generate_state(1)[0]
        return int(state >> 1)  # non-negative 31-bit
