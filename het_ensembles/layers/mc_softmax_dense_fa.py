"""`MCSoftmaxDenseFA`: softmax head with low-rank-plus-diagonal input-dependent logit noise."""

import keras

from het_ensembles.layers.base import MCHeteroscedasticBase, check_int


@keras.saving.register_keras_serializable(package="het_ensembles")
class MCSoftmaxDenseFA(MCHeteroscedasticBase):
    """Heteroscedastic softmax output layer with a factor-analysis covariance.

    Collier et al., "Correlated Input-Dependent Label Noise in Large-Scale Image Classification",
    CVPR 2021. The latent logits are

        u = mu(x) + V(x) eps_R + d(x) * eps_K,   eps_R ~ N(0, I_R), eps_K ~ N(0, I_K)
        p(y | x) = E[softmax(u / temperature)]    (estimated with S Monte Carlo samples)

    so `Cov(u) = diag(d(x)^2) + V(x) V(x)^T` with `V(x)` a [K, R] matrix. With
    `parameter_efficient=True` the factor is `diag(v(x)) V` with a learned, input-independent
    `V` (for K in the thousands). A drop-in for edward2's layer of the same name: same
    arguments, outputs and `get_weights()` order.

    Args:
      num_classes: number of classes K >= 2.
      num_factors: rank R of the low-rank part, 0 <= R <= K.
      parameter_efficient: use the PE factor `diag(v(x)) V` instead of a full `V(x)`.
      latent_dim: (keyword) HET-XL: noise in the D = latent_dim input pre-logits, every sample
        through the logit layer; covariance parameters grow with D, not K (for huge K).
      Other arguments: see `MCHeteroscedasticBase`.

    Returns (from `call`):
      logits [B, K] (= log of the MC-mean probabilities) if `logits_only`, else the tuple
      `(logits, log_probs, probs, predictive_variance)`; the variance is None unless
      `compute_pred_variance`.
    """

    def __init__(
        self,
        num_classes,
        num_factors,
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
        name="MCSoftmaxDenseFA",
        **kwargs,
    ):
        check_int("num_classes", num_classes, 2)
        super().__init__(
            num_classes,
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
        self.num_classes = int(num_classes)

    def sublayer_order(self):
        return (*self.factor_roles(), "loc", "diag")

    def get_config(self):
        config = super().get_config()
        config.update(
            num_classes=self.num_classes,
            num_factors=self.num_factors,
            parameter_efficient=self.parameter_efficient,
        )
        return config
