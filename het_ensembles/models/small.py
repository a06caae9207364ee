"""Small models for the embedded sets: a CNN for small images (8x8 digits) and an MLP.

`small_cnn`: two 3x3 conv + ReLU layers, 2x2 max pooling, one dense ReLU layer.
`mlp`: flatten, then dense ReLU layers. Both use he_normal initializers and L2 on kernels
and biases; the head is added by `het_ensembles.models.build_model`.

`small_cnn(use_spec_norm=True)` wraps its convolutions in `SpectralNormalizationConv2D` and its
dense layer in `SpectralNormalization` (SNGP's distance-preserving backbone, as `wide_resnet`
and `resnet50` take it), so the SNGP / HetSNGP heads can sit on the same small CNN as the
Hom / Het ones.
"""

import keras

from het_ensembles.layers.spectral_normalization import SpectralNormalization
from het_ensembles.layers.spectral_normalization_conv2d import SpectralNormalizationConv2D


def dense_head_initializer(seed):
    return keras.initializers.GlorotUniform(seed=seed)  # the Keras Dense default


def small_cnn_features(
    inputs,
    *,
    l2,
    seeds,
    filters=(32, 64),
    hidden_units=128,
    use_spec_norm=False,
    spec_norm_iteration=1,
    spec_norm_bound=6.0,
):
    """[B, H, W, C] images -> [B, hidden_units] features.

    Args:
      use_spec_norm: spectral-normalise every conv and the dense layer (SNGP).
      spec_norm_iteration: power iterations per training step.
      spec_norm_bound: the bound on each layer's spectral norm (uncertainty-baselines' SNGP
        default 6).

    Raises:
      ValueError: if the inputs are not images or a size is not positive.
    """
    if len(inputs.shape) != 4:
        raise ValueError(
            "small_cnn needs image inputs [H, W, C]; use architecture='mlp' for feature "
            f"vectors. Received: input_shape={tuple(inputs.shape[1:])}"
        )
    _check_units("filters", filters)
    _check_units("hidden_units", [hidden_units])

    def normalised(layer, wrapper):
        if not use_spec_norm:
            return layer
        return wrapper(layer, spec_norm_iteration, spec_norm_bound, seed=seeds())

    x = inputs
    for count in filters:
        conv = keras.layers.Conv2D(
            count, 3, padding="same", activation="relu", **_dense_args(l2, seeds)
        )
        x = normalised(conv, SpectralNormalizationConv2D)(x)
    x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.Flatten()(x)
    dense = keras.layers.Dense(hidden_units, activation="relu", **_dense_args(l2, seeds))
    return normalised(dense, SpectralNormalization)(x)


def mlp_features(inputs, *, l2, seeds, hidden_units=(128, 128)):
    """[B, ...] -> [B, hidden_units[-1]] features (inputs are flattened first).

    With `hidden_units=()` the model is multinomial logistic regression on the flat inputs.

    Raises:
      ValueError: if a layer size is not positive.
    """
    _check_units("hidden_units", hidden_units, allow_empty=True)
    x = keras.layers.Flatten()(inputs) if len(inputs.shape) > 2 else inputs
    for units in hidden_units:
        x = keras.layers.Dense(units, activation="relu", **_dense_args(l2, seeds))(x)
    return x


def _dense_args(l2, seeds):
    regularizer = keras.regularizers.L2(l2) if l2 else None
    return {
        "kernel_initializer": keras.initializers.HeNormal(seed=seeds()),
        "kernel_regularizer": regularizer,
        "bias_regularizer": regularizer,
    }


def _check_units(name, values, allow_empty=False):
    values = list(values)
    if (not values and not allow_empty) or not all(isinstance(v, int) and v > 0 for v in values):
        raise ValueError(f"{name} must be positive integers. Received: {name}={values}")
