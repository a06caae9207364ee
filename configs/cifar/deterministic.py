r"""Deterministic Wide ResNet 28-10 on CIFAR-10 (uncertainty-baselines' "Deterministic" row).

uncertainty-baselines `baselines/cifar/deterministic.py` defaults: per-core batch 64 (x8 cores),
200 epochs, SGD + Nesterov (momentum 0.9), learning rate 0.1 per 128 examples with a 1-epoch
warm-up and x0.2 at epochs 60, 120 and 160, L2 2e-4, float32. `--config.dataset=cifar100` for
CIFAR-100, `--config.dataset=cifar10_n --config.label_field=worse_label` for CIFAR-10N.

  het-ensembles train --config=configs/cifar/deterministic.py \
    --config.seed=0 --output_dir=runs/cifar10/det/0
"""

from het_ensembles import training


def get_config():
    config = training.default_config()
    config.dataset = "cifar10"
    config.image_size = None  # native 32 x 32
    config.model = "wide_resnet"
    config.model_kwargs.depth = 28
    config.model_kwargs.width_multiplier = 10
    config.head = "deterministic"
    config.per_core_batch_size = 64
    config.train_epochs = 200
    config.base_learning_rate = 0.1
    config.base_batch_size = 128
    config.one_minus_momentum = 0.1
    config.l2 = 2e-4
    config.warmup_epochs = 1
    config.lr_decay_epochs = (60, 120, 160)
    config.lr_decay_base_epochs = 200
    config.lr_decay_ratio = 0.2
    config.use_bfloat16 = False
    return config
