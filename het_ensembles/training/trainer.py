"""The one trainer: a config in, an ensemble member directory out.

Where it sits: data -> models -> **training** -> member directory -> ensemble evaluator. Every
script (`het-ensembles train`, `baselines/*/*.py`, the demo) calls `train_and_evaluate`.
What a run does, in order (uncertainty-baselines' ImageNet recipe, on Keras' `fit`):

1. checks the config (`validate_config`) and that `output_dir` is writable, before any
   TensorFlow work; picks the `tf.distribute` strategy (`make_strategy`); seeds once with
   `keras.utils.set_random_seed(config.seed)`;
2. builds the model (`models.build_model`, dense or heteroscedastic head, L2 on kernels and
   biases, optionally `mixed_bfloat16` with a float32 head) and SGD with Nesterov momentum
   `1 - one_minus_momentum` (plain momentum with `nesterov=False`) on
   `WarmUpPiecewiseConstantSchedule`; with `init_from_member`, copies that member's backbone
   weights into the new model (`init_from_member.py`; the head stays new);
3. restores the latest checkpoint in `output_dir/checkpoints` if there is one (a re-run of a
   killed command continues where it stopped: same step and epoch counters);
4. trains with `keras.Model.fit` (progress bar), and after every epoch evaluates with
   `het_ensembles.metrics` on the whole validation split (`val/...`) when `validation_fraction`
   holds one out of train, else on the test split (`test/...`), writes TensorBoard scalars to
   `output_dir/logs` and, every `checkpoint_interval` epochs, a checkpoint; with
   `keep_best_epoch`, the weights of the epoch with the lowest `val/nll` so far are kept in
   `output_dir/checkpoints/best`;
5. with a validation split, evaluates the test split once, at the end (with `keep_best_epoch`,
   on the best epoch's weights, whose number metrics.json records as `best_epoch`); with
   `mixup_alpha > 0` (training batches mixed, `mixup.py`), computes the rescaling statistics
   over one epoch of unmixed training data, saves them (`mixup_rescaling_stats.npz`) and adds
   `test/<metric>+rescaling` beside the test metrics;
6. writes the member directory (`het_ensembles.member_dir`): `config.json`, `metrics.json` and, last, so
   that its presence marks a finished member, `model.keras` (without optimizer state).
"""

import contextlib
import json
import os

import keras
import tensorflow as tf
from absl import logging

from het_ensembles import data, member_dir, models
from het_ensembles.data import pipeline
from het_ensembles.evaluation import predict
from het_ensembles.training import (
    callbacks,
    checkpoints,
    distribute,
    init_from_member,
    losses,
    mimo_batches,
    mixup,
    rank1,
    schedule,
)
from het_ensembles.training.config import (
    RESUMABLE_FIELDS,
    ConfigError,
    complete_config,
    config_record,
    default_config,
    head_kwargs,
    validate_config,
)
from het_ensembles.training.covariance_reset import CovarianceReset


