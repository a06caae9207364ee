r"""Deterministic linear softmax model on `synthetic` (labels from the paper's latent Gaussian model).

The Bayes-optimal test NLL of this set is known (`het_ensembles.data.synthetic.bayes_optimal_nll`),
so the gap a model leaves to it can be measured. 4,000 training examples of 4 features, 6
classes; an epoch is 62 steps of 64.

The backbone is `mlp` with no hidden layer (multinomial logistic regression): the planted mean
mu(x) is linear in x, so this is the correctly specified mean model, and the deterministic and
heteroscedastic configs differ only in whether the head models the label noise. (Chosen on a
3,000 / 1,000 split of the training set: a 64-unit hidden layer gave the deterministic model a
lower validation NLL, 0.911 vs 0.995, but also the capacity to imitate the noise model, which is
not what this comparison is about.)

  het-ensembles train --config=configs/synthetic/deterministic.py \
    --config.seed=0 --output_dir=runs/synthetic/det/0
"""

from het_ensembles import training


def get_config():
    config = training.default_config()
    config.dataset = "synthetic"
    config.model = "mlp"
    config.model_kwargs.hidden_units = ()  # linear: mu(x) of the planted model is linear
    config.head = "deterministic"
    config.per_core_batch_size = 64
    config.base_batch_size = 64  # learning rate base_learning_rate at batch 64
    config.base_learning_rate = 0.05
    config.train_epochs = 15
    config.warmup_epochs = 1
    config.l2 = 1e-4
    config.test_mc_samples = 1000  # used only by heteroscedastic.py
    config.checkpoint_interval = 5
    return config
