r"""SNGP ResNet-50 on ImageNet (uncertainty-baselines' "SNGP" row).

Reproduces uncertainty-baselines `baselines/imagenet/sngp.py` at its flag defaults (commit
163351d4, 2026-03-24) with `uncertainty_baselines/models/resnet50_sngp.py`: the deterministic
ImageNet recipe (90 epochs, base learning rate 0.1 per 256) in float32 (`--use_bfloat16=False`),
spectral normalisation of the bottleneck convs (1 iteration, bound 6), and a random-feature GP
head (1024 orthogonal random features, length-scale 1, no input normalisation, exact precision
reset every epoch, ridge 1, output weights RandomNormal(0.01), features not scaled) with
mean-field factor 1 at inference.

Not expressible here: the script scores NLL and accuracy with 2500 Monte Carlo logit samples of
amplitude 15 (`--gp_logit_mc_samples`, `--gp_logit_mc_amplitude`); the head here predicts the
mean-field logits, which the script uses for its ECE.

  het-ensembles train --config=configs/imagenet/sngp.py --config.seed=0 \
    --config.data_dir=$TFDS_DATA_DIR --output_dir=runs/imagenet/sngp/0
"""

import os

from het_ensembles import training


def get_config():
    config = training.load_config(os.path.join(os.path.dirname(__file__), "deterministic.py"))
    config.use_bfloat16 = False  # sngp.py --use_bfloat16
    config.model_kwargs.use_spec_norm = True  # --use_spec_norm
    config.model_kwargs.spec_norm_iteration = 1  # --spec_norm_iteration
    config.model_kwargs.spec_norm_bound = 6.0  # --spec_norm_bound
    config.head = "sngp"  # --use_gp_layer
    config.gp_hidden_dim = 1024  # --gp_hidden_dim
    config.gp_scale = 1.0  # --gp_scale
    config.gp_bias = 0.0  # --gp_bias
    config.gp_input_normalization = False  # --gp_input_normalization
    config.gp_random_feature_type = "orf"  # --gp_random_feature_type
    config.gp_cov_ridge_penalty = 1.0  # --gp_cov_ridge_penalty
    config.gp_cov_discount_factor = -1.0  # --gp_cov_discount_factor
    config.gp_mean_field_factor = 1.0  # --gp_mean_field_factor
    config.gp_output_imagenet_initializer = True  # --gp_output_imagenet_initializer
    config.scale_random_features = False  # resnet50_sngp: scale_random_features=False
    return config