def create_model(config, *, input_shape, num_classes):
    """The model of `config`; under `use_bfloat16` its layers compute in bfloat16.

    The global Keras dtype policy is set only while the layers are built, then restored, so
    one process can run float32 and bfloat16 configs in turn.
    """
    policy = "mixed_bfloat16" if config.use_bfloat16 else "float32"
    with dtype_policy(policy):
        return models.build_model(
            config.model,
            input_shape=tuple(input_shape),
            num_classes=num_classes,
            head=head_kwargs(config),
            l2=config.l2,
            seed=config.seed,
            ensemble_size=config.ensemble_size,
            **config.model_kwargs.to_dict(),
        )


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
    config, info, files, record = _check_member_request(config, output_dir)
    member = member_dir.read_member(output_dir)
    if member.finished and member.metrics is not None:
        logging.info("%s is a finished member; nothing to do.", output_dir)
        return member.metrics

    strategy, global_batch_size, steps_per_epoch = _start_run(config, info, strategy)
    model = _build_compiled_model(
        config, info, strategy, steps_per_epoch=steps_per_epoch, global_batch_size=global_batch_size
    )
    if config.init_from_member and not checkpoints.checkpoint_prefixes(files["checkpoints"]):
        _initialise_from_member(model, config, strategy)
    progress = _new_progress()
    manager = _restore_or_start(model, progress, files["checkpoints"], strategy)
    chief = distribute.is_chief(strategy)
    if chief:
        member_dir.write_json(files["config"], record)
    best = (
        checkpoints.BestCheckpoint(model, files["checkpoints"], strategy)
        if config.keep_best_epoch
        else None
    )

    initial_epoch = int(progress["epoch"].numpy())
    train_dataset, eval_datasets = make_datasets(
        config, batch_size=global_batch_size, strategy=strategy, start_epoch=initial_epoch
    )
    writer = (
        tf.summary.create_file_writer(files["logs"]) if chief else tf.summary.create_noop_writer()
    )
    eval_passes = _eval_passes(
        model, eval_datasets, config, info, strategy, global_batch_size=global_batch_size
    )
    epoch_end = _epoch_end(
        config,
        strategy,
        _monitoring_pass(eval_passes),
        manager,
        progress,
        writer,
        best,
        steps_per_epoch=steps_per_epoch,
        global_batch_size=global_batch_size,
    )
    _fit(
        model,
        train_dataset,
        epoch_end,
        config,
        strategy,
        initial_epoch=initial_epoch,
        steps_per_epoch=steps_per_epoch,
        global_batch_size=global_batch_size,
        chief=chief,
    )
    stats = None
    if mixup.enabled(config):  # before model.keras, which marks the member finished
        stats = mixup.member_statistics(
            config,
            files,
            steps=steps_per_epoch,
            num_classes=info.num_classes,
            common=data_arguments(config, global_batch_size),
            chief=chief,
        )
    results = _final_results(
        model,
        config,
        strategy,
        epoch_end=epoch_end,
        eval_passes=eval_passes,
        best=best,
        progress=progress,
        writer=writer,
    )
    if stats is not None:
        rescaled = mixup.rescaled_test_metrics(model, eval_passes["test"], stats)
        callbacks.write_scalars(writer, rescaled, step=config.train_epochs)
        results.update(rescaled)
    results = _add_skip_counts(results, config, info)
    if chief:
        member_dir.write_json(files["metrics"], results)
        _save_member_model(model, files["model"])  # last: it marks the member finished
    writer.close()
    return results


def _check_member_request(config, output_dir):
    """Checks `config` and `output_dir` before any TensorFlow work (step 1).

    Returns:
      `(config, info, files, record)`: the complete config, its dataset's info, the member's
      file paths (`member_dir.paths`) and the config.json this run writes.

    Raises:
      ConfigError: for a bad config value, a temperature grid, an unwritable `output_dir`, or
        checkpoints there of a run with a different config.
    """
    config, info = check_config(config)
    if config.temperature_grid:
        raise ConfigError(
            "A config with a temperature_grid trains one member per temperature: use "
            "training.tune_temperature (het-ensembles train does). Received: temperature_grid="
            f"{tuple(config.temperature_grid)!r}; allowed: () for one member"
        )
    try:
        member_dir.check_writable_dir(output_dir)
    except ValueError as error:
        raise ConfigError(str(error)) from error
    files = member_dir.paths(output_dir)
    record = config_record(config, num_classes=info.num_classes)
    _check_resumable(record, files)
    return config, info, files, record


def _start_run(config, info, strategy):
    """Picks the strategy (unless given), seeds once, and sizes the run (step 1's end).

    Returns:
      `(strategy, global_batch_size, steps_per_epoch)`.
    """
    strategy = strategy or distribute.make_strategy(config)
    keras.utils.set_random_seed(config.seed)
    global_batch_size = config.per_core_batch_size * strategy.num_replicas_in_sync
    steps_per_epoch = _steps_per_epoch(config, info, strategy)
    return strategy, global_batch_size, steps_per_epoch


