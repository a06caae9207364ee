"""`SpectralNormalizationConv2D`: spectral norm of a Conv2D layer as an operator (SNGP backbones).

Semantics of edward2's `SpectralNormalizationConv2D` (`edward2/tensorflow/layers/
normalization.py`, GitHub main; Gouk et al., "Regularisation of Neural Networks by Enforcing
Lipschitz Continuity", 2018): the power iteration runs on the convolution itself, not on the
reshaped kernel. u has the shape of one output feature map [1, H', W', C_out] and v of one input
[1, H, W, C_in]; each iteration is `v <- normalize(conv2d_transpose(u, W))`,
`u <- normalize(conv2d(v, W))` (stride of the layer, SAME padding), and
`sigma = <conv2d(v, W), u>` estimates the operator norm. The kernel is then rescaled in place
by `norm_multiplier / sigma` when that is < 1, as in `SpectralNormalization`.
"""

import keras
import tensorflow as tf

from het_ensembles.layers.spectral_normalization import (
    bounded_kernel,
    build_with_aggregation,
    check_spectral_arguments,
)


@keras.saving.register_keras_serializable(package="het_ensembles")
class SpectralNormalizationConv2D(keras.layers.Wrapper):
    """Spectral normalisation of a Conv2D layer (edward2's `SpectralNormalizationConv2D`).

    Args:
      layer: the `keras.layers.Conv2D` to normalise (its input height and width must be known).
      iteration: power iterations per call (>= 1).
      norm_multiplier: the bound c on the operator norm (edward2 default 0.95; the SNGP
        recipes use 6).
      training: whether to run power iteration when the call gives no `training`. edward2's
        Conv2D wrapper iterates on every call, inference included; here a call's own
        `training=False` skips it (as edward2's Dense wrapper does), so evaluating a model does
        not change it.
      aggregation: replica aggregation of the kernel, u and v (edward2: MEAN).
      seed: (keyword) seed of u and v's random normal initialisers (None: drawn from
        Python's RNG and stored in the config).

    Raises:
      ValueError: for a layer that is not Conv2D, `iteration` < 1, `norm_multiplier` <= 0,
        or an input whose height or width is unknown.
    """

    def __init__(
        self,
        layer,
        iteration=1,
        norm_multiplier=0.95,
        training=True,
        aggregation="mean",
        *,
        seed=None,
        **kwargs,
    ):
        self.seed = check_spectral_arguments(
            layer, iteration, norm_multiplier, seed, keras.layers.Conv2D
        )
        super().__init__(layer, **kwargs)
        self.iteration = int(iteration)
        self.norm_multiplier = float(norm_multiplier)
        self.do_power_iteration = bool(training)
        self.aggregation = aggregation

    def build(self, input_shape):
        if input_shape[1] is None or input_shape[2] is None:
            raise ValueError(
                "SpectralNormalizationConv2D needs the input height and width. "
                f"Received: input_shape={tuple(input_shape)}"
            )
        build_with_aggregation(self.layer, input_shape, self.aggregation)
        kernel_shape = self.layer.kernel.shape  # [kh, kw, C_in, C_out]
        strides = self.layer.strides
        # SAME padding: ceil(size / stride) (edward2 writes size // stride, equal for even sizes).
        out_height = -(-input_shape[1] // strides[0])
        out_width = -(-input_shape[2] // strides[1])
        self.in_shape = (1, input_shape[1], input_shape[2], kernel_shape[2])
        self.out_shape = (1, out_height, out_width, kernel_shape[3])
        for name, shape, offset in (("v", self.in_shape, 0), ("u", self.out_shape, 1)):
            weight = self.add_weight(
                shape=shape,
                initializer=keras.initializers.RandomNormal(seed=self.seed + offset),
                trainable=False,
                aggregation=self.aggregation,
                name=name,
            )
            setattr(self, name, weight)

    def call(self, inputs, training=None):
        training = self.do_power_iteration if training is None else training
        self.update_weights(training=training)
        return self.layer(inputs)

    def update_weights(self, *, training=True):
        """Power iteration on the conv operator (when `training`), then the bounded kernel.

        Returns:
          sigma, the operator norm estimate before rescaling (a scalar).
        """
        kernel = tf.convert_to_tensor(self.layer.kernel)
        strides = self.layer.strides
        u = tf.convert_to_tensor(self.u)
        v = tf.convert_to_tensor(self.v)
        if training:
            for _ in range(self.iteration):
                v = tf.nn.conv2d_transpose(
                    u, kernel, output_shape=self.in_shape, strides=strides, padding="SAME"
                )
                v = tf.reshape(tf.math.l2_normalize(tf.reshape(v, [1, -1])), self.in_shape)
                u = tf.nn.conv2d(v, kernel, strides=strides, padding="SAME")
                u = tf.reshape(tf.math.l2_normalize(tf.reshape(u, [1, -1])), self.out_shape)
        v_w = tf.nn.conv2d(v, kernel, strides=strides, padding="SAME")
        sigma = tf.reduce_sum(v_w * u)
        self.u.assign(u)
        self.v.assign(v)
        self.layer.kernel.assign(bounded_kernel(kernel, sigma, self.norm_multiplier))
        return sigma

    def compute_output_shape(self, input_shape):
        return self.layer.compute_output_shape(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            iteration=self.iteration,
            norm_multiplier=self.norm_multiplier,
            training=self.do_power_iteration,
            aggregation=self.aggregation,
            seed=self.seed,
        )
        return config
