"""Our Keras layers are registered, and a saved model.keras loads, whatever the import order.

Each order runs in a fresh interpreter (nothing imported beforehand, started in an empty
directory), as a user's script or the console script would: the imports in that order, then
what the README says is enough to load a model, `import het_ensembles, tensorflow, keras;
keras.saving.load_model(path)`, without importing `het_ensembles.layers`. The model was built
and saved by another fresh interpreter; its predictions (`training=False`: the noise is fixed
by the layer seed) must equal the saving process's.

Before d97aa29 the registration hook fired (once) on the first `find_spec("keras")`, which
TensorFlow makes from `tensorflow/python/tools/module_util.py` long before it imports Keras, so
the layers were never registered when `het_ensembles` came first and TensorFlow then imported
Keras: with the parent commit's `__init__.py`, `het_ensembles-tensorflow-keras` (what the
console script does) and `het_ensembles-tensorflow_probability` fail here: nothing is
registered and `load_model` raises Keras's "could not be deserialized properly" TypeError; the
other four orders passed.
"""

import concurrent.futures

import console
import pytest

ORDERS = {
    "het_ensembles-tensorflow-keras": ("het_ensembles", "tensorflow", "keras"),
    "tensorflow-het_ensembles": ("tensorflow", "het_ensembles"),
    "keras-het_ensembles": ("keras", "het_ensembles"),
    "het_ensembles-keras": ("het_ensembles", "keras"),
    "het_ensembles-tensorflow_datasets-keras": ("het_ensembles", "tensorflow_datasets", "keras"),
    "het_ensembles-tensorflow_probability": ("het_ensembles", "tensorflow_probability"),
    # A subpackage first: importing TensorFlow / Keras inside it registers our layers and models
    # while it is half imported (a models module importing a head at its top, and the layers
    # reading `mc.DEFAULT_MEMORY_BUDGET_MIB` of a half-imported `mc`, failed).
    "het_ensembles.layers-keras": ("het_ensembles.layers", "keras"),
    "het_ensembles.mc-keras": ("het_ensembles.mc", "keras"),
    "het_ensembles.models-keras": ("het_ensembles.models", "keras"),
}

# The abstract base of the MC heads: a Layer in `het_ensembles.layers.__all__` that is never
# serialized on its own, so it is not registered. Every other Layer there must be.
UNREGISTERED_BASES = ["MCHeteroscedasticBase"]

SAVE = """
import json, sys
import numpy as np
import keras
from het_ensembles.layers import MCSoftmaxDenseFA

out = sys.argv[1]
keras.utils.set_random_seed(0)
inputs = keras.Input((6,))
hidden = keras.layers.Dense(8, activation="relu")(inputs)
head = MCSoftmaxDenseFA(
    num_classes=5, num_factors=2, temperature=1.5, train_mc_samples=16, test_mc_samples=64,
    logits_only=True, seed=7, name="head",
)
model = keras.Model(inputs, head(hidden))
x = np.random.default_rng(0).normal(size=(16, 6)).astype("float32")
first = model.predict(x, verbose=0)
again = model.predict(x, verbose=0)
called = keras.ops.convert_to_numpy(model(x, training=False))
part = model.predict(x[:5], verbose=0)
trained = keras.ops.convert_to_numpy(model(x, training=True))
model.save(f"{out}/model.keras")
np.save(f"{out}/x.npy", x)
np.save(f"{out}/predictions.npy", first)
print(json.dumps({
    "repeat": float(np.max(np.abs(first - again))),
    "call": float(np.max(np.abs(first - called))),
    "batch": float(np.max(np.abs(first[:5] - part))),
    "training_differs": float(np.max(np.abs(first - trained))),
    "finite": bool(np.all(np.isfinite(first))),
}))
"""

