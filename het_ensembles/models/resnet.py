"""ResNet v1.5 (50, 101, 152 layers) as uncertainty-baselines' `resnet50_deterministic` /
`resnet50_heteroscedastic`.

Same graph and layer names as uncertainty-baselines (`conv1`, `bn_conv1`, `res2a_branch2a`, ...):
the stride sits in the 3x3 conv of each bottleneck (v1.5), convs have no bias and a he_normal
initializer, batch norm uses the PyTorch defaults (momentum 0.9, epsilon 1e-5). The classifier
(dense or heteroscedastic, named "head") is added by `het_ensembles.models.build_model`.

`depth` picks the blocks per stage of He et al. 2016, Table 1: 50 -> [3, 4, 6, 3], 101 ->
[3, 4, 23, 3], 152 -> [3, 8, 36, 3] (Collier et al. 2021, Table 1 trains ResNet-152);
everything else is the same for every depth. Blocks are named as in uncertainty-baselines'
ResNet-50 (`res4a`, `res4b`, ...); a stage of more than 6 blocks is named as in the original
Caffe ResNet-101 / -152 (`res4a`, `res4b1`, ..., `res4b35`), so ResNet-50's names are
unchanged.
"""

import string

import keras

from het_ensembles.layers.spectral_normalization_conv2d import SpectralNormalizationConv2D

BATCH_NORM_DECAY = 0.9  # uncertainty-baselines resnet50_deterministic (PyTorch defaults)
BATCH_NORM_EPSILON = 1e-5
STAGES = (  # (filters of the 1x1, 3x3, 1x1 convs, stride of the first block) of stages 2-5
    ((64, 64, 256), 1),
    ((128, 128, 512), 2),
    ((256, 256, 1024), 2),
    ((512, 512, 2048), 2),
)
BLOCKS = {  # depth -> bottleneck blocks per stage (He et al. 2016, Table 1)
    50: (3, 4, 6, 3),
    101: (3, 4, 23, 3),
    152: (3, 8, 36, 3),
}
CAFFE_NAMES_ABOVE = 6  # a stage with more blocks is named a, b1, b2, ... (Caffe ResNet-101/152)
DENSE_HEAD_STDDEV = 0.01  # uncertainty-baselines fc1000: RandomNormal(stddev=0.01)


def dense_head_initializer(seed):
    return keras.initializers.RandomNormal(stddev=DENSE_HEAD_STDDEV, seed=seed)


def features(
    inputs,
    *,
    l2,
    seeds,
    depth=50,
    zero_init_residual=True,
    bn_l2=0.0,
    use_spec_norm=False,
    spec_norm_iteration=1,
    spec_norm_bound=6.0,
    width_multiplier=1,
):
    """The ResNet trunk up to global average pooling: [B, H, W, C] -> [B, 2048 * width].

    Args:
      inputs: image tensor [B, H, W, C] (224 x 224 in uncertainty-baselines).
      l2: L2 coefficient on conv kernels.
      seeds: a `SeedStream` for the initializers.
      depth: 50, 101 or 152 (`BLOCKS`); `build_model`'s "resnet50" / "resnet152" fix it.
      zero_init_residual: start the last batch norm gamma of each block at 0.
      bn_l2: L2 coefficient on batch-norm gamma and beta (0 in uncertainty-baselines).
      use_spec_norm: wrap the convs of every bottleneck block (not conv1) in
        `SpectralNormalizationConv2D`, as uncertainty-baselines' `resnet50_sngp` /
        `resnet50_hetsngp`.
      spec_norm_iteration: its power iterations per step.
      spec_norm_bound: its norm bound (`norm_multiplier`).
      width_multiplier: k of ResNet-n-k: every conv's filters times k (uncertainty-baselines'
        `resnet50_het_mimo` / `resnet50_mimo` flag; 1 is ResNet-50 itself).

    Returns:
      The pooled features [B, 2048 * width_multiplier].

    Raises:
      ValueError: for a depth not in `BLOCKS` or a width multiplier below 1.
    """
    if depth not in BLOCKS:
        raise ValueError(
            f"Unknown ResNet depth. Received: depth={depth!r}; allowed: {sorted(BLOCKS)}"
        )
    if not isinstance(width_multiplier, int) or width_multiplier < 1:
        raise ValueError(
            f"width_multiplier must be an integer >= 1. Received: {width_multiplier=!r}"
        )
    layers = _Layers(l2, bn_l2, seeds)
    x = keras.layers.ZeroPadding2D(padding=3, name="conv1_pad")(inputs)
    x = layers.conv(64 * width_multiplier, 7, strides=2, padding="valid", name="conv1")(x)
    if use_spec_norm:
        layers.spectral_norm = (spec_norm_iteration, spec_norm_bound)
    x = layers.batch_norm(name="bn_conv1")(x)
    x = keras.layers.Activation("relu")(x)
    x = keras.layers.MaxPooling2D(3, strides=2, padding="same")(x)
    for stage, ((filters, strides), num_blocks) in enumerate(zip(STAGES, BLOCKS[depth]), start=2):
        for index in range(num_blocks):
            x = _bottleneck_block(
                x,
                tuple(f * width_multiplier for f in filters),
                stage=stage,
                block=block_name(index, num_blocks),
                strides=strides if index == 0 else 1,
                layers=layers,
                zero_init_residual=zero_init_residual,
            )
    return keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)


def block_name(index, num_blocks):
    """The letter part of block `index`'s layer names in a stage of `num_blocks` blocks:
    a, b, c, ... (uncertainty-baselines' ResNet-50), or a, b1, b2, ... for a stage of more than
    `CAFFE_NAMES_ABOVE` blocks (Caffe's ResNet-101 / -152 prototxt names)."""
    if num_blocks <= CAFFE_NAMES_ABOVE or index == 0:
        return string.ascii_lowercase[index]
    return f"b{index}"


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
