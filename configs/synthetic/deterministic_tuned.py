r"""`deterministic.py` with held-out care: a validation split and keep-the-best-epoch.

15% of the training set (600 examples, seeded) is held out for validation, the member's weights
come from the epoch with the lowest validation NLL, and the test set is touched once, at the
end. Its twin, `heteroscedastic_tuned.py`, gets the same care plus the paper's temperature
protocol, so the two differ only in the head. `het-ensembles study --family synthetic` runs both
on random planted-Sigma variants:

  het-ensembles study --family synthetic --variants 10 --seeds 4 --output_dir runs/study_synthetic
"""

import os

from het_ensembles import training


def get_config():
    config = training.load_config(os.path.join(os.path.dirname(__file__), "deterministic.py"))
    config.validation_fraction = 0.15
    config.keep_best_epoch = True
    return config
