r"""Heteroscedastic ResNet-50 on ImageNet: uncertainty-baselines' "Heteroscedastic" row.

The deterministic recipe (`deterministic.py`) with the MCSoftmaxDenseFA head of Collier et al.
(CVPR 2021): R = 15 factors, temperature 1.5, 1000 MC samples in training and 5000 at test.
Leaderboard: NLL 0.898, accuracy 77.5%, ECE 0.033, 58.4M parameters.

  het-ensembles train --config=configs/imagenet/heteroscedastic.py \
    --config.seed=3 --config.data_dir=$TFDS_DATA_DIR --output_dir=runs/imagenet/het/3
"""

import os

from het_ensembles import training


def get_config():
    config = training.load_config(os.path.join(os.path.dirname(__file__), "deterministic.py"))
    config.head = "heteroscedastic"
    config.head_class = "MCSoftmaxDenseFA"
    config.num_factors = 15
    config.temperature = 1.5
    config.train_mc_samples = 1000
    config.test_mc_samples = 5000
    config.parameter_efficient = False
    return config
