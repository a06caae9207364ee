"""What runs around the training steps: the divergence guard, the eval pass, the epoch's end.

Each epoch ends with one pass over the validation split (`val/...`) when the config holds one
out of train, else over the test split (`test/...`).

Timing fields a member records: `train/ms_per_example`, the wall time of an epoch's training
steps (forward, backward, update and input pipeline) per training example; and
`test/ms_per_example`, model inference per test example as defined in
`het_ensembles.evaluation.predict` (the evaluator's `ms_per_example`).
"""

import dataclasses
import math
import time

import keras
import ml_collections
import numpy as np
import tensorflow as tf
from absl import logging
from tensorflow.core.framework import summary_pb2

from het_ensembles import metrics
from het_ensembles.evaluation import predict
from het_ensembles.training import checkpoints, rank1


class StopOnNonFiniteLoss(keras.callbacks.Callback):
    """Raises NonFiniteError at the first step whose loss is NaN or inf.

    It runs after every step, so a diverged run stops before the epoch's checkpoint: the
    checkpoints on disk all hold finite weights.
    """

    def on_train_batch_end(self, batch, logs=None):
        loss = float((logs or {}).get("loss", 0.0))  # the epoch's running mean so far
        if not math.isfinite(loss):
            step = int(self.model.optimizer.iterations.numpy())
            raise checkpoints.NonFiniteError(
                f"Non-finite training loss ({loss}) at step {step} (batch {batch + 1} of the "
                "epoch); stopping without a checkpoint of these weights. Lower "
                "base_learning_rate or check the data; re-running resumes from the last "
                "(finite) checkpoint."
            )


# Metric-key prefix of each eval split (`'{prefix}/{metric}'`).
SPLIT_PREFIXES = {"test": "test", "validation": "val"}


class EvalPass:
    """Exact metrics of the model being trained, over one pass of an eval split.

    Every example is counted once (checked against `expected_examples` when known). The
    prediction step is `evaluation.predict.ModelRunner`, traced once and reused every epoch.

    Args:
      model: the Keras model (logits [B, K], or [B, M, K] for M heads).
      dataset: a `tf.data.Dataset` of global `(x, y)` batches.
      strategy: the strategy the model was built under.
      multilabel: whether the model is a sigmoid (multilabel) model.
      num_classes: K.
      num_bins: ECE bins.
      expected_examples: how many examples one pass must count (None: not checked).
      split: "test" (keys `test/...`) or "validation" (keys `val/...`).
    """

    def __init__(
        self,
        model,
        dataset,
        *,
        strategy,
        multilabel,
        num_classes,
        num_bins,
        expected_examples,
        split="test",
    ):
        if split not in SPLIT_PREFIXES:
            raise ValueError(f"Unknown eval split. Received: split={split!r}")
        self.split = split
        self.prefix = SPLIT_PREFIXES[split]
        self.dataset = dataset
        self.strategy = strategy
        self.multilabel = multilabel
        self.num_classes = num_classes
        self.num_bins = num_bins
        self.expected_examples = expected_examples
        self.runner = predict.ModelRunner(model, multilabel=multilabel, strategy=strategy)

    def __call__(self):
        """`{"<prefix>/<metric>": value}`: `metrics.ClassificationMetrics`' keys (softmax:
        accuracy, top5_accuracy; multi-label: gap, map, prec@1; both: nll, ece, brier,
        num_examples) and ms_per_example. A model of M heads: those of the heads' mean
        prediction plus gibbs_nll, disagreement, kl_to_ensemble and, per head i,
        nll_member_<i> and accuracy_member_<i>."""
        accumulator, heads = None, []
        batches = self.strategy.experimental_distribute_dataset(self.dataset)
        self.runner.reset_timing()  # this pass's time, not a running mean over epochs
        for labels, (log_probs,) in predict.predict_batches([self.runner], batches):
            if self.multilabel and labels.ndim == 1:  # a sigmoid head on integer labels
                labels = np.eye(self.num_classes, dtype=np.float32)[labels]
            if accumulator is None:
                accumulator, heads = self._accumulators(log_probs)
            if log_probs.ndim == 3:  # [B, M, K]: M heads, scored as an ensemble and one by one
                member_log_probs = np.moveaxis(log_probs, 1, 0)
                accumulator.update_state(labels, member_log_probs)
                for head, head_log_probs in zip(heads, member_log_probs):
                    head.update_state(labels, head_log_probs)
            else:
                accumulator.update_state(labels, log_probs)
        if accumulator is None:  # no batches: the keys of an empty pass
            accumulator, heads = self._accumulators(np.zeros((0, 0)))
        results = accumulator.result()
        results.pop("ensemble_size", None)
        for i, head in enumerate(heads):  # uncertainty-baselines' het_mimo.py names
            head_results = head.result()
            results[f"nll_member_{i}"] = head_results["nll"]
            results[f"accuracy_member_{i}"] = head_results["accuracy"]
        counted = results["num_examples"]
        if self.expected_examples is not None and counted != self.expected_examples:
            raise RuntimeError(
                f"Evaluation saw {counted} {self.split} examples; the dataset has "
                f"{self.expected_examples}. Every example must be counted once (is the TFDS "
                "copy complete?)."
            )
        results["ms_per_example"] = self.runner.ms_per_example()
        return {f"{self.prefix}/{name}": value for name, value in results.items()}

    def _accumulators(self, log_probs):
        """(the pass's accumulator, one per head): a model of M heads (log_probs [B, M, K]) is
        scored as the ensemble of its heads (the mean probability, with its diversity), as
        uncertainty-baselines' MIMO / rank-1 scripts report `test/...`, plus each head."""
        options = {"multilabel": self.multilabel, "num_bins": self.num_bins}
        if log_probs.ndim != 3:
            return metrics.ClassificationMetrics(**options), []
        heads = [metrics.ClassificationMetrics(**options) for _ in range(log_probs.shape[1])]
        return metrics.EnsembleMetrics(**options), heads


