"""`RandomFeatureGaussianProcess`: the SNGP output layer, a random-feature Gaussian process.

Liu et al., "Simple and Principled Uncertainty Estimation with Deterministic Deep Learning via
Distance Awareness" (NeurIPS 2020), section 3.1 and Algorithm 1; edward2's
`edward2/tensorflow/layers/random_feature.py` `RandomFeatureGaussianProcess` (GitHub main).
Where it sits: the head of an SNGP model (`het_ensembles.models.build_model` with
`{"type": "RandomFeatureGaussianProcess", ...}`), and the loc of `HeteroscedasticSNGPLayer`.

    x' = LayerNorm(x)  or  x / sqrt(gp_kernel_scale)
    phi(x) = cos(W x' + b) [* sqrt(2 / num_inducing)]     (W, b fixed random features)
    logits = phi(x) beta + bias,   Cov = ridge * Phi (ridge I + sum_train phi phi^T)^-1 Phi^T
"""

import math
import random

import keras
import tensorflow as tf

from het_ensembles.cli.arguments import check_int
from het_ensembles.layers.laplace_random_feature_covariance import LaplaceRandomFeatureCovariance
from het_ensembles.layers.mean_field import mean_field_logits
from het_ensembles.layers.orthogonal_random_features import OrthogonalRandomFeatures
from het_ensembles.layers.random_fourier_features import RandomFourierFeatures

_LAYER_KWARGS = ("trainable", "autocast")  # Keras Layer arguments, not the output Dense's