def _build_compiled_model(config, info, strategy, *, steps_per_epoch, global_batch_size):
    """The model of `config`, built and compiled inside the strategy's scope."""
    with strategy.scope():
        model = create_model(config, input_shape=info.input_shape, num_classes=info.num_classes)
        compile_model(
            model,
            config,
            num_classes=info.num_classes,
            steps_per_epoch=steps_per_epoch,
            global_batch_size=global_batch_size,
            num_train_examples=info.num_examples["train"],
        )
    return model


def _initialise_from_member(model, config, strategy):
    """Copies the backbone of `config.init_from_member` into `model` (a fresh run only: a
    resumed one restores its checkpoints, which hold the copied, then trained, weights)."""
    member = init_from_member.check_member(config)
    with strategy.scope():
        copied = init_from_member.initialise_backbone(model, member)
    logging.info("Initialised %d backbone weight arrays from %s.", copied, member.path)


def _new_progress():
    """The run's counters, checkpointed beside the model and optimizer (see `_restore_or_start`)."""
    return {
        "epoch": tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch"),
        "train_record": callbacks.new_train_record(),
        "train_seconds": callbacks.new_train_seconds(),
    }


def _eval_passes(model, eval_datasets, config, info, strategy, *, global_batch_size):
    """One `callbacks.EvalPass` per eval split ("test" and, if any, "validation")."""
    return {
        split: callbacks.EvalPass(
            models.mimo.member_model(model),  # a MIMO model tiles each test image M times
            dataset,
            strategy=strategy,
            multilabel=config.multilabel,
            num_classes=info.num_classes,
            num_bins=config.num_bins,
            expected_examples=_expected_examples(config, info, strategy, global_batch_size, split),
            split=split,
        )
        for split, dataset in eval_datasets.items()
    }


def _monitoring_pass(eval_passes):
    """The `EvalPass` run after every epoch.

    Per-epoch monitoring uses the validation split when there is one; the test set is then
    evaluated once, after training.
    """
    return eval_passes.get("validation", eval_passes["test"])


def _epoch_end(
    config,
    strategy,
    eval_pass,
    manager,
    progress,
    writer,
    best,
    *,
    steps_per_epoch,
    global_batch_size,
):
    """The callback that evaluates, logs and checkpoints after every epoch (step 4)."""
    return callbacks.EpochEnd(
        callbacks.EpochContext(
            config=config,
            strategy=strategy,
            eval_pass=eval_pass,
            manager=manager,
            epoch=progress["epoch"],
            train_record=progress["train_record"],
            train_seconds=progress["train_seconds"],
            writer=writer,
            steps_per_epoch=steps_per_epoch,
            global_batch_size=global_batch_size,
            best=best,
        )
    )


def _fit(
    model,
    train_dataset,
    epoch_end,
    config,
    strategy,
    *,
    initial_epoch,
    steps_per_epoch,
    global_batch_size,
    chief,
):
    """Runs `keras.Model.fit` from `initial_epoch` to `config.train_epochs` (step 4)."""
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
    with distribute.multi_worker_fit_fixes(model):
        model.fit(
            train_dataset,
            epochs=config.train_epochs,
            initial_epoch=initial_epoch,
            steps_per_epoch=steps_per_epoch,
            callbacks=[callbacks.StopOnNonFiniteLoss(), epoch_end, CovarianceReset()],
            shuffle=False,  # the dataset is already shuffled (seeded)
            verbose="auto" if chief else 0,
        )


