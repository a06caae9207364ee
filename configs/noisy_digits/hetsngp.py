r"""HetSNGP small CNN on `noisy_digits` (uncertainty-baselines' CIFAR "HetSNGP" row, scaled down).

`heteroscedastic.py` (the same small CNN, optimiser, L2, R = 3 factors, temperature 1.0) with
`MCSoftmaxDenseFA` swapped for `HeteroscedasticSNGPLayer` as `configs/cifar/hetsngp.py` sets it
up: the GP on LayerNorm-ed features (`gp_input_normalization`), length-scale 2, orthogonal
random features of stddev 0.05, exact precision per epoch (ridge 1), output L2 1e-6 (the
layer's default), SNGP and heteroscedastic variances weighted 1, Monte Carlo samples shared
across the batch. What differs from the CIFAR defaults:

- `gp_hidden_dim=128` (CIFAR: 1024) and `scale_random_features=False` (CIFAR: the layer's
  sqrt(2/D) scaling): with scaled features the GP's output weights barely moved at lr 0.05.
- `num_factors=3`, `temperature=1.0` (CIFAR: 6, 0.3): heteroscedastic.py's, so this row differs
  from Het only in the GP; 0.3 was tried and gave a worse validation NLL.
- 100 Monte Carlo samples in training and at test (heteroscedastic.py: 1,000), CIFAR's value.
- `train_epochs=40` (heteroscedastic.py: 20): the GP head learns slower.
- No `gp_input_dim` projection: the small CNN's features are already 128-d (CIFAR projects
  WRN-28-10's 640 to 128).

Spectral normalisation is on, as in uncertainty-baselines' SNGP recipes: `small_cnn`'s convs
and dense layer are wrapped (`use_spec_norm=True`, one power iteration per step, bound 6:
`--spec_norm_iteration=1 --spec_norm_bound=6.`). The settings below were chosen without it (the
option came later); with it, one validation run of the kept settings gave
0.815 / 0.536 / 0.097 (without: 0.815 / 0.489 / 0.098) accuracy / NLL / ECE.

How these were chosen: one seed (0), `noisy_digits:classes=0+1+2+3+4+5+6+7`,
`validation_fraction=0.2` (the 0..7 training digits only; no OOD digit and no test example
seen), validation accuracy / NLL / ECE at the last epoch (Het, heteroscedastic.py, 20 epochs:
0.825 / 0.450 / 0.066):

| features | scaled | tau | epochs | val acc | val NLL | val ECE |
|---|---|---|---|---|---|---|
| 1024 | yes (CIFAR) | 1.0 | 20 | 0.720 | 0.899 | 0.270 |
| 128 | yes | 1.0 | 20 | 0.693 | 0.891 | 0.244 |
| 1024 | yes | 1.0 | 40 | 0.698 | 0.800 | 0.200 |
| 128 | yes | 1.0 | 40 | 0.714 | 0.806 | 0.226 |
| 1024 | yes | 0.3 | 40 | 0.698 | 0.808 | 0.185 |
| 128 | yes | 0.3 | 40 | 0.635 | 0.808 | 0.113 |
| 128 | no | 0.3 | 40 | 0.810 | 0.601 | 0.112 |
| **128** | **no** | **1.0** | **40** | **0.815** | **0.489** | **0.098** |

Kept: the last row, the lowest validation NLL.

  het-ensembles train --config=configs/noisy_digits/hetsngp.py --config.seed=0 \
    --output_dir=runs/noisy_digits/hetsngp/0
"""

import os

from het_ensembles import training


def get_config():
    config = training.load_config(os.path.join(os.path.dirname(__file__), "heteroscedastic.py"))
    config.head = "hetsngp"
    config.gp_hidden_dim = 128  # CIFAR 1024; chosen on validation (see the docstring)
    config.gp_scale = 2.0  # --gp_scale
    config.gp_bias = 0.0
    config.gp_input_normalization = True  # --gp_input_normalization
    config.gp_random_feature_type = "orf"
    config.gp_cov_ridge_penalty = 1.0
    config.gp_cov_discount_factor = -1.0  # exact precision, reset every epoch
    config.scale_random_features = False  # CIFAR: True (the layer's default); chosen on validation
    config.sngp_var_weight = 1.0
    config.het_var_weight = 1.0
    config.train_mc_samples = 100  # --num_mc_samples
    config.test_mc_samples = 100
    config.share_samples_across_batch = True  # wide_resnet_hetsngp
    config.train_epochs = 40  # heteroscedastic.py 20; chosen on validation
    config.model_kwargs.use_spec_norm = True  # --use_spec_norm
    config.model_kwargs.spec_norm_iteration = 1  # --spec_norm_iteration
    config.model_kwargs.spec_norm_bound = 6.0  # --spec_norm_bound
    return config
