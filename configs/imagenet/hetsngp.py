r"""HetSNGP ResNet-50 on ImageNet (uncertainty-baselines' "HetSNGP" row).

Reproduces uncertainty-baselines `baselines/imagenet/hetsngp.py` at its flag defaults (commit
163351d4, 2026-03-24) with `uncertainty_baselines/models/resnet50_hetsngp.py`: 270 epochs
(learning-rate steps at 90, 180, 240), base learning rate 0.07 per 256, bfloat16, spectral
normalisation of the bottleneck convs (1 iteration, bound 6) and edward2's
`HeteroscedasticSNGPLayer`: 15 factors, temperature 1.25, 5000 MC samples in training and at
test (`--num_mc_samples`), shared across the batch; its GP with 1024 orthogonal random
features, length-scale 1, no input normalisation, exact precision reset every epoch, ridge 1,
output weights RandomNormal(0.01), features not scaled; SNGP and heteroscedastic variances
weighted 1.

Not expressible here: the model's `eps=1e-5` probability clip (our estimator works in log
space); `--checkpoint_interval=-1` (no checkpoints; ours keeps the recipe's every 25 epochs,
needed to resume).

  het-ensembles train --config=configs/imagenet/hetsngp.py --config.seed=0 \
    --config.data_dir=$TFDS_DATA_DIR --output_dir=runs/imagenet/hetsngp/0
"""

import os

from het_ensembles import training


def get_config():
    config = training.load_config(os.path.join(os.path.dirname(__file__), "sngp.py"))
    config.train_epochs = 270  # hetsngp.py --train_epochs
    config.base_learning_rate = 0.07  # --base_learning_rate
    config.use_bfloat16 = True  # --use_bfloat16
    config.head = "hetsngp"
    config.num_factors = 15  # --num_factors
    config.temperature = 1.25  # --temperature
    config.train_mc_samples = 5000  # --num_mc_samples, for training and test
    config.test_mc_samples = 5000
    config.share_samples_across_batch = True  # resnet50_hetsngp
    config.sngp_var_weight = 1.0  # --sngp_var_weight
    config.het_var_weight = 1.0  # --het_var_weight
    return config
