r"""Parameter-efficient heteroscedastic ResNet-50 on ImageNet (no uncertainty-baselines row).

`heteroscedastic.py` (uncertainty-baselines `baselines/imagenet/heteroscedastic.py` defaults:
180 epochs, R = 15, temperature 1.5, 5000 shared MC samples) with edward2's
`MCSoftmaxDenseFA(parameter_efficient=True)` factor parameterisation: noise `v(x) * (V eps_R)`
with a learned K x R matrix V instead of an input-dependent K x R V(x), so the head adds ~4M
parameters instead of ~31M. uncertainty-baselines has no script for it; the flag is edward2's.

  het-ensembles train --config=configs/imagenet/heteroscedastic_pe.py \
    --config.seed=0 --config.data_dir=$TFDS_DATA_DIR --output_dir=runs/imagenet/het_pe/0
"""

import os

from het_ensembles import training


def get_config():
    config = training.load_config(os.path.join(os.path.dirname(__file__), "heteroscedastic.py"))
    config.parameter_efficient = True
    return config
