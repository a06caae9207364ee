"""`SpectralNormalization`: a Dense layer whose kernel's spectral norm is kept <= a bound (SNGP).

Liu et al., "Simple and Principled Uncertainty Estimation with Deterministic Deep Learning via
Distance Awareness" (SNGP, NeurIPS 2020), section 3.2; Miyato et al., "Spectral Normalization
for Generative Adversarial Networks" (ICLR 2018), Algorithm 1. Semantics of edward2's
`edward2/tensorflow/layers/normalization.py` `SpectralNormalization` (GitHub main): every call
estimates the largest singular value sigma of the kernel W (reshaped to [-1, units]) with
`iteration` power iterations from the stored vectors u, v (non-trainable state, updated only
when power iteration runs), and when `norm_multiplier / sigma < 1` writes
`W <- norm_multiplier / sigma * W` into the kernel variable before the wrapped layer runs. The
gradient therefore treats the rescaled kernel as the variable (a projected gradient step), as
edward2's does.
"""

import random

import keras
import numpy as np
import tensorflow as tf

from het_ensembles.cli.arguments import check_int


def check_spectral_arguments(layer, iteration, norm_multiplier, seed, layer_type):
    """The shared argument checks of the spectral normalisation wrappers.

    Raises:
      ValueError: `layer` not an instance of `layer_type`, `iteration` not an integer >= 1,
        `norm_multiplier` not a finite float > 0, `seed` not None or an integer >= 0.
    """
    if not isinstance(layer, layer_type):
        raise ValueError(
            f"layer must be a keras.layers.{layer_type.__name__}. Received: layer={layer!r}"
        )
    check_int("iteration", iteration, 1)
    if (
        isinstance(norm_multiplier, bool)
        or not isinstance(norm_multiplier, (int, float))
        or not 0 < norm_multiplier < np.inf
    ):
        raise ValueError(
            f"norm_multiplier must be a float > 0. Received: norm_multiplier={norm_multiplier!r}"
        )
    if seed is not None:
        check_int("seed", seed, 0)
    return random.randint(0, 2**31 - 1) if seed is None else int(seed)


def bounded_kernel(kernel, sigma, norm_multiplier):
    """`kernel * norm_multiplier / sigma` where that shrinks it, else `kernel` (edward2's cond)."""
    ratio = norm_multiplier / sigma
    return tf.where(ratio < 1.0, ratio * kernel, kernel)


def build_with_aggregation(layer, input_shape, aggregation):
    """Builds `layer` with its weights aggregated as `aggregation` across replicas.

    The wrappers assign the rescaled kernel inside the replicated train step; a mirrored
    variable only accepts that with an aggregation (edward2 sets `kernel._aggregation` after
    the build, which a Keras 3 variable ignores, so it is set when the weight is created).
    """
    if layer.built:
        return
    add_weight = layer.add_weight

    def add_weight_with_aggregation(*args, **kwargs):
        kwargs.setdefault("aggregation", aggregation)
        return add_weight(*args, **kwargs)

    object.__setattr__(layer, "add_weight", add_weight_with_aggregation)
    try:
        layer.build(input_shape)
    finally:
        object.__delattr__(layer, "add_weight")


@keras.saving.register_keras_serializable(package="het_ensembles")
class SpectralNormalization(keras.layers.Wrapper):
    """Spectral normalisation of a Dense layer's kernel (edward2's `SpectralNormalization`).

    Args:
      layer: the `keras.layers.Dense` to normalise.
      iteration: power iterations per call (>= 1).
      norm_multiplier: the bound c on the spectral norm (edward2 default 0.95; SNGP's
        uncertainty-baselines recipes use 6).
      training: whether to run power iteration when the call gives no `training` (edward2's
        constructor argument); a call's own `training=False` skips it but still applies the
        bound with the stored u, v.
      aggregation: replica aggregation of the kernel, u and v (edward2: MEAN).
      inhere_layer_name: take the wrapped layer's name (edward2's spelling).
      seed: (keyword) seed of u and v's random normal initialisers (None: drawn from
        Python's RNG and stored in the config).

    Raises:
      ValueError: for a layer that is not Dense, `iteration` < 1 or `norm_multiplier` <= 0.
    """

    LAYER_TYPE = keras.layers.Dense

    def __init__(
        self,
        layer,
        iteration=1,
        norm_multiplier=0.95,
        training=True,
        aggregation="mean",
        inhere_layer_name=False,
        *,
        seed=None,
        **kwargs,
    ):
        self.seed = check_spectral_arguments(
            layer, iteration, norm_multiplier, seed, self.LAYER_TYPE
        )
        if inhere_layer_name:
            kwargs["name"] = layer.name
        super().__init__(layer, **kwargs)
        self.iteration = int(iteration)
        self.norm_multiplier = float(norm_multiplier)
        self.do_power_iteration = bool(training)
        self.aggregation = aggregation
        self.inhere_layer_name = bool(inhere_layer_name)

    def build(self, input_shape):
        build_with_aggregation(self.layer, input_shape, self.aggregation)
        v_shape, u_shape = self.vector_shapes(input_shape)
        for name, shape, offset in (("v", v_shape, 0), ("u", u_shape, 1)):
            weight = self.add_weight(
                shape=shape,
                initializer=keras.initializers.RandomNormal(seed=self.seed + offset),
                trainable=False,
                aggregation=self.aggregation,
                name=name,
            )
            setattr(self, name, weight)

    def vector_shapes(self, input_shape):
        """Shapes of v and u: [1, rows] and [1, units] of the kernel reshaped to [rows, units]."""
        del input_shape  # the kernel's shape decides
        rows = int(np.prod(self.layer.kernel.shape[:-1]))
        return (1, rows), (1, self.layer.kernel.shape[-1])

    def call(self, inputs, training=None):
        training = self.do_power_iteration if training is None else training
        self.update_weights(training=training)
        return self.layer(inputs)

    def update_weights(self, *, training=True):
        """Power iteration (when `training`), then the bounded kernel, written to the state.

        Returns:
          sigma, the spectral norm estimate of the kernel before rescaling (a scalar).
        """
        kernel = tf.convert_to_tensor(self.layer.kernel)
        u = tf.convert_to_tensor(self.u)
        v = tf.convert_to_tensor(self.v)
        if training:
            for _ in range(self.iteration):
                u, v = self.power_step(kernel, u, v)
        sigma = self.singular_value(kernel, u, v)
        self.u.assign(u)
        self.v.assign(v)
        self.layer.kernel.assign(bounded_kernel(kernel, sigma, self.norm_multiplier))
        return sigma

    def power_step(self, kernel, u, v):
        """One power iteration on W [rows, units]: v <- normalize(u W^T), u <- normalize(v W)."""
        del v  # recomputed from u
        w = tf.reshape(kernel, [-1, kernel.shape[-1]])
        v = tf.math.l2_normalize(tf.matmul(u, w, transpose_b=True))  # [1, rows]
        return tf.math.l2_normalize(tf.matmul(v, w)), v  # [1, units], [1, rows]

    def singular_value(self, kernel, u, v):
        """sigma = v W u^T, the estimate of W's largest singular value."""
        w = tf.reshape(kernel, [-1, kernel.shape[-1]])
        return tf.reshape(tf.matmul(tf.matmul(v, w), u, transpose_b=True), [])

    def compute_output_shape(self, input_shape):
        return self.layer.compute_output_shape(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            iteration=self.iteration,
            norm_multiplier=self.norm_multiplier,
            training=self.do_power_iteration,
            aggregation=self.aggregation,
            inhere_layer_name=self.inhere_layer_name,
            seed=self.seed,
        )
        return config
