r"""Deterministic ResNet-50 on ImageNet: uncertainty-baselines' "Deterministic" row.

uncertainty-baselines `baselines/imagenet/deterministic.py` defaults: per-core batch 128, 90
epochs, SGD + Nesterov (momentum 0.9), learning rate 0.1 per 256 examples with a 5-epoch linear
warm-up and x0.1 at epochs 30, 60 and 80, L2 1e-4, bfloat16. Leaderboard: NLL 0.939, accuracy
76.2%, ECE 0.032, 25.6M parameters.

  het-ensembles train --config=configs/imagenet/deterministic.py \
    --config.seed=0 --config.data_dir=$TFDS_DATA_DIR --output_dir=runs/imagenet/det/0
"""

from het_ensembles import training


def get_config():
    config = training.default_config()  # the uncertainty-baselines ImageNet recipe
    config.dataset = "imagenet2012"
    config.image_size = 224
    config.model = "resnet50"
    config.head = "deterministic"
    config.use_bfloat16 = True  # as uncertainty-baselines (TPU / Ampere+ GPUs)
    return config
