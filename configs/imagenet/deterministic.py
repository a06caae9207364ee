r"""Deterministic ResNet-50 on ImageNet: uncertainty-baselines' "Deterministic" row.

Reproduces uncertainty-baselines `baselines/imagenet/deterministic.py` at its flag defaults
(`uncertainty_baselines/models/resnet50_deterministic.py` for the model): per-core batch 128
(x32 TPUv2 cores = 4096), 90 epochs, SGD + Nesterov (`one_minus_momentum` 0.1), learning rate
0.1 per 256 examples with a 5-epoch linear warm-up and x0.1 at epochs 30, 60 and 80 (each
`(train_epochs * e) // 90`), L2 1e-4 on kernels and biases, no label smoothing, bfloat16, ECE
with 15 bins, a checkpoint every 25 epochs. Leaderboard: NLL 0.939, accuracy 76.2%, ECE 0.032,
25.6M parameters.

Not expressible here: `resnet50_deterministic` starts every batch
norm gamma at 1, our ResNet-50 defaults to `zero_init_residual=True` (add
`--config.model_kwargs.zero_init_residual=False` on a `model="resnet50"` run to match).

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
    config.train_epochs = 90  # deterministic.py --train_epochs
    config.use_bfloat16 = True  # deterministic.py --use_bfloat16 (TPU / Ampere+ GPUs)
    config.checkpoint_interval = 25  # deterministic.py --checkpoint_interval
    return config
