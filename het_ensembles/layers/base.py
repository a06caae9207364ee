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
from het_ensembles.cli.arguments import check_int
from het_ensembles.layers.edward2_api import (
    LOGIT_NOISES,
    EdwardCallMixin,
    call_seed,
    logit_noise_name,
)
from het_ensembles.mc.layout import DEFAULT_MEMORY_BUDGET_MIB

MIN_SCALE = 1e-3  # edward2 MIN_SCALE_MONTE_CARLO: floor on the diagonal standard deviation d(x).
TEMPERATURE_LOWER_BOUND = 0.3  # edward2 (GitHub main) defaults of the tune_temperature interval.
TEMPERATURE_UPPER_BOUND = 3.0
# Variance of the standard (scale 1) noise of each kind.
_NOISE_VARIANCE = {"normal": 1.0, "logistic": np.pi**2 / 3, "gumbel": np.pi**2 / 6}
# Every Dense sublayer a layer may hold, by role (the attribute is `<role>_layer`).
_ROLES = ("loc", "diag", "scale", "scale_homoscedastic", "scale_heteroscedastic")


def _tfd():
    # Imported lazily: tfp.distributions pulls in tf-keras and takes seconds to import.
    import tensorflow_probability as tfp

    return tfp.distributions


def _check_factors(num_outputs, num_factors, latent_dim):
    """`latent_dim` None or >= 1; `num_factors` in [0, latent_dim or num_outputs]."""
    if latent_dim is not None:
        check_int("latent_dim", latent_dim, 1)
    check_int("num_factors", num_factors, 0, num_outputs if latent_dim is None else latent_dim)


def _checked_temperature_bounds(lower_bound, upper_bound, *, tune_temperature, learn_temperature):
    """The `(lower, upper)` interval of `tune_temperature` (edward2's defaults where None).

    Raises:
      ValueError: for a bound that is not a float > 0, an empty interval under
        `tune_temperature`, or `tune_temperature` with `learn_temperature`.
    """
    bounds = {"temperature_lower_bound": lower_bound, "temperature_upper_bound": upper_bound}
    for bound, value in bounds.items():
        if value is not None and (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not (0 < value < np.inf)
        ):
            raise ValueError(f"{bound} must be a float > 0 or None. Received: {bound}={value!r}")
    lower, upper = TEMPERATURE_LOWER_BOUND, TEMPERATURE_UPPER_BOUND
    if lower_bound is not None:
        lower = lower_bound
    if upper_bound is not None:
        upper = upper_bound
    if tune_temperature and not lower < upper:
        raise ValueError(
            "temperature_lower_bound must be below temperature_upper_bound. Received: "
            f"temperature_lower_bound={lower}, temperature_upper_bound={upper}"
        )
    if tune_temperature and learn_temperature:
        raise ValueError(
            "tune_temperature (sigmoid, edward2 main) and learn_temperature (softplus) are "
            "alternatives. Received: tune_temperature=True, learn_temperature=True"
        )
    return lower, upper


def _check_temperature(temperature):
    """`temperature` a finite int or float > 0 (not a bool)."""
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)):
        raise ValueError(f"temperature must be a float > 0. Received: temperature={temperature!r}")
    if not (temperature > 0 and np.isfinite(temperature)):
        raise ValueError(f"temperature must be > 0. Received: temperature={temperature}")


def _check_sampling(train_mc_samples, test_mc_samples, mc_chunk_size, mc_memory_budget):
    """MC sample counts >= 1, `mc_chunk_size` None or >= 1, `mc_memory_budget` MiB >= 0."""
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


