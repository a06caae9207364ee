"""`MultiHeadMCSoftmaxDenseFA`: E softmax heads sharing one correlated latent noise."""

import keras
import tensorflow as tf

from het_ensembles.layers.base import MCHeteroscedasticBase, check_int


@keras.saving.register_keras_serializable(package="het_ensembles")
class MultiHeadMCSoftmaxDenseFA(MCHeteroscedasticBase):
    """Heteroscedastic softmax heads for an ensemble of size E with one shared latent space.

    edward2's layer of the same name (Collier et al., CVPR 2021, applied to multi-head
    ensembles): the E x K latent logits are one Gaussian

        u = mu(x) + V(x) eps_R + d(x) * eps_K,   V(x) of shape [E * K, R]
        p_e(y | x) = E[softmax(u_e / temperature)],   u_e = u[e * K : (e + 1) * K]

    so the noise is correlated within and across heads. Same arguments, outputs ([B, E, K])
    and `get_weights()` order as edward2's.

    Args:
      num_classes: classes per head K >= 2.
      num_factors: rank R of the low-rank part, 0 <= R <= E * K.
      ensemble_size: number of heads E >= 1.
      parameter_efficient: use the PE factor `diag(v(x)) V` instead of a full `V(x)`.
      Other arguments: see `MCHeteroscedasticBase`.

    Returns (from `call`):
      logits [B, E, K] (log of the MC-mean probabilities of each head) if `logits_only`, else
      `(logits, log_probs, probs, predictive_variance)`, each [B, E, K].
    """

    def __init__(
        self,
        num_classes,
        num_factors,
        ensemble_size,
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
        return_unaveraged_logits=False,
        name="MultiHeadMCSoftmaxDenseFA",
        **kwargs,
    ):
        check_int("num_classes", num_classes, 2)
        check_int("ensemble_size", ensemble_size, 1)
        super().__init__(
            num_classes * ensemble_size,
            num_factors,
            temperature,
            parameter_efficient,
            train_mc_samples,
            test_mc_samples,
            compute_pred_variance,
            share_samples_across_batch,
            logits_only,
            eps,
            dtype,
            kernel_regularizer,
            bias_regularizer,
            name,
            return_unaveraged_logits=return_unaveraged_logits,
            **kwargs,
        )
        self.num_classes = int(num_classes)
        self.ensemble_size = int(ensemble_size)

    def sublayer_order(self):
        return (*self.factor_roles(), "loc", "diag")

    def mc_options(self):
        return dict(super().mc_options(), heads=self.ensemble_size)

    def unflatten(self, t, samples=False):
        # [B, (S,) E * K] -> [B, (S,) E, K]
        return tf.reshape(
            t, tf.concat([tf.shape(t)[:-1], [self.ensemble_size, self.num_classes]], 0)
        )

    def output_shape_of(self, input_shape, samples=False):
        heads = (self.ensemble_size, self.num_classes)
        return (input_shape[0], None, *heads) if samples else (input_shape[0], *heads)

    def get_config(self):
        config = super().get_config()
        config.update(
            num_classes=self.num_classes,
            num_factors=self.num_factors,
            ensemble_size=self.ensemble_size,
            parameter_efficient=self.parameter_efficient,
        )
        return config
