"""het_ensembles.metrics.joint and mc.per_sample_label_log_probs against independent references.

- uncertainty-baselines' own `make_nll_polyadic_calculator` (tests/ub_polyadic_nll.py, verbatim
  at commit 163351d4) fed the same anchor draws (its `tf.random.uniform` replaced by the draws
  our documented seed gives);
- the definition by brute force in numpy: every one of the kappa^tau selections enumerated,
  weighted 1 / kappa^tau, against the expectation of our per-block table;
- the explicit per-sample log-probabilities of `mc.per_sample_log_probs` ([B, S, K]).
"""

import itertools

import numpy as np
import pytest
import tensorflow as tf
import ub_polyadic_nll
from scipy import special

from het_ensembles import mc
from het_ensembles.metrics import joint


def _logits(seed, num_samples, num_examples, num_classes):
    rng = np.random.default_rng(seed)
    logits = rng.normal(scale=2.0, size=(num_samples, num_examples, num_classes))
    labels = rng.integers(0, num_classes, num_examples)
    return logits.astype(np.float32), labels


def _label_log_probs(logits, labels):
    log_probs = special.log_softmax(logits.astype(np.float64), axis=-1)
    return log_probs[:, np.arange(len(labels)), labels]  # [S, N]


def _selections(counts):
    """Each block's tau anchor indices with the given counts (order does not matter: summed)."""
    return [np.repeat(np.arange(len(c)), c).astype(np.int32) for c in counts]


@pytest.mark.parametrize("tau, kappa", [(10, 2), (4, 3), (1, 2), (5, 1)])
def test_equals_uncertainty_baselines_code_on_the_same_draws(tau, kappa, monkeypatch):
    num_blocks = 6
    logits, labels = _logits(tau * 10 + kappa, 5, num_blocks * kappa, 7)
    # The draws our estimator makes: documented as one multinomial call of a seeded Generator.
    counts = np.random.default_rng(joint.SEED).multinomial(tau, [1 / kappa] * kappa, num_blocks)
    queue = iter(_selections(counts))

    def uniform(shape, maxval, dtype):
        assert list(shape) == [tau] and maxval == kappa and dtype == tf.int32
        return tf.constant(next(queue))

    monkeypatch.setattr(tf.random, "uniform", uniform)
    calculator = ub_polyadic_nll.make_nll_polyadic_calculator(7, tau=tau, kappa=kappa)
    expected = float(calculator(tf.constant(logits), tf.constant(labels[:, None])))
    assert next(queue, None) is None  # ub drew once per block, in block order
    ours = joint.joint_nll(_label_log_probs(logits, labels), tau=tau, kappa=kappa)
    assert ours == pytest.approx(expected, rel=2e-5, abs=2e-5)


def test_table_expectation_equals_brute_force_over_all_selections():
    tau, kappa, num_samples = 6, 2, 4
    logits, labels = _logits(3, num_samples, 8, 5)
    ll = _label_log_probs(logits, labels)
    table = joint.block_log_likelihoods(ll, tau=tau, kappa=kappa)
    vectors = joint.count_vectors(tau, kappa)
    weights = [special.comb(tau, c[0]) / kappa**tau for c in vectors]  # binomial pmf
    ours = -(table @ np.asarray(weights))  # expected block NLL over the draws
    for block in range(4):
        anchors = ll[:, block * kappa : (block + 1) * kappa]  # [S, kappa]
        nlls = []
        for selection in itertools.product(range(kappa), repeat=tau):
            joint_ll = anchors[:, list(selection)].sum(axis=1)  # [S]
            nlls.append(-np.log(np.mean(np.exp(joint_ll))))
        assert ours[block] == pytest.approx(np.mean(nlls), rel=1e-12)


def test_count_vectors_are_every_composition_once():
    for tau, kappa in [(10, 2), (4, 3), (3, 4), (2, 1)]:
        vectors = joint.count_vectors(tau, kappa)
        expected = {c for c in itertools.product(range(tau + 1), repeat=kappa) if sum(c) == tau}
        assert {tuple(v) for v in vectors} == expected and len(vectors) == len(expected)
    np.testing.assert_array_equal(joint.count_vectors(3, 2), [[0, 3], [1, 2], [2, 1], [3, 0]])


def test_streaming_blocks_and_pooled_samples():
    tau, kappa = 10, 2
    ll = _label_log_probs(*_logits(5, 6, 23, 4))
    whole = joint.block_log_likelihoods(ll, tau=tau, kappa=kappa)
    assert whole.shape == (11, 11)  # the 23rd example forms no block
    stream = joint.PolyadicBlocks(tau, kappa)
    for start, stop in [(0, 3), (3, 4), (4, 12), (12, 23)]:  # odd batches: pairs span them
        stream.add(ll[:, start:stop])
    assert stream.num_samples == 6
    np.testing.assert_allclose(stream.result(), whole, rtol=1e-6)
    # Pooling two models' tables = one table of all their samples together.
    other = _label_log_probs(*_logits(6, 3, 23, 4))
    pooled = joint.pool_blocks(
        [whole, joint.block_log_likelihoods(other, tau=tau, kappa=kappa)], [6, 3]
    )
    together = joint.block_log_likelihoods(np.concatenate([ll, other]), tau=tau, kappa=kappa)
    np.testing.assert_allclose(pooled, together, rtol=1e-12)