CHECK = """
import json, sys
import numpy as np
import het_ensembles, tensorflow, keras  # what the README says is enough to load a model.keras

model_dir = sys.argv[1]
registered = sorted(k for k in keras.saving.get_custom_objects() if k.startswith("het_ensembles>"))
hook_imported_layers = "het_ensembles.layers" in sys.modules
result = {"registered": registered, "hook_imported_layers": hook_imported_layers}
try:
    model = keras.saving.load_model(f"{model_dir}/model.keras")
    x = np.load(f"{model_dir}/x.npy")
    predictions = model.predict(x, verbose=0)
    result["head"] = type(model.get_layer("head")).__module__ + "." + type(model.get_layer("head")).__name__
    result["max_difference"] = float(np.max(np.abs(predictions - np.load(f"{model_dir}/predictions.npy"))))
except Exception as error:  # reported, asserted on by the test
    result["load_error"] = f"{type(error).__name__}: {error}"[:2000]

import het_ensembles.layers, het_ensembles.models  # now explicitly: what should have been there
layers = [
    getattr(het_ensembles.layers, name) for name in het_ensembles.layers.__all__
    if isinstance(getattr(het_ensembles.layers, name), type)
    and issubclass(getattr(het_ensembles.layers, name), keras.layers.Layer)
]
result["layer_names"] = {c.__name__: keras.saving.get_registered_name(c) for c in layers}
result["registered_after_import"] = sorted(
    k for k in keras.saving.get_custom_objects() if k.startswith("het_ensembles>")
)
print(json.dumps(result))
"""


def _imports(order):
    return "".join(f"import {name}\n" for name in order)


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    """A model with an `MCSoftmaxDenseFA` head, saved by a fresh interpreter; its stats."""
    directory = tmp_path_factory.mktemp("saved_model")
    done = console.python(SAVE, directory, args=[directory])
    return directory, console.last_json(done.stdout)


@pytest.fixture(scope="module")
def results(saved_model, tmp_path_factory):
    """Every order's CHECK output, run concurrently (3 at a time) in fresh interpreters."""
    directory, _ = saved_model

    def check(name):
        cwd = tmp_path_factory.mktemp(name)
        done = console.python(_imports(ORDERS[name]) + CHECK, cwd, args=[directory], check=False)
        return name, done

    with concurrent.futures.ThreadPoolExecutor(max_workers=3) as pool:
        return dict(pool.map(check, ORDERS))


def test_saved_predictions_are_deterministic(saved_model):
    _, stats = saved_model
    assert stats["finite"]
    assert stats["repeat"] == 0.0, "predict twice on the same inputs differs"
    assert stats["call"] < 1e-6, "model(x, training=False) differs from model.predict(x)"
    assert stats["batch"] < 1e-6, "a prediction depends on the rest of its batch"
    # The noise matters: otherwise equal predictions after loading would prove nothing.
    assert stats["training_differs"] > 1e-3


@pytest.mark.parametrize("order", sorted(ORDERS))
def test_layers_registered_and_model_loads(order, results, saved_model):
    done = results[order]
    assert done.returncode == 0, f"{order}: exited {done.returncode}\n{done.stderr[-6000:]}"
    result = console.last_json(done.stdout)
    assert "load_error" not in result, f"{order}: {result['load_error']}"
    assert result["hook_imported_layers"]
    assert "het_ensembles>MCSoftmaxDenseFA" in result["registered"]
    expected = {
        registered_name
        for name, registered_name in result["layer_names"].items()
        if name not in UNREGISTERED_BASES
    }
    assert all(name.startswith("het_ensembles>") for name in expected), result["layer_names"]
    assert expected <= set(result["registered"]), sorted(expected - set(result["registered"]))
    # Importing the layers and models explicitly registers nothing the hook had not.
    assert result["registered_after_import"] == result["registered"]
    assert result["head"] == "het_ensembles.layers.mc_softmax_dense_fa.MCSoftmaxDenseFA"
    assert result["max_difference"] < 1e-6, f"{order}: predictions changed after loading"
