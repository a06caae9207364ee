"""The one trainer: a config in, an ensemble member directory out.

Where it sits: data -> models -> **training** -> member directory -> ensemble evaluator. Every
script (`het-ensembles train`, `baselines/*/*.py`, the demo) calls `train_and_evaluate`.

What a run does, in order (uncertainty-baselines' ImageNet recipe, on Keras' `fit`):

1. checks the config (`validate_config`) and that `output_dir` is writable, before any
   TensorFlow work; picks the `tf.distribute` strategy (`make_strategy`); seeds once with
   `keras.utils.set_random_seed(config.seed)`;
2. builds the model (`models.build_model`, dense or heteroscedastic head, L2 on kernels and
   biases, optionally `mixed_bfloat16` with a float32 head) and SGD with Nesterov momentum
   `1 - one_minus_momentum` on `WarmUpPiecewiseConstantSchedule`;
3. restores the latest checkpoint in `output_dir/checkpoints` if there is one (a re-run of a
   killed command continues where it stopped: same step and epoch counters);
4. trains with `keras.Model.fit` (progress bar), and after every epoch evaluates on the whole test
   split with `het_ensembles.metrics`, writes TensorBoard scalars to `output_dir/logs` and, every
   `checkpoint_interval` epochs, a checkpoint;
5. writes the member directory (DESIGN section 6): `config.json`, `metrics.json` and, last, so
   that its presence marks a finished member, `model.keras` (without optimizer state).
"""

import contextlib
import dataclasses
import glob
import importlib.util
import json
import math
import numbers
import os
import shutil
import sys
import tempfile
import time

import keras
import ml_collections
import numpy as np
import tensorflow as tf
from absl import flags, logging
from ml_collections import config_dict, config_flags
from tensorflow.core.framework import summary_pb2

from het_ensembles import data, metrics, models
from het_ensembles.data import pipeline

HEADS = ("deterministic", "heteroscedastic")
HEAD_CLASSES = ("MCSoftmaxDenseFA", "MCSigmoidDenseFA", "MCSoftmaxDense")
# Fields that may change between a killed run and its resumption (infrastructure, not the run).
RESUMABLE_FIELDS = ("data_dir", "tpu", "checkpoint_interval", "eval_steps")
CHECKPOINTS_TO_KEEP = 3


class ConfigError(ValueError):
    """A config value outside its allowed range (raised before any training)."""


class TrainingError(RuntimeError):
    """Training cannot go on (diverged, or no readable checkpoint to resume from)."""


class NonFiniteError(TrainingError):
    """The loss or the weights became NaN or inf; no checkpoint of such weights is written."""


def default_config():
    """Every field the trainer reads, with uncertainty-baselines' ImageNet ResNet-50 values.

    Config files start from this and override what their leaderboard row changes; a config that
    leaves a field out gets the value here.

    Returns:
      An unlocked `ml_collections.ConfigDict`.
    """
    config = ml_collections.ConfigDict()
    config.seed = 0

    # Data.
    config.dataset = "imagenet2012"
    config.label_field = config_dict.placeholder(str)  # cifar10_n: the noisy label field
    config.data_dir = config_dict.placeholder(str)
    config.image_size = config_dict.placeholder(int)  # None: the dataset's native size
    config.steps_per_epoch = config_dict.placeholder(int)  # None: train examples // batch
    config.eval_steps = config_dict.placeholder(int)  # None: the whole test split

    # Model.
    config.model = "resnet50"
    config.model_kwargs = ml_collections.ConfigDict()  # e.g. depth, width_multiplier
    config.head = "deterministic"
    config.head_class = "MCSoftmaxDenseFA"
    config.num_factors = 15
    config.temperature = 1.5
    config.learn_temperature = False
    config.tune_temperature = False  # edward2 main: tau = lower + (upper - lower) * sigmoid(p)
    config.temperature_lower_bound = config_dict.placeholder(float)  # None: 0.3
    config.temperature_upper_bound = config_dict.placeholder(float)  # None: 3.0
    config.latent_dim = config_dict.placeholder(int)  # HET-XL: noise in the D-dim pre-logits
    config.train_mc_samples = 1000
    config.test_mc_samples = 5000
    config.share_samples_across_batch = False
    config.parameter_efficient = False
    config.mc_chunk_size = config_dict.placeholder(int)
    config.multilabel = False  # sigmoid head trained with binary cross-entropy

    # Optimisation: SGD with Nesterov momentum, linear warm-up, then step decay.
    config.per_core_batch_size = 128
    config.train_epochs = 90
    config.base_learning_rate = 0.1  # per `base_batch_size` examples
    config.base_batch_size = 256  # lr = base_learning_rate * global_batch / base_batch_size
    config.one_minus_momentum = 0.1
    config.l2 = 1e-4
    config.warmup_epochs = 5
    config.lr_decay_epochs = (30, 60, 80)  # of `lr_decay_base_epochs`, scaled to train_epochs
    config.lr_decay_base_epochs = 90
    config.lr_decay_ratio = 0.1
    config.label_smoothing = 0.0
    config.num_bins = 15  # ECE bins

    # Infrastructure.
    config.use_bfloat16 = False
    config.tpu = config_dict.placeholder(str)  # TPU name or "local"; None: no TPU
    config.checkpoint_interval = 1  # epochs
    return config


