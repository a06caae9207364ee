r"""Deterministic MLP on `synthetic` (labels from the paper's latent Gaussian model).

The Bayes-optimal test NLL of this set is known (`het_ensembles.data.synthetic.bayes_optimal_nll`),
so the gap a model leaves to it can be measured. 4,000 training examples of 16 features,
6 classes; an epoch is 62 steps of 64.

  het-ensembles train --config=configs/synthetic/deterministic.py \
    --config.seed=0 --output_dir=runs/synthetic/det/0
"""

from het_ensembles import training


def get_config():
    config = training.default_config()
    config.dataset = "synthetic"
    config.model = "mlp"
    config.model_kwargs.hidden_units = (128, 128)
    config.head = "deterministic"
    config.per_core_batch_size = 64
    config.base_batch_size = 64  # learning rate base_learning_rate at batch 64
    config.base_learning_rate = 0.05
    config.train_epochs = 30
    config.warmup_epochs = 1
    config.l2 = 1e-4
    config.test_mc_samples = 1000  # used only by heteroscedastic.py
    config.checkpoint_interval = 10
    return config
