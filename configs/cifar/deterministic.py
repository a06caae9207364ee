r"""Deterministic Wide ResNet 28-10 on CIFAR-10 (uncertainty-baselines' "Deterministic" row).

Reproduces uncertainty-baselines `baselines/cifar/deterministic.py` at its flag defaults (most
live in `baselines/cifar/utils.py`; model `uncertainty_baselines/models/wide_resnet.py`,
`version=2`): per-core batch 64 (x8 TPUv2 cores = 512), 200 epochs, SGD + Nesterov
(`one_minus_momentum` 0.1), learning rate 0.1 per 128 examples with a 1-epoch warm-up and x0.2
at epochs 60, 120 and 160 (each `(e * train_epochs) // 200`), L2 2e-4 on every conv, batch
norm and dense weight, no label smoothing, float32, ECE with 15 bins, a checkpoint every 25
epochs, seed 42. `--config.dataset=cifar100` for CIFAR-100,
`--config.dataset=cifar10_n --config.label_field=worse_label` for CIFAR-10N.

  het-ensembles train --config=configs/cifar/deterministic.py \
    --config.seed=0 --output_dir=runs/cifar10/det/0
"""

from het_ensembles import training


def get_config():
    config = training.default_config()
    config.seed = 42  # utils.py --seed
    config.dataset = "cifar10"  # utils.py --dataset
    config.image_size = None  # native 32 x 32
    config.model = "wide_resnet"
    config.model_kwargs.depth = 28
    config.model_kwargs.width_multiplier = 10
    config.head = "deterministic"
    config.per_core_batch_size = 64  # utils.py --per_core_batch_size
    config.train_epochs = 200  # utils.py --train_epochs
    config.base_learning_rate = 0.1  # utils.py --base_learning_rate, per 128 examples
    config.base_batch_size = 128
    config.one_minus_momentum = 0.1  # utils.py --one_minus_momentum
    config.l2 = 2e-4  # utils.py --l2
    config.warmup_epochs = 1  # utils.py --lr_warmup_epochs
    config.lr_decay_epochs = (60, 120, 160)  # utils.py --lr_decay_epochs, of 200 epochs
    config.lr_decay_base_epochs = 200
    config.lr_decay_ratio = 0.2  # utils.py --lr_decay_ratio
    config.label_smoothing = 0.0  # deterministic.py --label_smoothing
    config.use_bfloat16 = False  # utils.py --use_bfloat16
    config.checkpoint_interval = 25  # utils.py --checkpoint_interval
    return config