def load_config(path):
    """Calls `get_config()` of the config file at `path`, as `--config=path` does.

    Config files use it to start from a sibling file and override a few fields.

    Args:
      path: a Python file defining `get_config() -> ConfigDict`.

    Returns:
      The `ConfigDict` it returns.
    """
    path = os.path.abspath(path)
    module_name = "het_ensembles_config_" + str(abs(hash(path)))
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or not os.path.isfile(path):
        raise ConfigError(f"No config file at this path. Received: path={path!r}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config()


def complete_config(config):
    """`default_config()` updated with the fields of `config`; unknown fields are errors.

    Args:
      config: a `ConfigDict` (or dict) holding some of the fields of `default_config()`.

    Returns:
      A new, unlocked `ConfigDict` with every field.

    Raises:
      ConfigError: for a field `default_config()` does not have, or a value of the wrong type.
    """
    full = default_config()
    values = config.to_dict() if isinstance(config, ml_collections.ConfigDict) else dict(config)
    unknown = sorted(set(values) - set(full.keys()))
    if unknown:
        raise ConfigError(
            f"Unknown config fields. Received: {unknown}; allowed: {sorted(full.keys())}"
        )
    for name, value in values.items():
        try:
            setattr(full, name, value)
        except TypeError as error:
            raise ConfigError(
                f"Wrong type for config.{name}. Received: {name}={value!r}"
            ) from error
    return full


def validate_config(config, *, num_classes=None):
    """Checks every field's range; with `num_classes`, also `num_factors <= num_classes`.

    Args:
      config: a complete config (see `complete_config`).
      num_classes: the dataset's number of classes K, if known.

    Raises:
      ConfigError: naming the field, the value received and the allowed range.
    """

    def check(ok, name, allowed):
        if not ok:
            raise ConfigError(
                f"Invalid config.{name}. Received: {name}={config[name]!r}; allowed: {allowed}"
            )

    def is_int(value, low, optional=False):
        if value is None:
            return optional
        return isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= low

    def is_float(value, low, high, low_open=False, high_open=False):
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            return False
        value = float(value)
        if not math.isfinite(value):
            return False
        above = value > low if low_open else value >= low
        below = value < high if high_open else value <= high
        return above and below

    check(is_int(config.seed, 0), "seed", "an integer >= 0")
    check(isinstance(config.dataset, str) and config.dataset, "dataset", data.known_names())
    check(config.model in models.ARCHITECTURES, "model", sorted(models.ARCHITECTURES))
    check(config.head in HEADS, "head", list(HEADS))
    check(config.head_class in HEAD_CLASSES, "head_class", list(HEAD_CLASSES))
    check(is_int(config.image_size, 1, optional=True), "image_size", "None or an integer >= 1")
    check(
        is_int(config.steps_per_epoch, 1, optional=True), "steps_per_epoch", "None or an int >= 1"
    )
    check(is_int(config.eval_steps, 1, optional=True), "eval_steps", "None or an integer >= 1")
    check(is_int(config.per_core_batch_size, 1), "per_core_batch_size", "an integer >= 1")
    check(is_int(config.train_epochs, 1), "train_epochs", "an integer >= 1")
    check(
        is_float(config.base_learning_rate, 0, math.inf, low_open=True),
        "base_learning_rate",
        "a finite float > 0",
    )
    check(is_int(config.base_batch_size, 1), "base_batch_size", "an integer >= 1")
    check(
        is_float(config.one_minus_momentum, 0, 1, low_open=True),
        "one_minus_momentum",
        "a float in (0, 1] (momentum = 1 - one_minus_momentum)",
    )
    check(is_float(config.l2, 0, math.inf), "l2", "a finite float >= 0")
    check(is_float(config.warmup_epochs, 0, math.inf), "warmup_epochs", "a float >= 0")
    check(is_int(config.lr_decay_base_epochs, 1), "lr_decay_base_epochs", "an integer >= 1")
    decay = tuple(config.lr_decay_epochs)
    check(
        all(is_int(e, 0) and e <= config.lr_decay_base_epochs for e in decay)
        and list(decay) == sorted(decay),
        "lr_decay_epochs",
        f"increasing integers in [0, lr_decay_base_epochs={config.lr_decay_base_epochs}]",
    )
    check(is_float(config.lr_decay_ratio, 0, 1, low_open=True), "lr_decay_ratio", "(0, 1]")
    check(is_float(config.label_smoothing, 0, 1), "label_smoothing", "a float in [0, 1]")
    check(is_int(config.num_bins, 1), "num_bins", "an integer >= 1")
    check(is_int(config.checkpoint_interval, 1), "checkpoint_interval", "an integer >= 1")
    check(isinstance(config.use_bfloat16, bool), "use_bfloat16", "True or False")
    check(isinstance(config.multilabel, bool), "multilabel", "True or False")

    if config.head == "heteroscedastic":
        check(
            is_float(config.temperature, 0, math.inf, low_open=True),
            "temperature",
            "a finite float > 0",
        )
        check(is_int(config.train_mc_samples, 1), "train_mc_samples", "an integer >= 1")
        check(is_int(config.test_mc_samples, 1), "test_mc_samples", "an integer >= 1")
        check(is_int(config.mc_chunk_size, 1, optional=True), "mc_chunk_size", "None or int >= 1")
        sigmoid = config.head_class == "MCSigmoidDenseFA"
        check(
            sigmoid == config.multilabel,
            "multilabel",
            "True exactly when head_class='MCSigmoidDenseFA' (sigmoid head, binary CE)",
        )
        if config.head_class != "MCSoftmaxDense":
            low = 0 if sigmoid else 1
            upper = "num_classes" if num_classes is None else f"num_classes={num_classes}"
            check(
                is_int(config.num_factors, low)
                and (num_classes is None or config.num_factors <= num_classes),
                "num_factors",
                f"an integer in [{low}, {upper}]",
            )


def check_output_dir(output_dir):
    """Creates `output_dir` if needed and checks that a file can be written there.

    Raises:
      ConfigError: if it is empty or not writable.
    """
    if not output_dir:
        raise ConfigError(f"output_dir is required. Received: output_dir={output_dir!r}")
    try:
        os.makedirs(output_dir, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=output_dir, prefix=".write_test_"):
            pass
    except OSError as error:
        raise ConfigError(
            f"output_dir is not a writable directory ({error.strerror}). "
            f"Received: output_dir={output_dir!r}"
        ) from error


def make_strategy(config):
    """The `tf.distribute` strategy for this machine and config.

    `config.tpu` set: `TPUStrategy` (use "local" on a TPU VM). `TF_CONFIG` in the environment:
    `MultiWorkerMirroredStrategy`. Several GPUs: `MirroredStrategy`. Otherwise the default
    strategy (one device).
    """
    if config.tpu:
        logging.info("Strategy: TPUStrategy (tpu=%r).", config.tpu)
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=config.tpu)
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    if os.environ.get("TF_CONFIG"):
        logging.info("Strategy: MultiWorkerMirroredStrategy (TF_CONFIG is set).")
        return tf.distribute.MultiWorkerMirroredStrategy()
    num_gpus = len(tf.config.list_physical_devices("GPU"))
    if num_gpus > 1:
        logging.info("Strategy: MirroredStrategy over %d GPUs.", num_gpus)
        return tf.distribute.MirroredStrategy()
    logging.info("Strategy: default (one device).")
    return tf.distribute.get_strategy()