def _serialize(value):
    """A JSON-able form of an initializer / activation / regularizer argument."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return keras.saving.serialize_keras_object(value)


def _output_argument(key, value):
    """An argument of the output Dense, its initializer / regularizer configs deserialized."""
    if key.endswith("_initializer") and value is not None:
        return keras.initializers.get(value)
    if key.endswith("_regularizer") and value is not None:
        return keras.regularizers.get(value)
    return _deserialize(value)


def _deserialize(value):
    return keras.saving.deserialize_keras_object(value) if isinstance(value, dict) else value


@keras.saving.register_keras_serializable(package="het_ensembles")
class RandomFeatureGaussianProcess(keras.layers.Layer):
    """Gaussian process output layer with a random-feature approximation (edward2's layer).

    In training the layer returns the MAP logits and updates the posterior precision of the
    output weights from the batch's random features (`LaplaceRandomFeatureCovariance`); at
    inference it also returns the batch's predictive covariance [B, B]. Call
    `reset_covariance_matrix()` at the start of each epoch when `gp_cov_momentum < 0` (the
    trainer's `CovarianceReset` callback does).

    Args (edward2's, with its defaults):
      units: number of outputs K.
      num_inducing: number of random features D.
      gp_kernel_type: "gaussian" (RBF) or, with custom features, "linear" (phi(x) = x); without
        custom features "gaussian" or "laplacian".
      gp_kernel_scale: length-scale l: the input is divided by sqrt(l) (custom features, no
        input normalisation; None: not scaled) or the Fourier features' initial scale.
      gp_output_bias: initial value of the output bias.
      normalize_input: LayerNorm the input (instead of the length-scale).
      gp_kernel_scale_trainable: learn the length-scale (non-custom Fourier features only).
      gp_output_bias_trainable: learn the output bias.
      gp_cov_momentum: < 0: exact precision, summed since the last reset; else momentum.
      gp_cov_ridge_penalty: ridge s of the posterior covariance (s I + P)^-1.
      scale_random_features: multiply the features by sqrt(2 / num_inducing).
      use_custom_random_features: features from a fixed Dense layer (initialiser and
        activation below) instead of `RandomFourierFeatures`.
      custom_random_features_initializer: the feature kernel's initialiser (None: edward2's
        `OrthogonalRandomFeatures(stddev=1.0)`; uncertainty-baselines passes stddev 0.05).
      custom_random_features_activation: the features' activation (None: cos).
      l2_regularization: L2 coefficient on the output weights beta.
      gp_cov_likelihood: "gaussian", "binary_logistic" or "poisson" (the last two for 1 unit).
      return_gp_cov: also return the covariance [B, B] (and keep the precision state).
      return_random_features: also return phi(x) [B, D].
      dtype: the layer's dtype policy (None: float32, the head stays float32 under mixed
        precision).
      **gp_output_kwargs: arguments of the output Dense (e.g. `kernel_initializer`).
      logits_only: (keyword, ours) return only the logits, for Keras models and losses.
      mean_field_factor: (keyword, ours) None: logits as edward2; else at inference the
        logits are `mean_field_logits(logits, cov, mean_field_factor)` (uncertainty-baselines'
        `gp_mean_field_factor`; < 0 leaves them unchanged), which is what an SNGP head predicts.
      seed: (keyword, ours) seed of the random features and the output weights (None: drawn
        from Python's RNG and stored in the config). edward2 seeds the features with 0.

    Returns (from `call`):
      edward2's list as a tuple: `(logits, covmat)` by default, `(logits, covmat, features)`
      with `return_random_features`; with neither output, or with `logits_only`, the logits
      alone. Training returns the identity as covmat, as edward2.

    Raises:
      ValueError: for num_inducing < 1, an unknown kernel type, ridge <= 0 or a bad likelihood;
        `mean_field_factor` without `return_gp_cov`.
    """

    def __init__(
        self,
        units,
        num_inducing=1024,
        gp_kernel_type="gaussian",
        gp_kernel_scale=1.0,
        gp_output_bias=0.0,
        normalize_input=True,
        gp_kernel_scale_trainable=False,
        gp_output_bias_trainable=False,
        gp_cov_momentum=0.999,
        gp_cov_ridge_penalty=1e-6,
        scale_random_features=True,
        use_custom_random_features=True,
        custom_random_features_initializer=None,
        custom_random_features_activation=None,
        l2_regularization=0.0,
        gp_cov_likelihood="gaussian",
        return_gp_cov=True,
        return_random_features=False,
        dtype=None,
        name="random_feature_gaussian_process",
        *,
        logits_only=False,
        mean_field_factor=None,
        seed=None,
        **gp_output_kwargs,
    ):
        check_int("units", units, 1)
        check_int("num_inducing", num_inducing, 1)
        kernel_types = (
            ("gaussian", "linear") if use_custom_random_features else ("gaussian", "laplacian")
        )
        if gp_kernel_type.lower() not in kernel_types:
            raise ValueError(
                f"gp_kernel_type must be one of {kernel_types} with use_custom_random_features="
                f"{use_custom_random_features}. Received: gp_kernel_type={gp_kernel_type!r}"
            )
        if gp_kernel_scale is not None and not gp_kernel_scale > 0:
            raise ValueError(f"gp_kernel_scale must be > 0 or None. Received: {gp_kernel_scale!r}")
        if mean_field_factor is not None and not return_gp_cov:
            raise ValueError(
                "mean_field_factor needs the covariance. Received: mean_field_factor="
                f"{mean_field_factor}, return_gp_cov=False"
            )
        if seed is not None:
            check_int("seed", seed, 0)
        layer_kwargs = {k: gp_output_kwargs.pop(k) for k in _LAYER_KWARGS if k in gp_output_kwargs}
        super().__init__(name=name, dtype="float32" if dtype is None else dtype, **layer_kwargs)
        self.units = int(units)
        self.num_inducing = int(num_inducing)
        self.gp_kernel_type = gp_kernel_type
        self.gp_kernel_scale = gp_kernel_scale
        self.gp_output_bias = float(gp_output_bias)
        self.normalize_input = bool(normalize_input)
        self.gp_kernel_scale_trainable = bool(gp_kernel_scale_trainable)
        self.gp_output_bias_trainable = bool(gp_output_bias_trainable)
        self.gp_cov_momentum = float(gp_cov_momentum)
        self.gp_cov_ridge_penalty = float(gp_cov_ridge_penalty)
        self.scale_random_features = bool(scale_random_features)
        self.use_custom_random_features = bool(use_custom_random_features)
        self.custom_random_features_initializer = _deserialize(custom_random_features_initializer)
        self.custom_random_features_activation = _deserialize(custom_random_features_activation)
        self.l2_regularization = float(l2_regularization)
        self.gp_cov_likelihood = gp_cov_likelihood
        self.return_gp_cov = bool(return_gp_cov)
        self.return_random_features = bool(return_random_features)
        self.logits_only = bool(logits_only)
        self.mean_field_factor = mean_field_factor
        self.seed = random.randint(0, 2**31 - 1) if seed is None else int(seed)
        self.gp_output_kwargs = {k: _output_argument(k, v) for k, v in gp_output_kwargs.items()}
        self._user_dtype = dtype
        self.gp_feature_scale = math.sqrt(2.0 / float(num_inducing))
        self.gp_input_scale = None if gp_kernel_scale is None else 1.0 / math.sqrt(gp_kernel_scale)
        if self.return_gp_cov:  # checks momentum, ridge and likelihood now
            self._gp_cov_layer = LaplaceRandomFeatureCovariance(
                momentum=self.gp_cov_momentum,
                ridge_penalty=self.gp_cov_ridge_penalty,
                likelihood=gp_cov_likelihood,
                dtype=self.dtype_policy,
                name="gp_covariance",
            )

    def build(self, input_shape):
        shape = tuple(input_shape)
        if self.normalize_input:
            self._input_norm_layer = keras.layers.LayerNormalization(
                dtype=self.dtype_policy, name="gp_input_normalization"
            )
            self._input_norm_layer.build(shape)
        self._random_feature = self._make_random_feature_layer()
        self._random_feature.build(shape)
        shape = self._random_feature.compute_output_shape(shape)
        if self.return_gp_cov:
            self._gp_cov_layer.build(shape)
        kwargs = dict(self.gp_output_kwargs)
        if kwargs.get("kernel_initializer") is None:
            kwargs["kernel_initializer"] = keras.initializers.GlorotUniform(seed=self.seed + 2)
        self._gp_output_layer = keras.layers.Dense(
            self.units,
            use_bias=False,
            kernel_regularizer=keras.regularizers.L2(self.l2_regularization),
            dtype=self.dtype_policy,
            name="gp_output_weights",
            **kwargs,
        )
        self._gp_output_layer.build(shape)
        self._gp_output_bias = self.add_weight(
            shape=(self.units,),
            initializer=keras.initializers.Constant(self.gp_output_bias),
            trainable=self.gp_output_bias_trainable,
            name="gp_output_bias",
        )

    def _make_random_feature_layer(self):
        """The feature map: Fourier features, identity ("linear") or a fixed Dense (custom)."""
        if not self.use_custom_random_features:
            return RandomFourierFeatures(
                self.num_inducing,
                kernel_initializer=self.gp_kernel_type,
                scale=self.gp_kernel_scale,
                trainable=self.gp_kernel_scale_trainable,
                seed=self.seed,
                dtype=self.dtype_policy,
                name="gp_random_feature",
            )
        if self.gp_kernel_type.lower() == "linear":
            return keras.layers.Identity(name="gp_random_feature")
        initializer = self.custom_random_features_initializer
        if initializer is None:
            initializer = OrthogonalRandomFeatures(stddev=1.0, seed=self.seed)
        activation = self.custom_random_features_activation
        return keras.layers.Dense(
            self.num_inducing,
            activation=tf.math.cos if activation is None else activation,
            kernel_initializer=initializer,
            bias_initializer=keras.initializers.RandomUniform(0.0, 2 * math.pi, seed=self.seed + 1),
            trainable=False,
            dtype=self.dtype_policy,
            name="gp_random_feature",
        )

    def call(self, inputs, global_step=None, training=None):
        del global_step  # edward2's signature; unused there too
        gp_inputs = tf.cast(inputs, self.compute_dtype)
        if self.normalize_input:
            gp_inputs = self._input_norm_layer(gp_inputs)
        elif self.use_custom_random_features and self.gp_input_scale is not None:
            gp_inputs = gp_inputs * self.gp_input_scale
        gp_feature = self._random_feature(gp_inputs)
        if self.scale_random_features:
            gp_feature = gp_feature * self.gp_feature_scale
        gp_output = self._gp_output_layer(gp_feature) + self._gp_output_bias  # [B, K]
        outputs = [gp_output]
        if self.return_gp_cov:
            gp_covmat = self._gp_cov_layer(gp_feature, gp_output, training=training)  # [B, B]
            if self.mean_field_factor is not None and not training:
                outputs[0] = mean_field_logits(gp_output, gp_covmat, self.mean_field_factor)
            outputs.append(gp_covmat)
        if self.return_random_features:
            outputs.append(gp_feature)
        if self.logits_only or len(outputs) == 1:
            return outputs[0]
        return tuple(outputs)

    def reset_covariance_matrix(self):
        """Zeroes the posterior precision (edward2's name; the recipes call it every epoch)."""
        self._gp_cov_layer.reset_precision_matrix()

    def compute_output_shape(self, input_shape):
        batch = input_shape[0]
        shapes = [(batch, self.units)]
        if self.return_gp_cov:
            shapes.append((batch, batch))
        if self.return_random_features:
            shapes.append((batch, self.num_inducing))
        if self.logits_only or len(shapes) == 1:
            return shapes[0]
        return tuple(shapes)

    def get_config(self):
        config = super().get_config()
        config.update(
            units=self.units,
            num_inducing=self.num_inducing,
            gp_kernel_type=self.gp_kernel_type,
            gp_kernel_scale=self.gp_kernel_scale,
            gp_output_bias=self.gp_output_bias,
            normalize_input=self.normalize_input,
            gp_kernel_scale_trainable=self.gp_kernel_scale_trainable,
            gp_output_bias_trainable=self.gp_output_bias_trainable,
            gp_cov_momentum=self.gp_cov_momentum,
            gp_cov_ridge_penalty=self.gp_cov_ridge_penalty,
            scale_random_features=self.scale_random_features,
            use_custom_random_features=self.use_custom_random_features,
            custom_random_features_initializer=_serialize(self.custom_random_features_initializer),
            custom_random_features_activation=_serialize(self.custom_random_features_activation),
            l2_regularization=self.l2_regularization,
            gp_cov_likelihood=self.gp_cov_likelihood,
            return_gp_cov=self.return_gp_cov,
            return_random_features=self.return_random_features,
            logits_only=self.logits_only,
            mean_field_factor=self.mean_field_factor,
            seed=self.seed,
            **{k: _serialize(v) for k, v in self.gp_output_kwargs.items()},
        )
        if self._user_dtype is None:
            config["dtype"] = None
        return config
