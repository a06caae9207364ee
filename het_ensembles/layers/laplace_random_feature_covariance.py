"""`LaplaceRandomFeatureCovariance`: the SNGP output layer's posterior precision and covariance.

edward2's `edward2/tensorflow/layers/random_feature.py` `LaplaceRandomFeatureCovariance`
(GitHub main; Liu et al. 2020, Algorithm 1). In training each batch of random features
Phi [B, D] updates the precision of the output weights, P <- P + Phi^T Phi (`momentum` < 0:
exact over the data seen since the last reset, one epoch in the recipes) or
P <- m P + (1 - m) Phi^T Phi / B; at inference the covariance (ridge I + P)^-1 is recomputed
once after each training update and the predictive covariance of the batch is
ridge * Phi (ridge I + P)^-1 Phi^T [B, B].
"""

import keras
import numpy as np
import tensorflow as tf

SUPPORTED_LIKELIHOODS = ("binary_logistic", "poisson", "gaussian")  # edward2's


@keras.saving.register_keras_serializable(package="het_ensembles")
class LaplaceRandomFeatureCovariance(keras.layers.Layer):
    """Laplace approximation of the random-feature GP posterior (edward2's layer of this name).

    Non-trainable state: `precision_matrix` [D, D], `covariance_matrix` [D, D] and
    `update_gp_covariance` (1.0 when the precision changed since the covariance was last
    inverted; a float flag where edward2 keeps a bool).

    Differs from edward2 on purpose: the covariance starts at I / ridge, the inverse of the
    initial ridge I + 0 (edward2 leaves it at Keras' default glorot-uniform values, which an
    inference call before any training step returns).

    Args:
      momentum: <= 0: sum Phi^T Phi exactly (reset it each epoch with
        `reset_precision_matrix`); in (0, 1): the moving-average factor m.
      ridge_penalty: s > 0 of (s I + P)^-1 and of the predictive covariance's factor.
      likelihood: "gaussian" (all classes share one covariance), "binary_logistic"
        (Phi scaled by p(1 - p)) or "poisson" (by exp(logits)); the last two need 1 logit.
      dtype: the layer's dtype policy (None: float32).

    Raises:
      ValueError: for another likelihood, ridge_penalty <= 0 or momentum >= 1.
    """

    def __init__(
        self,
        momentum=0.999,
        ridge_penalty=1e-6,
        likelihood="gaussian",
        dtype=None,
        name="laplace_covariance",
        **kwargs,
    ):
        if likelihood not in SUPPORTED_LIKELIHOODS:
            raise ValueError(
                f"likelihood must be one of {SUPPORTED_LIKELIHOODS}. "
                f"Received: likelihood={likelihood!r}"
            )
        if not (isinstance(ridge_penalty, (int, float)) and 0 < ridge_penalty < np.inf):
            raise ValueError(
                f"ridge_penalty must be a float > 0. Received: ridge_penalty={ridge_penalty!r}"
            )
        if not (isinstance(momentum, (int, float)) and momentum < 1):
            raise ValueError(
                "momentum must be <= 0 (exact sum) or in (0, 1) (moving average). "
                f"Received: momentum={momentum!r}"
            )
        super().__init__(dtype="float32" if dtype is None else dtype, name=name, **kwargs)
        self.momentum = float(momentum)
        self.ridge_penalty = float(ridge_penalty)
        self.likelihood = likelihood

    def build(self, input_shape):
        dim = int(input_shape[-1])
        self.precision_matrix = self.add_weight(
            shape=(dim, dim),
            initializer="zeros",
            trainable=False,
            aggregation="only_first_replica",
            name="gp_precision_matrix",
        )
        self.covariance_matrix = self.add_weight(
            shape=(dim, dim),
            initializer=keras.initializers.Identity(1.0 / self.ridge_penalty),
            trainable=False,
            aggregation="only_first_replica",
            name="gp_covariance_matrix",
        )
        self.update_gp_covariance = self.add_weight(
            shape=(),
            initializer="zeros",
            trainable=False,
            aggregation="only_first_replica",
            name="update_gp_covariance",
        )

    def call(self, inputs, logits=None, training=None):
        """[B, B] predictive covariance at inference; identity in training (edward2's)."""
        gp_feature = tf.cast(inputs, tf.float32)
        batch_size = tf.shape(gp_feature)[0]
        if training:
            self.precision_matrix.assign(self.updated_precision_matrix(gp_feature, logits))
            self.update_gp_covariance.assign(1.0)
            return tf.eye(batch_size, dtype=tf.float32)
        covariance = self.updated_covariance_matrix()
        self.covariance_matrix.assign(covariance)
        self.update_gp_covariance.assign(0.0)
        return self.ridge_penalty * tf.matmul(
            gp_feature, tf.matmul(covariance, gp_feature, transpose_b=True)
        )

    def updated_precision_matrix(self, gp_feature, logits):
        """The precision matrix after this batch of random features [B, D]."""
        if self.likelihood != "gaussian":
            if logits is None or logits.shape[-1] != 1:
                raise ValueError(
                    f"likelihood={self.likelihood!r} needs univariate logits [B, 1]. "
                    f"Received: logits shape {None if logits is None else tuple(logits.shape)}"
                )
            logits = tf.cast(logits, tf.float32)
            if self.likelihood == "binary_logistic":
                prob = tf.sigmoid(logits)
                gp_feature = tf.sqrt(prob * (1.0 - prob)) * gp_feature
            else:
                gp_feature = tf.sqrt(tf.exp(logits)) * gp_feature
        minibatch = tf.matmul(gp_feature, gp_feature, transpose_a=True)  # [D, D]
        precision = tf.convert_to_tensor(self.precision_matrix)
        if self.momentum > 0:
            batch_size = tf.cast(tf.shape(gp_feature)[0], tf.float32)
            return self.momentum * precision + (1.0 - self.momentum) * minibatch / batch_size
        return precision + minibatch

    def updated_covariance_matrix(self):
        """(ridge I + P)^-1 when the precision changed since the last inversion, else the stored
        covariance (the inverse is the costly part, done once per training phase)."""
        precision = tf.convert_to_tensor(self.precision_matrix)
        dim = tf.shape(precision)[0]
        return tf.cond(
            self.update_gp_covariance > 0.5,
            lambda: tf.linalg.inv(self.ridge_penalty * tf.eye(dim) + precision),
            lambda: tf.convert_to_tensor(self.covariance_matrix),
        )

    def reset_precision_matrix(self):
        """Zeroes the precision matrix (the recipes do it at the start of every epoch)."""
        self.precision_matrix.assign(tf.zeros_like(self.precision_matrix))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[0])

    def get_config(self):
        config = super().get_config()
        config.update(
            momentum=self.momentum, ridge_penalty=self.ridge_penalty, likelihood=self.likelihood
        )
        return config
