"""`MCSoftmaxDense`: softmax head with diagonal input-dependent logit noise."""

import keras

from het_ensembles.layers.base import MCHeteroscedasticBase, check_int


@keras.saving.register_keras_serializable(package="het_ensembles")
class MCSoftmaxDense(MCHeteroscedasticBase):
    """Heteroscedastic softmax output layer with a diagonal covariance.

    Collier et al., CVPR 2021 (and Kendall & Gal, 2017): `u = mu(x) + d(x) * eps_K`,
    `p(y | x) = E[softmax(u / temperature)]`, with eps_K standard Normal, Logistic or Gumbel
    (`logit_noise`, edward2's argument; drawn by `het_ensembles.mc`, Logistic and Gumbel by
    their inverse CDF). As in edward2, two classes use a single logit and a
    sigmoid, so the outputs then have one column (the probability of class 1).

    Args:
      num_classes: number of classes K >= 2.
      logit_noise: tfp.distributions.Normal (default), Logistic or Gumbel, or its name.
      Other arguments: see `MCHeteroscedasticBase`.

    Returns (from `call`):
      logits [B, K] (or [B, 1] for K = 2) if `logits_only`, else
      `(logits, log_probs, probs, predictive_variance)`.
    """

    def __init__(
        self,
        num_classes,
        logit_noise="Normal",
        temperature=1.0,
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
        tune_temperature=False,
        temperature_lower_bound=None,
        temperature_upper_bound=None,
        name="MCSoftmaxDense",
        **kwargs,
    ):
        check_int("num_classes", num_classes, 2)
        if num_classes == 2:
            self.link = "sigmoid"
        super().__init__(
            1 if num_classes == 2 else num_classes,
            0,
            temperature,
            False,
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
            tune_temperature=tune_temperature,
            temperature_lower_bound=temperature_lower_bound,
            temperature_upper_bound=temperature_upper_bound,
            logit_noise=logit_noise,
            **kwargs,
        )
        self.num_classes = int(num_classes)

    def sublayer_order(self):
        return ("loc", "diag")

    def get_config(self):
        config = super().get_config()
        config.update(num_classes=self.num_classes, logit_noise=self.logit_noise)
        return config
