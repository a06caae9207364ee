"""Checks and numerics the metrics share: input validation, weights, stable log-space helpers."""

import math

import numpy as np

# Slack for float32 rounding: log_softmax can land a hair above 0 and a softmax a hair above 1.
# Values beyond it are not probabilities (logits, or probabilities passed as log-probabilities).
ROUNDING_TOLERANCE = 1e-3


def as_member_array(member_values, name="member_log_probs"):
    member_values = np.asarray(member_values, dtype=np.float64)
    if member_values.ndim != 3 or member_values.shape[0] < 1:
        raise ValueError(
            "Member predictions must have shape [M, N, K] with M >= 1 (member axis first). "
            f"Received: shape={member_values.shape}"
        )
    check_values(member_values, name)
    return member_values


def nonempty(values, name, axis=0):
    """`values` as an array; ValueError if it holds no examples (a one-shot metric of nothing)."""
    values = np.asarray(values)
    if values.ndim > axis and values.shape[axis] == 0:
        raise ValueError(
            f"`{name}` holds no examples; a metric of an empty set is undefined. "
            f"Received: {name}.shape={values.shape}"
        )
    return values


def check_values(values, name, kind="scores"):
    """ValueError for NaN anywhere, or values that cannot be `kind` ("probs" / "log_probs")."""
    if not values.size:
        return
    num_nan = int(np.count_nonzero(np.isnan(values)))
    if num_nan:
        raise ValueError(
            f"`{name}` contains NaN (a diverged model?). Received: {num_nan} NaN values in "
            f"{name}.shape={values.shape}"
        )
    tol = ROUNDING_TOLERANCE
    if kind == "probs" and (values.min() < -tol or values.max() > 1.0 + tol):
        raise ValueError(
            f"`{name}` must be probabilities in [0, 1] (log-probabilities or logits given?). "
            f"Received: {name}.min()={values.min():.6g}, {name}.max()={values.max():.6g}"
        )
    if kind == "log_probs" and values.max() > tol:
        raise ValueError(
            f"`{name}` must be log-probabilities <= 0 (probabilities or logits given? use "
            f"log_probs_from_logits). Received: {name}.max()={values.max():.6g}"
        )


def check_labels_and_values(labels, values, values_name, kind="scores"):
    """Validates and converts: labels -> int64 [N] or float64 [N, K]; values -> float64 [N, K].

    `kind` says what the values must be: "probs" in [0, 1], "log_probs" <= 0, "scores" anything
    but NaN (only their order is used).
    """
    values = np.asarray(values, dtype=np.float64)
    labels = np.asarray(labels)
    if not (np.issubdtype(labels.dtype, np.number) or labels.dtype == np.bool_):
        raise ValueError(
            f"`labels` must be numeric (class ids or 0/1 targets). Received: "
            f"labels.dtype={labels.dtype}"
        )
    if values.ndim != 2:
        raise ValueError(
            f"`{values_name}` must have shape [N, K]. Received: {values_name}.shape={values.shape}"
        )
    num_examples, num_classes = values.shape
    if (
        labels.shape[:1] != (num_examples,)
        or labels.ndim not in (1, 2)
        or (labels.ndim == 2 and labels.shape[1] != num_classes)
    ):
        raise ValueError(
            f"`labels` must have shape [{num_examples}] (class ids) or [{num_examples}, "
            f"{num_classes}] (0/1 targets) to match `{values_name}`. "
            f"Received: labels.shape={labels.shape}, {values_name}.shape={values.shape}"
        )
    check_values(values, values_name, kind)
    if labels.ndim == 2:
        labels = labels.astype(np.float64)
        if labels.size and not (np.all(labels >= 0) and np.all(labels <= 1)):
            raise ValueError(
                "`labels` [N, K] must be targets in [0, 1] (one-hot or multi-hot). Received: "
                f"labels.min()={np.min(labels)}, labels.max()={np.max(labels)}"
            )
        return labels, values
    if (
        labels.size
        and not np.issubdtype(labels.dtype, np.integer)
        and not np.all(np.mod(labels, 1) == 0)
    ):
        raise ValueError(f"`labels` [N] must be integer class ids. Received: {labels[:5]}...")
    labels = labels.astype(np.int64)
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(
            f"`labels` must be class ids in [0, {num_classes}). Received: labels.min()="
            f"{labels.min()}, labels.max()={labels.max()}"
        )
    return labels, values


