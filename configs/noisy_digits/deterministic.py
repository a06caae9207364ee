r"""Deterministic small CNN on `noisy_digits`: the demo's "Hom" row.

Same recipe as uncertainty-baselines' ImageNet script (SGD + Nesterov, linear warm-up, step decay
at 30/60/80 of 90 epochs scaled to `train_epochs`, L2 on kernels and biases), sized for a 2-core
CPU: `noisy_digits` has 1,258 training images of 8 x 8, so an epoch is 19 steps of 64.

  het-ensembles train --config=configs/noisy_digits/deterministic.py \
    --config.seed=0 --output_dir=runs/noisy_digits/det/0

The same recipe on your own arrays: `--config.dataset=npz:/path/to/data.npz` (images
[N, H, W, C]; for feature vectors [N, D] add `--config.model=mlp`).
"""

from het_ensembles import training


def get_config():
    config = training.default_config()
    config.dataset = "noisy_digits"
    config.model = "small_cnn"
    config.model_kwargs.filters = (32, 64)
    config.model_kwargs.hidden_units = 128
    config.head = "deterministic"
    config.per_core_batch_size = 64
    config.base_batch_size = 64  # learning rate base_learning_rate at batch 64
    config.base_learning_rate = 0.05
    config.train_epochs = 20
    config.warmup_epochs = 2
    config.l2 = 1e-4
    config.test_mc_samples = 1000  # used only by heteroscedastic.py
    config.checkpoint_interval = 10
    return config
