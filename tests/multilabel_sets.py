"""A tiny multi-hot `npz:` set and config files for the multi-label tests (trainer, evaluator).

The set has 96 train / 40 test examples of 6 features and 5 labels that depend on the inputs
(a noisy linear map, thresholded); the last test example has no positive label. The config
trains a one-hidden-layer MLP for one epoch.
"""

import textwrap

import numpy as np
from sklearn import metrics as sk_metrics

NUM_FEATURES, NUM_CLASSES = 6, 5


def write_multilabel_npz(path, seed=0, num_train=96, num_test=40):
    """Multi-hot labels [N, 5] that depend on the inputs; the last test row has no positive."""
    rng = np.random.default_rng(seed)
    weights = rng.normal(size=(NUM_FEATURES, NUM_CLASSES))

    def split(n):
        x = rng.normal(size=(n, NUM_FEATURES)).astype(np.float32)
        noisy = x @ weights + rng.normal(size=(n, NUM_CLASSES))
        return x, (noisy > 0.5).astype(np.int64)

    x_train, y_train = split(num_train)
    x_test, y_test = split(num_test)
    y_test[-1] = 0
    np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)


def write_config(path, npz_path, **fields):
    """A config file for `--config`: one epoch of a tiny MLP on `npz_path`, `fields` added."""
    body = {
        "dataset": f"npz:{npz_path}",
        "model": "mlp",
        "model_kwargs": {"hidden_units": (16,)},
        "per_core_batch_size": 8,
        "train_epochs": 1,
        "base_learning_rate": 0.5,
        "warmup_epochs": 0,
        "lr_decay_epochs": (),
        "multilabel": True,
        **fields,
    }
    with open(path, "w") as f:
        f.write(
            textwrap.dedent(
                f"""\
                from het_ensembles import training

                def get_config():
                    config = training.default_config()
                    config.update({body!r})
                    return config
                """
            )
        )


def _bce(labels, probs):
    return -np.mean(np.sum(labels * np.log(probs) + (1 - labels) * np.log1p(-probs), axis=1))


def _labelwise_ece(labels, probs, num_bins=15):
    p, y = probs.ravel(), labels.ravel()
    bins = np.minimum((p * num_bins).astype(int), num_bins - 1)
    return sum(
        np.mean(bins == b) * abs(y[bins == b].mean() - p[bins == b].mean())
        for b in range(num_bins)
        if np.any(bins == b)
    )


def reference_metrics(labels, probs):
    """Each metric from its definition: sklearn AP for gAP (all 5 < 20 classes kept: the AP of
    the pooled (example, class) pairs) and mAP (per class with a positive), numpy for the rest."""
    present = [k for k in range(NUM_CLASSES) if labels[:, k].any()]
    has_positive = labels.max(axis=1) > 0
    top = np.argmax(probs, axis=1)
    return {
        "gap": sk_metrics.average_precision_score(labels.ravel(), probs.ravel()),
        "map": np.mean(
            [sk_metrics.average_precision_score(labels[:, k], probs[:, k]) for k in present]
        ),
        "prec@1": np.mean(labels[np.arange(len(labels)), top][has_positive]),
        "nll": _bce(labels, probs),
        "ece": _labelwise_ece(labels, probs),
    }
