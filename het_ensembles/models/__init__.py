"""Models: a backbone by name plus a dense or heteroscedastic classification head.

`build_model` is the one constructor the trainer, the demo and the tests use. Backbones:

- `resnet50`: ResNet-50 v1.5 as in uncertainty-baselines (`resnet.py`), ImageNet.
- `resnet152`: ResNet-152 v1.5, the same blocks and conventions (`resnet.py`), the paper's
  Tables 1 and 3.
- `inception_resnet_v2`: Keras' InceptionResNetV2 trunk (`inception_resnet_v2.py`), WebVision
  (the paper's Table 2).
- `wide_resnet`: WRN-28-10 by default (`wide_resnet.py`), CIFAR.
- `small_cnn`, `mlp`: small models for the embedded sets (`small.py`).
- `resnet50_mimo`, `small_cnn_mimo`: MIMO versions of those trunks (`mimo.py`): inputs
  [B, M, H, W, C] stacked in channels, logits [B, M, K] (`ensemble_size=M`).
- `resnet50_rank1`, `small_cnn_rank1`: rank-1 BNN versions (`rank1.py`, uncertainty-baselines'
  `resnet50_het_rank1`): images [B, H, W, C] tiled M times inside, logits [B, M, K].

The head is the last layer, always named "head", so `model.get_layer("head").input` is the
feature vector the covariance analysis needs (the one exception: `MCSoftmaxDense` with K = 2
returns one sigmoid logit, which `TwoClassLogits` turns into [B, 2]). The model outputs
logits [B, K]; for a
heteroscedastic head these are log of the Monte Carlo mean probabilities (`logits_only=True`),
so sparse cross-entropy `from_logits=True` is the right loss for both. The head runs in
float32 even under a `mixed_bfloat16` policy, like uncertainty-baselines' heads.
"""

import functools
import inspect
import numbers

import keras

from het_ensembles.models import inception_resnet_v2 as _inception_resnet_v2
from het_ensembles.models import mimo as _mimo
from het_ensembles.models import rank1 as _rank1
from het_ensembles.models import resnet as _resnet
from het_ensembles.models import small as _small
from het_ensembles.models import wide_resnet as _wide_resnet
from het_ensembles.models.seeding import SeedStream

# name -> (trunk function, dense-head initializer factory); the keywords a `functools.partial`
# trunk binds are fixed by the name, not options.
ARCHITECTURES = {
    "resnet50": (functools.partial(_resnet.features, depth=50), _resnet.dense_head_initializer),
    "resnet152": (functools.partial(_resnet.features, depth=152), _resnet.dense_head_initializer),
    "inception_resnet_v2": (
        _inception_resnet_v2.features,
        _inception_resnet_v2.dense_head_initializer,
    ),
    "wide_resnet": (_wide_resnet.features, _wide_resnet.dense_head_initializer),
    "small_cnn": (_small.small_cnn_features, _small.dense_head_initializer),
    "mlp": (_small.mlp_features, _small.dense_head_initializer),
}
# MIMO models (`mimo.py`): the trunk of their base architecture on M stacked images, M heads.
ARCHITECTURES.update({name: ARCHITECTURES[base] for name, base in _mimo.BASES.items()})
# Rank-1 BNN models (`rank1.py`): every conv / dense layer rank-1, the batch tiled M times.
RANK1_ARCHITECTURES = {"resnet50_rank1": "resnet50", "small_cnn_rank1": "small_cnn"}
ARCHITECTURES.update(
    {
        "resnet50_rank1": (_rank1.resnet50_rank1, _resnet.dense_head_initializer),
        "small_cnn_rank1": (_rank1.small_cnn_rank1, _small.dense_head_initializer),
    }
)
HEAD_NAME = "head"
IMAGE_ARCHITECTURES = (
    "resnet50",
    "resnet152",
    "inception_resnet_v2",
    "wide_resnet",
    "resnet50_rank1",
)


