"""Rank-1 Bayesian layers (Dusenberry et al. 2020): edward2's `DenseRank1` and `Conv2DRank1`.

A rank-1 layer keeps one shared kernel W and, per ensemble member m, two factors: alpha_m on
the input side and gamma_m on the output side, so member m computes `((x * alpha_m) W) *
gamma_m + bias_m` (or `((x + alpha_m) W) + gamma_m + bias_m` with
`use_additive_perturbation`). The batch is laid out member-major, as edward2's: the first
B / M rows are member 0's, and so on (tile a batch M times to give every member the same
examples).

With `alpha_initializer` / `gamma_initializer` "trainable_normal" each factor has a
variational posterior N(mean, softplus(stddev)) (trainable `*_mean`, `*_stddev`), sampled per
example, clipped to [min_perturbation_value, max_perturbation_value], and a prior
N(1, prior_stddev) whose KL divergence the layer reports (`kl_divergence()`, edward2's
"normal_kl_divergence" regularizer with mean 1). The initial values are
uncertainty-baselines' `rank1_bnn_utils.make_initializer`: the means are a random sign vector
(+1 with probability `random_sign_init`; below 0, N(1, -random_sign_init)) and the stddevs
softplus^-1(sqrt(p / (1 - p))) + N(0, 0.1) truncated, p = `dropout_rate`. "trainable_deterministic"
keeps only the means (no sampling, no KL).

Differences from edward2 (both documented where they matter): the KL is not put in
`layer.losses` (Keras 3 weight regularizers see one variable, the KL needs two); the trainer
adds it with its annealing weight (`het_ensembles.training.rank1`). At inference the factors
are drawn once per call and member, from the layer seed, and shared by the batch (edward2
draws per example): an example's prediction then does not depend on its batch, as for the
heteroscedastic heads (`MCHeteroscedasticBase`); each example's factors still follow the
posterior.
"""

import keras
import numpy as np
import tensorflow as tf

INITIALIZERS = ("trainable_normal", "trainable_deterministic")
REGULARIZERS = ("normal_kl_divergence", None)


def stddev_init(dropout_rate):
    """softplus^-1(sqrt(p / (1 - p))): `rank1_bnn_utils.make_initializer`'s stddev mean."""
    return float(np.log(np.expm1(np.sqrt(dropout_rate / (1.0 - dropout_rate)))))


def normal_kl(mean, stddev, prior_mean, prior_stddev):
    """Sum over elements of KL(N(mean, stddev) || N(prior_mean, prior_stddev)), closed form."""
    ratio = stddev / prior_stddev
    return tf.reduce_sum(
        0.5 * tf.square(ratio)
        + 0.5 * tf.square((mean - prior_mean) / prior_stddev)
        - 0.5
        - tf.math.log(ratio)
    )


class _RandomSign(keras.initializers.Initializer):
    """+1 with probability `probs`, else -1 (edward2's `RandomSign`); below 0: N(1, -probs)."""

    def __init__(self, probs, seed=None):
        self.probs = float(probs)
        self.seed = seed

    def __call__(self, shape, dtype=None):
        if self.probs <= 0:
            return keras.random.normal(shape, 1.0, -self.probs, dtype=dtype, seed=self.seed)
        uniform = keras.random.uniform(shape, dtype=dtype, seed=self.seed)
        return keras.ops.where(uniform < self.probs, 1.0, -1.0)

    def get_config(self):
        return {"probs": self.probs, "seed": self.seed}


