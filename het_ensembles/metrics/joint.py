"""Joint NLL: uncertainty-baselines' polyadic NLL `test/joint_nll` (d_KL^{tau, kappa}).

uncertainty-baselines (commit 163351d4) `baselines/imagenet/metrics.py`,
`make_nll_polyadic_calculator(num_classes, tau=10, kappa=2)`, which `heteroscedastic.py`,
`het_mimo.py` and `het_rank1_bnn.py` apply to every test batch (Osband et al., "Evaluating high-order
predictive distributions in deep learning", 2022). The model is an "epistemic neural network"
(ENN) given as samples s = 1..S of a predictive distribution (a heteroscedastic head's Monte Carlo
samples, an ensemble's members). Consecutive test examples are grouped in blocks of `kappa`
("anchor points"); per block, `tau` anchors are drawn uniformly with replacement, and

    block NLL = -log mean_s exp(sum_{t=1..tau} log p_s(y_{a_t} | x_{a_t}))

(the same draws for every s); the metric is the mean block NLL. A trailing `N mod kappa`
examples form no block (uncertainty-baselines needs batches divisible by kappa).

How it is computed here: a block's joint log-likelihood depends on the draws only through the
count vector c (how often each anchor was drawn), so `block_log_likelihoods` computes, per block,
log mean_s exp(c . ll_s) for every possible c (`count_vectors`: tau + 1 of them for kappa = 2),
streaming over samples; `joint_nll_from_blocks` then draws each block's c from
Multinomial(tau, uniform) -- the distribution of uncertainty-baselines' uniform draws -- with a
numpy Generator seeded `SEED`, and averages. So this is uncertainty-baselines' own random
estimator, reproducible; the per-block tables also pool ENN samples exactly (`pool_blocks`: an
ensemble's samples are its members' samples together).
"""

import itertools
import math

import numpy as np

from het_ensembles.cli.arguments import check_int
from het_ensembles.metrics.numerics import logsumexp

TAU = 10  # uncertainty-baselines' tau and kappa (make_nll_polyadic_calculator's defaults)
KAPPA = 2
SEED = 0  # seed of the numpy Generator that draws each block's anchors
MAX_COUNT_VECTORS = 2**16
CHUNK_VALUES = 2**22  # values of one [samples, blocks, count vectors] chunk (32 MB float64)


def check_polyadic(tau, kappa):
    """ValueError naming `tau` or `kappa` unless both are integers >= 1 with a small table."""
    check_int("tau", tau, 1)
    check_int("kappa", kappa, 1)
    size = math.comb(tau + kappa - 1, kappa - 1)
    if size > MAX_COUNT_VECTORS:
        raise ValueError(
            f"tau and kappa give {size} count vectors, more than {MAX_COUNT_VECTORS} (the "
            f"per-block table). Received: tau={tau}, kappa={kappa}"
        )


def count_vectors(tau=TAU, kappa=KAPPA):
    """Every way `tau` draws can fall on `kappa` anchors: int64 [C, kappa], C = C(tau+kappa-1,
    kappa-1), in a fixed order (kappa = 2: row n is (n, tau - n))."""
    check_polyadic(tau, kappa)
    rows = []
    for bars in itertools.combinations(range(tau + kappa - 1), kappa - 1):
        edges = (-1, *bars, tau + kappa - 1)
        rows.append([edges[i + 1] - edges[i] - 1 for i in range(kappa)])
    return np.asarray(rows, np.int64)