def build_model(
    architecture,
    *,
    input_shape,
    num_classes,
    head=None,
    l2=0.0,
    seed=None,
    ensemble_size=1,
    **kwargs,
):
    """Builds a classifier that maps inputs to logits [B, num_classes].

    Args:
      architecture: a name in `ARCHITECTURES`: "resnet50", "resnet152",
        "inception_resnet_v2", "wide_resnet", "small_cnn" or "mlp".
      input_shape: shape of one example, e.g. `het_ensembles.data.get_info(...).input_shape`.
      num_classes: number of classes K (outputs, for a multilabel sigmoid head).
      head: None or `{"type": "dense"}` for a Dense(K) layer, or
        `{"type": "<layer class in het_ensembles.layers>", **kwargs}` (e.g.
        `{"type": "MCSoftmaxDenseFA", "num_factors": 15, "temperature": 1.5}`) for that
        layer with `logits_only=True`; K, the name, dtype float32, the L2 regularizers and an
        integer layer seed (derived from `seed`, or drawn from Keras' global RNG when `seed` is
        None, so a saved model reloads with the same inference noise) are filled in unless
        given.
      l2: L2 coefficient, added as Keras regularizers (`model.losses`), so the trainer must
        not add it again: conv kernels, dense kernels and biases, the head's kernels and
        biases, and batch norm where uncertainty-baselines penalises it (WRN, not ResNet-50).
      seed: None (Keras' global RNG) or a non-negative int; the same seed gives the same
        initial weights.
      ensemble_size: M, the heads of a MIMO architecture (`mimo.py`; 1 for the others): its
        inputs are [B, M, *input_shape] and its logits [B, M, K] (`mimo.member_model` gives the
        model that tiles one image M times, as a member saves it); of a rank-1 architecture
        (`rank1.py`), whose inputs are [B, *input_shape] and logits [B, M, K].
      **kwargs: architecture options: resnet50 and resnet152 `zero_init_residual=True,
        bn_l2=0.0` (and spectral norm); inception_resnet_v2 none;
        wide_resnet `depth=28, width_multiplier=10, version=2`; small_cnn
        `filters=(32, 64), hidden_units=128`; mlp `hidden_units=(128, 128)`; a MIMO
        architecture its base's plus `share_het_layer=True` (one `MultiHeadMCSoftmaxDenseFA`
        for the M heads, else M `MCSoftmaxDenseFA` layers); a rank-1 architecture
        `rank1.RANK1_OPTIONS` (uncertainty-baselines' het_rank1_bnn.py flags), resnet50_rank1
        `use_ensemble_bn=False`, small_cnn_rank1 small_cnn's `filters`, `hidden_units`.

    Returns:
      An uncompiled `keras.Model` named after the architecture.

    Raises:
      ValueError: unknown architecture, option or head type, or bad sizes.
    """
    if architecture not in ARCHITECTURES:
        raise ValueError(
            f"Unknown architecture. Received: architecture={architecture!r}; allowed: "
            f"{sorted(ARCHITECTURES)}"
        )
    trunk, dense_initializer = ARCHITECTURES[architecture]
    mimo = _mimo.is_mimo(architecture)
    share_het_layer = kwargs.pop("share_het_layer", True) if mimo else None
    rank1 = architecture in RANK1_ARCHITECTURES
    if not (mimo or rank1) and ensemble_size != 1:
        raise ValueError(
            f"{architecture} has one head; ensemble_size > 1 needs a MIMO or rank-1 "
            f"architecture {sorted(_mimo.BASES) + sorted(RANK1_ARCHITECTURES)}. Received: "
            f"ensemble_size={ensemble_size!r}"
        )
    fixed = set(getattr(trunk, "keywords", {}))  # e.g. resnet152's depth
    options = set(inspect.signature(trunk).parameters) - {"inputs", "l2", "seeds"} - fixed
    options -= {"ensemble_size"}  # a rank-1 trunk's: build_model's own argument
    unknown = sorted(set(kwargs) - options)
    if unknown:
        raise ValueError(
            f"Unknown options for {architecture}: {unknown}. Allowed: {sorted(options)}"
        )
    input_shape = tuple(input_shape)
    if not input_shape or not all(isinstance(d, numbers.Integral) and d > 0 for d in input_shape):
        raise ValueError(
            f"input_shape must be positive integers. Received: input_shape={input_shape}"
        )
    if architecture in IMAGE_ARCHITECTURES and len(input_shape) != 3:
        raise ValueError(
            f"{architecture} needs image inputs (H, W, C). Received: input_shape={input_shape}"
        )
    if not isinstance(num_classes, numbers.Integral) or num_classes < 1:
        raise ValueError(
            f"num_classes must be an integer >= 1. Received: num_classes={num_classes}"
        )
    if not isinstance(l2, numbers.Real) or l2 < 0:
        raise ValueError(f"l2 must be a number >= 0. Received: l2={l2!r}")
    if seed is not None and (not isinstance(seed, numbers.Integral) or seed < 0):
        raise ValueError(f"seed must be None or an integer >= 0. Received: seed={seed!r}")

    seeds = SeedStream(None if seed is None else int(seed))
    if mimo:
        inputs, stacked = _mimo.stacked_inputs(input_shape, ensemble_size)
        features = trunk(stacked, l2=float(l2), seeds=seeds, **kwargs)
        logits = _mimo.heads(
            features,
            head,
            num_classes=int(num_classes),
            ensemble_size=ensemble_size,
            share_het_layer=share_het_layer,
            make_head=functools.partial(
                _named_head, l2=float(l2), seeds=seeds, initializer=dense_initializer
            ),
        )
        return keras.Model(inputs=inputs, outputs=logits, name=architecture)
    if rank1:
        if (
            not isinstance(ensemble_size, int)
            or isinstance(ensemble_size, bool)
            or ensemble_size < 1
        ):
            raise ValueError(
                f"ensemble_size must be an integer >= 1. Received: ensemble_size={ensemble_size!r}"
            )
        return _rank1.build_rank1_model(
            trunk,
            input_shape=input_shape,
            num_classes=int(num_classes),
            head=head or {"type": "dense"},
            l2=float(l2),
            seeds=seeds,
            head_seed=_head_seed(seeds),
            ensemble_size=ensemble_size,
            name=architecture,
            **kwargs,
        )
    head_layer = build_head(
        head, num_classes=int(num_classes), l2=float(l2), seeds=seeds, initializer=dense_initializer
    )
    inputs = keras.Input(shape=input_shape, name="inputs")
    features = trunk(inputs, l2=float(l2), seeds=seeds, **kwargs)
    logits = head_layer(features)
    if num_classes == 2 and logits.shape[-1] == 1:
        logits = TwoClassLogits(name="two_class_logits")(logits)
    return keras.Model(inputs=inputs, outputs=logits, name=architecture)


