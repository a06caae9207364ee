r"""Heteroscedastic InceptionResNet-v2 on WebVision 1.0: Collier et al. (CVPR 2021), Table 2,
"Het".

`deterministic.py` (InceptionResNet-v2 from scratch at 299 x 299, 95 epochs,
uncertainty-baselines' `baselines/imagenet/deterministic.py` SGD recipe for everything the paper does not
state, `webvision:ROOT` data) with the paper's heteroscedastic head: `MCSoftmaxDenseFA` with a
rank R = 15 covariance and temperature 0.9. The Monte Carlo samples are uncertainty-baselines'
`baselines/imagenet/heteroscedastic.py` defaults (5000 in training and at test, shared across
the batch), which the paper does not restate for WebVision.

Published (Table 2, WebVision validation): top-1 76.6%, top-5 92.1%. Evaluate the members on
WebVision's and ILSVRC 2012's validation sets in one call: `het-ensembles evaluate --members
'runs/table2/het/*' --dataset webvision:/path/to/webvision imagenet2012 --output_dir
reports/table2/het`.

  het-ensembles train --config=configs/webvision/heteroscedastic.py \
    --config.dataset=webvision:/data/webvision --config.seed=0 --output_dir=runs/table2/het/0
"""

import os

from het_ensembles import training


def get_config():
    config = training.load_config(os.path.join(os.path.dirname(__file__), "deterministic.py"))
    config.head = "heteroscedastic"
    config.head_class = "MCSoftmaxDenseFA"
    config.num_factors = 15  # Table 2: rank 15
    config.temperature = 0.9  # Table 2: tau 0.9
    config.train_mc_samples = 5000  # heteroscedastic.py --num_mc_samples (train and test)
    config.test_mc_samples = 5000
    config.share_samples_across_batch = True  # resnet50_heteroscedastic het_layer_args
    return config
