"""`mean_field_logits`: the SNGP inference-time logit adjustment (Liu et al. 2020, eq. 7).

Where it sits: after `RandomFeatureGaussianProcess` at inference. edward2's
`edward2/tensorflow/layers/utils.py` `mean_field_logits` (GitHub main).
"""

import math

import tensorflow as tf

# The mean-field factor lambda of the probit approximation E[softmax(z)] ~ softmax(z / sqrt(1 +
# lambda var)), z ~ N(mu, var) (Liu et al. 2020, section 3.1; Daxberger et al. 2021).
MEAN_FIELD_FACTOR = math.pi / 8
_LIKELIHOODS = ("logistic", "binary_logistic", "poisson")


def mean_field_logits(
    logits, covmat=None, mean_field_factor=MEAN_FIELD_FACTOR, likelihood="logistic"
):
    """Logits whose softmax approximates the posterior-mean predictive of a GP output layer.

    `logits / sqrt(1 + mean_field_factor * var)` per example (var = diag(covmat)); for the
    Poisson likelihood `logits / exp(-mean_field_factor * var / 2)` (as edward2).

    Args:
      logits: [B, K] (or [B]) MAP logits of `RandomFeatureGaussianProcess`.
      covmat: [B, B] predictive covariance of the layer, or None (var = 1: plain temperature
        scaling by sqrt(1 + mean_field_factor)).
      mean_field_factor: lambda; < 0 returns `logits` unchanged (the posterior mode).
        edward2's default is 1.0; here it is pi / 8, the factor of the probit approximation
        (uncertainty-baselines always passes its own: 20 on CIFAR-10 SNGP, 1 on ImageNet).
      likelihood: "logistic", "binary_logistic" or "poisson".

    Returns:
      The adjusted logits, the shape of `logits`.

    Raises:
      ValueError: for another likelihood.
    """
    if likelihood not in _LIKELIHOODS:
        raise ValueError(
            f"likelihood must be one of {_LIKELIHOODS}. Received: likelihood={likelihood!r}"
        )
    if mean_field_factor < 0:
        return logits
    variances = 1.0 if covmat is None else tf.linalg.diag_part(covmat)
    if likelihood == "poisson":
        scale = tf.exp(-variances * mean_field_factor / 2.0)
    else:
        scale = tf.sqrt(1.0 + variances * mean_field_factor)
    if len(logits.shape) > 1:
        scale = tf.expand_dims(scale, -1)
    return logits / scale