class Rank1Mixin:
    """The factors, their sampling and their KL, shared by `DenseRank1` and `Conv2DRank1`."""

    @staticmethod
    def _split_options(kwargs):
        """(checked rank-1 options, the per-member bias's initializer and regularizer, the
        rest for the Keras base layer), from the constructor's keyword arguments."""
        kwargs = dict(kwargs)
        bias = (kwargs.pop("bias_initializer", "zeros"), kwargs.pop("bias_regularizer", None))
        options = {
            "alpha_initializer": "trainable_normal",
            "gamma_initializer": "trainable_normal",
            "alpha_regularizer": "normal_kl_divergence",
            "gamma_regularizer": "normal_kl_divergence",
            "use_additive_perturbation": False,
            "min_perturbation_value": -10.0,
            "max_perturbation_value": 10.0,
            "ensemble_size": 1,
            "random_sign_init": 0.75,
            "dropout_rate": 1e-3,
            "prior_stddev": 0.05,
            "prior_mean": 1.0,
            "seed": None,
        }
        for key in options:
            if key in kwargs:
                options[key] = kwargs.pop(key)
        for key in ("alpha_initializer", "gamma_initializer"):
            if options[key] not in INITIALIZERS:
                raise ValueError(
                    f"Unknown {key}. Received: {key}={options[key]!r}; allowed: {INITIALIZERS}"
                )
        for key in ("alpha_regularizer", "gamma_regularizer"):
            if options[key] not in REGULARIZERS:
                raise ValueError(
                    f"Unknown {key}. Received: {key}={options[key]!r}; allowed: {REGULARIZERS}"
                )
        size = options["ensemble_size"]
        if not isinstance(size, int) or isinstance(size, bool) or size < 1:
            raise ValueError(f"ensemble_size must be an integer >= 1. Received: {size!r}")
        if not 0.0 < options["dropout_rate"] < 1.0:
            raise ValueError(
                f"dropout_rate must be in (0, 1). Received: {options['dropout_rate']!r}"
            )
        if not options["prior_stddev"] > 0:
            raise ValueError(f"prior_stddev must be > 0. Received: {options['prior_stddev']!r}")
        if options["seed"] is None:
            options["seed"] = int(keras.random.randint((), 0, 2**31 - 1))
        return options, bias, kwargs

    def _rank1_init(self, options, bias, activation, use_bias):
        """Sets the rank-1 state (after the Keras base layer's `__init__`)."""
        self.rank1_options = options
        self.ensemble_size = options["ensemble_size"]
        self.seed_generator = keras.random.SeedGenerator(options["seed"])
        self.ensemble_activation = keras.activations.get(activation)
        self.use_ensemble_bias = bool(use_bias)
        self.ensemble_bias_initializer = keras.initializers.get(bias[0])
        self.ensemble_bias_regularizer = keras.regularizers.get(bias[1])

    def _rank1_build(self, input_dim, output_dim):
        """The factors and the per-member bias `ensemble_bias` [M, output_dim]."""
        self._add_factors(input_dim, output_dim)
        self.ensemble_bias = None
        if self.use_ensemble_bias:
            self.ensemble_bias = self.add_weight(
                name="ensemble_bias",
                shape=(self.ensemble_size, output_dim),
                initializer=self.ensemble_bias_initializer,
                regularizer=self.ensemble_bias_regularizer,
            )

    def _add_factors(self, input_dim, output_dim):
        """Creates `{alpha,gamma}_mean` (and `_stddev` for "trainable_normal") [M, dim]."""
        o = self.rank1_options
        seed = o["seed"]
        self.factors = {}
        for index, (role, dim) in enumerate((("alpha", input_dim), ("gamma", output_dim))):
            mean = self.add_weight(
                name=f"{role}_mean",
                shape=(self.ensemble_size, dim),
                initializer=_RandomSign(o["random_sign_init"], seed=(seed + 2 * index) % 2**31),
            )
            stddev = None
            if o[f"{role}_initializer"] == "trainable_normal":
                stddev = self.add_weight(
                    name=f"{role}_stddev",
                    shape=(self.ensemble_size, dim),
                    initializer=keras.initializers.TruncatedNormal(
                        mean=stddev_init(o["dropout_rate"]),
                        stddev=0.1,
                        seed=(seed + 2 * index + 1) % 2**31,
                    ),
                )
            self.factors[role] = (mean, stddev)

    def kl_divergence(self):
        """KL(q || p) of the factors with a "normal_kl_divergence" regularizer: a scalar."""
        o = self.rank1_options
        total = tf.constant(0.0, tf.float32)
        for role, (mean, stddev) in self.factors.items():
            if stddev is None or o[f"{role}_regularizer"] is None:
                continue
            total += normal_kl(
                tf.cast(mean, tf.float32),
                tf.nn.softplus(tf.cast(stddev, tf.float32)),
                o["prior_mean"],
                o["prior_stddev"],
            )
        return total

    def _sample(self, role, examples_per_member, training, dtype):
        """The factors of each row: [M, E, dim] (training: one draw per example; inference:
        one per member from the layer seed, shared by the batch)."""
        mean, stddev = self.factors[role]
        mean = tf.cast(mean, dtype)
        if stddev is None:
            return mean[:, None, :]
        o = self.rank1_options
        scale = tf.nn.softplus(tf.cast(stddev, dtype))
        shape = tf.shape(mean)
        offset = 0 if role == "alpha" else 1
        if training:
            seed = tf.cast(self.seed_generator.next(), tf.int64)
            noise_shape = tf.concat([shape[:1], [examples_per_member], shape[1:]], 0)
        else:
            seed = tf.constant([o["seed"], -1], tf.int64)
            noise_shape = tf.concat([shape[:1], [1], shape[1:]], 0)
        seed = tf.random.experimental.stateless_fold_in(seed, offset)
        noise = tf.random.stateless_normal(noise_shape, seed=seed, dtype=dtype)
        sample = mean[:, None, :] + scale[:, None, :] * noise
        return tf.clip_by_value(sample, o["min_perturbation_value"], o["max_perturbation_value"])

    def _perturb(self, inputs, alpha):
        if self.rank1_options["use_additive_perturbation"]:
            return inputs + alpha
        return inputs * alpha

    def _rescale(self, outputs, gamma):
        if self.rank1_options["use_additive_perturbation"]:
            return outputs + gamma
        return outputs * gamma

    def save_own_variables(self, store):
        # Keras' Dense saves its kernel and bias only; every variable here is the layer's own.
        keras.layers.Layer.save_own_variables(self, store)

    def load_own_variables(self, store):
        keras.layers.Layer.load_own_variables(self, store)

    def get_config(self):
        config = super().get_config()
        config.update(self.rank1_options)
        config.update(
            activation=keras.activations.serialize(self.ensemble_activation),
            use_bias=self.use_ensemble_bias,
            bias_initializer=keras.initializers.serialize(self.ensemble_bias_initializer),
            bias_regularizer=keras.regularizers.serialize(self.ensemble_bias_regularizer),
        )
        return config


