"""The learning-rate schedule: linear warm-up, then step decay (uncertainty-baselines')."""

import keras


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
