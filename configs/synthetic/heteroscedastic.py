r"""Heteroscedastic MLP on `synthetic`: `deterministic.py` with an `MCSoftmaxDenseFA` head.

R = 2 factors (the planted Sigma(x) has rank-2 factors plus a diagonal), temperature 1.0, 1,000
Monte Carlo samples.

  het-ensembles train --config=configs/synthetic/heteroscedastic.py \
    --config.seed=0 --output_dir=runs/synthetic/het/0
"""

import os

from het_ensembles import training


def get_config():
    config = training.load_config(os.path.join(os.path.dirname(__file__), "deterministic.py"))
    config.head = "heteroscedastic"
    config.head_class = "MCSoftmaxDenseFA"
    config.num_factors = 2
    config.temperature = 1.0
    config.train_mc_samples = 1000
    config.test_mc_samples = 1000
    return config