@keras.saving.register_keras_serializable(package="het_ensembles")
class WarmUpPiecewiseConstantSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up to `base_learning_rate`, then x`decay_ratio` at each of `decay_epochs`.

    As uncertainty-baselines' schedule of the same name (Goyal et al. 2017 warm-up, He et al.
    2016 steps): at epoch e = step / steps_per_epoch the rate is
    `base_learning_rate * e / warmup_epochs` while e < warmup_epochs, then
    `base_learning_rate * decay_ratio**i` with i the number of `decay_epochs` <= e.
    """

    def __init__(
        self, steps_per_epoch, base_learning_rate, decay_ratio, decay_epochs, warmup_epochs
    ):
        super().__init__()
        self.steps_per_epoch = int(steps_per_epoch)
        self.base_learning_rate = float(base_learning_rate)
        self.decay_ratio = float(decay_ratio)
        self.decay_epochs = [float(e) for e in decay_epochs]
        self.warmup_epochs = float(warmup_epochs)

    def __call__(self, step):
        epoch = keras.ops.cast(step, "float32") / self.steps_per_epoch
        rate = keras.ops.convert_to_tensor(self.base_learning_rate, "float32")
        if self.warmup_epochs > 0:
            rate = rate * epoch / self.warmup_epochs
        for index, start in enumerate([self.warmup_epochs, *self.decay_epochs]):
            rate = keras.ops.where(
                epoch >= start, self.base_learning_rate * self.decay_ratio**index, rate
            )
        return rate

    def get_config(self):
        return {
            "steps_per_epoch": self.steps_per_epoch,
            "base_learning_rate": self.base_learning_rate,
            "decay_ratio": self.decay_ratio,
            "decay_epochs": self.decay_epochs,
            "warmup_epochs": self.warmup_epochs,
        }


def learning_rate_schedule(config, *, steps_per_epoch, global_batch_size):
    """The schedule of `config`: rate scaled by batch size, decay epochs by `train_epochs`."""
    return WarmUpPiecewiseConstantSchedule(
        steps_per_epoch=steps_per_epoch,
        base_learning_rate=config.base_learning_rate * global_batch_size / config.base_batch_size,
        decay_ratio=config.lr_decay_ratio,
        # Integer epochs, as uncertainty-baselines: (train_epochs * 30) // 90.
        decay_epochs=[
            (e * config.train_epochs) // config.lr_decay_base_epochs for e in config.lr_decay_epochs
        ],
        warmup_epochs=config.warmup_epochs,
    )


def head_spec(config):
    """The `head` argument of `models.build_model` for `config`."""
    if config.head == "deterministic":
        return {"type": "dense"}
    spec = {
        "type": config.head_class,
        "temperature": config.temperature,
        "train_mc_samples": config.train_mc_samples,
        "test_mc_samples": config.test_mc_samples,
        "share_samples_across_batch": config.share_samples_across_batch,
        "learn_temperature": config.learn_temperature,
        "tune_temperature": config.tune_temperature,
        "temperature_lower_bound": config.temperature_lower_bound,
        "temperature_upper_bound": config.temperature_upper_bound,
        "latent_dim": config.latent_dim,
        "mc_chunk_size": config.mc_chunk_size,
    }
    if config.head_class != "MCSoftmaxDense":
        spec["num_factors"] = config.num_factors
        spec["parameter_efficient"] = config.parameter_efficient
    return spec


def create_model(config, *, input_shape, num_classes):
    """The model of `config`; under `use_bfloat16` its layers compute in bfloat16.

    The global Keras dtype policy is set only while the layers are built, then restored, so
    one process can run float32 and bfloat16 configs in turn.
    """
    policy = "mixed_bfloat16" if config.use_bfloat16 else "float32"
    with _dtype_policy(policy):
        return models.build_model(
            config.model,
            input_shape=tuple(input_shape),
            num_classes=num_classes,
            head=head_spec(config),
            l2=config.l2,
            seed=config.seed,
            **config.model_kwargs.to_dict(),
        )


class CrossEntropy(keras.losses.Loss):
    """Per-example NLL of integer labels [B] (or 0/1 targets [B, K]) given logits [B, K].

    Softmax cross-entropy, or with `multilabel=True` the sigmoid cross-entropy summed over the
    K labels (the NLL of the target vector under independent Bernoullis; `metrics.nll` with
    `multilabel=True` is the same number). Optional label smoothing as Keras':
    softmax targets `(1 - s) y + s / K`, sigmoid targets `(1 - s) y + s / 2`.
    """

    def __init__(self, num_classes, *, multilabel=False, label_smoothing=0.0, name="nll"):
        super().__init__(name=name)
        self.num_classes = int(num_classes)
        self.multilabel = bool(multilabel)
        self.label_smoothing = float(label_smoothing)

    def call(self, y_true, y_pred):
        logits = tf.cast(y_pred, tf.float32)
        targets = _targets(y_true, self.num_classes)
        if self.multilabel:
            targets = targets * (1.0 - self.label_smoothing) + 0.5 * self.label_smoothing
            per_label = tf.nn.sigmoid_cross_entropy_with_logits(labels=targets, logits=logits)
            return tf.reduce_sum(per_label, axis=-1)
        targets = targets * (1.0 - self.label_smoothing) + self.label_smoothing / self.num_classes
        return tf.nn.softmax_cross_entropy_with_logits(labels=targets, logits=logits)

    def get_config(self):
        return {
            "num_classes": self.num_classes,
            "multilabel": self.multilabel,
            "label_smoothing": self.label_smoothing,
            "name": self.name,
        }


class _MeanOf(keras.metrics.Mean):
    """Mean over examples of `fn(y_true, y_pred)` [B] (Keras' wrapper would reshape labels)."""

    def __init__(self, fn, name):
        super().__init__(name=name)
        self._fn = fn

    def update_state(self, y_true, y_pred, sample_weight=None):
        return super().update_state(self._fn(y_true, y_pred), sample_weight)


def _top1_correct(y_true, y_pred, num_classes):
    predicted = tf.one_hot(tf.argmax(y_pred, axis=-1), num_classes)
    return tf.cast(tf.reduce_sum(predicted * _targets(y_true, num_classes), axis=-1) > 0, "float32")


def _targets(y_true, num_classes):
    """Integer labels [B] -> one-hot [B, K]; 0/1 targets [B, K] pass through."""
    if y_true.shape.rank == 1:
        return tf.one_hot(tf.cast(y_true, tf.int32), num_classes)
    return tf.cast(y_true, tf.float32)


class Evaluator:
    """Exact test metrics of a model over one pass of a dataset (every example counted once).

    The prediction step is traced once and reused for every call (every epoch).

    Args:
      model: a Keras model returning logits [B, K].
      strategy: the strategy the model was built under; None for the default one.
      multilabel: whether the model is a sigmoid (multilabel) model.
      num_classes: K.
      num_bins: ECE bins.
    """

    def __init__(self, model, *, strategy=None, multilabel=False, num_classes, num_bins=15):
        self.strategy = strategy or tf.distribute.get_strategy()
        self.multilabel = multilabel
        self.num_classes = num_classes
        self.num_bins = num_bins

        def step(x, y):
            return tf.cast(model(x, training=False), tf.float32), y

        @tf.function(reduce_retracing=True)
        def predict(x, y):
            logits, labels = self.strategy.run(step, args=(x, y))
            return self.strategy.gather(logits, axis=0), self.strategy.gather(labels, axis=0)

        self._predict = predict

    def __call__(self, dataset):
        """Metrics over `dataset`, a `tf.data.Dataset` of global `(x, y)` batches.

        Returns:
          `metrics.ClassificationMetrics` results (accuracy, top5_accuracy, nll, ece, brier,
          num_examples) plus ms_per_example.
        """
        accumulator = metrics.ClassificationMetrics(
            multilabel=self.multilabel, num_bins=self.num_bins
        )
        start = time.perf_counter()
        for x, y in self.strategy.experimental_distribute_dataset(dataset):
            logits, labels = self._predict(x, y)
            labels = labels.numpy()
            if self.multilabel and labels.ndim == 1:
                labels = np.eye(self.num_classes, dtype=np.float32)[labels]
            log_probs = metrics.log_probs_from_logits(logits.numpy(), multilabel=self.multilabel)
            accumulator.update_state(labels, log_probs)
        results = accumulator.result()
        elapsed = time.perf_counter() - start
        results["ms_per_example"] = 1e3 * elapsed / max(1, results["num_examples"])
        return results


@dataclasses.dataclass
class _Run:
    """What the epoch callback needs to evaluate, log and checkpoint."""

    config: ml_collections.ConfigDict
    strategy: tf.distribute.Strategy
    evaluator: Evaluator
    test_dataset: tf.data.Dataset
    expected_test_examples: int | None
    manager: tf.train.CheckpointManager
    epoch: tf.Variable
    writer: object
    steps_per_epoch: int
    global_batch_size: int

    def evaluate(self):
        """Test metrics as `{"test/<name>": value}`, after checking the example count."""
        test = self.evaluator(self.test_dataset)
        _check_count(test["num_examples"], self.expected_test_examples)
        return {f"test/{name}": value for name, value in test.items()}


class _EpochEnd(keras.callbacks.Callback):
    """Per epoch: evaluate on the test split, write TensorBoard scalars, checkpoint."""

    def __init__(self, run):
        super().__init__()
        self.run = run
        self.results = None
        self._start = None

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        run = self.run
        _check_finite_weights(self.model, step=int(self.model.optimizer.iterations.numpy()))
        examples = run.steps_per_epoch * run.global_batch_size
        train_ms = 1e3 * (time.perf_counter() - self._start) / examples
        logs = logs or {}
        results = {
            "train/loss": float(logs["loss"]),
            "train/nll": float(logs["nll"]),
            "train/accuracy": float(logs["accuracy"]),
            "ms_per_example": train_ms,
            "learning_rate": float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)),
        }
        results.update(run.evaluate())
        with run.writer.as_default():
            for name, value in results.items():
                write_scalar(name, value, step=epoch + 1)
            run.writer.flush()
        self.results = results
        logging.info(
            "Epoch %d/%d: train loss %.4f, accuracy %.4f; test nll %.4f, accuracy %.4f, ece %.4f",
            epoch + 1,
            run.config.train_epochs,
            results["train/loss"],
            results["train/accuracy"],
            results["test/nll"],
            results["test/accuracy"],
            results["test/ece"],
        )
        run.epoch.assign(epoch + 1)
        done = epoch + 1 == run.config.train_epochs
        if done or (epoch + 1) % run.config.checkpoint_interval == 0:
            _save_checkpoint(run.manager, run.strategy, epoch + 1)


