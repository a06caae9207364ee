"""ResNet-50 v1.5 as uncertainty-baselines' `resnet50_deterministic` / `resnet50_heteroscedastic`.

Same graph and layer names as uncertainty-baselines (`conv1`, `bn_conv1`, `res2a_branch2a`, ...):
the stride sits in the 3x3 conv of each bottleneck (v1.5), convs have no bias and a he_normal
initializer, batch norm uses the PyTorch defaults (momentum 0.9, epsilon 1e-5). The classifier
(dense or heteroscedastic, named "head") is added by `het_ensembles.models.build_model`.

Differences from uncertainty-baselines, both options:
- `zero_init_residual=True` (default) starts the last batch norm of every block with gamma = 0
  (Goyal et al. 2017), so each block starts as the identity. uncertainty-baselines' TF model
  uses gamma = 1; `zero_init_residual=False` reproduces it exactly.
- L2 is a Keras regularizer on every conv kernel (and on the head's kernel and bias):
  `l2 * sum(w**2)`, the same penalty as uncertainty-baselines' `l2 * 2 * tf.nn.l2_loss` over
  variables named kernel / bias. Batch-norm gamma / beta are not penalised there either;
  `bn_l2` adds that if wanted.
"""

import string

import keras

from het_ensembles.layers.spectral_normalization_conv2d import SpectralNormalizationConv2D

BATCH_NORM_DECAY = 0.9  # uncertainty-baselines resnet50_deterministic (PyTorch defaults)
BATCH_NORM_EPSILON = 1e-5
STAGES = (  # (filters of the 1x1, 3x3, 1x1 convs, number of blocks, stride of the first block)
    ((64, 64, 256), 3, 1),
    ((128, 128, 512), 4, 2),
    ((256, 256, 1024), 6, 2),
    ((512, 512, 2048), 3, 2),
)
DENSE_HEAD_STDDEV = 0.01  # uncertainty-baselines fc1000: RandomNormal(stddev=0.01)


def dense_head_initializer(seed):
    return keras.initializers.RandomNormal(stddev=DENSE_HEAD_STDDEV, seed=seed)


def features(
    inputs,
    *,
    l2,
    seeds,
    zero_init_residual=True,
    bn_l2=0.0,
    use_spec_norm=False,
    spec_norm_iteration=1,
    spec_norm_bound=6.0,
):
    """The ResNet-50 trunk up to global average pooling: [B, H, W, C] -> [B, 2048].

    Args:
      inputs: image tensor [B, H, W, C] (224 x 224 in uncertainty-baselines).
      l2: L2 coefficient on conv kernels.
      seeds: a `SeedStream` for the initializers.
      zero_init_residual: start the last batch norm gamma of each block at 0.
      bn_l2: L2 coefficient on batch-norm gamma and beta (0 in uncertainty-baselines).
      use_spec_norm: wrap the convs of every bottleneck block (not conv1) in
        `SpectralNormalizationConv2D`, as uncertainty-baselines' `resnet50_sngp` /
        `resnet50_hetsngp`.
      spec_norm_iteration: its power iterations per step.
      spec_norm_bound: its norm bound (`norm_multiplier`).

    Returns:
      The pooled features [B, 2048].
    """
    layers = _Layers(l2, bn_l2, seeds)
    x = keras.layers.ZeroPadding2D(padding=3, name="conv1_pad")(inputs)
    x = layers.conv(64, 7, strides=2, padding="valid", name="conv1")(x)
    if use_spec_norm:
        layers.spectral_norm = (spec_norm_iteration, spec_norm_bound)
    x = layers.batch_norm(name="bn_conv1")(x)
    x = keras.layers.Activation("relu")(x)
    x = keras.layers.MaxPooling2D(3, strides=2, padding="same")(x)
    for stage, (filters, num_blocks, strides) in enumerate(STAGES, start=2):
        for index in range(num_blocks):
            x = _bottleneck_block(
                x,
                filters,
                stage=stage,
                block=string.ascii_lowercase[index],
                strides=strides if index == 0 else 1,
                layers=layers,
                zero_init_residual=zero_init_residual,
            )
    return keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)


def _bottleneck_block(inputs, filters, *, stage, block, strides, layers, zero_init_residual):
    """1x1 -> 3x3 (strided, v1.5) -> 1x1 convs plus a projection shortcut where shapes differ."""
    filters1, filters2, filters3 = filters
    conv_name = f"res{stage}{block}_branch"
    bn_name = f"bn{stage}{block}_branch"
    x = layers.conv(filters1, 1, name=conv_name + "2a")(inputs)
    x = layers.batch_norm(name=bn_name + "2a")(x)
    x = keras.layers.Activation("relu")(x)
    x = layers.conv(filters2, 3, strides=strides, padding="same", name=conv_name + "2b")(x)
    x = layers.batch_norm(name=bn_name + "2b")(x)
    x = keras.layers.Activation("relu")(x)
    x = layers.conv(filters3, 1, name=conv_name + "2c")(x)
    gamma = "zeros" if zero_init_residual else "ones"
    x = layers.batch_norm(name=bn_name + "2c", gamma_initializer=gamma)(x)
    shortcut = inputs
    if strides != 1 or inputs.shape[-1] != filters3:
        shortcut = layers.conv(filters3, 1, strides=strides, name=conv_name + "1")(inputs)
        shortcut = layers.batch_norm(name=bn_name + "1")(shortcut)
    x = keras.layers.Add()([x, shortcut])
    return keras.layers.Activation("relu")(x)


class _Layers:
    """Conv and batch-norm factories with the model's initializers and regularizers."""

    def __init__(self, l2, bn_l2, seeds):
        self._kernel_regularizer = keras.regularizers.L2(l2) if l2 else None
        self._bn_regularizer = keras.regularizers.L2(bn_l2) if bn_l2 else None
        self._seeds = seeds
        self.spectral_norm = None  # (iteration, bound) once the blocks are spectrally normalised

    def conv(self, filters, kernel_size, *, strides=1, padding="valid", name):
        normalised = self.spectral_norm is not None
        layer = keras.layers.Conv2D(
            filters,
            kernel_size,
            strides=strides,
            padding=padding,
            use_bias=False,
            kernel_initializer=keras.initializers.HeNormal(seed=self._seeds()),
            kernel_regularizer=self._kernel_regularizer,
            # edward2's naming: the wrapper takes the conv's name, the conv gets "_spec_norm".
            name=name + "_spec_norm" if normalised else name,
        )
        if not normalised:
            return layer
        iteration, bound = self.spectral_norm
        return SpectralNormalizationConv2D(layer, iteration, bound, seed=self._seeds(), name=name)

    def batch_norm(self, *, name, gamma_initializer="ones"):
        return keras.layers.BatchNormalization(
            momentum=BATCH_NORM_DECAY,
            epsilon=BATCH_NORM_EPSILON,
            gamma_initializer=gamma_initializer,
            gamma_regularizer=self._bn_regularizer,
            beta_regularizer=self._bn_regularizer,
            name=name,
        )
