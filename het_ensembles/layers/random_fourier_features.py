"""`RandomFourierFeatures`: Keras 2's `keras.layers.experimental.RandomFourierFeatures` in Keras 3.

Rahimi & Recht, "Random Features for Large-Scale Kernel Machines" (NeurIPS 2007). The layer
`RandomFeatureGaussianProcess(use_custom_random_features=False)` uses (Keras 3 dropped it):
`sqrt(2 / D) * cos(x W / scale + b)`, W fixed Gaussian (RBF kernel) or Cauchy (Laplacian
kernel), b ~ U[0, 2 pi), and `scale` (the kernel length-scale) trainable with the layer.
"""

import math

import keras
import tensorflow as tf

KERNELS = ("gaussian", "laplacian")


@keras.saving.register_keras_serializable(package="het_ensembles")
class RandomFourierFeatures(keras.layers.Layer):
    """Random Fourier features of a shift-invariant kernel (tf-keras' layer of this name).

    Args:
      output_dim: number of features D >= 1.
      kernel_initializer: "gaussian" (RBF kernel) or "laplacian".
      scale: initial length-scale > 0 (None: sqrt(input_dim / 2) for gaussian, 1 otherwise,
        tf-keras' defaults).
      trainable: whether the length-scale is learned (W and b never are).
      seed: (keyword) seed of W and b (None: Keras' global RNG).

    Raises:
      ValueError: for output_dim < 1, another kernel, or scale <= 0.
    """

    def __init__(
        self, output_dim, kernel_initializer="gaussian", scale=None, trainable=False, **kwargs
    ):
        seed = kwargs.pop("seed", None)
        if not isinstance(output_dim, int) or output_dim < 1:
            raise ValueError(f"output_dim must be an integer >= 1. Received: {output_dim!r}")
        if kernel_initializer not in KERNELS:
            raise ValueError(
                f"kernel_initializer must be one of {KERNELS}. "
                f"Received: kernel_initializer={kernel_initializer!r}"
            )
        if scale is not None and not scale > 0:
            raise ValueError(f"scale must be > 0. Received: scale={scale!r}")
        super().__init__(trainable=trainable, **kwargs)
        self.output_dim = output_dim
        self.kernel_initializer = kernel_initializer
        self.scale = scale
        self.seed = seed

    def build(self, input_shape):
        input_dim = int(input_shape[-1])
        seed = (lambda i: None) if self.seed is None else (lambda i: self.seed + i)
        if self.kernel_initializer == "gaussian":
            init = keras.initializers.RandomNormal(stddev=1.0, seed=seed(0))
        else:  # Cauchy(0, 1) by inverse CDF, as tf-keras' laplacian initializer

            def init(shape, dtype=None):
                u = keras.random.uniform(shape, dtype=dtype, seed=seed(0))
                return tf.tan(math.pi * (u - 0.5))

        self.unscaled_kernel = self.add_weight(
            shape=(input_dim, self.output_dim),
            initializer=init,
            trainable=False,
            name="unscaled_kernel",
        )
        self.bias = self.add_weight(
            shape=(self.output_dim,),
            initializer=keras.initializers.RandomUniform(0.0, 2 * math.pi, seed=seed(1)),
            trainable=False,
            name="bias",
        )
        scale = self.scale
        if scale is None:
            scale = math.sqrt(input_dim / 2.0) if self.kernel_initializer == "gaussian" else 1.0
        self.kernel_scale = self.add_weight(
            shape=(1,),
            initializer=keras.initializers.Constant(scale),
            trainable=True,
            constraint="non_neg",
            name="kernel_scale",
        )

    def call(self, inputs):
        kernel = tf.convert_to_tensor(self.unscaled_kernel) / tf.convert_to_tensor(
            self.kernel_scale
        )
        outputs = tf.matmul(tf.cast(inputs, kernel.dtype), kernel) + self.bias
        return math.sqrt(2.0 / self.output_dim) * tf.cos(outputs)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.output_dim)

    def get_config(self):
        config = super().get_config()
        config.update(
            output_dim=self.output_dim,
            kernel_initializer=self.kernel_initializer,
            scale=self.scale,
            seed=self.seed,
        )
        return config