def train_and_evaluate(config, output_dir, *, strategy=None):
    """Trains one ensemble member and writes its directory (see the module docstring).

    Re-running the same call after the process was killed resumes from the latest checkpoint in
    `output_dir/checkpoints`; re-running it on a finished member returns its metrics.

    Args:
      config: a `ConfigDict` with fields of `default_config()` (missing ones take its values).
      output_dir: the member directory.
      strategy: a `tf.distribute.Strategy` to use instead of `make_strategy(config)`.

    Returns:
      The member's final metrics (the contents of `metrics.json`).

    Raises:
      ConfigError: (a `ValueError`) for a bad config value, dataset or `output_dir`, before any
        training.
    """
    config, info = _checked_config(config)
    check_output_dir(output_dir)
    checkpoint_dir = os.path.join(output_dir, "checkpoints")
    _check_resumable(config, output_dir, checkpoint_dir)
    finished = _finished_metrics(output_dir)
    if finished is not None:
        logging.info("%s is a finished member; nothing to do.", output_dir)
        return finished

    strategy = strategy or make_strategy(config)
    keras.utils.set_random_seed(config.seed)
    global_batch_size = config.per_core_batch_size * strategy.num_replicas_in_sync
    steps_per_epoch = _steps_per_epoch(config, info, strategy)
    with strategy.scope():
        model = create_model(config, input_shape=info.input_shape, num_classes=info.num_classes)
        compile_model(
            model,
            config,
            num_classes=info.num_classes,
            steps_per_epoch=steps_per_epoch,
            global_batch_size=global_batch_size,
        )
    epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
    checkpoint = tf.train.Checkpoint(model=model, optimizer=model.optimizer, epoch=epoch)
    latest = _restore_latest(checkpoint, checkpoint_dir)
    manager = tf.train.CheckpointManager(
        checkpoint, _writable_checkpoint_dir(checkpoint_dir, strategy), CHECKPOINTS_TO_KEEP
    )
    if latest:
        logging.info(
            "Resuming from %s: epoch %d, step %d.",
            latest,
            int(epoch.numpy()),
            int(model.optimizer.iterations.numpy()),
        )
    else:
        _save_checkpoint(manager, strategy, 0)  # epoch 0: the initial weights
    chief = _is_chief(strategy)
    if chief:
        _write_json(os.path.join(output_dir, "config.json"), _config_record(config, info))

    initial_epoch = int(epoch.numpy())
    train_dataset, test_dataset = make_datasets(
        config, batch_size=global_batch_size, strategy=strategy, start_epoch=initial_epoch
    )
    writer = (
        tf.summary.create_file_writer(os.path.join(output_dir, "logs"))
        if chief
        else tf.summary.create_noop_writer()
    )
    run = _Run(
        config=config,
        strategy=strategy,
        evaluator=Evaluator(
            model,
            strategy=strategy,
            multilabel=config.multilabel,
            num_classes=info.num_classes,
            num_bins=config.num_bins,
        ),
        test_dataset=test_dataset,
        expected_test_examples=_expected_test_examples(config, info, strategy, global_batch_size),
        manager=manager,
        epoch=epoch,
        writer=writer,
        steps_per_epoch=steps_per_epoch,
        global_batch_size=global_batch_size,
    )
    epoch_end = _EpochEnd(run)
    logging.info(
        "Training %s (%d parameters) on %s: %d epochs of %d steps, global batch %d, %d replicas.",
        config.model,
        model.count_params(),
        config.dataset,
        config.train_epochs,
        steps_per_epoch,
        global_batch_size,
        strategy.num_replicas_in_sync,
    )
    with _multi_worker_fit_fixes(model):
        model.fit(
            train_dataset,
            epochs=config.train_epochs,
            initial_epoch=initial_epoch,
            steps_per_epoch=steps_per_epoch,
            callbacks=[_StopOnNonFiniteLoss(), epoch_end],
            shuffle=False,  # the dataset is already shuffled (seeded)
            verbose="auto" if chief else 0,
        )

    # None when the last checkpoint was already final (killed while writing the member).
    results = epoch_end.results or run.evaluate()
    results["train/steps"] = int(model.optimizer.iterations.numpy())
    results["train/epochs"] = int(epoch.numpy())
    results["num_params"] = int(model.count_params())
    if chief:
        _write_json(os.path.join(output_dir, "metrics.json"), results)
        _save_member_model(model, os.path.join(output_dir, "model.keras"))
    writer.close()
    return results


