"""Rank-1 BNN models: the ResNet-50 of uncertainty-baselines' `het_rank1_bnn.py` and a small CNN.

`resnet50_rank1` is `uncertainty_baselines.models.resnet50_het_rank1` (commit 163351d4): the
ResNet-50 v1.5 of `resnet.py` (same layer names, no conv bias, he_normal, batch norm with
PyTorch's defaults) with every convolution an `het_ensembles.layers.Conv2DRank1`, and the
heteroscedastic head `MCSoftmaxDenseFACustomLayers` whose loc, diagonal (softplus) and factor
layers are `DenseRank1` (kernels RandomNormal(0.01), eps 1e-5). `small_cnn_rank1` is
`small.py`'s CNN with rank-1 convolutions and dense layer, for the embedded digits.

The model follows the multi-head convention of `ensemble_size` M: images [B, H, W, C] in, the
batch tiled M times inside (member-major, as the script's `tf.tile(images, [M, 1, 1, 1])`),
logits [B, M, K] out (head m is member m). Batch norm is one layer over all members, as
edward2's `ensemble_batchnorm(use_tpu=True)` the script runs on TPU; `use_ensemble_bn=True`
(edward2's `EnsembleSyncBatchNorm`) is not implemented. L2 sits on the kernels and the dense
layers' per-member biases, the variables `het_rank1_bnn.py`'s `compute_l2_loss` selects by
name ("kernel", "bias"; its "batch_norm" matches no variable of this model); the rank-1
factors' KL is added by the trainer (`het_ensembles.training.rank1`).
"""

import keras
import tensorflow as tf

from het_ensembles.layers.rank1 import Conv2DRank1, DenseRank1
from het_ensembles.models import resnet

# The rank-1 options (het_rank1_bnn.py's flags) and their defaults there.
RANK1_OPTIONS = {
    "alpha_initializer": "trainable_normal",
    "gamma_initializer": "trainable_normal",
    "alpha_regularizer": "normal_kl_divergence",
    "gamma_regularizer": "normal_kl_divergence",
    "use_additive_perturbation": False,
    "random_sign_init": 0.75,
    "dropout_rate": 1e-3,
    "prior_stddev": 0.05,
}
HEAD_EPS = 1e-5  # resnet50_het_rank1's eps: probabilities clipped to [eps, 1] before the log


@keras.saving.register_keras_serializable(package="het_ensembles")
class TileMembers(keras.layers.Layer):
    """[B, ...] -> [M * B, ...]: the batch repeated M times, member-major (`tf.tile`)."""

    def __init__(self, ensemble_size, **kwargs):
        super().__init__(**kwargs)
        self.ensemble_size = int(ensemble_size)

    def call(self, inputs):
        multiples = [self.ensemble_size] + [1] * (len(inputs.shape) - 1)
        return tf.tile(inputs, multiples)

    def compute_output_shape(self, input_shape):
        return (None, *input_shape[1:])

    def get_config(self):
        return {**super().get_config(), "ensemble_size": self.ensemble_size}