@keras.saving.register_keras_serializable(package="het_ensembles")
class DenseRank1(Rank1Mixin, keras.layers.Dense):
    """edward2's `DenseRank1`: inputs [M * E, D] -> outputs [M * E, units].

    Args:
      units: output size.
      activation: applied after the factors and the per-member bias.
      use_bias: a per-member bias `ensemble_bias` [M, units].
      alpha_initializer, gamma_initializer: "trainable_normal" or "trainable_deterministic".
      alpha_regularizer, gamma_regularizer: "normal_kl_divergence" (prior N(prior_mean,
        prior_stddev)) or None.
      use_additive_perturbation: add the factors instead of multiplying.
      min_perturbation_value, max_perturbation_value: clip of the sampled factors (-10, 10).
      ensemble_size: M; the batch must be a multiple of it.
      random_sign_init, dropout_rate, prior_stddev: uncertainty-baselines' rank-1 flags (see
        the module docstring); prior_mean 1 as `make_regularizer(..., 1., prior_stddev)`.
      seed: layer seed (None: drawn from Keras' global RNG, stored in the config).
      **kwargs: `keras.layers.Dense` arguments (kernel_initializer, kernel_regularizer, ...).

    Raises:
      ValueError: for an unknown initializer / regularizer or a bad size.
    """

    def __init__(self, units, activation=None, use_bias=True, **kwargs):
        options, bias, kwargs = self._split_options(kwargs)
        super().__init__(units, activation=None, use_bias=False, **kwargs)
        self._rank1_init(options, bias, activation, use_bias)

    def build(self, input_shape):
        super().build(input_shape)
        self._rank1_build(input_shape[-1], self.units)

    def call(self, inputs, training=None):
        batch = tf.shape(inputs)[0]
        members = self.ensemble_size
        x = tf.reshape(inputs, [members, batch // members, inputs.shape[-1]])
        alpha = self._sample("alpha", batch // members, training, x.dtype)
        gamma = self._sample("gamma", batch // members, training, x.dtype)
        outputs = self._rescale(super().call(self._perturb(x, alpha)), gamma)
        if self.ensemble_bias is not None:
            outputs += tf.cast(self.ensemble_bias, outputs.dtype)[:, None, :]
        if self.ensemble_activation is not None:
            outputs = self.ensemble_activation(outputs)
        return tf.reshape(outputs, [batch, self.units])


@keras.saving.register_keras_serializable(package="het_ensembles")
class Conv2DRank1(Rank1Mixin, keras.layers.Conv2D):
    """edward2's `Conv2DRank1` (channels_last): [M * E, H, W, C] -> [M * E, H', W', filters].

    Args: as `DenseRank1`, with `filters`, `kernel_size` and the `keras.layers.Conv2D`
    arguments instead of `units`.
    """

    def __init__(self, filters, kernel_size, activation=None, use_bias=True, **kwargs):
        options, bias, kwargs = self._split_options(kwargs)
        if kwargs.get("data_format", "channels_last") not in (None, "channels_last"):
            raise ValueError(
                f"Conv2DRank1 supports channels_last only. Received: {kwargs['data_format']!r}"
            )
        super().__init__(filters, kernel_size, activation=None, use_bias=False, **kwargs)
        self._rank1_init(options, bias, activation, use_bias)

    def build(self, input_shape):
        super().build(input_shape)
        self._rank1_build(input_shape[-1], self.filters)

    def call(self, inputs, training=None):
        batch = tf.shape(inputs)[0]
        members = self.ensemble_size
        per_member = batch // members

        def per_row(factor):  # [M, E or 1, dim] -> [B, 1, 1, dim]
            factor = tf.broadcast_to(factor, tf.stack([members, per_member, tf.shape(factor)[-1]]))
            return tf.reshape(factor, [batch, 1, 1, factor.shape[-1]])

        alpha = per_row(self._sample("alpha", per_member, training, inputs.dtype))
        gamma = per_row(self._sample("gamma", per_member, training, inputs.dtype))
        outputs = self._rescale(super().call(self._perturb(inputs, alpha)), gamma)
        if self.ensemble_bias is not None:
            outputs += per_row(tf.cast(self.ensemble_bias, outputs.dtype)[:, None, :])
        if self.ensemble_activation is not None:
            outputs = self.ensemble_activation(outputs)
        return outputs


def rank1_layers(model):
    """Every `DenseRank1` / `Conv2DRank1` in `model`, nested ones included."""
    return [
        layer
        for layer in model._flatten_layers(include_self=False)
        if isinstance(layer, Rank1Mixin)
    ]


def total_kl_divergence(model):
    """The sum of the rank-1 layers' `kl_divergence()` (edward2's `sum(model.losses)`)."""
    layers = rank1_layers(model)
    if not layers:
        return tf.constant(0.0, tf.float32)
    return tf.add_n([layer.kl_divergence() for layer in layers])


__all__ = ["Conv2DRank1", "DenseRank1", "normal_kl", "rank1_layers", "total_kl_divergence"]