@contextlib.contextmanager
def _multi_worker_fit_fixes(model):
    """Works around two bugs of Keras 3 `fit` under `MultiWorkerMirroredStrategy` (>= 2 workers).

    1. Before training, `fit` builds the metrics from one batch averaged across replicas with
       `strategy.reduce("MEAN", (x, y))`, which the multi-worker strategy cannot do for a nested
       structure ("Attempt to convert a value (PerReplica...) to a Tensor"). The build only
       needs shapes: this model builds from the first local replica's batch instead.
    2. Every step, `fit` reduces the (scalar) logs with `strategy.reduce("MEAN", v, axis=0)`
       ("Invalid reduction dimension 0 for input with 0 dimensions"). The logs are the same on
       every replica (synchronised metrics), so they are averaged with `axis=None` instead.

    Single-worker runs (and other strategies) are left untouched. Keras versions without these
    internals are left untouched too.
    """
    strategy = model.distribute_strategy
    try:
        from keras.src.backend.tensorflow import trainer as keras_tf_trainer

        multi_worker = keras_tf_trainer._collective_all_reduce_multi_worker(strategy)
        original_reduce = keras_tf_trainer.reduce_per_replica
    except (ImportError, AttributeError):
        multi_worker = False
    if not multi_worker:
        yield
        return

    def local(value):
        if isinstance(value, tf.distribute.DistributedValues):
            return strategy.experimental_local_results(value)[0]
        return value

    def build(iterator=None, data_batch=None):
        if iterator is not None:
            for _, _, batches in iterator:
                data_batch = tf.nest.map_structure(local, next(batches))
                break
        with strategy.scope():
            model._symbolic_build(data_batch=data_batch)

    def mean(value):
        if isinstance(value, tf.distribute.DistributedValues):
            return strategy.reduce("MEAN", value, axis=None)
        return value

    def reduce_per_replica(values, strategy, reduction="auto"):
        if reduction in ("auto", "mean") and keras_tf_trainer._collective_all_reduce_multi_worker(
            strategy
        ):
            return tf.nest.map_structure(mean, values)
        return original_reduce(values, strategy, reduction)

    model._maybe_symbolic_build = build
    keras_tf_trainer.reduce_per_replica = reduce_per_replica
    try:
        yield
    finally:
        keras_tf_trainer.reduce_per_replica = original_reduce
        del model._maybe_symbolic_build


