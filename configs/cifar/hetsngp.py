r"""HetSNGP Wide ResNet 28-10 on CIFAR (uncertainty-baselines' "HetSNGP" row).

Reproduces uncertainty-baselines `baselines/cifar/hetsngp.py` at its flag defaults (commit
163351d4, 2026-03-24) with `uncertainty_baselines/models/wide_resnet_hetsngp.py`: the SNGP
backbone (`sngp.py`: spectral norm bound 6, filter-wise dropout 0.1) with edward2's
`HeteroscedasticSNGPLayer`: 6 factors, temperature 0.3, 100 MC samples in training and at test
(`--num_mc_samples`), shared across the batch; its GP on a fixed random 128-d projection of the
features (`--gp_input_dim`), LayerNorm-ed (`--gp_input_normalization=True`), length-scale 2,
1024 orthogonal random features scaled by sqrt(2/D) (the layer's default, the model sets
nothing), output L2 1e-6 (the layer's default); SNGP and heteroscedastic variances weighted 1.

Not expressible here: the model's `eps=1e-5` probability clip (our estimator works in log
space); `--total_batch_size=256` (set `--config.per_core_batch_size`).

  het-ensembles train --config=configs/cifar/hetsngp.py --config.seed=0 \
    --output_dir=runs/cifar10/hetsngp/0
"""

import os

from het_ensembles import training


def get_config():
    config = training.load_config(os.path.join(os.path.dirname(__file__), "sngp.py"))
    config.model_kwargs.gp_input_dim = 128  # --gp_input_dim
    config.head = "hetsngp"
    config.num_factors = 6  # --num_factors
    config.temperature = 0.3  # --temperature
    config.train_mc_samples = 100  # --num_mc_samples, for training and test
    config.test_mc_samples = 100
    config.share_samples_across_batch = True  # wide_resnet_hetsngp
    config.gp_scale = 2.0  # --gp_scale
    config.gp_input_normalization = True  # --gp_input_normalization
    config.scale_random_features = True  # HeteroscedasticSNGPLayer's default
    config.sngp_var_weight = 1.0  # --sngp_var_weight
    config.het_var_weight = 1.0  # --het_var_weight
    return config
