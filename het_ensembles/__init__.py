"""het-ensembles: heteroscedastic classification with deep ensembles for Keras 3.

Flow: data -> models (with a heteroscedastic head from `layers`, whose Monte Carlo
estimator lives in `mc`) -> training (one trainer, writes a member directory) ->
ensemble (evaluator, with `metrics`) -> leaderboard report.
"""

import os as _os

_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"

from het_ensembles import (
    layers,  # noqa: F401  (registers the Keras layers)
    models,  # noqa: F401  (registers the models' helper layers)
)
