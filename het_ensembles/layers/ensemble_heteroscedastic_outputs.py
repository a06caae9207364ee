"""`EnsembleHeteroscedasticOutputs`: a weighted mixture of heteroscedastic output layers."""

import keras
import numpy as np
import tensorflow as tf

from het_ensembles.layers.base import EdwardCallMixin, _tfd, check_int

AVERAGINGS = ("ensemble_cross_ent", "gibbs_cross_ent")


def _member_outputs(layer, outputs):
    """(logits, log_probs, probs) of one member's output tuple (3, 4 or 5 entries)."""
    if getattr(layer, "return_unaveraged_logits", False):
        outputs = (outputs[0], *outputs[2:])  # drop the per-sample logits
    return outputs[0], outputs[1], outputs[2]


@keras.saving.register_keras_serializable(package="het_ensembles")
class EnsembleHeteroscedasticOutputs(EdwardCallMixin, keras.layers.Layer):
    """Ensembles heteroscedastic output layers applied to the same input (edward2's layer).

    With member predictives p_i and weights w_i (a probability vector):

    - `averaging="ensemble_cross_ent"`: p = sum_i w_i p_i, so the loss -log p(y) trains the
      members knowing they will be averaged; logits = log p (softmax) or its inverse sigmoid
      (num_classes == 2), computed as logsumexp_i(log w_i + log p_i), never clipped.
    - `averaging="gibbs_cross_ent"`: in training, logits = sum_i w_i logits_i, so the loss
      is edward2's weighted member cross-entropy (can promote diversity); at inference the
      logits are those of the mixture, as above. probs and log_probs are the mixture's.

    Args:
      num_classes: classes K (2: members are sigmoid/binary layers, logits are inverse
        sigmoids).
      layers: the member layers (any heteroscedastic layer here, not `logits_only`), all
        called on the same input with the same `training`.
      ensemble_weighting: one non-negative weight per member, summing to 1.
      averaging: "ensemble_cross_ent" or "gibbs_cross_ent".
      eps: kept for edward2 compatibility (nothing is clipped).

    Returns (from `call`): `(logits, log_probs, probs)`.
    """

    def __init__(
        self,
        num_classes,
        layers,
        ensemble_weighting,
        averaging="ensemble_cross_ent",
        eps=1e-7,
        name="HeteroscedasticEnsemble",
        **kwargs,
    ):
        check_int("num_classes", num_classes, 2)
        layers = [
            keras.saving.deserialize_keras_object(m) if isinstance(m, dict) else m for m in layers
        ]
        if not layers or not all(isinstance(m, keras.layers.Layer) for m in layers):
            raise ValueError(
                f"layers must be a non-empty list of Keras layers. Received: layers={layers!r}"
            )
        if any(getattr(m, "logits_only", False) for m in layers):
            raise ValueError(
                "layers must return (logits, log_probs, probs, ...): build them with "
                "logits_only=False."
            )
        weights = np.asarray(ensemble_weighting, dtype=np.float64)
        if weights.shape != (len(layers),) or np.any(weights < 0) or abs(weights.sum() - 1) > 1e-5:
            raise ValueError(
                f"ensemble_weighting must be {len(layers)} non-negative weights summing to 1, "
                f"one per layer. Received: ensemble_weighting={ensemble_weighting!r}"
            )
        if averaging not in AVERAGINGS:
            raise ValueError(
                f"averaging must be one of {AVERAGINGS}. Received: averaging={averaging!r}"
            )
        super().__init__(name=name, **kwargs)
        self.num_classes = int(num_classes)
        self.members = layers
        self.ensemble_weighting = [float(w) for w in weights]
        self.averaging = averaging
        self.eps = float(eps)

    def build(self, input_shape):
        for member in self.members:
            if not member.built:
                member.build(input_shape)

    def call(self, inputs, training=None, seed=None):
        logits, log_probs, log_complement = [], [], []
        for i, (member, weight) in enumerate(zip(self.members, self.ensemble_weighting)):
            # Members are different layers with their own seeds: the same call seed still
            # gives each its own noise (see `call_seed`).
            member_seed = None if seed is None else seed + i
            out = member(inputs, training=training, seed=member_seed)
            member_logits, member_log_probs, _ = _member_outputs(member, out)
            log_w = tf.math.log(tf.constant(weight, tf.float32))
            logits.append(tf.cast(member_logits, tf.float32))
            log_probs.append(log_w + tf.cast(member_log_probs, tf.float32))
            # Binary members: log(1 - p_i) = log p_i - logit_i.
            log_complement.append(log_probs[-1] - logits[-1])
        mixture = tf.reduce_logsumexp(tf.stack(log_probs, -1), axis=-1)  # log sum_i w_i p_i
        if self.num_classes == 2:
            mixture_logits = mixture - tf.reduce_logsumexp(tf.stack(log_complement, -1), axis=-1)
        else:
            mixture_logits = mixture
        if self.averaging == "gibbs_cross_ent" and training:
            out_logits = tf.add_n([w * t for w, t in zip(self.ensemble_weighting, logits)])
        else:
            out_logits = mixture_logits
        return out_logits, mixture, tf.exp(mixture)

    def noise_distribution(self, inputs):
        """The latent logits' distribution: the members' noise distributions, mixed with
        weights `ensemble_weighting` (a `tfd.Mixture`; the members may be of different types)."""
        components = [member.noise_distribution(inputs) for member in self.members]
        batch_shape = tf.shape(components[0].mean())[:-1]
        weights = tf.broadcast_to(
            tf.constant(self.ensemble_weighting, tf.float32),
            tf.concat([batch_shape, [len(self.members)]], 0),
        )
        return _tfd().Mixture(cat=_tfd().Categorical(probs=weights), components=components)

    def covariance(self, inputs):
        """The mixture's covariance, by the law of total covariance, [B, K, K]:
        sum_i w_i (Sigma_i + mu_i mu_i^T) - mu mu^T with mu = sum_i w_i mu_i."""
        means, second_moments = [], []
        for member, weight in zip(self.members, self.ensemble_weighting):
            mu = member.noise_distribution(inputs).mean()  # [B, K]
            means.append(weight * mu)
            outer = mu[..., :, None] * mu[..., None, :]
            second_moments.append(weight * (member.covariance(inputs) + outer))
        mean = tf.add_n(means)
        return tf.add_n(second_moments) - mean[..., :, None] * mean[..., None, :]

    def compute_output_spec(self, inputs, training=None, seed=None):
        spec = self.members[0].compute_output_spec(inputs)
        shape = spec[0].shape
        return tuple(keras.KerasTensor(shape, dtype="float32") for _ in range(3))

    def get_config(self):
        config = super().get_config()
        config.update(
            num_classes=self.num_classes,
            layers=[keras.saving.serialize_keras_object(m) for m in self.members],
            ensemble_weighting=self.ensemble_weighting,
            averaging=self.averaging,
            eps=self.eps,
        )
        return config