@keras.saving.register_keras_serializable(package="het_ensembles")
class MemberLogits(keras.layers.Layer):
    """[M * B, K] member-major -> [B, M, K] (head m of example b is row m * B + b)."""

    def __init__(self, ensemble_size, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.ensemble_size = int(ensemble_size)

    def call(self, logits):
        classes = logits.shape[-1]
        logits = tf.reshape(logits, [self.ensemble_size, -1, classes])
        return tf.transpose(logits, [1, 0, 2])

    def compute_output_shape(self, input_shape):
        return (None, self.ensemble_size, input_shape[-1])

    def get_config(self):
        return {**super().get_config(), "ensemble_size": self.ensemble_size}


class _Rank1Layers:
    """Rank-1 conv / dense factories with the model's options, seeds and L2."""

    def __init__(self, *, ensemble_size, l2, seeds, options):
        unknown = sorted(set(options) - set(RANK1_OPTIONS))
        if unknown:
            raise ValueError(f"Unknown rank-1 options: {unknown}. Allowed: {sorted(RANK1_OPTIONS)}")
        self.options = {**RANK1_OPTIONS, **options, "ensemble_size": ensemble_size}
        self.regularizer = keras.regularizers.L2(l2) if l2 else None
        self.seeds = seeds

    def conv(self, filters, kernel_size, *, strides=1, padding="valid", name=None, **kwargs):
        kwargs.setdefault("use_bias", False)
        kwargs.setdefault("kernel_initializer", keras.initializers.HeNormal(seed=self.seeds()))
        return Conv2DRank1(
            filters,
            kernel_size,
            strides=strides,
            padding=padding,
            kernel_regularizer=self.regularizer,
            bias_regularizer=self.regularizer,
            seed=self.seeds(),
            name=name,
            **self.options,
            **kwargs,
        )

    def dense(self, units, *, name=None, **kwargs):
        return DenseRank1(
            units,
            kernel_regularizer=self.regularizer,
            bias_regularizer=self.regularizer,
            seed=self.seeds(),
            name=name,
            **self.options,
            **kwargs,
        )

    def batch_norm(self, *, name, gamma_initializer="ones"):
        return keras.layers.BatchNormalization(
            momentum=resnet.BATCH_NORM_DECAY,
            epsilon=resnet.BATCH_NORM_EPSILON,
            gamma_initializer=gamma_initializer,
            name=name,
        )


def resnet50_rank1(
    inputs,
    *,
    l2,
    seeds,
    ensemble_size=1,
    use_ensemble_bn=False,
    alpha_initializer="trainable_normal",
    gamma_initializer="trainable_normal",
    alpha_regularizer="normal_kl_divergence",
    gamma_regularizer="normal_kl_divergence",
    use_additive_perturbation=False,
    random_sign_init=0.75,
    dropout_rate=1e-3,
    prior_stddev=0.05,
):
    """The rank-1 ResNet-50 trunk on the tiled batch: [M * B, H, W, C] -> [M * B, 2048].

    Args: `het_rank1_bnn.py`'s flags of the same names (`RANK1_OPTIONS`); `ensemble_size` is
    M (the config's `ensemble_size`, passed by `build_model`).

    Raises:
      ValueError: for use_ensemble_bn=True (not implemented) or a bad rank-1 option.
    """
    _check_ensemble_bn(use_ensemble_bn)
    options = {k: v for k, v in locals().items() if k in RANK1_OPTIONS}
    layers = _Rank1Layers(ensemble_size=ensemble_size, l2=l2, seeds=seeds, options=options)
    x = keras.layers.ZeroPadding2D(padding=3, name="conv1_pad")(inputs)
    x = layers.conv(64, 7, strides=2, padding="valid", name="conv1")(x)
    x = layers.batch_norm(name="bn_conv1")(x)
    x = keras.layers.Activation("relu")(x)
    x = keras.layers.MaxPooling2D(3, strides=2, padding="same")(x)
    for stage, ((filters, strides), num_blocks) in enumerate(
        zip(resnet.STAGES, resnet.BLOCKS[50]), start=2
    ):
        for index in range(num_blocks):
            x = _bottleneck_block(
                x,
                filters,
                name=f"{stage}{resnet.block_name(index, num_blocks)}_branch",
                strides=strides if index == 0 else 1,
                layers=layers,
            )
    return keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)


def _check_ensemble_bn(use_ensemble_bn):
    if use_ensemble_bn:
        raise ValueError(
            "use_ensemble_bn=True (edward2's EnsembleSyncBatchNorm) is not implemented; "
            "het_rank1_bnn.py's default is False. Received: use_ensemble_bn=True"
        )


def _bottleneck_block(inputs, filters, *, name, strides, layers):
    """`resnet50_het_rank1.bottleneck_block`: as `resnet._bottleneck_block` with rank-1 convs
    and every batch norm gamma starting at 1 (no zero-init of the residual branch)."""
    filters1, filters2, filters3 = filters
    x = layers.conv(filters1, 1, name=f"res{name}2a")(inputs)
    x = keras.layers.Activation("relu")(layers.batch_norm(name=f"bn{name}2a")(x))
    x = layers.conv(filters2, 3, strides=strides, padding="same", name=f"res{name}2b")(x)
    x = keras.layers.Activation("relu")(layers.batch_norm(name=f"bn{name}2b")(x))
    x = layers.conv(filters3, 1, name=f"res{name}2c")(x)
    x = layers.batch_norm(name=f"bn{name}2c")(x)
    shortcut = inputs
    if strides != 1 or inputs.shape[-1] != filters3:
        shortcut = layers.conv(filters3, 1, strides=strides, name=f"res{name}1")(inputs)
        shortcut = layers.batch_norm(name=f"bn{name}1")(shortcut)
    x = keras.layers.Add()([x, shortcut])
    return keras.layers.Activation("relu")(x)


def small_cnn_rank1(
    inputs,
    *,
    l2,
    seeds,
    ensemble_size=1,
    filters=(32, 64),
    hidden_units=128,
    use_ensemble_bn=False,
    alpha_initializer="trainable_normal",
    gamma_initializer="trainable_normal",
    alpha_regularizer="normal_kl_divergence",
    gamma_regularizer="normal_kl_divergence",
    use_additive_perturbation=False,
    random_sign_init=0.75,
    dropout_rate=1e-3,
    prior_stddev=0.05,
):
    """`small.small_cnn_features` with rank-1 convs (with bias) and a rank-1 dense layer:
    [M * B, H, W, C] -> [M * B, hidden_units]. Args: as `resnet50_rank1` (it has no batch
    norm: `use_ensemble_bn` is accepted, so the ImageNet config runs on it, and must be False).
    """
    _check_ensemble_bn(use_ensemble_bn)
    options = {k: v for k, v in locals().items() if k in RANK1_OPTIONS}
    layers = _Rank1Layers(ensemble_size=ensemble_size, l2=l2, seeds=seeds, options=options)
    x = inputs
    for count in filters:
        x = layers.conv(count, 3, padding="same", activation="relu", use_bias=True)(x)
    x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.Flatten()(x)
    initializer = keras.initializers.HeNormal(seed=seeds())
    return layers.dense(hidden_units, activation="relu", kernel_initializer=initializer)(x)