class MCHeteroscedasticBase(EdwardCallMixin, keras.layers.Layer):
    """Base of the MC heteroscedastic output layers; see the subclasses for the model.

    Calls: `layer(x, training=None, seed=None)`, `training` and `seed` also positional as in
    edward2 (`layer(x, training, seed)`). `training=None` (Keras' default) means inference,
    where edward2's default is `training=True`. `seed` (an int >= 0 or an int tensor, also in
    graph mode): the same (layer, seed) gives the same noise; None: fresh noise every training
    step, fixed noise at inference (see the `seed` argument).

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
      return_unaveraged_logits: (edward2 main) also return the S per-sample logits [B, S, K]
        (log-softmax, or for sigmoid the inverse sigmoid, of each sample): the outputs become
        `(logits, samples_logits)` with `logits_only`, else
        `(logits, samples_logits, log_probs, probs, predictive_variance)`. This materialises
        [B, S, K]; the averaged outputs are still streamed.
      tune_temperature: (edward2 main) learn tau in [temperature_lower_bound,
        temperature_upper_bound] as `lower + (upper - lower) * sigmoid(p)`, p initialised at 0
        (the midpoint; `temperature` is then unused, as in edward2).
      temperature_lower_bound, temperature_upper_bound: the interval (None: 0.3 and 3.0).
      logit_noise: distribution of the diagonal noise eps_K: tfp.distributions.Normal,
        Logistic or Gumbel (or the name). Only MCSoftmaxDense exposes it, as in edward2.
      latent_dim: HET-XL (Collier et al., ICLR 2023; edward2's JAX layers): add the noise to
        the D = latent_dim pre-logits (which must be the input features) and pass every sample
        through the logit layer, u_s = W (x + d(x) * eps_D + V(x) eps_R) + b, so the
        covariance parameters grow with D, not K (FA: D * D * R instead of D * K * R).
        None: the noise is added to the K logits (CVPR 2021).
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
        return_unaveraged_logits=False,
        tune_temperature=False,
        temperature_lower_bound=None,
        temperature_upper_bound=None,
        logit_noise="Normal",
        latent_dim=None,
        learn_temperature=False,
        mc_chunk_size=None,
        # From mc.layout, not `mc.`: Keras registers our layers (importing this module) as it
        # finishes loading, which can be in the middle of `import het_ensembles.mc`.
        mc_memory_budget=DEFAULT_MEMORY_BUDGET_MIB,
        seed=None,
        **kwargs,
    ):
        # Argument checks, in edward2's argument order: the first bad argument is reported.
        _check_factors(num_outputs, num_factors, latent_dim)
        self.logit_noise = logit_noise_name(logit_noise)
        lower, upper = _checked_temperature_bounds(
            temperature_lower_bound,
            temperature_upper_bound,
            tune_temperature=tune_temperature,
            learn_temperature=learn_temperature,
        )
        if parameter_efficient and num_factors == 0:
            raise ValueError(
                "parameter_efficient=True needs num_factors >= 1. Received: num_factors=0"
            )
        _check_temperature(temperature)
        _check_sampling(train_mc_samples, test_mc_samples, mc_chunk_size, mc_memory_budget)
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
        self.return_unaveraged_logits = bool(return_unaveraged_logits)
        self.tune_temperature = bool(tune_temperature)
        self.temperature_lower_bound = temperature_lower_bound
        self.temperature_upper_bound = temperature_upper_bound
        self._temperature_bounds = (float(lower), float(upper))
        self.mc_chunk_size = mc_chunk_size
        self.mc_memory_budget = mc_memory_budget
        # A concrete seed goes into get_config(), so a reloaded model predicts identically.
        # Unseeded layers draw it from Python's RNG, which keras.utils.set_random_seed seeds.
        self.seed = random.randint(0, 2**31 - 1) if seed is None else int(seed)
        self.seed_generator = keras.random.SeedGenerator(self.seed)
        self._user_dtype = dtype
        self.num_outputs = int(num_outputs)
        self.latent_dim = None if latent_dim is None else int(latent_dim)
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
        # HET-XL: the noise (diag, factor) layers work in the latent_dim pre-logit space.
        width = self.num_outputs if role == "loc" else self.noise_dim
        units = width * (self.num_factors if role == "scale" else 1)
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

    def feature_shape(self, input_shape):
        """(None, D): the shape the sublayers see; checks the input's rank and feature size."""
        if len(input_shape) != 2:
            raise ValueError(
                f"{type(self).__name__} expects inputs of rank 2 [batch, features]. "
                f"Received: input_shape={tuple(input_shape)}"
            )
        if input_shape[-1] is None:
            raise ValueError(
                f"The last input dimension must be known. Received: input_shape={input_shape}"
            )
        return (None, input_shape[-1])

    def build(self, input_shape):
        features = self.feature_shape(input_shape)
        if self.latent_dim is not None and features[-1] != self.latent_dim:
            raise ValueError(
                "HET-XL adds the noise to the input pre-logits, so latent_dim must equal the "
                f"input features. Received: latent_dim={self.latent_dim}, "
                f"input_shape={tuple(input_shape)}"
            )
        for role in self.sublayer_order():
            # PE's homoscedastic V is a Dense applied to eps_R, so its input has R features.
            shape = (None, self.num_factors) if role == "scale_homoscedastic" else features
            layer = getattr(self, f"{role}_layer")
            if not layer.built:
                layer.build(shape)
        if self.learn_temperature:
            # tau = softplus(raw), initialised so that tau equals `temperature`.
            self.raw_temperature = self.add_weight(
                shape=(),
                initializer=keras.initializers.Constant(
                    float(np.log(np.expm1(self.initial_temperature)))
                ),
                name="raw_temperature",
            )
        if self.tune_temperature:
            # edward2 main: zero, the midpoint of [lower, upper] after the sigmoid.
            self.pre_sigmoid_temperature = self.add_weight(
                shape=(), initializer="zeros", name="pre_sigmoid_temperature"
            )

    @property
    def noise_dim(self):
        """Dimension of the noise: K, or D = latent_dim for HET-XL."""
        return self.num_outputs if self.latent_dim is None else self.latent_dim

    def projection(self):
        """HET-XL's W [D, K] (the logit layer's kernel) that every noise sample goes through."""
        if self.latent_dim is None:
            return None
        return tf.convert_to_tensor(self.loc_layer.kernel, tf.float32)

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
            shift = v * shared.bias  # [B, K] (HET-XL: [B, D], projected like the noise)
            loc += shift if self.latent_dim is None else tf.matmul(shift, self.projection())
            factors = v[:, :, None] * tf.transpose(shared.kernel)[None]  # [B, K, R]
        elif self.num_factors:
            factors = tf.reshape(
                self.scale_layer(inputs), [-1, self.noise_dim, self.num_factors]
            )  # [B, K, R]
        return loc, diag_scale, factors

    @property
    def temperature(self):
        """The current temperature tau (a float32 scalar tensor)."""
        if self.learn_temperature:
            return tf.nn.softplus(tf.convert_to_tensor(self.raw_temperature))
        if self.tune_temperature:
            lower, upper = self._temperature_bounds
            p = tf.convert_to_tensor(self.pre_sigmoid_temperature)
            return lower + (upper - lower) * tf.sigmoid(p)
        return tf.constant(self.initial_temperature, tf.float32)

    def _check_inputs(self, inputs):
        if not keras.backend.is_float_dtype(inputs.dtype):
            raise ValueError(
                f"{type(self).__name__} expects floating-point inputs. "
                f"Received: inputs.dtype={inputs.dtype}"
            )
        return tf.cast(inputs, tf.float32)

    def call(self, inputs, training=None, seed=None):
        x = self._check_inputs(inputs)
        return self.predict_from_params(*self.noise_params(x), training=training, seed=seed)

    def mc_options(self):
        """Keyword arguments of `mc.mc_log_predictive` fixed by the layer's configuration."""
        return {"link": self.link, "chunk_size": self.mc_chunk_size, "noise": self.noise}

    @property
    def noise(self):
        return LOGIT_NOISES[self.logit_noise]

    def predict_from_params(
        self,
        loc,
        diag_scale,
        factors,
        *,
        training=None,
        seed=None,
        unflatten=None,
        chunk_batch=None,
    ):
        """The layer's outputs from (loc, diag_scale, factors): the MC estimate, formatted.

        `unflatten` (default `self.unflatten`) lays out each [B, K] / [B, S, K] output;
        `chunk_batch` is the batch size the default chunk size assumes (None: the static one).
        """
        unflatten = unflatten or self.unflatten
        seed, kwargs = self.sampling(loc, training=training, seed=seed, chunk_batch=chunk_batch)
        result = mc.mc_log_predictive(
            loc,
            diag_scale,
            factors,
            self.temperature,
            seed,
            compute_variance=self.compute_pred_variance,
            memory_budget=self.mc_memory_budget,
            **kwargs,
        )
        log_probs, variance = result if self.compute_pred_variance else (result, None)
        if self.link == "sigmoid":
            log_probs, log_complement = log_probs[..., 0], log_probs[..., 1]
            logits = log_probs - log_complement  # inverse sigmoid of the MC-mean probability
        else:
            logits = log_probs
        logits, log_probs = unflatten(logits), unflatten(log_probs)
        variance = None if variance is None else unflatten(variance)
        if self.return_unaveraged_logits:
            samples = mc.per_sample_log_probs(
                loc, diag_scale, factors, self.temperature, seed, **kwargs
            )
            samples = unflatten(samples, samples=True)
            if self.logits_only:
                return logits, samples
            return logits, samples, log_probs, tf.exp(log_probs), variance
        if self.logits_only:
            return logits
        return logits, log_probs, tf.exp(log_probs), variance

    def sampling(self, loc, *, training=None, seed=None, chunk_batch=None):
        """(seed, `mc` keyword arguments) of one call: the S, noise and chunks it samples with.

        Shared by `predict_from_params` and `het_ensembles.evaluation.enn_samples` (the test
        samples' label log-probabilities of the joint NLL), so both see the same samples.
        """
        if training:
            num_samples = self.train_mc_samples
            share_samples = self.share_samples_across_batch
        else:
            num_samples = self.test_mc_samples
            # Inference noise is fixed by the layer seed and shared across the batch, so an
            # example's prediction is reproducible and does not depend on its batch (size or
            # position) -- evaluation caches stay valid -- and only S x K normals are drawn.
            share_samples = True
        if seed is not None:
            seed = call_seed(self.seed, seed)  # a per-call seed: same seed, same noise
        elif training:
            seed = tf.cast(self.seed_generator.next(), tf.int64)  # fresh noise every step
        else:
            layer_seed = tf.cast(self.seed_generator.state[0], tf.int64)
            seed = tf.stack([layer_seed, tf.constant(-1, tf.int64)])
        kwargs = dict(self.mc_options(), num_samples=num_samples, share_samples=share_samples)
        if self.latent_dim is not None:
            kwargs["projection"] = self.projection()
        if chunk_batch is not None and self.mc_chunk_size is None:
            kwargs["chunk_size"] = mc.default_chunk_size(num_samples, chunk_batch, loc.shape[-1])
        return seed, kwargs

    def unflatten(self, t, samples=False):
        """Output layout of a [B, K] (or [B, S, K] sample) tensor; multi-head/4D layers reshape."""
        return t

    def output_shape_of(self, input_shape, samples=False):
        """Shape of the logits ([B, K]; with `samples` the per-sample logits [B, S, K])."""
        if samples:
            return (input_shape[0], None, self.num_outputs)
        return (input_shape[0], self.num_outputs)

    def compute_output_shape(self, input_shape):
        shape = self.output_shape_of(input_shape)
        variance = shape if self.compute_pred_variance else None
        if self.return_unaveraged_logits:
            samples = self.output_shape_of(input_shape, samples=True)
            if self.logits_only:
                return shape, samples
            return shape, samples, shape, shape, variance
        if self.logits_only:
            return shape
        return shape, shape, shape, variance

    def compute_output_spec(self, inputs, training=None, seed=None):
        shape = self.compute_output_shape(inputs.shape)
        if self.logits_only and not self.return_unaveraged_logits:
            return keras.KerasTensor(shape, dtype="float32")
        return tuple(None if s is None else keras.KerasTensor(s, dtype="float32") for s in shape)

    def covariance(self, inputs):
        """The covariance Sigma(x) = diag(d^2) + V V^T of the latent logits, [B, K, K].

        HET-XL (`latent_dim`): W^T Sigma_D(x) W, the noise covariance pushed through the logit
        layer (rank <= D).
        """
        _, diag_scale, factors = self.noise_params(self._check_inputs(inputs))
        cov = tf.linalg.diag(tf.square(diag_scale) * _NOISE_VARIANCE[self.noise])
        if factors is not None:
            cov += tf.matmul(factors, factors, transpose_b=True)
        if self.latent_dim is not None:
            w = self.projection()  # [D, K]
            cov = tf.einsum("dk,bde,el->bkl", w, cov, w)
        return cov

    def noise_distribution(self, inputs):
        """The latent logit distribution N(loc, diag(d^2) + V V^T) as a TFP distribution.

        With Logistic or Gumbel `logit_noise`: independent Logistic/Gumbel(loc, d) per class.
        HET-XL (`latent_dim`): the distribution of the noisy pre-logits z = x + noise in D dims
        (N(x, diag(d^2) + V V^T)); the logits are `loc_layer(z)` (see `covariance`).
        """
        x = self._check_inputs(inputs)
        loc, diag_scale, factors = self.noise_params(x)
        if self.latent_dim is not None:
            loc = x
        if self.noise != "normal":
            # Independent Logistic or Gumbel noise (MCSoftmaxDense has no factors).
            noise = getattr(_tfd(), self.logit_noise)(loc=loc, scale=diag_scale)
            return _tfd().Independent(noise, reinterpreted_batch_ndims=1)
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
                "return_unaveraged_logits": self.return_unaveraged_logits,
                "tune_temperature": self.tune_temperature,
                "temperature_lower_bound": self.temperature_lower_bound,
                "temperature_upper_bound": self.temperature_upper_bound,
                "learn_temperature": self.learn_temperature,
                "mc_chunk_size": self.mc_chunk_size,
                "latent_dim": self.latent_dim,
                "mc_memory_budget": self.mc_memory_budget,
                "seed": self.seed,
            }
        )
        if self._user_dtype is None:
            config["dtype"] = None
        return config