def compile_model(model, config, *, num_classes, steps_per_epoch, global_batch_size):
    """Compiles `model` with SGD + Nesterov on the config's schedule and the cross-entropy loss.

    Call it inside the strategy's scope. The reported metrics are `loss` (cross-entropy, with
    label smoothing if any, plus the L2 terms in `model.losses`), `nll` and `accuracy`.
    """
    optimizer = keras.optimizers.SGD(
        learning_rate=learning_rate_schedule(
            config, steps_per_epoch=steps_per_epoch, global_batch_size=global_batch_size
        ),
        momentum=1.0 - config.one_minus_momentum,
        nesterov=True,
    )
    nll = CrossEntropy(num_classes, multilabel=config.multilabel)
    model.compile(
        optimizer=optimizer,
        loss=CrossEntropy(
            num_classes,
            multilabel=config.multilabel,
            label_smoothing=config.label_smoothing,
            name="loss",
        ),
        metrics=[
            _MeanOf(nll.call, name="nll"),
            _MeanOf(lambda y, p: _top1_correct(y, p, num_classes), name="accuracy"),
        ],
    )
    optimizer.build(model.trainable_variables)  # so a checkpoint can restore its slots


def make_datasets(config, *, batch_size, strategy=None, start_epoch=0):
    """The training stream and the test set of `config`.

    Args:
      config: a complete config.
      batch_size: the global batch size.
      strategy: the training set is distributed with it (per-replica batches); the test set
        stays a plain dataset of global batches (`Evaluator` distributes it).
      start_epoch: the epoch training starts at. A fresh run (0) reads the order given by
        `config.seed`; a resumed run reads a fresh order derived from (seed, start_epoch)
        instead of replaying epoch 0's.

    Returns:
      `(train_dataset, test_dataset)`; the test set is cut to `config.eval_steps` batches.
    """
    seed = config.seed if start_epoch == 0 else pipeline.derive_seed(config.seed, start_epoch)
    common = {
        "batch_size": batch_size,
        "image_size": config.image_size,
        "data_dir": config.data_dir,
        "label_field": config.label_field,
    }
    train = data.load(
        config.dataset, "train", is_training=True, seed=seed, strategy=strategy, **common
    )
    test = data.load(
        config.dataset,
        "test",
        is_training=False,
        drop_remainder=_drops_eval_remainder(strategy),
        **common,
    )
    if config.eval_steps is not None:
        test = test.take(config.eval_steps)
    return train, test