def _final_results(model, config, strategy, *, epoch_end, eval_passes, best, progress, writer):
    """The member's metrics after training (step 5): last or kept epoch, test split, run facts.

    Args:
      eval_passes: `_eval_passes(...)`, by split.
      best: the `checkpoints.BestCheckpoint` under `keep_best_epoch`, else None.
      progress: `_new_progress()`'s counters, as training left them.
      writer: the run's summary writer (the end-of-training test scalars go there).
    """
    eval_pass = _monitoring_pass(eval_passes)
    results = epoch_end.results
    if results is None:  # the last checkpoint was already final (killed writing the member)
        last = progress["train_record"].numpy().tolist()
        results = {**dict(zip(callbacks.TRAIN_FIELDS, last)), **eval_pass()}
    if best is not None:
        results["best_epoch"] = best.restore_weights()
        logging.info("Keeping epoch %d (lowest val/nll).", results["best_epoch"])
        results.update(eval_pass())  # the kept epoch's validation figures
    if eval_pass.split != "test":
        test_results = eval_passes["test"]()
        write_results = {**test_results, "best_epoch": results.get("best_epoch")}
        callbacks.write_scalars(writer, write_results, step=config.train_epochs)
        results.update(test_results)
    results["train/steps"] = int(model.optimizer.iterations.numpy())
    results["train/epochs"] = int(progress["epoch"].numpy())
    results["train/hours"] = float(progress["train_seconds"].numpy()) / 3600
    results["train/devices"] = predict.device_description(strategy)
    results["num_params"] = int(model.count_params())
    return results


def _restore_or_start(model, progress, checkpoint_dir, strategy):
    """Restores the newest readable checkpoint, or saves epoch 0; returns the manager.

    Args:
      progress: the run's counters to checkpoint beside the model and optimizer
        (`{"epoch": ..., "train_record": ..., "train_seconds": ...}`).
    """
    epoch = progress["epoch"]
    checkpoint = tf.train.Checkpoint(model=model, optimizer=model.optimizer, **progress)
    # Model, optimizer and epoch must all be in a checkpoint; the other counters were added
    # later, and a checkpoint written before them still resumes (they start at zero).
    core = tf.train.Checkpoint(model=model, optimizer=model.optimizer, epoch=epoch)
    counters = tf.train.Checkpoint(**{k: v for k, v in progress.items() if k != "epoch"})
    latest = checkpoints.restore_latest(core, checkpoint_dir, counters=counters)
    manager = tf.train.CheckpointManager(
        checkpoint,
        checkpoints.writable_checkpoint_dir(checkpoint_dir, strategy),
        checkpoints.CHECKPOINTS_TO_KEEP,
    )
    if latest:
        logging.info(
            "Resuming from %s: epoch %d, step %d.",
            latest,
            int(epoch.numpy()),
            int(model.optimizer.iterations.numpy()),
        )
    else:
        checkpoints.save_checkpoint(manager, strategy, 0)  # epoch 0: the initial weights
    return manager


def compile_model(
    model, config, *, num_classes, steps_per_epoch, global_batch_size, num_train_examples=None
):
    """Compiles `model` with SGD + Nesterov on the config's schedule and the cross-entropy loss.

    Call it inside the strategy's scope. The reported metrics are `loss` (cross-entropy, with
    label smoothing if any, plus the L2 terms in `model.losses`), `nll` and `accuracy`. A
    rank-1 model's loss adds the annealed KL over `num_train_examples` (default: one epoch's
    examples) and it also reports `kl`, `kl_scale` and `elbo` (`training/rank1.py`).
    """
    # A MIMO batch repeats each image batch_repetitions times: het_mimo.py scales the learning
    # rate by the distinct images, global_batch_size / batch_repetitions.
    distinct_batch_size = global_batch_size // config.batch_repetitions
    optimizer = keras.optimizers.SGD(
        learning_rate=schedule.learning_rate_schedule(
            config, steps_per_epoch=steps_per_epoch, global_batch_size=distinct_batch_size
        ),
        momentum=1.0 - config.one_minus_momentum,
        nesterov=config.nesterov,
    )
    nll = losses.CrossEntropy(num_classes, multilabel=config.multilabel)
    loss = losses.CrossEntropy(
        num_classes,
        multilabel=config.multilabel,
        label_smoothing=config.label_smoothing,
        name="loss",
    )
    metrics = [
        losses.MeanOf(nll.call, name="nll"),
        losses.MeanOf(
            lambda y, p: losses.top1_correct(y, p, num_classes, multilabel=config.multilabel),
            name="accuracy",
        ),
    ]
    if rank1.is_rank1(model):
        loss, metrics = rank1.loss_and_metrics(
            model,
            config,
            num_classes=num_classes,
            steps_per_epoch=steps_per_epoch,
            num_train_examples=num_train_examples or steps_per_epoch * global_batch_size,
        )
    model.compile(optimizer=optimizer, loss=loss, metrics=metrics)
    optimizer.build(model.trainable_variables)  # so a checkpoint can restore its slots


