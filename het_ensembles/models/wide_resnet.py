"""Wide ResNet (Zagoruyko & Komodakis 2016) as uncertainty-baselines' `wide_resnet` (CIFAR).

WRN-n-k: `depth` n = 6 * blocks_per_group + 4 conv layers, `width_multiplier` k; three groups
of basic blocks with 16k, 32k, 64k filters map 32x32 -> 16x16 -> 8x8. Pre-activation blocks
(`version=2`, the uncertainty-baselines default) or post-activation (`version=1`). Convs have
no bias and a he_normal initializer; batch norm momentum 0.9, epsilon 1e-5 (Torch defaults);
L2 on conv kernels, batch-norm gamma / beta and the head, all with the same coefficient, as in
uncertainty-baselines. The final average pooling is global (the same as its 8x8 pooling on
32x32 inputs, and it also works for other `image_size`s).
"""

import keras

from het_ensembles.layers.spectral_normalization_conv2d import SpectralNormalizationConv2D

BATCH_NORM_DECAY = 0.9
BATCH_NORM_EPSILON = 1e-5


def dense_head_initializer(seed):
    return keras.initializers.HeNormal(seed=seed)  # uncertainty-baselines wide_resnet


def features(
    inputs,
    *,
    l2,
    seeds,
    depth=28,
    width_multiplier=10,
    version=2,
    use_spec_norm=False,
    spec_norm_iteration=1,
    spec_norm_bound=6.0,
    dropout_rate=0.0,
    gp_input_dim=None,
):
    """The WRN trunk up to global average pooling: [B, H, W, C] -> [B, 64 * k].

    Args:
      inputs: image tensor [B, H, W, C].
      l2: L2 coefficient on conv kernels and batch-norm gamma / beta.
      seeds: a `SeedStream` for the initializers.
      depth: n in WRN-n-k, 6 * m + 4 (16, 22, 28, 40, ...).
      width_multiplier: k in WRN-n-k.
      version: 1 (post-activation, He et al. 2015) or 2 (pre-activation, He et al. 2016).
      use_spec_norm: wrap every conv in `SpectralNormalizationConv2D` (SNGP, uncertainty-
        baselines' `wide_resnet_sngp` / `wide_resnet_hetsngp`).
      spec_norm_iteration: its power iterations per step.
      spec_norm_bound: its norm bound (`norm_multiplier`).
      dropout_rate: filter-wise dropout (one mask per channel) after the first conv and each
        ReLU inside the blocks, as the SNGP models' `use_filterwise_dropout` (0: none).
      gp_input_dim: None, or the width of a fixed random projection (Dense, no bias, not
        trained, random normal 0.05) of the pooled features, the SNGP models' `gp_input_dim`.

    Returns:
      The pooled features [B, 64 * k] (or [B, gp_input_dim]).

    Raises:
      ValueError: for a depth that is not 6m + 4 or a version other than 1 or 2.
    """
    if not isinstance(depth, int) or depth < 10 or (depth - 4) % 6:
        raise ValueError(f"depth must be 6 * m + 4 (16, 22, 28, 40, ...). Received: depth={depth}")
    if version not in (1, 2):
        raise ValueError(f"version must be 1 or 2. Received: version={version}")
    if not width_multiplier > 0:
        raise ValueError(
            f"width_multiplier must be > 0. Received: width_multiplier={width_multiplier}"
        )
    regularizer = keras.regularizers.L2(l2) if l2 else None

    def conv(filters, kernel_size=3, strides=1):
        layer = keras.layers.Conv2D(
            filters,
            kernel_size,
            strides=strides,
            padding="same",
            use_bias=False,
            kernel_initializer=keras.initializers.HeNormal(seed=seeds()),
            kernel_regularizer=regularizer,
        )
        if not use_spec_norm:
            return layer
        return SpectralNormalizationConv2D(
            layer, spec_norm_iteration, spec_norm_bound, seed=seeds()
        )

    def dropout(x):
        if not dropout_rate:
            return x
        return keras.layers.Dropout(
            dropout_rate, noise_shape=(None, 1, 1, x.shape[-1]), seed=seeds()
        )(x)

    def batch_norm():
        return keras.layers.BatchNormalization(
            momentum=BATCH_NORM_DECAY,
            epsilon=BATCH_NORM_EPSILON,
            gamma_regularizer=regularizer,
            beta_regularizer=regularizer,
        )

    def block(x, filters, strides):
        y = x
        if version == 2:
            y = dropout(keras.layers.Activation("relu")(batch_norm()(y)))
        y = conv(filters, strides=strides)(y)
        y = dropout(keras.layers.Activation("relu")(batch_norm()(y)))
        y = conv(filters)(y)
        if version == 1:
            y = batch_norm()(y)
        if strides != 1 or x.shape[-1] != filters:
            x = conv(filters, kernel_size=1, strides=strides)(x)
        x = keras.layers.Add()([x, y])
        if version == 1:
            x = keras.layers.Activation("relu")(x)
        return x

    blocks_per_group = (depth - 4) // 6
    x = dropout(conv(16)(inputs))
    if version == 1:
        x = keras.layers.Activation("relu")(batch_norm()(x))
    for filters, strides in ((16, 1), (32, 2), (64, 2)):
        for index in range(blocks_per_group):
            x = block(x, round(filters * width_multiplier), strides if index == 0 else 1)
    if version == 2:
        x = keras.layers.Activation("relu")(batch_norm()(x))
    x = keras.layers.GlobalAveragePooling2D()(x)
    if gp_input_dim:
        x = keras.layers.Dense(
            gp_input_dim,
            use_bias=False,
            kernel_initializer=keras.initializers.RandomNormal(stddev=0.05, seed=seeds()),
            trainable=False,
            name="gp_input_projection",
        )(x)
    return x
