"""Shared machinery of the heteroscedastic output layers (Collier et al., CVPR 2021).

The latent logits are `u = mu(x) + d(x) * eps_K + V(x) eps_R` with covariance
`Sigma(x) = diag(d(x)^2) + V(x) V(x)^T`; the predictive `E[softmax(u / tau)]` (or sigmoid) is
estimated with `het_ensembles.mc.mc_log_predictive`. Subclasses only say how to compute
`(loc, diag_scale, factors)` from the input (`noise_params`) and which sublayers hold the weights;
argument checks, temperature, seeds, outputs and the TFP view of the noise live here.
"""

import random

import keras
import numpy as np
import tensorflow as tf

from het_ensembles import mc

MIN_SCALE = 1e-3  # edward2 MIN_SCALE_MONTE_CARLO: floor on the diagonal standard deviation d(x).
# Every Dense sublayer a layer may hold, by role (the attribute is `<role>_layer`).
_ROLES = ("loc", "diag", "scale", "scale_homoscedastic", "scale_heteroscedastic")


def _tfd():
    # Imported lazily: tfp.distributions pulls in tf-keras and takes seconds to import.
    import tensorflow_probability as tfp

    return tfp.distributions


def check_int(name, value, minimum, maximum=None):
    """Raises ValueError unless `value` is an int in [minimum, maximum]."""
    allowed = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, np.integer))
        or value < minimum
        or (maximum is not None and value > maximum)
    ):
        raise ValueError(f"{name} must be an integer {allowed}. Received: {name}={value!r}")


