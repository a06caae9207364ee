r"""Diagonal heteroscedastic InceptionResNet-v2 on WebVision 1.0: Collier et al. (CVPR 2021),
Table 2, "Het (diag)".

`heteroscedastic.py` (InceptionResNet-v2, 299 x 299, 95 epochs, tau 0.9, 5000 shared MC
samples; uncertainty-baselines' `baselines/imagenet/heteroscedastic.py` recipe for what the
paper does not state) with a diagonal covariance: edward2's `MCSoftmaxDense` (no factors).

The published Table 2 figures for this row could not be confirmed from memory here; compare
with the paper itself.

  het-ensembles train --config=configs/webvision/heteroscedastic_diag.py \
    --config.dataset=webvision:/data/webvision --config.seed=0 --output_dir=runs/table2/diag/0
"""

import os

from het_ensembles import training


def get_config():
    config = training.load_config(os.path.join(os.path.dirname(__file__), "heteroscedastic.py"))
    config.head_class = "MCSoftmaxDense"  # diagonal covariance
    config.num_factors = 0  # no factors (MCSoftmaxDense takes none)
    return config
