"""MIMO models (Havasi et al., ICLR 2021): M inputs stacked in channels, one trunk, M heads.

As uncertainty-baselines' `resnet50_het_mimo` (and `resnet50_mimo`) build them: the training
model takes M images per example, [B, M, H, W, C], permutes them to [B, H, W, C, M] and
reshapes to [B, H, W, C * M] (channel `c * M + m` is channel c of image m), runs an ordinary
trunk on that (its first layer sees C * M channels) and outputs logits [B, M, K]:

- a heteroscedastic head with `share_het_layer=True` (het_mimo.py's default): one
  `MultiHeadMCSoftmaxDenseFA` of M x K outputs (the M heads' latent noise correlated);
- with `share_het_layer=False`: M `MCSoftmaxDenseFA` layers `head_<i>` of K outputs, stacked;
- a dense head (mimo.py): Dense(M * K) reshaped to [B, M, K].

At test every head sees the same image: `member_model` wraps the training model in one that
takes [B, H, W, C] and tiles it M times (het_mimo.py's `test_step`), which is what a member
directory saves and the evaluator runs (its heads then are `<member>/head<i>`).
"""

import keras

# The MIMO architectures and the ordinary trunk each one stacks its inputs into.
BASES = {"resnet50_mimo": "resnet50", "small_cnn_mimo": "small_cnn"}
PACK_NAME = "mimo_pack"  # the Reshape layer that stacks the M images in channels
HEAD_TYPES = ("dense", "MCSoftmaxDenseFA")


def is_mimo(architecture):
    """Whether `architecture` names a MIMO model (training inputs [B, M, H, W, C])."""
    return architecture in BASES


def stacked_inputs(input_shape, ensemble_size):
    """(the training model's input [B, M, *input_shape], the images stacked [B, H, W, C * M]).

    Raises:
      ValueError: for inputs that are not images or an ensemble size below 1.
    """
    if len(input_shape) != 3:
        raise ValueError(
            f"A MIMO model stacks images (H, W, C). Received: input_shape={tuple(input_shape)}"
        )
    if not isinstance(ensemble_size, int) or isinstance(ensemble_size, bool) or ensemble_size < 1:
        raise ValueError(
            f"ensemble_size must be an integer >= 1. Received: ensemble_size={ensemble_size!r}"
        )
    height, width, channels = input_shape
    inputs = keras.Input(shape=(ensemble_size, *input_shape), name="inputs")
    x = keras.layers.Permute((2, 3, 4, 1), name="mimo_permute")(inputs)
    x = keras.layers.Reshape((height, width, channels * ensemble_size), name=PACK_NAME)(x)
    return inputs, x


def heads(features, head, *, num_classes, ensemble_size, share_het_layer, make_head):
    """The M heads on the trunk's features: logits [B, M, K].

    Args:
      features: the trunk's output [B, D].
      head: `build_model`'s head dict ({"type": "dense"} or {"type": "MCSoftmaxDenseFA", ...}).
      num_classes: K per head.
      ensemble_size: M.
      share_het_layer: one `MultiHeadMCSoftmaxDenseFA` (True) or M separate layers.
      make_head: `(head dict, outputs, name) -> layer`, `models.build_head` with the model's
        regularizers, seeds and initializer.

    Raises:
      ValueError: for a head type a MIMO model does not have.
    """
    head = dict(head or {"type": "dense"})
    if head.get("type") not in HEAD_TYPES:
        raise ValueError(
            f"A MIMO model's head must be one of {list(HEAD_TYPES)}. Received: "
            f"type={head.get('type')!r}"
        )
    shape = (ensemble_size, num_classes)
    if head["type"] == "dense":
        logits = make_head(head, num_classes * ensemble_size, "head")(features)
        return keras.layers.Reshape(shape, name="head_logits")(logits)
    if share_het_layer:
        shared = {**head, "type": "MultiHeadMCSoftmaxDenseFA", "ensemble_size": ensemble_size}
        return make_head(shared, num_classes, "head")(features)
    outputs = [
        keras.layers.Reshape((1, num_classes), name=f"head_{i}_logits")(
            make_head(head, num_classes, f"head_{i}")(features)
        )
        for i in range(ensemble_size)
    ]
    return keras.layers.Concatenate(axis=1, name="heads")(outputs)


@keras.saving.register_keras_serializable(package="het_ensembles")
class StackCopies(keras.layers.Layer):
    """[B, ...] -> [B, M, ...]: the same input for each of the M heads (a MIMO model at test)."""

    def __init__(self, ensemble_size, **kwargs):
        super().__init__(**kwargs)
        self.ensemble_size = int(ensemble_size)

    def call(self, x):
        return keras.ops.stack([x] * self.ensemble_size, axis=1)

    def get_config(self):
        return {**super().get_config(), "ensemble_size": self.ensemble_size}


def is_training_model(model):
    """Whether `model` is a MIMO training model (it has the stacking layer `PACK_NAME`)."""
    return any(layer.name == PACK_NAME for layer in model.layers)


def member_model(model):
    """The model a member saves and evaluates: images [B, H, W, C] -> logits [B, M, K].

    A MIMO training model (inputs [B, M, H, W, C]) is wrapped so that each image is tiled M
    times, sharing its layers and weights; any other model is returned as it is.
    """
    if not is_training_model(model):
        return model
    ensemble_size, *image_shape = model.input_shape[1:]
    images = keras.Input(shape=tuple(image_shape), name="images")
    tiled = StackCopies(ensemble_size, name="mimo_tile")(images)
    return keras.Model(images, model(tiled), name=f"{model.name}_member")
