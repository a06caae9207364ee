"""The one prediction path: a model and batches in, log-probabilities out, timed one way.

Both the trainer's end-of-epoch test pass and the ensemble evaluator run models through
`ModelRunner`, so a member's `test/ms_per_example` in its metrics.json and the evaluator's
`ms_per_example` mean the same thing:

  **ms_per_example**: milliseconds of model inference per example: the wall time of the
  `model(x, training=False)` calls, outputs copied to host memory, divided by the examples they
  saw. Calls that traced a new input shape (graph building) are left out; data loading,
  the log-softmax and the metrics are not included. An ensemble's figure is the sum over its
  members (the cost of running the ensemble).

Training time has its own field, `train/ms_per_example` (see `training.callbacks`).
"""

import functools
import os
import time

import numpy as np
import tensorflow as tf
from tqdm import auto as tqdm

from het_ensembles import metrics
from het_ensembles.evaluation import enn_samples as enn_samples_lib


class ModelRunner:
    """Runs one model in inference mode and returns float32 log-probabilities.

    Args:
      model: a Keras model returning logits [B, K], or [B, M, K] for a model of M heads
        (`config.ensemble_size`), whose rows are normalised head by head.
      multilabel: the model is a sigmoid (multilabel) model: log-probabilities per label.
      strategy: the `tf.distribute` strategy the model was built under; the batches then come
        from `strategy.experimental_distribute_dataset` and outputs are gathered across replicas.
        None: batches are plain arrays or tensors on one device.
      name: used in error messages.
      enn_samples: also give, after each call, the true label's log-probability under each
        of the model's ENN samples as `label_log_probs` [S, B] (None if it has none), for the
        joint NLL (`evaluation.enn_samples`); not timed; not with a `strategy`.
    """

    def __init__(self, model, *, multilabel=False, strategy=None, name="model", enn_samples=False):
        self.multilabel = multilabel
        self.name = name
        self.label_log_probs = None
        self._enn = enn_samples_lib.sampler(model, multilabel=multilabel) if enn_samples else None
        if self._enn is not None and strategy is not None:
            raise ValueError("enn_samples=True runs on one device. Received: a strategy")
        if self._enn is not None and self._enn.model is not None:
            model = self._enn.model  # returns (logits, the MC head's features)
        self._seconds = 0.0
        self._examples = 0
        self._traced_shapes = set()
        self._last_batch = None
        self._input_spec = _single_input_spec(model)

        # Partials, not closures: TensorFlow counts traces per code object, so one closure traced
        # once for each of many models reads as "frequent retracing" and warns.
        forward = functools.partial(_forward, model)
        if strategy is not None:
            call = tf.function(
                functools.partial(_distributed_call, strategy, forward), reduce_retracing=True
            )
        elif self._input_spec is not None:
            # One trace for every batch size (the spec's batch axis is None).
            traced = tf.function(forward, input_signature=[self._input_spec])
            call = functools.partial(_cast_call, traced, self._input_spec.dtype)
        else:  # subclassed model: no static input spec
            traced = tf.function(forward, reduce_retracing=True)
            call = functools.partial(_plain_call, traced)
        self._call = call
        self._distributed = strategy is not None

    def __call__(self, x, y):
        """(log_probs [B, K] (or [B, M, K]) float32, labels [B] or [B, K]) of one batch, as
        numpy arrays.

        Raises:
          ValueError: if `x` does not fit the model's input shape, or the model does not
            output logits [B, K] or [B, M, K].
        """
        if not self._distributed:
            self._check_input(x)
        start = time.perf_counter()
        logits, labels = self._call(x, y)
        logits, features = self._split(logits)
        elapsed = time.perf_counter() - start
        labels = np.asarray(labels)
        # A distributed batch has no one shape: there only the first call counts as tracing.
        shape = "distributed" if self._distributed else tuple(x.shape)
        if shape in self._traced_shapes:
            self._seconds += elapsed
            self._examples += len(logits)
        else:
            self._traced_shapes.add(shape)
            self._last_batch = (x, y)
        if logits.ndim not in (2, 3) or len(logits) != len(labels):
            raise ValueError(
                f"{self.name} must output logits [B, K] (or [B, M, K] for M heads). Received: "
                f"shape={logits.shape} for a batch of {len(labels)}"
            )
        flat = logits.reshape(-1, logits.shape[-1])  # heads' rows are normalised one by one
        log_probs = metrics.log_probs_from_logits(flat, multilabel=self.multilabel)
        log_probs = log_probs.reshape(logits.shape)
        if self._enn is not None:
            self.label_log_probs = self._enn(features, labels, log_probs)
        return log_probs, labels

    def _split(self, outputs):
        """(logits, head features or None) as numpy arrays from the traced call's outputs."""
        if self._enn is not None and self._enn.model is not None:
            return np.asarray(outputs[0]), np.asarray(outputs[1])
        return np.asarray(outputs), None

    def reset_timing(self):
        """Starts a new measurement (traced shapes stay known: they will not trace again)."""
        self._seconds, self._examples = 0.0, 0

    def ms_per_example(self):
        """Inference milliseconds per example (module docstring); None before any call.

        When every call traced a new shape (a single batch), one more call on the last batch
        is timed.
        """
        if not self._examples and self._last_batch is not None:
            start = time.perf_counter()
            logits, _ = self._split(self._call(*self._last_batch)[0])
            self._seconds = time.perf_counter() - start
            self._examples = len(logits)
        return 1000.0 * self._seconds / self._examples if self._examples else None

    def _check_input(self, x):
        spec = self._input_spec
        if spec is not None and not spec.shape[1:].is_compatible_with(x.shape[1:]):
            raise ValueError(
                f"{self.name} takes inputs of shape {tuple(spec.shape)}; does the dataset (or "
                f"image_size) match the model's? Received: x.shape={tuple(x.shape)}"
            )