class MCHeteroscedasticBase(keras.layers.Layer):
    """Base of the MC heteroscedastic output layers; see the subclasses for the model.

    Args (shared by all subclasses, edward2 0.0.2 names and defaults):
      temperature: softmax/sigmoid temperature tau > 0 (the initial value if learned).
      train_mc_samples: Monte Carlo samples S when `training=True`.
      test_mc_samples: Monte Carlo samples S at inference.
      compute_pred_variance: also return the per-class variance of the MC probabilities.
      share_samples_across_batch: in training, use one set of S noise draws for the whole batch
        (faster, correlated across the batch). Inference always shares them (see `seed`).
      logits_only: return only the logits, for Sequential/functional models and Keras losses.
      eps: kept for edward2 compatibility; probabilities are never clipped (log-probabilities are
        computed with logsumexp), so it has no effect.
      dtype: dtype policy of the layer; None keeps the head in float32 under mixed precision.
      kernel_regularizer, bias_regularizer: applied to every Dense sublayer (as in edward2).
      learn_temperature: learn tau (kept positive with a softplus), initialised at `temperature`.
      mc_chunk_size: samples per chunk of the streaming estimator (None: about 4M values per
        [B, chunk, K] tensor, see `het_ensembles.mc.default_chunk_size`).
      mc_memory_budget: MiB of Monte Carlo noise a train step may keep from the forward pass for
        the backward pass instead of re-drawing it (default
        `het_ensembles.mc.DEFAULT_MEMORY_BUDGET_MIB` = 64; 0 re-draws everything). Changes time
        and memory only, never the result.
      seed: layer seed (None: drawn from Python's RNG and stored in the config). Training draws
        fresh noise each step from (seed, step); inference noise is fixed by the seed and shared
        across the batch, so a prediction depends only on the example and the seed.
    """

    link = "softmax"

    def __init__(
        self,
        num_outputs,
        num_factors=0,
        temperature=1.0,
        parameter_efficient=False,
        train_mc_samples=1000,
        test_mc_samples=1000,
        compute_pred_variance=False,
        share_samples_across_batch=False,
        logits_only=False,
        eps=1e-7,
        dtype=None,
        kernel_regularizer=None,
        bias_regularizer=None,
        name=None,
        *,
        learn_temperature=False,
        mc_chunk_size=None,
        mc_memory_budget=mc.DEFAULT_MEMORY_BUDGET_MIB,
        seed=None,
        **kwargs,
    ):
        check_int("num_factors", num_factors, 0, num_outputs)
        if parameter_efficient and num_factors == 0:
            raise ValueError(
                "parameter_efficient=True needs num_factors >= 1. Received: num_factors=0"
            )
        if isinstance(temperature, bool) or not isinstance(temperature, (int, float)):
            raise ValueError(
                f"temperature must be a float > 0. Received: temperature={temperature!r}"
            )
        if not (temperature > 0 and np.isfinite(temperature)):
            raise ValueError(f"temperature must be > 0. Received: temperature={temperature}")
        check_int("train_mc_samples", train_mc_samples, 1)
        check_int("test_mc_samples", test_mc_samples, 1)
        if mc_chunk_size is not None:
            check_int("mc_chunk_size", mc_chunk_size, 1)
        if (
            isinstance(mc_memory_budget, bool)
            or not isinstance(mc_memory_budget, (int, float))
            or not (0 <= mc_memory_budget < float("inf"))
        ):
            raise ValueError(
                "mc_memory_budget must be a number of MiB >= 0. "
                f"Received: mc_memory_budget={mc_memory_budget!r}"
            )
        if not (isinstance(eps, (int, float)) and 0 <= eps < 0.5):
            raise ValueError(f"eps must be a float in [0, 0.5). Received: eps={eps!r}")
        if seed is not None:
            check_int("seed", seed, 0)
        super().__init__(name=name, dtype="float32" if dtype is None else dtype, **kwargs)
        self.num_factors = int(num_factors)
        self.parameter_efficient = bool(parameter_efficient)
        self.initial_temperature = float(temperature)
        self.train_mc_samples = int(train_mc_samples)
        self.test_mc_samples = int(test_mc_samples)
        self.compute_pred_variance = bool(compute_pred_variance)
        self.share_samples_across_batch = bool(share_samples_across_batch)
        self.logits_only = bool(logits_only)
        self.eps = float(eps)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.bias_regularizer = keras.regularizers.get(bias_regularizer)
        self.learn_temperature = bool(learn_temperature)
        self.mc_chunk_size = mc_chunk_size
        self.mc_memory_budget = mc_memory_budget
        # A concrete seed goes into get_config(), so a reloaded model predicts identically.
        # Unseeded layers draw it from Python's RNG, which keras.utils.set_random_seed seeds.
        self.seed = random.randint(0, 2**31 - 1) if seed is None else int(seed)
        self.seed_generator = keras.random.SeedGenerator(self.seed)
        self._user_dtype = dtype
        self.num_outputs = int(num_outputs)
        # Sublayers are created in edward2's order so that get_weights() lines up with it.
        for role in self.sublayer_order():
            setattr(self, f"{role}_layer", self._dense(role))

    def factor_roles(self):
        """Sublayers holding the low-rank factor: FA's V(x), or PE's v(x) and V."""
        if self.num_factors == 0:
            return ()
        if self.parameter_efficient:
            return ("scale_homoscedastic", "scale_heteroscedastic")
        return ("scale",)

    def sublayer_order(self):
        """Roles of the Dense sublayers in edward2's creation (and get_weights) order."""
        raise NotImplementedError

    def _dense(self, role):
        """A Dense sublayer with this layer's regularizers and dtype, as edward2 builds it."""
        units = self.num_outputs * (self.num_factors if role == "scale" else 1)
        # Initial weights follow from the layer seed (one derived seed per sublayer), so a model
        # built twice with the same seeds starts from the same weights.
        init_seed = (self.seed * len(_ROLES) + _ROLES.index(role)) % 2**31
        return keras.layers.Dense(
            units,
            activation="softplus" if role == "diag" else None,
            kernel_initializer=keras.initializers.GlorotUniform(seed=init_seed),
            kernel_regularizer=self.kernel_regularizer,
            bias_regularizer=self.bias_regularizer,
            dtype=self.dtype_policy,
            name=f"{role}_layer",
        )

    def build(self, input_shape):
        if len(input_shape) != 2:
            raise ValueError(
                f"{type(self).__name__} expects inputs of rank 2 [batch, features]. "
                f"Received: input_shape={tuple(input_shape)}"
            )
        if input_shape[-1] is None:
            raise ValueError(
                f"The last input dimension must be known. Received: input_shape={input_shape}"
            )
        for role in self.sublayer_order():
            # PE's homoscedastic V is a Dense applied to eps_R, so its input has R features.
            shape = (None, self.num_factors) if role == "scale_homoscedastic" else input_shape
            getattr(self, f"{role}_layer").build(tuple(shape))
        if self.learn_temperature:
            # tau = softplus(raw), initialised so that tau equals `temperature`.
            self.raw_temperature = self.add_weight(
                shape=(),
                initializer=keras.initializers.Constant(
                    float(np.log(np.expm1(self.initial_temperature)))
                ),
                name="raw_temperature",
            )

    def noise_params(self, inputs):
        """(loc [B, K], diag_scale [B, K], factors [B, K, R] or None) of the latent logits.

        FA: factors = V(x) = reshape(W_V x + b_V, [K, R]). PE: the noise is v(x) * (V eps_R + b)
        with v(x) = W_v x + b_v, i.e. factors = diag(v(x)) V and a mean shift v(x) * b that
        goes into loc (edward2 applies V as a Dense with bias).
        """
        loc = self.loc_layer(inputs)  # [B, K]
        diag_scale = self.diag_layer(inputs) + MIN_SCALE  # [B, K]
        factors = None
        if self.num_factors and self.parameter_efficient:
            v = self.scale_heteroscedastic_layer(inputs)  # [B, K]
            shared = self.scale_homoscedastic_layer
            loc += v * shared.bias
            factors = v[:, :, None] * tf.transpose(shared.kernel)[None]  # [B, K, R]
        elif self.num_factors:
            factors = tf.reshape(
                self.scale_layer(inputs), [-1, self.num_outputs, self.num_factors]
            )  # [B, K, R]
        return loc, diag_scale, factors

    @property
    def temperature(self):
        """The current temperature tau (a float32 scalar tensor)."""
        if self.learn_temperature:
            return tf.nn.softplus(tf.convert_to_tensor(self.raw_temperature))
        return tf.constant(self.initial_temperature, tf.float32)

    def _check_inputs(self, inputs):
        if not keras.backend.is_float_dtype(inputs.dtype):
            raise ValueError(
                f"{type(self).__name__} expects floating-point inputs. "
                f"Received: inputs.dtype={inputs.dtype}"
            )
        return tf.cast(inputs, tf.float32)

    def call(self, inputs, training=None):
        x = self._check_inputs(inputs)
        loc, diag_scale, factors = self.noise_params(x)
        if training:
            num_samples = self.train_mc_samples
            seed = tf.cast(self.seed_generator.next(), tf.int64)
            share_samples = self.share_samples_across_batch
        else:
            num_samples = self.test_mc_samples
            # Inference noise is fixed by the layer seed and shared across the batch, so an
            # example's prediction is reproducible and does not depend on its batch (size or
            # position) -- evaluation caches stay valid -- and only S x K normals are drawn.
            layer_seed = tf.cast(self.seed_generator.state[0], tf.int64)
            seed = tf.stack([layer_seed, tf.constant(-1, tf.int64)])
            share_samples = True
        result = mc.mc_log_predictive(
            loc,
            diag_scale,
            factors,
            self.temperature,
            seed,
            num_samples=num_samples,
            link=self.link,
            chunk_size=self.mc_chunk_size,
            share_samples=share_samples,
            compute_variance=self.compute_pred_variance,
            memory_budget=self.mc_memory_budget,
        )
        log_probs, variance = result if self.compute_pred_variance else (result, None)
        if self.link == "sigmoid":
            log_probs, log_complement = log_probs[..., 0], log_probs[..., 1]
            logits = log_probs - log_complement  # inverse sigmoid of the MC-mean probability
        else:
            logits = log_probs
        if self.logits_only:
            return logits
        return logits, log_probs, tf.exp(log_probs), variance

    def compute_output_shape(self, input_shape):
        shape = (input_shape[0], self.num_outputs)
        if self.logits_only:
            return shape
        return shape, shape, shape, shape if self.compute_pred_variance else None

    def compute_output_spec(self, inputs, training=None):
        shape = self.compute_output_shape(inputs.shape)
        if self.logits_only:
            return keras.KerasTensor(shape, dtype="float32")
        return tuple(None if s is None else keras.KerasTensor(s, dtype="float32") for s in shape)

    def covariance(self, inputs):
        """The covariance Sigma(x) = diag(d^2) + V V^T of the latent logits, [B, K, K]."""
        _, diag_scale, factors = self.noise_params(self._check_inputs(inputs))
        cov = tf.linalg.diag(tf.square(diag_scale))
        if factors is not None:
            cov += tf.matmul(factors, factors, transpose_b=True)
        return cov

    def noise_distribution(self, inputs):
        """The latent logit distribution N(loc, diag(d^2) + V V^T) as a TFP distribution."""
        loc, diag_scale, factors = self.noise_params(self._check_inputs(inputs))
        if factors is None:
            factors = tf.zeros(tf.concat([tf.shape(loc), [1]], 0))
        return _tfd().MultivariateNormalDiagPlusLowRankCovariance(
            loc=loc, cov_diag_factor=tf.square(diag_scale), cov_perturb_factor=factors
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "temperature": self.initial_temperature,
                "train_mc_samples": self.train_mc_samples,
                "test_mc_samples": self.test_mc_samples,
                "compute_pred_variance": self.compute_pred_variance,
                "share_samples_across_batch": self.share_samples_across_batch,
                "logits_only": self.logits_only,
                "eps": self.eps,
                "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
                "bias_regularizer": keras.regularizers.serialize(self.bias_regularizer),
                "learn_temperature": self.learn_temperature,
                "mc_chunk_size": self.mc_chunk_size,
                "mc_memory_budget": self.mc_memory_budget,
                "seed": self.seed,
            }
        )
        if self._user_dtype is None:
            config["dtype"] = None
        return config
