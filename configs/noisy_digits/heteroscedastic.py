r"""Heteroscedastic small CNN on `noisy_digits`: the demo's "Het" row.

`deterministic.py` with the dense head swapped for `MCSoftmaxDenseFA`: K = 10 classes, R = 3
factors (the label noise couples a handful of class pairs, so a low rank suffices), temperature
1.0, 1,000 Monte Carlo samples in training and at test time. Everything else, including the
optimiser and the number of epochs, is the deterministic recipe, so the two rows differ only in
the head.

  het-ensembles train --config=configs/noisy_digits/heteroscedastic.py \
    --config.seed=0 --output_dir=runs/noisy_digits/het/0
"""

import os

from het_ensembles import training


def get_config():
    config = training.load_config(os.path.join(os.path.dirname(__file__), "deterministic.py"))
    config.head = "heteroscedastic"
    config.head_class = "MCSoftmaxDenseFA"
    config.num_factors = 3
    config.temperature = 1.0
    config.train_mc_samples = 1000
    config.test_mc_samples = 1000
    return config