def cli_main(argv, *, config_file=None):
    """`het-ensembles train --config=<file> [--config.field=value ...] --output_dir=<dir>`.

    Args:
      argv: the arguments after the program / subcommand name.
      config_file: the config file used when `--config` is not given (the baselines scripts
        pass theirs).

    Returns:
      The exit status: 0 on success, 2 for bad flags or config values.
    """
    program = "het-ensembles train"
    flag_values = flags.FlagValues()
    config_flags.DEFINE_config_file(
        "config",
        config_file,
        "Config file with get_config() (configs/...); override fields with --config.<field>.",
        flag_values=flag_values,
        lock_config=True,
        sys_argv=[program, *argv],  # where it looks for --config.<field> (default: sys.argv)
    )
    flags.DEFINE_string(
        "output_dir",
        None,
        "Member directory to write. Re-running a command resumes from its checkpoints.",
        flag_values=flag_values,
    )
    if {"-h", "--help", "--helpshort", "--helpfull"} & set(argv):
        print(f"usage: {program} --config=<file> [--config.<field>=<value> ...] --output_dir=<dir>")
        print(flag_values.get_help())
        shown = complete_config(load_config(config_file)) if config_file else default_config()
        print(f"\nConfig fields ({config_file or 'default_config()'}):")
        for name, value in sorted(shown.to_dict().items()):
            print(f"  --config.{name}={value!r}")
        return 0
    try:
        flag_values([program, *argv])
        if flag_values.config is None or not flag_values.output_dir:
            raise flags.Error("--config=<file> and --output_dir=<dir> are required.")
        flag_values.config.to_dict()  # config_flags loads the file lazily: fail here
    except flags.Error as error:
        print(f"{program}: error: {error}", file=sys.stderr)
        return 2
    except (AttributeError, KeyError) as error:  # ml_collections: override of a missing field
        print(f"{program}: error: the config has no field {error}.", file=sys.stderr)
        return 2
    except OSError as error:  # config_flags loads the file lazily, on first access
        print(
            f"{program}: error: cannot load --config: {str(error).splitlines()[0]} "
            f"Received: --config={_flag_value(argv, 'config')!r}",
            file=sys.stderr,
        )
        return 2
    logging.set_verbosity(logging.INFO)
    try:
        train_and_evaluate(flag_values.config, flag_values.output_dir)
    except ConfigError as error:
        print(f"{program}: error: {error}", file=sys.stderr)
        return 2
    except TrainingError as error:
        print(f"{program}: error: {error}", file=sys.stderr)
        return 1
    return 0


def _flag_value(argv, name):
    """The value of `--name=value` / `--name value` in `argv` (None if absent)."""
    for i, arg in enumerate(argv):
        if arg.startswith(f"--{name}="):
            return arg.split("=", 1)[1]
        if arg == f"--{name}" and i + 1 < len(argv):
            return argv[i + 1]
    return None


# ------------------------------------------------------------------------------------------------
# Member directory, checkpoints and files.


def _checked_config(config):
    """The complete, validated config and its dataset's info (no TensorFlow work)."""
    config = complete_config(config)
    validate_config(config)
    try:
        info = data.get_info(
            config.dataset,
            data_dir=config.data_dir,
            label_field=config.label_field,
            image_size=config.image_size,
        )
    except ValueError as error:
        raise ConfigError(f"Invalid config.dataset / label_field / image_size: {error}") from error
    validate_config(config, num_classes=info.num_classes)
    if info.multilabel and not config.multilabel:
        raise ConfigError(
            f"Dataset {config.dataset} has multi-hot labels; it needs a sigmoid head. Received: "
            "multilabel=False; allowed: multilabel=True with head_class='MCSigmoidDenseFA'"
        )
    return config, info


def _steps_per_epoch(config, info, strategy):
    if config.steps_per_epoch is not None:
        return config.steps_per_epoch
    global_batch_size = config.per_core_batch_size * strategy.num_replicas_in_sync
    steps = info.num_examples["train"] // global_batch_size
    if steps < 1:
        raise ConfigError(
            f"The training split ({info.num_examples['train']} examples) is smaller than one "
            f"global batch. Received: per_core_batch_size={config.per_core_batch_size} x "
            f"{strategy.num_replicas_in_sync} replicas; allowed: <= the split size"
        )
    return steps


def _drops_eval_remainder(strategy):
    # TPUs need static shapes, so there the last partial test batch is dropped.
    return isinstance(strategy, tf.distribute.TPUStrategy)


def _expected_test_examples(config, info, strategy, global_batch_size):
    """How many test examples one evaluation must count (None: cut by eval_steps)."""
    if config.eval_steps is not None:
        return None
    expected = info.num_examples["test"]
    if _drops_eval_remainder(strategy):
        expected -= expected % global_batch_size
    return expected


def _config_record(config, info):
    record = config.to_dict()
    record["num_classes"] = info.num_classes
    record["multilabel"] = bool(config.multilabel)
    return record


def _check_resumable(config, output_dir, checkpoint_dir):
    """Refuses to resume checkpoints written by a run with a different config."""
    path = os.path.join(output_dir, "config.json")
    if not (checkpoint_prefixes(checkpoint_dir) and os.path.exists(path)):
        return
    with open(path) as f:
        previous = json.load(f)
    current = json.loads(json.dumps(config.to_dict()))  # tuples -> lists, as stored
    changed = sorted(
        name
        for name in current
        if name not in RESUMABLE_FIELDS and previous.get(name) != current[name]
    )
    if changed:
        details = ", ".join(f"{n}={previous.get(n)!r} -> {current[n]!r}" for n in changed)
        raise ConfigError(
            f"{output_dir} holds checkpoints of a run with a different config ({details}). "
            "Use a new --output_dir, or the original values to resume."
        )


def _finished_metrics(output_dir):
    model_path = os.path.join(output_dir, "model.keras")
    metrics_path = os.path.join(output_dir, "metrics.json")
    if not (os.path.exists(model_path) and os.path.exists(metrics_path)):
        return None
    with open(metrics_path) as f:
        return json.load(f)


def _is_chief(strategy):
    """Whether this task writes the member directory (always, unless multi-worker)."""
    if isinstance(strategy, tf.distribute.TPUStrategy):
        return True
    resolver = strategy.cluster_resolver
    if resolver is None or not resolver.task_type:
        return True
    if resolver.task_type == "chief":
        return True
    cluster = resolver.cluster_spec().as_dict()
    return resolver.task_type == "worker" and resolver.task_id == 0 and "chief" not in cluster


