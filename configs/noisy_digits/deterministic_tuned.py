r"""The demo's "Hom" recipe with held-out care: a validation split and keep-the-best-epoch.

`deterministic.py` plus 15% of the training set held out as a validation split (seeded), the
member's weights taken from the epoch with the lowest validation NLL (`keep_best_epoch`), and the
test set touched once, at the end. Its twin, `heteroscedastic_tuned.py`, gets the same care plus
the paper's temperature protocol, so the two differ only in the head. Used by
`het-ensembles study` and `compare`:

  het-ensembles compare --configs configs/noisy_digits/deterministic_tuned.py \
    configs/noisy_digits/heteroscedastic_tuned.py --seeds 4 --output_dir runs/compare_tuned
"""

import os

from het_ensembles import training


def get_config():
    config = training.load_config(os.path.join(os.path.dirname(__file__), "deterministic.py"))
    config.validation_fraction = 0.15
    config.keep_best_epoch = True
    return config
