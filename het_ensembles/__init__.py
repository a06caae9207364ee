"""het-ensembles: heteroscedastic classification with deep ensembles for Keras 3.

Flow: data -> models (with a heteroscedastic head from `layers`, whose Monte Carlo
estimator lives in `mc`) -> training (one trainer, writes a member directory, `member_dir`) ->
evaluation (the ensemble evaluator, with `metrics`) -> leaderboard report.

Importing the package is cheap: it starts no TensorFlow, so configs can be loaded and the
command line can answer `--help` without it. Submodules load on first use
(`het_ensembles.layers`, ...). The Keras layers are registered as soon as Keras is imported,
before or after this package, so `keras.saving.load_model("model.keras")` works once
`het_ensembles` has been imported.
"""

import importlib
import importlib.abc
import importlib.util
import os as _os
import sys as _sys

_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"

_SUBMODULES = (
    "analysis",
    "bench",
    "cli",
    "compare",
    "data",
    "demo",
    "ensemble",
    "evaluation",
    "layers",
    "mc",
    "member_dir",
    "metrics",
    "models",
    "study",
    "training",
)


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _register_keras_objects():
    """Imports the modules whose Keras layers must be registered to load a model.keras."""
    importlib.import_module(f"{__name__}.layers")
    importlib.import_module(f"{__name__}.models")


class _RegisterAfterKeras(importlib.abc.MetaPathFinder):
    """Runs `_register_keras_objects` right after the first `import keras` finishes."""

    def find_spec(self, name, path=None, target=None):
        if name != "keras":
            return None
        _sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        exec_module = spec.loader.exec_module

        def exec_then_register(module):
            exec_module(module)
            _register_keras_objects()

        spec.loader.exec_module = exec_then_register
        return spec


if "keras" in _sys.modules:
    _register_keras_objects()
else:
    _sys.meta_path.insert(0, _RegisterAfterKeras())