@keras.saving.register_keras_serializable(package="het_ensembles")
class TwoClassLogits(keras.layers.Layer):
    """One sigmoid logit z [B, 1] -> two-class log-probabilities [B, 2]: (log(1 - p), log p).

    `MCSoftmaxDense(2)` returns a single sigmoid logit for two classes (as edward2's does); the
    trainer, the metrics and the evaluator take logits [B, K], and these are normalised
    log-probabilities, so softmax cross-entropy on them is the layer's own Bernoulli NLL.
    """

    def __init__(self, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)

    def call(self, logit):
        logit = keras.ops.cast(logit, "float32")
        return keras.ops.concatenate(
            [keras.ops.log_sigmoid(-logit), keras.ops.log_sigmoid(logit)], axis=-1
        )

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], 2)


def _named_head(head, num_classes, name, *, l2, seeds, initializer):
    """`build_head` of `num_classes` outputs named `name` (a MIMO model's heads)."""
    return build_head(
        head, num_classes=num_classes, l2=l2, seeds=seeds, initializer=initializer, name=name
    )


def build_head(head, *, num_classes, l2, seeds, initializer, name=HEAD_NAME):
    """The classification layer named `name`, "head" by default (see `build_model`'s `head`
    argument)."""
    if head is None:
        head = {"type": "dense"}
    if not isinstance(head, dict) or "type" not in head:
        raise ValueError(
            "head must be None or a dict with a 'type' ('dense' or a layer class of "
            f"het_ensembles.layers). Received: head={head!r}"
        )
    kwargs = dict(head)
    head_type = kwargs.pop("type")
    regularizer = keras.regularizers.L2(l2) if l2 else None
    if head_type == "dense":
        if kwargs:
            raise ValueError(f"A dense head takes no options. Received: {kwargs}")
        return keras.layers.Dense(
            num_classes,
            kernel_initializer=initializer(seeds()),
            kernel_regularizer=regularizer,
            bias_regularizer=regularizer,
            dtype="float32",
            name=name,
        )
    layer_class = _heteroscedastic_layers().get(head_type)
    if layer_class is None:
        raise ValueError(
            f"Unknown head type. Received: type={head_type!r}; allowed: "
            f"{['dense', *sorted(_heteroscedastic_layers())]}"
        )
    parameters = inspect.signature(layer_class).parameters
    # The output count's name: the heteroscedastic layers' or the GP layer's (`units`).
    size_argument = next(a for a in ("num_outputs", "num_classes", "units") if a in parameters)
    for key, required in ((size_argument, num_classes), ("logits_only", True), ("name", name)):
        if key in kwargs and kwargs[key] != required:
            raise ValueError(
                f"The head's {key} is fixed by build_model. Received: {key}={kwargs[key]!r}; "
                f"expected {required!r}"
            )
    defaults = {
        size_argument: num_classes,
        "logits_only": True,
        "name": name,
        "dtype": "float32",
    }
    if "kernel_regularizer" in parameters:  # ExactSigmoidDense (as edward2's) takes none
        defaults.update(kernel_regularizer=regularizer, bias_regularizer=regularizer)
    feature_type = kwargs.pop("gp_random_feature_type", None)
    if feature_type is not None:  # uncertainty-baselines' SNGP models' random-feature kernels
        kwargs["custom_random_features_initializer"] = _random_feature_initializer(
            feature_type, seeds()
        )
    accepts_kwargs = any(p.kind is p.VAR_KEYWORD for p in parameters.values())
    if "seed" in parameters or accepts_kwargs:  # the contract's keyword-only `seed`
        defaults["seed"] = _head_seed(seeds)
    return layer_class(**{**defaults, **kwargs})


