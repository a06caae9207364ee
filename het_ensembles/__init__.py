"""het-ensembles: heteroscedastic classification with deep ensembles for Keras 3.

Flow: data -> models (with a heteroscedastic head from `layers`, whose Monte Carlo
estimator lives in `mc`) -> training (one trainer, writes a member directory, `member_dir`) ->
evaluation (the ensemble evaluator, with `metrics`) -> leaderboard report and `analysis`.
Beside the flow: `experiments` (compare configs over seeds, studies on held-out data), `demo`
(the main job), `tools` (the benchmark) and `cli` (the `het-ensembles` entry point).

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

__version__ = "0.2.0.dev0"  # the one place: pyproject.toml reads it; CHANGELOG.md says what changed

_SUBMODULES = (
    "analysis",
    "cli",
    "data",
    "demo",
    "evaluation",
    "experiments",
    "layers",
    "mc",
    "member_dir",
    "metrics",
    "models",
    "tools",
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
    """Registers our Keras objects once Keras, and any TensorFlow import around it, has loaded.

    Two things made a simpler hook miss: TensorFlow calls `importlib.util.find_spec("keras")`
    many times before it imports Keras (so a hook may act only when the module is executed,
    never at `find_spec`), and it imports Keras from inside its own `__init__` (so registering
    right after Keras would import our layers against a half-initialised `tensorflow`). The
    finder therefore wraps the execution of both modules and registers when the outermost of
    them has finished.
    """

    _WATCHED = ("tensorflow", "keras")

    def __init__(self):
        self._loading = 0

    def find_spec(self, name, path=None, target=None):
        if name not in self._WATCHED:
            return None
        spec = self._spec_from_other_finders(name, path, target)
        if spec is None or spec.loader is None:
            return spec
        exec_module = spec.loader.exec_module

        def exec_then_register(module):
            self._loading += 1
            try:
                exec_module(module)
            finally:
                self._loading -= 1
            if self._loading == 0 and "keras" in _sys.modules and self in _sys.meta_path:
                _sys.meta_path.remove(self)
                _register_keras_objects()

        spec.loader.exec_module = exec_then_register
        return spec

    def _spec_from_other_finders(self, name, path, target):
        for finder in _sys.meta_path:
            if finder is not self and hasattr(finder, "find_spec"):
                spec = finder.find_spec(name, path, target)
                if spec is not None:
                    return spec
        return None


if "keras" in _sys.modules:
    _register_keras_objects()
else:
    _sys.meta_path.insert(0, _RegisterAfterKeras())
