r"""Heteroscedastic MIMO small CNN on `noisy_digits`: "Heteroscedastic with MIMO" on a CPU.

`heteroscedastic.py` (R = 3 factors, temperature 1.0, 1,000 MC samples) as uncertainty-baselines'
`baselines/imagenet/het_mimo.py` trains its ResNet-50 (commit 163351d4): a MIMO model
(`small_cnn_mimo`, models/mimo.py) of M = 3 heads on 3 stacked images, one
`MultiHeadMCSoftmaxDenseFA` for the heads (`share_het_layer=True`), each image repeated twice
per batch (`batch_repetitions=2`) and 60% of a batch's rows the same image for every head
(`input_repetition_probability=0.6`, the script's default). At test each image is tiled to the
3 heads, which the evaluator scores as 3 ensemble members (`<member>/head<i>`). Everything else
is the base recipe (64 rows per step: 32 distinct images; learning rate 0.05 per 64 distinct
images, so 0.025 here, as the script scales it).

  het-ensembles train --config=configs/noisy_digits/heteroscedastic_mimo.py \
    --config.seed=0 --output_dir=runs/noisy_digits/het_mimo/0
"""

import os

from het_ensembles import training


def get_config():
    config = training.load_config(os.path.join(os.path.dirname(__file__), "heteroscedastic.py"))
    config.model = "small_cnn_mimo"
    config.model_kwargs.share_het_layer = True
    config.ensemble_size = 3
    config.batch_repetitions = 2
    config.input_repetition_probability = 0.6
    return config
