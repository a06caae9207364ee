"""edward2's calling conventions in Keras 3: positional `training` / `seed`, per-call seeds, and
`logit_noise` given as a tfp.distributions class.
"""

import numpy as np
import tensorflow as tf

# edward2's logit_noise classes (tfp.distributions.<Name>) by the name stored in get_config().
LOGIT_NOISES = {"Normal": "normal", "Logistic": "logistic", "Gumbel": "gumbel"}


def logit_noise_name(logit_noise, allowed=tuple(LOGIT_NOISES)):
    """The name ("Normal", ...) of edward2's `logit_noise`: a tfp.distributions class or name."""
    name = logit_noise if isinstance(logit_noise, str) else getattr(logit_noise, "__name__", None)
    if name not in allowed:
        raise ValueError(
            "logit_noise must be one of tfp.distributions."
            f"{', tfp.distributions.'.join(allowed)} (or its name). "
            f"Received: logit_noise={logit_noise!r}"
        )
    return name


class EdwardCallMixin:
    """Accepts edward2's call convention `layer(x, training, seed)` in Keras 3.

    Keras 3 only lets tensors be positional, and edward2 code passes `training` (and `seed`)
    positionally, e.g. edward2's EnsembleHeteroscedasticOutputs calls `layer(inputs, training)`.
    """

    def __call__(self, inputs, *args, **kwargs):
        if len(args) > 2:
            raise TypeError(
                f"{type(self).__name__} takes (inputs, training=None, seed=None). "
                f"Received {1 + len(args)} positional arguments."
            )
        for name, value in zip(("training", "seed"), args):
            if name in kwargs:
                raise TypeError(f"{type(self).__name__} got multiple values for {name!r}")
            kwargs[name] = value
        return super().__call__(inputs, **kwargs)


def call_seed(layer_seed, seed):
    """A stateless seed [2] for one call's noise from a per-call `seed` (int or int tensor).

    The same (layer seed, call seed) gives the same noise; different layers (e.g. ensemble
    members) called with the same seed still draw different noise.
    """
    if isinstance(seed, (bool, float)) or (
        isinstance(seed, (int, np.integer)) and not 0 <= seed < 2**31
    ):
        raise ValueError(f"seed must be an integer >= 0 or None. Received: seed={seed!r}")
    base = tf.constant([layer_seed, -2], tf.int64)
    return tf.random.experimental.stateless_fold_in(base, tf.cast(seed, tf.int32))