def _random_feature_initializer(feature_type, seed):
    """uncertainty-baselines' `make_random_feature_initializer`: "orf" or "rff", stddev 0.05."""
    from het_ensembles.layers import OrthogonalRandomFeatures

    if feature_type == "orf":
        return OrthogonalRandomFeatures(stddev=0.05, seed=seed)
    if feature_type == "rff":
        return keras.initializers.RandomNormal(stddev=0.05, seed=seed)
    raise ValueError(f"gp_random_feature_type must be 'orf' or 'rff'. Received: {feature_type!r}")


def _head_seed(seeds):
    """An integer seed for a heteroscedastic head, even when the model seed is None.

    The head's inference noise is fixed by its seed, which `get_config` saves, so a model
    loaded from `model.keras` predicts exactly as the one that was saved. Without a model
    seed the head's seed comes from Keras' global RNG (`keras.utils.set_random_seed`).
    """
    seed = seeds()
    if seed is None:
        seed = int(keras.random.randint((), 0, 2**31 - 1))
    return seed


def _heteroscedastic_layers():
    """Layer classes of `het_ensembles.layers` by name ({} until that module has them)."""
    from het_ensembles import layers

    return {
        name: value
        for name, value in vars(layers).items()
        if isinstance(value, type) and issubclass(value, keras.layers.Layer)
    }
