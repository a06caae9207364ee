r"""Rank-1 BNN heteroscedastic small CNN on `noisy_digits`: "Heteroscedastic with Rank-1 BNN"
on a CPU.

`heteroscedastic.py` (R = 3 factors, temperature 1.0, 1,000 MC samples) as uncertainty-baselines'
`baselines/imagenet/het_rank1_bnn.py` trains its ResNet-50 (commit 163351d4): a small CNN of
rank-1 layers (`small_cnn_rank1`, models/rank1.py) with M = 4 members, each batch tiled to the
4 members inside the model, the head `MCSoftmaxDenseFACustomLayers` on rank-1 layers, the
script's rank-1 flags (random sign init 0.75, dropout_rate 1e-3, prior N(1, 0.05)) and its KL,
annealed over 2/3 of training as 120 of 180 epochs there (`kl_annealing_epochs` 14 of 20). The
evaluator scores the 4 heads as ensemble members (`<member>/head<i>`). Everything else is the
base recipe (64 images per step, 256 rows).

  het-ensembles train --config=configs/noisy_digits/heteroscedastic_rank1.py \
    --config.seed=0 --output_dir=runs/noisy_digits/het_rank1/0
"""

import os

from het_ensembles import training


def get_config():
    config = training.load_config(os.path.join(os.path.dirname(__file__), "heteroscedastic.py"))
    config.model = "small_cnn_rank1"
    config.ensemble_size = 4
    config.kl_annealing_epochs = 14
    config.model_kwargs.random_sign_init = 0.75
    config.model_kwargs.dropout_rate = 1e-3
    config.model_kwargs.prior_stddev = 0.05
    config.share_samples_across_batch = True  # as resnet50_het_rank1's head
    return config