def predict_batches(runners, batches, *, total=None, description=None, progress=False):
    """One pass over `batches` for every runner: yields (labels, [log_probs per runner]).

    Args:
      runners: `ModelRunner`s that take the same inputs.
      batches: an iterable of `(x, y)` batches.
      total: the number of batches, for the progress bar.
      description: the progress bar's label.
      progress: show a tqdm progress bar.
    """
    bar = tqdm.tqdm(
        batches, total=total, desc=description, unit="batch", disable=not progress, leave=False
    )
    for x, y in bar:
        outputs = [runner(x, y) for runner in runners]
        yield outputs[0][1], [log_probs for log_probs, _ in outputs]


def device_description(strategy=None):
    """Where models run, as a leaderboard cell says it: "8 GPUs (NVIDIA H100)", "32 TPU cores",
    "2 CPU cores"."""
    strategy = strategy or tf.distribute.get_strategy()
    replicas = strategy.num_replicas_in_sync
    if isinstance(strategy, tf.distribute.TPUStrategy):
        return f"{replicas} TPU cores"
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        name = tf.config.experimental.get_device_details(gpus[0]).get("device_name", "GPU")
        return f"{replicas} GPU{'s' * (replicas > 1)} ({name})"
    return f"{os.cpu_count()} CPU cores" if replicas == 1 else f"{replicas} CPU replicas"


def _forward(model, x):
    return tf.nest.map_structure(lambda t: tf.cast(t, tf.float32), model(x, training=False))


def _distributed_call(strategy, forward, x, y):
    logits, labels = strategy.run(lambda a, b: (forward(a), b), args=(x, y))
    return strategy.gather(logits, axis=0), strategy.gather(labels, axis=0)


def _cast_call(traced, dtype, x, y):
    return traced(tf.cast(x, dtype)), y


def _plain_call(traced, x, y):
    return traced(x), y


def _single_input_spec(model):
    """`TensorSpec([None, ...])` of a functional model's one input; None if it has no such."""
    inputs = getattr(model, "inputs", None)
    if inputs and len(inputs) == 1:
        return tf.TensorSpec([None, *inputs[0].shape[1:]], inputs[0].dtype)
    return None
