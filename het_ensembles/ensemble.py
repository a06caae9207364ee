"""The ensemble evaluator's public names, kept where users first found them.

The evaluator lives in `het_ensembles.evaluation`; `het_ensembles.ensemble.evaluate(...)` is the
same function as `het_ensembles.evaluation.evaluate(...)`.
"""

from het_ensembles.evaluation import (  # noqa: F401
    ALEXNET_ERRORS,
    CORRUPTED,
    CORRUPTIONS,
    SEVERITIES,
    Member,
    cached_predictions,
    cli_main,
    corrupted_datasets,
    evaluate,
    find_members,
)
