r"""Deterministic small CNN with a sigmoid head on `multilabel_digits`: the multi-label demo's "Hom".

The paper's Table 3 baseline (Collier et al. 2021, ImageNet-21k / JFT): a dense head with one
sigmoid per label, trained with binary cross-entropy summed over the 10 labels
(`multilabel=True`). The recipe is `configs/noisy_digits/deterministic.py`'s (SGD + Nesterov,
linear warm-up, step decay scaled to `train_epochs`, L2 on kernels and biases) with the CNN
narrowed to (16, 32) filters, since the 16x16 canvases cost four times the 8x8 digits per
filter: `multilabel_digits` has 3,000 training composites, so an epoch is 46 steps of 64.

  het-ensembles train --config=configs/multilabel_digits/deterministic.py \
    --config.seed=0 --output_dir=runs/multilabel_digits/det/0
"""

from het_ensembles import training


def get_config():
    config = training.default_config()
    config.dataset = "multilabel_digits"
    config.multilabel = True
    config.model = "small_cnn"
    config.model_kwargs.filters = (16, 32)
    config.model_kwargs.hidden_units = 128
    config.head = "deterministic"
    config.per_core_batch_size = 64
    config.base_batch_size = 64  # learning rate base_learning_rate at batch 64
    config.base_learning_rate = 0.05
    config.train_epochs = 10
    config.warmup_epochs = 1
    config.l2 = 1e-3
    config.checkpoint_interval = 10
    return config