def heteroscedastic_head(head, *, num_classes, layers, seed, name):
    """`MCSoftmaxDenseFACustomLayers` on rank-1 loc / diag (softplus) / scale layers.

    Args:
      head: `build_model`'s head dict of type "MCSoftmaxDenseFA" (temperature, MC samples,
        num_factors, ...); not parameter-efficient.
      layers: the model's `_Rank1Layers`.
      seed: the head's seed.
      name: the layer name ("head").

    Raises:
      ValueError: for another head type or parameter_efficient=True.
    """
    kwargs = dict(head)
    head_type = kwargs.pop("type")
    if head_type != "MCSoftmaxDenseFA" or kwargs.pop("parameter_efficient", False):
        raise ValueError(
            "A rank-1 model's head is MCSoftmaxDenseFA (built as MCSoftmaxDenseFACustomLayers "
            f"on DenseRank1 layers, not parameter-efficient). Received: head={head!r}"
        )
    num_factors = kwargs.pop("num_factors")

    def dense(units, role, activation=None):
        return layers.dense(
            units,
            kernel_initializer=keras.initializers.RandomNormal(stddev=0.01, seed=layers.seeds()),
            activation=activation,
            dtype="float32",
            name=f"{role}_layer",
        )

    # Imported here, not at the top: `het_ensembles.models` is imported while Keras registers
    # our objects, which can happen in the middle of importing `het_ensembles.layers` (its
    # base module imports Keras); the head's module needs that base complete.
    from het_ensembles.layers.mc_softmax_dense_fa_custom_layers import (
        MCSoftmaxDenseFACustomLayers,
    )

    kwargs.setdefault("eps", HEAD_EPS)
    kwargs.setdefault("dtype", "float32")
    return MCSoftmaxDenseFACustomLayers(
        num_classes=num_classes,
        num_factors=num_factors,
        scale_layer=dense(num_classes * num_factors, "scale"),
        loc_layer=dense(num_classes, "loc"),
        diag_layer=dense(num_classes, "diag", activation="softplus"),
        logits_only=True,
        seed=seed,
        name=name,
        **kwargs,
    )


def build_rank1_model(
    trunk, *, input_shape, num_classes, head, l2, seeds, head_seed, ensemble_size, name, **kwargs
):
    """A rank-1 model: tile the batch, `trunk`, the rank-1 head, logits [B, M, K].

    Args:
      trunk: `resnet50_rank1` or `small_cnn_rank1` (`build_model`'s architectures of those
        names).
      head: `build_model`'s head dict: {"type": "MCSoftmaxDenseFA", ...} (the script's head)
        or {"type": "dense"} (a `DenseRank1(K)` classifier).
      seeds: a `SeedStream`; head_seed: the heteroscedastic head's seed.
      ensemble_size: M >= 1.
      name: the model's name.
      **kwargs: the trunk's options (`RANK1_OPTIONS` and its own).

    Returns:
      A `keras.Model` from images [B, ...] to logits [B, M, K].

    Raises:
      ValueError: for a bad option or head.
    """
    inputs = keras.Input(shape=tuple(input_shape), name="inputs")
    x = TileMembers(ensemble_size, name="tile_members")(inputs)
    features = trunk(x, l2=l2, seeds=seeds, ensemble_size=ensemble_size, **kwargs)
    options = {k: v for k, v in kwargs.items() if k in RANK1_OPTIONS}
    layers = _Rank1Layers(ensemble_size=ensemble_size, l2=l2, seeds=seeds, options=options)
    if head.get("type") == "dense":
        head_layer = layers.dense(
            num_classes,
            kernel_initializer=keras.initializers.RandomNormal(stddev=0.01, seed=seeds()),
            dtype="float32",
            name="head",
        )
    else:
        head_layer = heteroscedastic_head(
            head, num_classes=num_classes, layers=layers, seed=head_seed, name="head"
        )
        for role in head_layer.sublayer_order():
            # Built here: the head would probe them with a batch of 1, not a multiple of M.
            getattr(head_layer, f"{role}_layer").build((None, features.shape[-1]))
    logits = MemberLogits(ensemble_size, name="member_logits")(head_layer(features))
    return keras.Model(inputs=inputs, outputs=logits, name=name)
