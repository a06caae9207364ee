"""Validation at the door: the argument checks the public entry points share (no TensorFlow)."""

import numbers


def check_int(name, value, low, high=None):
    """ValueError naming `name` unless `value` is an integer (not a bool) in [low, high]."""
    allowed = f">= {low}" if high is None else f"in [{low}, {high}]"
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Integral)
        or value < low
        or (high is not None and value > high)
    ):
        raise ValueError(f"{name} must be an integer {allowed}. Received: {name}={value!r}")
    return int(value)
