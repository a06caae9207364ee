"""A tiny `npz:` set and a config that trains on it in about a second, for the trainer's tests.

The set is 64 train / 21 test examples of 8 features in 4 Gaussian classes; the config trains an
MLP with one hidden layer of 16 units for 2 epochs of 8 steps. Tests then spend their time on
what they test (resumption, kills, bad inputs, validation splits), not on training. The `npz`
fixture (in `tests/conftest.py`) writes the set once per session.
"""

import os
import socket
import subprocess
import sys
import textwrap

import numpy as np

from het_ensembles import training

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NUM_TRAIN, NUM_TEST, NUM_FEATURES, NUM_CLASSES = 64, 21, 8, 4
BATCH = 8


def make_arrays(seed=0):
    """The set's arrays (`x_train`, `y_train`, `x_test`, `y_test`), seeded."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(NUM_CLASSES, NUM_FEATURES))

    def split(n):
        y = rng.integers(0, NUM_CLASSES, n)
        return (centers[y] + rng.normal(size=(n, NUM_FEATURES))).astype(np.float32), y

    x_train, y_train = split(NUM_TRAIN)
    x_test, y_test = split(NUM_TEST)
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}


def tiny_config(npz_path, **overrides):
    """The trainer's default config on the set at `npz_path`, shrunk; `overrides` win."""
    config = training.default_config()
    config.dataset = f"npz:{npz_path}"
    config.model = "mlp"
    config.model_kwargs = {"hidden_units": (16,)}
    config.per_core_batch_size = BATCH
    config.train_epochs = 2
    config.base_learning_rate = 1.0
    config.warmup_epochs = 1
    config.lr_decay_epochs = (45,)  # of 90: epoch 1 of 2
    for name, value in overrides.items():
        config[name] = value
    return config


def python(code, env_overrides=None, **kwargs):
    """Starts `python -c code` in the repository on the CPU (no TF_CONFIG unless given)."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}
    env.pop("TF_CONFIG", None)
    env.update(env_overrides or {})
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


def free_ports(count):
    """`count` distinct free TCP ports on 127.0.0.1 (held open together while choosing)."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()