def example_weights(sample_weight, num_examples):
    if sample_weight is None:
        return np.ones(num_examples)
    weights = np.asarray(sample_weight, dtype=np.float64).reshape(-1)
    if weights.shape != (num_examples,):
        raise ValueError(
            f"`sample_weight` must have shape [{num_examples}]. "
            f"Received: sample_weight.shape={np.shape(sample_weight)}"
        )
    if weights.size and not (np.all(np.isfinite(weights)) and np.min(weights) >= 0):
        raise ValueError(
            "`sample_weight` must be finite and >= 0. Received: "
            f"sample_weight.min()={np.min(weights)}, sample_weight.max()={np.max(weights)}"
        )
    return weights


def top_k_correct(labels, probs, k):
    """1.0 where a target is among the k highest probabilities (ties -> lower index first)."""
    if labels.ndim == 2:
        if k == 1:
            top = np.argmax(probs, axis=1)[:, None]
        else:
            top = np.argsort(-probs, axis=1, kind="stable")[:, :k]
        return (np.max(np.take_along_axis(labels, top, axis=1), axis=1) > 0).astype(np.float64)
    if k == 1:
        return (np.argmax(probs, axis=1) == labels).astype(np.float64)
    p_label = np.take_along_axis(probs, labels[:, None], axis=1)  # [N, 1]
    before = np.arange(probs.shape[1])[None, :] < labels[:, None]
    rank = np.sum(probs > p_label, axis=1) + np.sum((probs == p_label) & before, axis=1)
    return (rank < k).astype(np.float64)


def logsumexp(values, axis, keepdims=False):
    """log(sum(exp(values))) along `axis`, shifted by the max (all -inf -> -inf).

    Plain numpy: scipy.special.logsumexp is ~20x slower on [M, N, K] arrays (array-API path).
    """
    shift = np.max(values, axis=axis, keepdims=True)
    shift = np.where(np.isfinite(shift), shift, 0.0)
    with np.errstate(divide="ignore"):
        out = np.log(np.sum(np.exp(values - shift), axis=axis, keepdims=True)) + shift
    return out if keepdims else np.squeeze(out, axis=axis)


def log1mexp(log_p):
    """log(1 - exp(a)) for a <= 0, stable at both ends (Maechler 2012)."""
    with np.errstate(divide="ignore"):
        return np.where(
            log_p > -math.log(2.0),
            np.log(-np.expm1(np.minimum(log_p, 0.0))),
            np.log1p(-np.exp(np.minimum(log_p, -math.log(2.0)))),
        )


def xlogy(x, log_y):
    """x * log_y with 0 * (-inf) = 0."""
    with np.errstate(invalid="ignore"):
        return np.where(x == 0, 0.0, x * log_y)


def label_log_likelihood(labels, log_probs, multilabel):
    """log p(y_n | x_n) [N] for class ids, soft/one-hot targets, or multilabel targets."""
    if multilabel:
        if labels.ndim != 2:
            raise ValueError(
                "Multilabel metrics need 0/1 targets of shape [N, K]. "
                f"Received: labels.shape={labels.shape}"
            )
        log_not = log1mexp(log_probs)
        return np.sum(xlogy(labels, log_probs) + xlogy(1.0 - labels, log_not), axis=1)
    if labels.ndim == 1:
        return np.take_along_axis(log_probs, labels[:, None], axis=1)[:, 0]
    return np.sum(xlogy(labels, log_probs), axis=1)
