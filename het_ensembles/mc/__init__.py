"""The Monte Carlo estimator of the heteroscedastic predictive: the hot path of every layer.

Collier et al. (CVPR 2021), Algorithm 1: latent logits

    u_s = loc + diag_scale * eps_K + factors @ eps_R,   eps_K ~ N(0, I_K), eps_R ~ N(0, I_R)

(eps_K may also be standard Logistic or Gumbel, edward2's `logit_noise`) have covariance `diag(diag_scale**2) + factors @ factors^T`, and the predictive is estimated as

    log p_hat = log(sum_s softmax(u_s / tau)) - log S                  (softmax)
    log p_hat = logsumexp_s(log_sigmoid(+-u_s / tau)) - log S        (sigmoid, per output)

`mc_log_predictive` computes this without ever holding all S samples: it streams over chunks of
samples, draws each chunk's noise with stateless RNG from (seed, chunk index) (`draw_noise`), and
its custom gradient re-draws each chunk from that seed instead of storing it -- except for the
first chunks whose noise fits in `memory_budget`, which are kept from the forward pass. Peak
memory is O(B * chunk * K + budget) instead of O(B * S * K). The FA, PE and diagonal layers differ
only in how they compute `loc`, `diag_scale` and `factors`; they all call this one function.

Softmax is summed in probability space (one fused `softmax` per sample, ~2x fewer passes over
[B, chunk, K] than `log_softmax` + `logsumexp`); where a mean probability is so small that
float32 softmax outputs (flushed to zero below 2**-126) could bias it, the whole call falls back to
the log-space recursion, which is exact for any logits. Sigmoid and HET-XL (`projection`) always
use log space. With `heads`, each group of K / heads latents has its own softmax (both spaces).

HET-XL (Collier et al., ICLR 2023) draws the noise in a D-dim pre-logit space instead and sends
every sample through the logit layer W [D, K]: u_s = loc + (d * eps_D + V eps_R) W.

Modules: `noise` (`draw_noise`, the one noise sampler), `layout` (chunk sizes, the sample layout
and the chunk schedule with the noise budget), `estimator` (`mc_log_predictive` and the samplers
that share its noise). Their public names are re-exported here.
"""

from het_ensembles.mc.estimator import (
    LINKS,
    mc_log_predictive,
    per_sample_label_log_probs,
    per_sample_log_probs,
    sample_latents,
)
from het_ensembles.mc.layout import (
    DEFAULT_CHUNK_ELEMENTS,
    DEFAULT_MEMORY_BUDGET_MIB,
    default_chunk_size,
)
from het_ensembles.mc.noise import NOISES, UNIFORM_FLOOR, draw_noise

__all__ = [
    "DEFAULT_CHUNK_ELEMENTS",
    "DEFAULT_MEMORY_BUDGET_MIB",
    "LINKS",
    "NOISES",
    "UNIFORM_FLOOR",
    "default_chunk_size",
    "draw_noise",
    "mc_log_predictive",
    "per_sample_label_log_probs",
    "per_sample_log_probs",
    "sample_latents",
]
