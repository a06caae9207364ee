r"""Heteroscedastic ResNet-50 on ImageNet with a sigmoid (multilabel) head.

`heteroscedastic.py` with MCSigmoidDenseFA trained with binary cross-entropy (summed over the
1000 labels) against one-hot targets. Test metrics use per-label sigmoid probabilities
(`metrics` with `multilabel=True`).

  het-ensembles train --config=configs/imagenet/heteroscedastic_sigmoid.py \
    --config.seed=0 --config.data_dir=$TFDS_DATA_DIR --output_dir=runs/imagenet/het_sigmoid/0
"""

import os

from het_ensembles import training


def get_config():
    config = training.load_config(os.path.join(os.path.dirname(__file__), "heteroscedastic.py"))
    config.head_class = "MCSigmoidDenseFA"
    config.multilabel = True
    return config