def make_datasets(config, *, batch_size, strategy=None, start_epoch=0):
    """The training stream and the eval sets (test and, if any, validation) of `config`.

    Args:
      config: a complete config.
      batch_size: the global batch size.
      strategy: the training set is distributed with it (per-replica batches); the eval sets
        stay plain datasets of global batches (`callbacks.EvalPass` distributes them).
      start_epoch: the epoch training starts at. A fresh run (0) reads the order given by
        `config.seed`; a resumed run reads a fresh order derived from (seed, start_epoch)
        instead of replaying epoch 0's.

    Returns:
      `(train_dataset, eval_datasets)`: `eval_datasets` maps "test" (and "validation" when
      `config.validation_fraction > 0`) to a dataset cut to `config.eval_steps` batches. With
      `mixup_alpha > 0` the training batches are mixed (`mixup.load_train_dataset`).
    """
    seed = config.seed if start_epoch == 0 else pipeline.derive_seed(config.seed, start_epoch)
    common = data_arguments(config, batch_size)
    if mixup.enabled(config):
        train = mixup.load_train_dataset(
            config,
            strategy=strategy,
            seed=seed,
            common=common,
            num_classes=dataset_info(config).num_classes,
        )
    elif models.mimo.is_mimo(config.model):
        train = mimo_batches.load_train_dataset(config, strategy=strategy, seed=seed, common=common)
    else:
        train = data.load(
            config.dataset, "train", is_training=True, seed=seed, strategy=strategy, **common
        )
    splits = ("test", "validation") if config.validation_fraction > 0 else ("test",)
    evals = {}
    for split in splits:
        evals[split] = data.load(
            config.dataset,
            split,
            is_training=False,
            drop_remainder=distribute.drops_eval_remainder(strategy),
            **common,
        )
        if config.eval_steps is not None:
            evals[split] = evals[split].take(config.eval_steps)
    return train, evals


def data_arguments(config, batch_size):
    """The `data.load` keyword arguments every split of `config` shares (global batch size)."""
    return {
        "batch_size": batch_size,
        "image_size": config.image_size,
        "data_dir": config.data_dir,
        "label_field": config.label_field,
        "validation_fraction": config.validation_fraction,
        "validation_seed": config.validation_seed,
    }


def dataset_info(config):
    """`data.get_info` of `config`'s dataset, as the config reads it (ValueError if unknown)."""
    return data.get_info(
        config.dataset,
        data_dir=config.data_dir,
        label_field=config.label_field,
        image_size=config.image_size,
        validation_fraction=config.validation_fraction,
    )


