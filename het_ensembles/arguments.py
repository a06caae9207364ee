"""Validation at the door: the argument checks the public entry points share (no TensorFlow)."""

import numbers


def check_int(name, value, low):
    """ValueError naming `name` unless `value` is an integer (not a bool) >= `low`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}. Received: {name}={value!r}")
    return int(value)