def block_log_likelihoods(label_log_probs, *, tau=TAU, kappa=KAPPA):
    """Per block and count vector c, log mean_s exp(c . ll_s[block]): float64 [N // kappa, C].

    Args:
      label_log_probs: [S, N] log p_s(y_n | x_n), the true label's log-probability under each
        ENN sample s (one row for a model without samples). The trailing N mod kappa examples
        are left out.
      tau, kappa: as `make_nll_polyadic_calculator`.

    Raises:
      ValueError: for bad `tau` / `kappa`, a `label_log_probs` that is not 2-D, or NaN or
        positive values in it.
    """
    counts = count_vectors(tau, kappa).astype(np.float64)
    ll = np.asarray(label_log_probs, np.float64)
    if ll.ndim != 2 or ll.shape[0] < 1:
        raise ValueError(
            "label_log_probs must be [S, N] (S >= 1 samples). Received: "
            f"label_log_probs.shape={ll.shape}"
        )
    if np.isnan(ll).any() or (ll > 1e-6).any():
        raise ValueError("label_log_probs must be log-probabilities (<= 0, no NaN).")
    num_samples, num_examples = ll.shape
    num_blocks = num_examples // kappa
    # -inf (a zero probability) becomes a finite floor, so a count of 0 times it stays 0.
    ll = np.maximum(ll[:, : num_blocks * kappa], np.finfo(np.float64).min / (2 * tau))
    ll = ll.reshape(num_samples, num_blocks, kappa)
    total = np.full((num_blocks, len(counts)), -np.inf)
    step = max(1, CHUNK_VALUES // max(1, num_blocks * len(counts)))
    for start in range(0, num_samples, step):
        joint = np.einsum("sbk,ck->sbc", ll[start : start + step], counts)
        total = np.logaddexp(total, logsumexp(joint, axis=0))
    return total - np.log(num_samples)


class PolyadicBlocks:
    """`block_log_likelihoods` over a stream of batches, consecutive across batch boundaries.

    `add(label_log_probs [S, B])` per batch (the same S each time; a batch's last B mod kappa
    examples wait for the next one); `result()` is float32 [N // kappa, C]; `num_samples` S.
    """

    def __init__(self, tau=TAU, kappa=KAPPA):
        check_polyadic(tau, kappa)
        self.tau, self.kappa = tau, kappa
        self._carry = None
        self._blocks = []
        self.num_samples = None

    def add(self, label_log_probs):
        ll = np.asarray(label_log_probs, np.float64)
        if self._carry is not None:
            if ll.ndim != 2 or ll.shape[0] != self._carry.shape[0]:
                raise ValueError(
                    f"Every batch needs the same number of samples {self._carry.shape[0]}. "
                    f"Received: label_log_probs.shape={ll.shape}"
                )
            ll = np.concatenate([self._carry, ll], axis=1)
        usable = ll.shape[1] - ll.shape[1] % self.kappa
        if usable:
            self._blocks.append(
                block_log_likelihoods(ll[:, :usable], tau=self.tau, kappa=self.kappa).astype(
                    np.float32
                )
            )
        self._carry = ll[:, usable:]
        self.num_samples = ll.shape[0]

    def result(self):
        size = len(count_vectors(self.tau, self.kappa))
        if not self._blocks:
            return np.zeros((0, size), np.float32)
        return np.concatenate(self._blocks)


def pool_blocks(blocks, num_samples):
    """The tables of several models' ENN samples taken together (an ensemble): float64.

    log mean over all sum_m S_m samples = logsumexp_m(table_m + log S_m) - log sum_m S_m.

    Args:
      blocks: the models' `block_log_likelihoods` tables, each [N // kappa, C].
      num_samples: each model's S.
    """
    stacked = np.stack([np.asarray(b, np.float64) for b in blocks])
    weights = np.log(np.asarray(num_samples, np.float64))[:, None, None]
    return logsumexp(stacked + weights, axis=0) - np.log(np.sum(num_samples))


def joint_nll_from_blocks(blocks, *, tau=TAU, kappa=KAPPA, seed=SEED):
    """uncertainty-baselines' joint NLL from a `block_log_likelihoods` table.

    Each block's count vector is drawn from Multinomial(tau, uniform over the kappa anchors)
    by `np.random.default_rng(seed)` (one call for all blocks, in block order), so models scored
    on the same examples with the same seed share their draws.

    Raises:
      ValueError: for bad `tau` / `kappa`, a table whose width is not C or that has no block.
    """
    vectors = count_vectors(tau, kappa)
    blocks = np.asarray(blocks, np.float64)
    if blocks.ndim != 2 or blocks.shape[1] != len(vectors) or not len(blocks):
        raise ValueError(
            f"blocks must be [num_blocks >= 1, {len(vectors)}] for tau={tau}, kappa={kappa}. "
            f"Received: blocks.shape={blocks.shape}"
        )
    draws = np.random.default_rng(seed).multinomial(tau, [1.0 / kappa] * kappa, len(blocks))
    codes = vectors @ (tau + 1) ** np.arange(kappa)  # each count vector as one integer
    order = np.argsort(codes)
    index = order[np.searchsorted(codes[order], draws @ (tau + 1) ** np.arange(kappa))]
    return float(-np.mean(blocks[np.arange(len(blocks)), index]))


def joint_nll(label_log_probs, *, tau=TAU, kappa=KAPPA, seed=SEED):
    """The joint NLL of ENN samples' true-label log-probabilities [S, N] (module docstring)."""
    blocks = block_log_likelihoods(label_log_probs, tau=tau, kappa=kappa)
    return joint_nll_from_blocks(blocks, tau=tau, kappa=kappa, seed=seed)