def check_config(config):
    """The complete, validated config and its dataset's info (no TensorFlow work).

    Raises:
      ConfigError: for a bad value, dataset or validation split.
    """
    config = complete_config(config)
    validate_config(config)
    if config.init_from_member is not None:
        config.init_from_member = init_from_member.normalised_path(config.init_from_member)
        init_from_member.check_member(config)
    try:
        info = dataset_info(config)
    except ValueError as error:
        raise ConfigError(
            f"Invalid config.dataset / label_field / image_size / validation_fraction: {error}"
        ) from error
    validate_config(config, num_classes=info.num_classes)
    if info.multilabel and not config.multilabel:
        raise ConfigError(
            f"Dataset {config.dataset} has multi-hot labels; it needs a sigmoid head. Received: "
            "multilabel=False; allowed: multilabel=True with head='deterministic' (a Dense "
            "sigmoid head) or head_class='MCSigmoidDenseFA' or 'ExactSigmoidDense'"
        )
    return config, info


def _steps_per_epoch(config, info, strategy):
    if config.steps_per_epoch is not None:
        return config.steps_per_epoch
    global_batch_size = config.per_core_batch_size * strategy.num_replicas_in_sync
    # MIMO: an epoch reads every image once per head column (het_mimo.py's steps_per_epoch).
    steps = info.num_examples["train"] // (global_batch_size // config.batch_repetitions)
    if steps < 1:
        raise ConfigError(
            f"The training split ({info.num_examples['train']} examples) is smaller than one "
            f"global batch. Received: per_core_batch_size={config.per_core_batch_size} x "
            f"{strategy.num_replicas_in_sync} replicas; allowed: <= the split size"
        )
    return steps


def _expected_examples(config, info, strategy, global_batch_size, split):
    """How many examples one evaluation of `split` must count (None: cut by eval_steps)."""
    if config.eval_steps is not None:
        return None
    if info.skip_corrupt:  # skipped images make the count smaller: _add_skip_counts reports it
        return None
    expected = info.num_examples[split]
    if distribute.drops_eval_remainder(strategy):
        expected -= expected % global_batch_size
    return expected


def _add_skip_counts(results, config, info):
    """`<prefix>/num_skipped` beside `<prefix>/num_examples` for a `skip_corrupt=true` dataset:
    the examples listed (`info.num_examples`) minus those counted."""
    if not info.skip_corrupt or config.eval_steps is not None:
        return results
    for split, prefix in callbacks.SPLIT_PREFIXES.items():
        counted = results.get(f"{prefix}/num_examples")
        if counted is not None:
            results[f"{prefix}/num_skipped"] = int(info.num_examples[split]) - int(counted)
    return results


def _check_resumable(record, files):
    """Refuses to resume checkpoints written by a run with a different config.

    Args:
      record: the config.json this run would write (`config.config_record`).
      files: `member_dir.paths(output_dir)`.
    """
    if not checkpoints.checkpoint_prefixes(files["checkpoints"]):
        return
    if not os.path.exists(files["config"]):
        return
    previous = member_dir.read_json(files["config"], what="member config")
    # A field the config.json lacks was added to the schema after that run started: the run
    # had its default (so checkpoints from before an upgrade still resume).
    defaults = json.loads(json.dumps(default_config().to_dict()))
    previous = {**defaults, **previous}
    changed = sorted(
        name
        for name in record
        if name not in RESUMABLE_FIELDS and previous.get(name) != record[name]
    )
    if changed:
        details = ", ".join(f"{n}={previous.get(n)!r} -> {record[n]!r}" for n in changed)
        raise ConfigError(
            f"{os.path.dirname(files['config'])} holds checkpoints of a run with a different "
            f"config ({details}). Use a new --output_dir, or the original values to resume."
        )


def _save_member_model(model, path):
    """Saves the model without optimizer or compile state (smaller, loads anywhere); a MIMO
    model as `models.mimo.member_model`, which takes one image and tiles it for its heads."""
    member = type(model).from_config(model.get_config())  # uncompiled twin
    member.set_weights(model.get_weights())
    member = models.mimo.member_model(member)
    with member_dir.atomic_path(path) as tmp:
        member.save(tmp)


@contextlib.contextmanager
def dtype_policy(name):
    """Sets the global Keras dtype policy inside the block only."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)
