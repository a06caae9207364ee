"""InceptionResNet-v2 (Szegedy et al. 2017) for WebVision, as Collier et al. 2021, Table 2.

The trunk is Keras' own `keras.applications.InceptionResNetV2(include_top=False,
weights=None, pooling="avg")` built on the model's input: the same layers, shapes and
initializers (glorot_uniform convs, batch norm without scale, momentum 0.99, epsilon 1e-3), so
its 54,336,736 parameters (1,536-d pooled features) are Keras'. The classifier (dense or
heteroscedastic, named "head") is added by `het_ensembles.models.build_model` on the pooled
features, as for the other backbones. Jiang et al. 2018 (MentorNet), whose WebVision setup the
paper follows, train this network from scratch; so do we (`weights=None`).

What this module adds to Keras' model, so it behaves like the package's other backbones:
- `seed`: every conv kernel is redrawn from its own initializer with a seed from the model's
  `SeedStream` (Keras' application takes no seed), so the same seed gives the same weights.
- `l2`: a Keras L2 regularizer on every conv kernel and bias (the penalty TF-slim's
  `inception_resnet_v2_arg_scope(weight_decay=...)` puts on conv weights; the head gets its own
  from `build_model`). Batch norm is not penalised.
- The input size is checked here: Keras' network needs at least 75 x 75 pixels (299 x 299 is
  its native size).
"""

import keras

MIN_IMAGE_SIZE = 75  # keras.applications.InceptionResNetV2: the smallest input it accepts
FEATURES = 1536  # width of the pooled features


def dense_head_initializer(seed):
    """Keras' InceptionResNetV2 top ("predictions"): a Dense layer's default glorot_uniform."""
    return keras.initializers.GlorotUniform(seed=seed)


def features(inputs, *, l2, seeds):
    """Keras' InceptionResNet-v2 trunk up to global average pooling: [B, H, W, 3] -> [B, 1536].

    Args:
      inputs: image tensor [B, H, W, 3], H and W >= 75 (299 x 299 in Keras and Jiang et al.).
      l2: L2 coefficient on conv kernels and biases.
      seeds: a `SeedStream` for the kernels' initializers.

    Returns:
      The pooled features [B, 1536].

    Raises:
      ValueError: for images smaller than 75 x 75 or without 3 channels.
    """
    height, width, channels = inputs.shape[1:]
    if min(height, width) < MIN_IMAGE_SIZE or channels != 3:
        raise ValueError(
            f"inception_resnet_v2 needs RGB images of at least {MIN_IMAGE_SIZE} x "
            f"{MIN_IMAGE_SIZE} (Keras' InceptionResNetV2). Received: input_shape="
            f"{tuple(inputs.shape[1:])}"
        )
    backbone = keras.applications.InceptionResNetV2(
        include_top=False, weights=None, pooling="avg", input_tensor=inputs
    )
    regularizer = keras.regularizers.L2(l2) if l2 else None
    for layer in backbone.layers:
        if not isinstance(layer, keras.layers.Conv2D):
            continue
        initializer = layer.kernel_initializer
        seeded = type(initializer).from_config({**initializer.get_config(), "seed": seeds()})
        layer.kernel.assign(seeded(layer.kernel.shape, dtype=layer.kernel.dtype))
        # The variables' regularizers count now; the layer's fields keep them in model.keras.
        layer.kernel_regularizer = layer.kernel.regularizer = regularizer
        if layer.use_bias:
            layer.bias_regularizer = layer.bias.regularizer = regularizer
    return backbone.output