# The last epoch's training figures, kept in the checkpoint (`EpochContext.train_record`) so
# that a run killed after its final checkpoint still reports them when it resumes.
TRAIN_FIELDS = (
    "train/loss",
    "train/nll",
    "train/accuracy",
    "train/ms_per_example",
    "learning_rate",
)


def new_train_record():
    """The checkpointed vector of `TRAIN_FIELDS`, read only once an epoch has ended.

    It starts at zeros, not NaN: every value in a checkpoint is finite (the divergence guard
    checks them all).
    """
    return tf.Variable(tf.zeros([len(TRAIN_FIELDS)]), trainable=False, name="train_record")


def new_train_seconds():
    """The checkpointed wall time of all epochs so far (training and test passes)."""
    return tf.Variable(0.0, dtype=tf.float64, trainable=False, name="train_seconds")


@dataclasses.dataclass
class EpochContext:
    """What the epoch-end callback needs to evaluate, log and checkpoint.

    Attributes:
      eval_pass: the per-epoch evaluation (validation split if any, else test).
      best: None, or the `checkpoints.BestCheckpoint` that keeps the epoch with the lowest
        `val/nll` (`keep_best_epoch`).
    """

    config: ml_collections.ConfigDict
    strategy: tf.distribute.Strategy
    eval_pass: EvalPass
    manager: tf.train.CheckpointManager
    epoch: tf.Variable
    train_record: tf.Variable
    train_seconds: tf.Variable
    writer: object
    steps_per_epoch: int
    global_batch_size: int
    best: checkpoints.BestCheckpoint | None = None


class EpochEnd(keras.callbacks.Callback):
    """Per epoch: evaluate (validation or test split), write TensorBoard scalars, checkpoint."""

    def __init__(self, context):
        super().__init__()
        self.context = context
        self.results = None
        self._start = None

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        run = self.context
        checkpoints.check_finite_weights(
            self.model, step=int(self.model.optimizer.iterations.numpy())
        )
        examples = run.steps_per_epoch * run.global_batch_size
        train_ms = 1e3 * (time.perf_counter() - self._start) / examples
        logs = logs or {}
        results = {
            "train/loss": float(logs["loss"]),
            "train/nll": float(logs["nll"]),
            "train/accuracy": float(logs["accuracy"]),
            "train/ms_per_example": train_ms,
            "learning_rate": float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)),
        }
        # A rank-1 model's train/kl, train/kl_scale, train/elbo (het_rank1_bnn.py's names).
        results.update({f"train/{k}": float(logs[k]) for k in rank1.TRAIN_LOGS if k in logs})
        results.update(run.eval_pass())
        results.update(rank1.eval_terms(self.model, results, run.eval_pass.prefix))
        write_scalars(run.writer, results, step=epoch + 1)
        self.results = results
        prefix = run.eval_pass.prefix
        top1 = "prec@1" if run.eval_pass.multilabel else "accuracy"
        # The split's name goes into the message, not the arguments: the demo's progress bar
        # reads the arguments by position (`training.progress.EpochProgress`).
        logging.info(
            f"Epoch %d/%d: train loss %.4f, accuracy %.4f; {prefix} nll %.4f, {top1} %.4f, "
            "ece %.4f",
            epoch + 1,
            run.config.train_epochs,
            results["train/loss"],
            results["train/accuracy"],
            results[f"{prefix}/nll"],
            results[f"{prefix}/{top1}"],
            results[f"{prefix}/ece"],
        )
        if run.best is not None and run.best.update(epoch + 1, results["val/nll"]):
            # Saved before the epoch's checkpoint, so a kill between the two loses nothing.
            logging.info("Epoch %d has the lowest val/nll so far.", epoch + 1)
        run.epoch.assign(epoch + 1)
        run.train_record.assign([results[name] for name in TRAIN_FIELDS])
        run.train_seconds.assign_add(time.perf_counter() - self._start)
        done = epoch + 1 == run.config.train_epochs
        if done or (epoch + 1) % run.config.checkpoint_interval == 0:
            checkpoints.save_checkpoint(run.manager, run.strategy, epoch + 1)


# TensorBoard's scalar plugin reads summaries tagged with this metadata.
_SCALAR_METADATA = summary_pb2.SummaryMetadata(
    plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars")
)


def write_scalars(writer, results, *, step):
    """Writes every non-None value of `results` as a TensorBoard scalar at `step`."""
    with writer.as_default():
        for name, value in results.items():
            if value is not None:
                write_scalar(name, value, step=step)
        writer.flush()


def write_scalar(name, value, *, step):
    """`tf.summary.scalar` without needing the `tensorboard` package installed.

    Writes to the default summary writer what TensorBoard's scalar plugin writes: a float32
    tensor tagged `name` with the "scalars" plugin metadata.
    """
    return tf.summary.write(
        name, tf.constant(value, tf.float32), step=step, metadata=_SCALAR_METADATA
    )
