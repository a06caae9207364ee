r"""Heteroscedastic Wide ResNet 28-10 on CIFAR-100: uncertainty-baselines' CIFAR-100 rows.

Reproduces uncertainty-baselines `baselines/cifar/heteroscedastic.py` (commit 163351d4) run
with `--dataset=cifar100`, the script behind the CIFAR-100 table's "Heteroscedastic" row (Test
NLL 0.833, accuracy 80.2%, ECE 0.059; cNLL / cA / cCE 2.40 / 52.1% / 0.177; 37M parameters)
and, four seeds evaluated together, its "Heteroscedastic Ensemble (size=4)" row (0.671 /
82.7% / 0.026; 2.07 / 55.2% / 0.105; 148M; `baselines/cifar/het_ensemble.py` evaluates four
such checkpoints). Every other field is `heteroscedastic.py`'s (the CIFAR-10 config): R = 6
factors, temperature 1.3, 10000 MC samples in training and at test, the shared
`baselines/cifar/utils.py` optimisation flags. 100 classes give 37,003,536 parameters.

CIFAR-100-C, for the cNLL / cA / cCE column, is evaluated by `het-ensembles evaluate --suite
cifar100 --cifar100_c_path DIR` from the files the user downloaded (not in TFDS).

  het-ensembles train --config=configs/cifar/heteroscedastic_cifar100.py \
    --config.seed=0 --output_dir=runs/cifar100/het/0
"""

import os

from het_ensembles import training


def get_config():
    config = training.load_config(os.path.join(os.path.dirname(__file__), "heteroscedastic.py"))
    config.dataset = "cifar100"  # utils.py --dataset=cifar100
    return config
