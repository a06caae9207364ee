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

from het_ensembles.layers.spectral_normalization import SpectralNormalization


@keras.saving.register_keras_serializable(package="het_ensembles")
class SpectralNormalizationConv2D(SpectralNormalization):
    """Spectral normalisation of a Conv2D layer (edward2's `SpectralNormalizationConv2D`).

    Shares `SpectralNormalization`'s state, call and rescaling; the power iteration is the
    convolution's.

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

    LAYER_TYPE = keras.layers.Conv2D

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
        kwargs.pop("inhere_layer_name", None)  # the Dense wrapper's argument, not edward2's here
        super().__init__(
            layer, iteration, norm_multiplier, training, aggregation, seed=seed, **kwargs
        )

    def vector_shapes(self, input_shape):
        """v: one input [1, H, W, C_in]; u: one output [1, H', W', C_out] (SAME padding)."""
        if input_shape[1] is None or input_shape[2] is None:
            raise ValueError(
                "SpectralNormalizationConv2D needs the input height and width. "
                f"Received: input_shape={tuple(input_shape)}"
            )
        strides = self.layer.strides
        # ceil(size / stride) (edward2 writes size // stride, equal for even sizes).
        out_height = -(-input_shape[1] // strides[0])
        out_width = -(-input_shape[2] // strides[1])
        self.in_shape = (1, input_shape[1], input_shape[2], self.layer.kernel.shape[2])
        self.out_shape = (1, out_height, out_width, self.layer.kernel.shape[3])
        return self.in_shape, self.out_shape

    def power_step(self, kernel, u, v):
        """v <- normalize(conv2d_transpose(u, W)), u <- normalize(conv2d(v, W))."""
        del v  # recomputed from u
        strides = self.layer.strides
        v = tf.nn.conv2d_transpose(
            u, kernel, output_shape=self.in_shape, strides=strides, padding="SAME"
        )
        v = tf.reshape(tf.math.l2_normalize(tf.reshape(v, [1, -1])), self.in_shape)
        u = tf.nn.conv2d(v, kernel, strides=strides, padding="SAME")
        return tf.reshape(tf.math.l2_normalize(tf.reshape(u, [1, -1])), self.out_shape), v

    def singular_value(self, kernel, u, v):
        """sigma = <conv2d(v, W), u>, the estimate of the convolution's operator norm."""
        v_w = tf.nn.conv2d(v, kernel, strides=self.layer.strides, padding="SAME")
        return tf.reduce_sum(v_w * u)

    def get_config(self):
        config = super().get_config()
        config.pop("inhere_layer_name")
        return config
