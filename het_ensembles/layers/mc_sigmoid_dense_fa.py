"""`MCSigmoidDenseFA`: multilabel sigmoid head with input-dependent correlated logit noise."""

import keras

from het_ensembles.layers.base import MCHeteroscedasticBase, check_int


@keras.saving.register_keras_serializable(package="het_ensembles")
class MCSigmoidDenseFA(MCHeteroscedasticBase):
    """Heteroscedastic multilabel (sigmoid) output layer with a factor-analysis covariance.

    Collier et al., CVPR 2021. The latent logits are

        u = mu(x) + V(x) eps_R + d(x) * eps_K,   p(y_k = 1 | x) = E[sigmoid(u_k / temperature)]

    independently per output k, with `Cov(u) = diag(d(x)^2) + V(x) V(x)^T`; `num_factors=0` is
    the diagonal model. A drop-in for edward2's layer of the same name.

    Args:
      num_outputs: number of binary outputs K >= 1.
      num_factors: rank R of the low-rank part, 0 <= R <= K (0: diagonal).
      parameter_efficient: use the PE factor `diag(v(x)) V` instead of a full `V(x)`.
      latent_dim: (keyword) HET-XL: noise in the D = latent_dim input pre-logits, every sample
        through the logit layer; covariance parameters grow with D, not K (for huge K).
      Other arguments: see `MCHeteroscedasticBase`.

    Returns (from `call`):
      logits [B, K] = inverse sigmoid of the MC-mean probabilities if `logits_only`, else
      `(logits, log_probs, probs, predictive_variance)`, where `log_probs = log p(y_k = 1 | x)`.
    """

    link = "sigmoid"

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
        return_unaveraged_logits=False,
        tune_temperature=False,
        temperature_lower_bound=None,
        temperature_upper_bound=None,
        name="MCSigmoidDenseFA",
        **kwargs,
    ):
        check_int("num_outputs", num_outputs, 1)
        super().__init__(
            num_outputs,
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
            tune_temperature=tune_temperature,
            temperature_lower_bound=temperature_lower_bound,
            temperature_upper_bound=temperature_upper_bound,
            **kwargs,
        )

    def sublayer_order(self):
        return ("loc", *self.factor_roles(), "diag")

    def get_config(self):
        config = super().get_config()
        config.update(
            num_outputs=self.num_outputs,
            num_factors=self.num_factors,
            parameter_efficient=self.parameter_efficient,
        )
        return config