def _writable_checkpoint_dir(checkpoint_dir, strategy):
    """The chief writes `checkpoint_dir`; other workers (who must save too) a private one."""
    if _is_chief(strategy):
        return checkpoint_dir
    resolver = strategy.cluster_resolver
    return os.path.join(checkpoint_dir, f".{resolver.task_type}_{resolver.task_id}")


def checkpoint_prefixes(checkpoint_dir):
    """The `ckpt-<n>` checkpoints on disk (those with an index file), newest first.

    Read from the directory rather than from TF's `checkpoint` state file, so that a damaged
    state file does not hide the checkpoints.
    """
    found = []
    for index in glob.glob(os.path.join(glob.escape(checkpoint_dir), "ckpt-*.index")):
        prefix = index[: -len(".index")]
        number = prefix.rsplit("-", 1)[1]
        if number.isdigit():
            found.append((int(number), prefix))
    return [prefix for _, prefix in sorted(found, reverse=True)]


def _restore_latest(checkpoint, checkpoint_dir):
    """Restores the newest readable checkpoint; returns its prefix (None: nothing to resume).

    A checkpoint that cannot be read (truncated or corrupt files: TF checks every tensor's
    CRC) is skipped with a warning and the previous one is tried; the damaged one is
    overwritten when training saves that epoch again.

    Raises:
      TrainingError: if there are checkpoints but none of them can be read.
    """
    prefixes = checkpoint_prefixes(checkpoint_dir)
    for prefix in prefixes:
        try:
            checkpoint.restore(prefix).assert_existing_objects_matched()
            return prefix
        # Truncated files raise IndexError ("Read less bytes than requested"), bad CRCs
        # DataLossError, a missing variable AssertionError.
        except (tf.errors.OpError, LookupError, ValueError, AssertionError, OSError) as error:
            logging.warning(
                "Checkpoint %s is unreadable or incomplete (%s: %s); falling back to the "
                "previous checkpoint.",
                prefix,
                type(error).__name__,
                _first_line(error),
            )
    if prefixes:
        raise TrainingError(
            f"No readable checkpoint in {checkpoint_dir} (tried {len(prefixes)}). Remove the "
            "directory to train this member from scratch."
        )
    return None


def _first_line(error):
    return (str(error).strip().splitlines() or [""])[0][:300]


def _check_finite_weights(model, *, step):
    """NonFiniteError if a weight of `model` is NaN or inf (checked before each save)."""
    bad = [w.path for w in model.weights if not np.all(np.isfinite(keras.ops.convert_to_numpy(w)))]
    if bad:
        raise NonFiniteError(
            f"Non-finite weights after step {step} (in {', '.join(bad[:3])}); stopping without "
            "saving them. Lower base_learning_rate, check the data, or resume from the last "
            "checkpoint with a different config."
        )


class _StopOnNonFiniteLoss(keras.callbacks.Callback):
    """Raises NonFiniteError at the first step whose loss is NaN or inf.

    It runs after every step, so a diverged run stops before the epoch's checkpoint: the
    checkpoints on disk all hold finite weights.
    """

    def on_train_batch_end(self, batch, logs=None):
        loss = float((logs or {}).get("loss", 0.0))  # the epoch's running mean so far
        if not math.isfinite(loss):
            step = int(self.model.optimizer.iterations.numpy())
            raise NonFiniteError(
                f"Non-finite training loss ({loss}) at step {step} (batch {batch + 1} of the "
                "epoch); stopping without a checkpoint of these weights. Lower "
                "base_learning_rate or check the data; re-running resumes from the last "
                "(finite) checkpoint."
            )


def _save_checkpoint(manager, strategy, epoch):
    # TF writes the data files first and the `checkpoint` index last (atomically), so a kill
    # mid-save leaves the previous checkpoint as the latest one.
    path = manager.save(checkpoint_number=epoch)
    if not _is_chief(strategy):
        shutil.rmtree(manager.directory, ignore_errors=True)
    return path


def _save_member_model(model, path):
    """Saves the model without optimizer or compile state (smaller, loads anywhere)."""
    member = type(model).from_config(model.get_config())  # uncompiled twin
    member.set_weights(model.get_weights())
    with _atomic_path(path) as tmp:
        member.save(tmp)


def _write_json(path, value):
    with _atomic_path(path) as tmp, open(tmp, "w") as f:
        json.dump(value, f, indent=2, sort_keys=True)
        f.write("\n")


@contextlib.contextmanager
def _atomic_path(path):
    """Yields a temporary path beside `path` (same suffix); renames it to `path` on success."""
    directory, name = os.path.split(path)
    tmp = os.path.join(directory, f".{name}.{os.getpid()}.tmp{os.path.splitext(name)[1]}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _check_count(counted, expected):
    if expected is not None and counted != expected:
        raise RuntimeError(
            f"Evaluation saw {counted} test examples; the dataset has {expected}. Every example "
            "must be counted once (is the TFDS copy complete?)."
        )


# TensorBoard's scalar plugin reads summaries tagged with this metadata.
_SCALAR_METADATA = summary_pb2.SummaryMetadata(
    plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars")
)


def write_scalar(name, value, *, step):
    """`tf.summary.scalar` without needing the `tensorboard` package installed.

    Writes to the default summary writer what TensorBoard's scalar plugin writes: a float32
    tensor tagged `name` with the "scalars" plugin metadata.
    """
    return tf.summary.write(
        name, tf.constant(value, tf.float32), step=step, metadata=_SCALAR_METADATA
    )


@contextlib.contextmanager
def _dtype_policy(name):
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)
