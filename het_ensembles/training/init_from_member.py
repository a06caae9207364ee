"""Fine-tuning: start a run from a finished member's backbone, with a new, untrained head.

Where it sits: member directory -> **init_from_member** -> trainer. With
`config.init_from_member=<member dir>` the trainer builds the config's model as usual (its own
head: homoscedastic, plain softmax, unless the config says otherwise, for the config's dataset
and class count), then copies every backbone layer's weights from the member's `model.keras`
before the first step. The backbone is everything up to the head's input
(`model.get_layer("head").input`, as `het_ensembles.models` defines it); the head and any layer
after it keep their fresh initialisation. This is the transfer protocol of Collier et al.
(CVPR 2021) Table 6 and of BiT (Kolesnikov et al. 2020): fine-tune the whole network from the
pre-trained backbone with a new head. A resumed run restores its own checkpoints instead (they
already hold the copied, then trained, weights).

Layers are matched in order (`backbone_layers`), not by name: Keras' automatic layer names
depend on how many layers a process built before. Each pair must be the same layer class with
the same weight shapes; the input size may differ where no weight depends on it (convolutions
with global pooling: BiT fine-tunes at 128 or 384 what was trained at 224).
"""

import inspect
import json
import os

import keras

from het_ensembles import member_dir, models
from het_ensembles.models import HEAD_NAME
from het_ensembles.training.config import ConfigError

# Config fields that define the backbone: they must equal the member's.
BACKBONE_FIELDS = ("model", "model_kwargs")


def check_member(config):
    """The finished member that `config.init_from_member` names, checked against `config`.

    No TensorFlow work: reads the member's config.json only.

    Args:
      config: a complete config with `init_from_member` set.

    Returns:
      The `member_dir.Member`.

    Raises:
      ConfigError: the directory is not a finished member (no model.keras), or its config.json
        has a different model or model_kwargs, naming the member and the fields.
    """
    path = config.init_from_member
    try:
        member = member_dir.read_member(path)
    except ValueError as error:
        raise ConfigError(f"config.init_from_member is not a member directory: {error}") from error
    if not member.finished:
        raise ConfigError(
            f"config.init_from_member is not a finished member directory (no "
            f"{member_dir.MODEL_FILE}). Received: init_from_member={path!r}"
        )
    ours = {"model": config.model, "model_kwargs": config.model_kwargs.to_dict()}
    theirs = {name: member.config.get(name, ours[name]) for name in BACKBONE_FIELDS}
    if theirs["model"] == ours["model"]:  # options left out take the architecture's defaults
        ours["model_kwargs"] = _with_defaults(ours["model"], ours["model_kwargs"])
        theirs["model_kwargs"] = _with_defaults(ours["model"], theirs["model_kwargs"])
    differ = [
        f"{name}: member {theirs[name]!r}, config {ours[name]!r}"
        for name in BACKBONE_FIELDS
        if _jsonable(theirs[name]) != _jsonable(ours[name])
    ]
    if differ:
        raise ConfigError(
            f"The backbone of member {member.path} differs from the config's model "
            f"({'; '.join(differ)}). Received: init_from_member={path!r}; allowed: a member "
            "trained with the same model and model_kwargs"
        )
    return member


def backbone_layers(model):
    """The layers of `model` before its head, in order, without the input layer.

    These are the layers between the model's input and `model.get_layer("head").input`; the
    head and anything after it (`TwoClassLogits`) are left out.
    """
    head = model.get_layer(HEAD_NAME)
    after_head = False
    layers = []
    for layer in model.layers:
        if layer is head:
            after_head = True
        if after_head or isinstance(layer, keras.layers.InputLayer):
            continue
        layers.append(layer)
    return layers


def initialise_backbone(model, member):
    """Copies the backbone weights (trainable and not: batch-norm statistics too) of `member`.

    Args:
      model: the new model (built by the trainer with the config's head).
      member: a finished `member_dir.Member` (`check_member`).

    Returns:
      The number of weight arrays copied.

    Raises:
      ConfigError: the member's backbone has another number of layers, another layer class or
        another weight shape at some layer (e.g. an input with another channel count, or a
        flattened feature map of another size), naming the member and the first mismatch.
    """
    source = member.load_model()
    ours, theirs = backbone_layers(model), backbone_layers(source)
    if len(ours) != len(theirs):
        _mismatch(member, f"{len(theirs)} backbone layers in the member, {len(ours)} here")
    pairs = []
    for index, (mine, other) in enumerate(zip(ours, theirs)):
        if type(mine).__name__ != type(other).__name__:
            _mismatch(
                member,
                f"backbone layer {index}: {type(other).__name__} in the member, "
                f"{type(mine).__name__} here",
            )
        shapes = [tuple(w.shape) for w in mine.weights]
        other_shapes = [tuple(w.shape) for w in other.weights]
        if shapes != other_shapes:
            _mismatch(
                member,
                f"backbone layer {index} ({type(mine).__name__} {mine.name!r}): weight shapes "
                f"{other_shapes} in the member, {shapes} here (another input shape or model?)",
            )
        pairs.append((mine, other))
    copied = 0
    for mine, other in pairs:
        for variable, value in zip(mine.weights, other.get_weights()):
            variable.assign(value.astype(variable.dtype))
            copied += 1
    return copied


def _mismatch(member, what):
    raise ConfigError(
        f"Cannot initialise from member {member.path}: its backbone differs from the config's "
        f"model ({what}). Received: init_from_member={member.path!r}"
    )


def _with_defaults(architecture, kwargs):
    """`kwargs` of `models.build_model(architecture, ...)` with the options it leaves out."""
    trunk = models.ARCHITECTURES[architecture][0]
    defaults = {
        name: parameter.default
        for name, parameter in inspect.signature(trunk).parameters.items()
        if parameter.default is not inspect.Parameter.empty
    }
    return _jsonable({**defaults, **dict(kwargs)})


def _jsonable(value):
    """`value` as config.json stores it (tuples as lists)."""
    return json.loads(json.dumps(value))


def normalised_path(path):
    """The absolute path recorded in config.json, so the record means the same from anywhere."""
    return os.path.abspath(os.path.expanduser(path))
