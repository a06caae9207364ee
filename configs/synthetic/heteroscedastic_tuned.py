r"""`heteroscedastic.py` with held-out care and the paper's temperature protocol.

What `deterministic_tuned.py` adds (a 15% validation split, keep-the-best-epoch, the test set
used once), and the temperature chosen on validation NLL from `temperature_grid`, which brackets
the 0.25 of `heteroscedastic.py` (Collier et al. 2021 tune it on held-out data;
`training.tune_temperature` trains one seed-0 member per value).

  het-ensembles train --config=configs/synthetic/heteroscedastic_tuned.py \
    --output_dir=runs/synthetic/het_tuned
"""

import os

from het_ensembles import training


def get_config():
    here = os.path.dirname(__file__)
    config = training.load_config(os.path.join(here, "heteroscedastic.py"))
    tuned = training.load_config(os.path.join(here, "deterministic_tuned.py"))
    config.validation_fraction = tuned.validation_fraction
    config.keep_best_epoch = tuned.keep_best_epoch
    config.temperature_grid = (0.1, 0.25, 0.5, 1.0)
    return config
