"""Fixtures shared by the test suite."""

import numpy as np
import pytest
from tiny_training import make_arrays


@pytest.fixture(scope="session")
def npz(tmp_path_factory):
    """The path of the tiny training set (`tiny_training.make_arrays()`) as an `.npz` file."""
    path = str(tmp_path_factory.mktemp("data") / "tiny.npz")
    np.savez(path, **make_arrays())
    return path
