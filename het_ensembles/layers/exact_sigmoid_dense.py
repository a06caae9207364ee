"""`ExactSigmoidDense`: binary/multilabel head with diagonal noise and a closed-form predictive."""

import random

import keras
import numpy as np
import tensorflow as tf

from het_ensembles.layers.base import (
    _NOISE_VARIANCE,
    EdwardCallMixin,
    _tfd,
    check_int,
    logit_noise_name,
)


def _log_ndtr(z):
    """log Phi(z), stable in both tails (TFP's special_math.log_ndtr, as edward2 uses)."""
    import tensorflow_probability as tfp  # lazily, as in base: it imports tf-keras

    return tfp.distributions.Normal(0.0, 1.0).log_cdf(z)


@keras.saving.register_keras_serializable(package="het_ensembles")
class ExactSigmoidDense(EdwardCallMixin, keras.layers.Layer):
    """Exact predictive for binary or multilabel outputs with independent latent noise.

    edward2's layer of the same name (Collier et al., 2020, arXiv:2003.06778): each output has
    a latent `u_k = mu_k(x) + s_k(x) eps`, `s_k = softplus(W_s x + b_s) + min_scale`, and
    `y_k = 1[u_k > 0]`, so `p(y_k = 1 | x) = F(mu_k / s_k)` with F the CDF of eps: the standard
    normal CDF (Normal noise, a probit) or the sigmoid (Logistic noise). No Monte Carlo.

    Args:
      num_outputs: number of binary outputs K >= 1.
      logit_noise: tfp.distributions.Normal (default) or Logistic, or its name.
      min_scale: floor added to the scale s_k (> 0).
      logits_only: return only the logits.
      dtype: dtype policy (None: float32, as the other heads).
      seed: (keyword-only) seed of the initial weights (None: drawn from Python's RNG).

    Returns (from `call`):
      logits [B, K] = log F(z) - log F(-z) (the inverse sigmoid of the probability) if
      `logits_only`, else `(logits, log_probs, probs)`, computed stably in log space.
    """

    def __init__(
        self,
        num_outputs,
        logit_noise="Normal",
        min_scale=1e-2,
        logits_only=False,
        dtype=None,
        name="ExactSigmoidDense",
        *,
        seed=None,
        **kwargs,
    ):
        check_int("num_outputs", num_outputs, 1)
        self.logit_noise = logit_noise_name(logit_noise, allowed=("Normal", "Logistic"))
        if isinstance(min_scale, bool) or not (
            isinstance(min_scale, (int, float)) and 0 < min_scale < np.inf
        ):
            raise ValueError(f"min_scale must be a float > 0. Received: min_scale={min_scale!r}")
        if seed is not None:
            check_int("seed", seed, 0)
        super().__init__(name=name, dtype="float32" if dtype is None else dtype, **kwargs)
        self._user_dtype = dtype
        self.num_outputs = int(num_outputs)
        self.min_scale = float(min_scale)
        self.logits_only = bool(logits_only)
        self.seed = random.randint(0, 2**31 - 1) if seed is None else int(seed)
        self.loc_layer, self.diag_layer = [
            keras.layers.Dense(
                num_outputs,
                activation=activation,
                kernel_initializer=keras.initializers.GlorotUniform(
                    seed=(2 * self.seed + i) % 2**31
                ),
                dtype=self.dtype_policy,
                name=name_,
            )
            for i, (activation, name_) in enumerate(
                [(None, "loc_layer"), ("softplus", "diag_layer")]
            )
        ]

    def build(self, input_shape):
        if input_shape[-1] is None:
            raise ValueError(
                f"The last input dimension must be known. Received: input_shape={input_shape}"
            )
        for layer in (self.loc_layer, self.diag_layer):
            if not layer.built:
                layer.build(input_shape)

    def call(self, inputs, training=None, seed=None):
        del training, seed  # exact: nothing is sampled (accepted for edward2's call convention)
        if not keras.backend.is_float_dtype(inputs.dtype):
            raise ValueError(
                f"{type(self).__name__} expects floating-point inputs. "
                f"Received: inputs.dtype={inputs.dtype}"
            )
        loc, scale = self.noise_params(inputs)
        z = loc / scale
        if self.logit_noise == "Normal":
            log_probs = _log_ndtr(z)
            logits = log_probs - _log_ndtr(-z)
        else:
            log_probs = tf.math.log_sigmoid(z)
            logits = z
        if self.logits_only:
            return logits
        return logits, log_probs, tf.exp(log_probs)

    def noise_params(self, inputs):
        """(loc [B, K], scale [B, K]) of the latent u = loc + scale * eps, in float32."""
        loc = tf.cast(self.loc_layer(inputs), tf.float32)
        scale = tf.cast(self.diag_layer(inputs), tf.float32) + self.min_scale
        return loc, scale

    def noise_distribution(self, inputs):
        """The latent distribution of u: independent Normal or Logistic(loc_k, s_k) per output.

        `p(y_k = 1 | x)` is its probability of u_k > 0, which `call` computes in closed form.
        """
        loc, scale = self.noise_params(inputs)
        noise = getattr(_tfd(), self.logit_noise)(loc=loc, scale=scale)
        return _tfd().Independent(noise, reinterpreted_batch_ndims=1)

    def covariance(self, inputs):
        """The covariance of the latent u, diagonal: diag(Var(eps) s^2), [B, K, K]."""
        _, scale = self.noise_params(inputs)
        return tf.linalg.diag(tf.square(scale) * _NOISE_VARIANCE[self.logit_noise.lower()])

    def compute_output_shape(self, input_shape):
        shape = (*input_shape[:-1], self.num_outputs)
        return shape if self.logits_only else (shape, shape, shape)

    def compute_output_spec(self, inputs, training=None, seed=None):
        shape = self.compute_output_shape(inputs.shape)
        if self.logits_only:
            return keras.KerasTensor(shape, dtype="float32")
        return tuple(keras.KerasTensor(s, dtype="float32") for s in shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            num_outputs=self.num_outputs,
            logit_noise=self.logit_noise,
            min_scale=self.min_scale,
            logits_only=self.logits_only,
            seed=self.seed,
        )
        if self._user_dtype is None:
            config["dtype"] = None
        return config
