r"""Diagonal heteroscedastic sigmoid head on `multilabel_digits`: the multi-label "Het diag".

`heteroscedastic.py` with no low-rank factors (`num_factors=0`): the noise on each logit has its
own input-dependent scale `d(x)` but the labels' noise is independent, so it can say how noisy
an image's labels are, not that a 3 losing its label goes with an 8 gaining one. Collier et al.
2021 (Table 3) report this row between the deterministic and the full heteroscedastic head.
Same temperature as `heteroscedastic.py`.

  het-ensembles train --config=configs/multilabel_digits/heteroscedastic_diag.py \
    --config.seed=0 --output_dir=runs/multilabel_digits/het_diag/0
"""

import os

from het_ensembles import training


def get_config():
    config = training.load_config(os.path.join(os.path.dirname(__file__), "heteroscedastic.py"))
    config.num_factors = 0
    return config