def test_sample_chunks_do_not_change_the_table():
    ll = _label_log_probs(*_logits(7, 50, 10, 3))
    small = joint.CHUNK_VALUES
    try:
        joint.CHUNK_VALUES = 11 * 5 * 3  # 3 samples per chunk
        chunked = joint.block_log_likelihoods(ll)
    finally:
        joint.CHUNK_VALUES = small
    np.testing.assert_allclose(chunked, joint.block_log_likelihoods(ll), rtol=1e-12)


def test_a_zero_probability_label_gives_inf_only_where_drawn():
    ll = np.array([[np.log(0.5), -np.inf]])  # anchor 1's label has probability 0
    table = joint.block_log_likelihoods(ll, tau=3, kappa=2)
    assert table[0, 3] == pytest.approx(3 * np.log(0.5))  # (3, 0): anchor 1 never drawn
    assert np.all(table[0, :3] < -1e300)  # drawn at least once: probability 0


@pytest.mark.parametrize("share, heads", [(True, 1), (False, 1), (True, 2), (False, 3)])
def test_label_log_probs_are_the_per_sample_log_probs_at_the_label(share, heads):
    rng = np.random.default_rng(0)
    batch, classes, factors = 5, 6, 2  # with heads: 6 / heads classes per head
    loc = rng.normal(size=(batch, classes)).astype(np.float32)
    diag = np.exp(rng.normal(size=(batch, classes))).astype(np.float32)
    factor = rng.normal(size=(batch, classes, factors)).astype(np.float32)
    labels = rng.integers(0, classes // heads, batch)
    kwargs = {"num_samples": 11, "chunk_size": 4, "share_samples": share, "heads": heads}
    seed = tf.constant([3, 4], tf.int64)  # chunks of 4 + 4 + 3 samples
    full = mc.per_sample_log_probs(loc, diag, factor, 1.5, seed, **kwargs)  # [B, S, K]
    full = np.asarray(full).reshape(batch, 11, heads, classes // heads)
    expected = np.take_along_axis(full, labels[:, None, None, None], axis=3)[..., 0]
    expected = expected.transpose(1, 0, 2)  # [S, B, heads]
    traced = tf.function(mc.per_sample_label_log_probs)
    ours = np.asarray(traced(loc, diag, factor, 1.5, seed, labels, link="softmax", **kwargs))
    expected = expected[..., 0] if heads == 1 else expected
    np.testing.assert_allclose(np.asarray(ours), expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: joint.count_vectors(0, 2), "tau must be an integer >= 1. Received: tau=0"),
        (lambda: joint.count_vectors(10, 0), "kappa must be an integer >= 1. Received: kappa=0"),
        (
            lambda: joint.count_vectors(10, 2.0),
            "kappa must be an integer >= 1. Received: kappa=2.0",
        ),
        (lambda: joint.joint_nll(np.zeros((1, 4)), tau=True), "tau must be an integer"),
        (lambda: joint.count_vectors(100, 5), "more than 65536 .*tau=100, kappa=5"),
        (lambda: joint.PolyadicBlocks(tau=-1), "Received: tau=-1"),
        (lambda: joint.joint_nll(np.zeros(4)), r"label_log_probs must be \[S, N\]"),
        (lambda: joint.joint_nll(np.full((2, 4), 0.5)), "must be log-probabilities"),
        (lambda: joint.joint_nll(np.full((2, 4), np.nan)), "must be log-probabilities"),
        (lambda: joint.joint_nll(np.zeros((2, 1))), r"num_blocks >= 1, 11\]"),
        (lambda: joint.joint_nll_from_blocks(np.zeros((3, 5))), r"Received: blocks.shape=\(3, 5\)"),
        (
            lambda: mc.per_sample_label_log_probs(
                np.zeros((1, 2)), np.ones((1, 2)), None, 1.0, [0, 0], [0], num_samples=2, heads=3
            ),
            "heads must divide the number of latents",
        ),
        (
            lambda: mc.per_sample_label_log_probs(
                np.zeros((1, 2)),
                np.ones((1, 2)),
                None,
                1.0,
                [0, 0],
                [0],
                num_samples=2,
                link="sigmoid",
            ),
            "needs link='softmax'. Received: link='sigmoid'",
        ),
    ],
)
def test_bad_arguments(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_mixed_sample_counts_per_batch_are_refused():
    stream = joint.PolyadicBlocks()
    stream.add(np.zeros((3, 4)))
    with pytest.raises(ValueError, match="same number of samples 3"):
        stream.add(np.zeros((2, 4)))
