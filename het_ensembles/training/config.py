"""The trainer's config schema: every field, its default and its allowed range (no TensorFlow).

Where it sits: configs/*.py -> **config** -> trainer. A config file's `get_config()` sets some
fields; `complete_config` fills in the rest from `default_config()` (uncertainty-baselines'
ImageNet ResNet-50 values) and `validate_config` checks each range before any TensorFlow work.
Importing this module, loading a config and completing it (`load_config`, `complete_config`)
do not import TensorFlow, so configs can be read and launched from machines without it;
`validate_config` checks the model name against `het_ensembles.models`, which imports Keras.
"""

import importlib.util
import json
import math
import numbers
import os
import sys

import ml_collections
from ml_collections import config_dict

HEADS = ("deterministic", "heteroscedastic", "sngp", "hetsngp")
# The SNGP heads' fields, named as uncertainty-baselines' sngp.py / hetsngp.py flags (the
# RandomFeatureGaussianProcess argument each sets in brackets, see head_kwargs).
GP_FIELDS = (
    "gp_hidden_dim",  # num_inducing
    "gp_scale",  # gp_kernel_scale
    "gp_bias",  # gp_output_bias
    "gp_input_normalization",  # normalize_input
    "gp_random_feature_type",  # custom_random_features_initializer: "orf" or "rff", stddev 0.05
    "gp_cov_ridge_penalty",
    "gp_cov_discount_factor",  # gp_cov_momentum
    "gp_mean_field_factor",  # sngp: inference logits / sqrt(1 + factor * var); < 0: none
    "gp_output_imagenet_initializer",  # output weights RandomNormal(0.01) (the ResNet-50 models)
    "scale_random_features",
    "l2_regularization",  # None: the layer's default (GP 0, HetSNGP 1e-6)
    "sngp_var_weight",
    "het_var_weight",
)
HEAD_CLASSES = ("MCSoftmaxDenseFA", "MCSigmoidDenseFA", "MCSoftmaxDense", "ExactSigmoidDense")
# Heteroscedastic heads with per-label sigmoid outputs: they need multilabel=True (binary CE).
# head="deterministic" with multilabel=True is the third sigmoid head: a Dense layer whose
# logits are sigmoid-ed.
SIGMOID_HEAD_CLASSES = ("MCSigmoidDenseFA", "ExactSigmoidDense")
# Fields that switch on a feature of the Monte Carlo heads; ExactSigmoidDense (closed form, no
# temperature, no factors) has none of them.
MC_HEAD_OPTIONS = (
    "temperature_grid",
    "learn_temperature",
    "tune_temperature",
    "latent_dim",
    "parameter_efficient",
)
# Fields that may change between a killed run and its resumption (infrastructure, not the run).
RESUMABLE_FIELDS = ("data_dir", "tpu", "checkpoint_interval", "eval_steps")
# Fields only a heteroscedastic head reads; a deterministic member's config.json leaves them out.
HETEROSCEDASTIC_FIELDS = (
    "head_class",
    "num_factors",
    "temperature",
    "learn_temperature",
    "tune_temperature",
    "temperature_lower_bound",
    "temperature_upper_bound",
    "latent_dim",
    "train_mc_samples",
    "test_mc_samples",
    "share_samples_across_batch",
    "parameter_efficient",
    "mc_chunk_size",
    "mc_memory_budget",
    "temperature_grid",
)


class ConfigError(ValueError):
    """A config value outside its allowed range (raised before any training)."""


def default_config():
    """Every field the trainer reads, with uncertainty-baselines' ImageNet ResNet-50 values.

    Config files start from this and override what their leaderboard row changes; a config that
    leaves a field out gets the value here.

    Returns:
      An unlocked `ml_collections.ConfigDict`.
    """
    config = ml_collections.ConfigDict()
    config.seed = 0

    # Data.
    config.dataset = "imagenet2012"
    config.label_field = config_dict.placeholder(str)  # cifar10_n: the noisy label field
    config.data_dir = config_dict.placeholder(str)
    config.image_size = config_dict.placeholder(int)  # None: the dataset's native size
    config.steps_per_epoch = config_dict.placeholder(int)  # None: train examples // batch
    config.eval_steps = config_dict.placeholder(int)  # None: the whole test split
    # Held out of train for per-epoch monitoring and model selection; 0: none (uncertainty-
    # baselines' ImageNet default train_proportion=1.0), and the test set is monitored instead.
    config.validation_fraction = 0.0
    config.validation_seed = 0  # which examples of an in-memory set are held out
    config.keep_best_epoch = False  # the member is the epoch with the lowest val/nll

    # Model.
    config.model = "resnet50"
    config.model_kwargs = ml_collections.ConfigDict()  # e.g. depth, width_multiplier
    # Fine-tuning: a finished member directory whose backbone weights initialise the model (the
    # config's head stays new: training/init_from_member.py). None: train from scratch.
    config.init_from_member = config_dict.placeholder(str)
    config.head = "deterministic"
    # Heads of one model evaluated as ensemble members (MIMO, rank-1 BNN): the model outputs
    # logits [B, ensemble_size, K]; 1: an ordinary model, logits [B, K].
    config.ensemble_size = 1
    # Rank-1 BNN models (model="*_rank1"): epochs over which the KL weight rises linearly to 1
    # (uncertainty-baselines' het_rank1_bnn.py --kl_annealing_epochs); 0: full weight at once.
    config.kl_annealing_epochs = 0
    # MIMO models (models/mimo.py) only: uncertainty-baselines' het_mimo.py batch flags
    # (training/mimo_batches.py); per_core_batch_size counts the rows the model sees.
    config.batch_repetitions = 1
    config.input_repetition_probability = 0.0
    config.head_class = "MCSoftmaxDenseFA"
    config.num_factors = 15
    config.temperature = 1.5
    config.temperature_grid = ()  # non-empty: train one member per value, keep the best val/nll
    config.learn_temperature = False
    config.tune_temperature = False  # edward2 main: tau = lower + (upper - lower) * sigmoid(p)
    config.temperature_lower_bound = config_dict.placeholder(float)  # None: 0.3
    config.temperature_upper_bound = config_dict.placeholder(float)  # None: 3.0
    config.latent_dim = config_dict.placeholder(int)  # HET-XL: noise in the D-dim pre-logits
    config.train_mc_samples = 1000
    config.test_mc_samples = 5000
    config.share_samples_across_batch = False
    config.parameter_efficient = False
    config.mc_chunk_size = config_dict.placeholder(int)
    config.mc_memory_budget = config_dict.placeholder(int)  # MiB of kept noise; None: the layer's
    config.multilabel = False  # sigmoid head trained with binary cross-entropy
    # SNGP / HetSNGP heads (head="sngp" / "hetsngp"; uncertainty-baselines' flag defaults).
    config.gp_hidden_dim = 1024
    config.gp_scale = 1.0
    config.gp_bias = 0.0
    config.gp_input_normalization = False
    config.gp_random_feature_type = "orf"
    config.gp_cov_ridge_penalty = 1.0
    config.gp_cov_discount_factor = -1.0
    config.gp_mean_field_factor = 1.0
    config.gp_output_imagenet_initializer = False
    config.scale_random_features = True
    config.l2_regularization = config_dict.placeholder(float)
    config.sngp_var_weight = 1.0
    config.het_var_weight = 1.0

    # Optimisation: SGD with Nesterov momentum, linear warm-up, then step decay.
    config.per_core_batch_size = 128
    config.train_epochs = 90
    config.base_learning_rate = 0.1  # per `base_batch_size` examples
    config.base_batch_size = 256  # lr = base_learning_rate * global_batch / base_batch_size
    config.one_minus_momentum = 0.1
    config.nesterov = True  # uncertainty-baselines' SGD; BiT fine-tuning uses plain momentum
    config.l2 = 1e-4
    config.warmup_epochs = 5
    config.lr_decay_epochs = (30, 60, 80)  # of `lr_decay_base_epochs`, scaled to train_epochs
    config.lr_decay_base_epochs = 90
    config.lr_decay_ratio = 0.1
    config.label_smoothing = 0.0
    config.num_bins = 15  # ECE bins
    # Mixup (Zhang et al. 2018), as uncertainty-baselines' ImageNet heteroscedastic.py flags:
    # mixup_alpha > 0 trains on mixed batches and adds `test/*+rescaling` metrics (mixup.py).
    config.mixup_alpha = 0.0
    config.same_mix_weight_per_batch = False
    config.use_random_shuffling = False
    config.use_truncated_beta = True

    # Infrastructure.
    config.use_bfloat16 = False
    config.tpu = config_dict.placeholder(str)  # TPU name or "local"; None: no TPU
    config.checkpoint_interval = 1  # epochs
    return config


# Where a wheel installs `configs/` (pyproject.toml's data-files): <prefix>/share/het-ensembles/.
SHIPPED_CONFIGS = os.path.join("share", "het-ensembles", "configs")


def shipped_config_dirs():
    """Where the shipped `configs/` can be, in order: the checkout's, beside the package (an
    editable install), then a wheel's, `<sys.prefix>/share/het-ensembles/configs`."""
    package_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    return [os.path.join(package_root, "configs"), os.path.join(sys.prefix, SHIPPED_CONFIGS)]


def shipped_config_dir():
    """The first of `shipped_config_dirs()` that exists, or None."""
    return next((path for path in shipped_config_dirs() if os.path.isdir(path)), None)


def resolve_config_path(path):
    """The config file that `--config=path` names.

    A path to an existing file is used as it is. Otherwise a relative path is looked up among the
    shipped configs, with or without its leading `configs/`, so the documented
    `--config=configs/imagenet/heteroscedastic.py` works from any directory once the package is
    installed, from a checkout or a wheel.

    A `:argument` after the file (`configs/vtab/finetune.py:dtd`) is kept: ml_collections'
    `config_flags` passes what follows the first colon to `get_config`.

    Raises:
      ConfigError: naming the file, the current directory and the shipped configs' directories.
    """
    if os.path.isfile(path):
        return os.path.abspath(path)
    file, colon, argument = path.partition(":")
    if colon and file.endswith(".py"):
        return resolve_config_path(file) + colon + argument
    if not os.path.isabs(path):
        parts = os.path.normpath(path).split(os.sep)
        inside = parts[1:] if parts[0] == "configs" else parts
        for root in shipped_config_dirs():
            candidate = os.path.join(root, *inside)
            if inside and os.path.isfile(candidate):
                return candidate
    shipped = shipped_config_dir()
    where = f"shipped configs in {shipped}" if shipped else "no shipped configs installed"
    raise ConfigError(
        f"No config file at this path, relative to the current directory ({os.getcwd()}) or "
        f"among the shipped configs ({where}). Received: config={path!r}"
    )


def load_config(path):
    """Calls `get_config()` of the config file at `path`, as `--config=path` does.

    Config files use it to start from a sibling file and override a few fields.

    Args:
      path: a Python file defining `get_config() -> ConfigDict`, or a shipped config's name
        (`resolve_config_path`); `file.py:argument` calls `get_config(argument)`.

    Returns:
      The `ConfigDict` it returns.

    Raises:
      ConfigError: if there is no such file.
    """
    path, colon, argument = resolve_config_path(path).partition(":")
    module_name = "het_ensembles_config_" + str(abs(hash(path)))
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config(argument) if colon else module.get_config()


def complete_config(config):
    """`default_config()` updated with the fields of `config`; unknown fields are errors.

    Args:
      config: a `ConfigDict` (or dict) holding some of the fields of `default_config()`.

    Returns:
      A new, unlocked `ConfigDict` with every field.

    Raises:
      ConfigError: for a field `default_config()` does not have, or a value of the wrong type.
    """
    full = default_config()
    values = config.to_dict() if isinstance(config, ml_collections.ConfigDict) else dict(config)
    unknown = sorted(set(values) - set(full.keys()))
    if unknown:
        raise ConfigError(
            f"Unknown config fields. Received: {unknown}; allowed: {sorted(full.keys())}"
        )
    for name, value in values.items():
        try:
            setattr(full, name, value)
        except TypeError as error:
            raise ConfigError(
                f"Wrong type for config.{name}. Received: {name}={value!r}"
            ) from error
    return full


def validate_config(config, *, num_classes=None):
    """Checks every field's range; with `num_classes`, also `num_factors <= num_classes`.

    Args:
      config: a complete config (see `complete_config`).
      num_classes: the dataset's number of classes K, if known.

    Raises:
      ConfigError: naming the field, the value received and the allowed range.
    """
    _check_run(config)
    _check_optimisation(config)
    _check_monitoring(config)
    _check_mimo(config)
    _check_mixup(config)
    if config.head == "heteroscedastic":
        _check_heteroscedastic_head(config, num_classes)
    if config.head in ("sngp", "hetsngp"):
        _check_gp_head(config, num_classes)


# The checks below run in this order (validate_config's): the first failing one is reported.


def _check(config, ok, name, allowed):
    """Raises the ConfigError of field `name` unless `ok`."""
    if not ok:
        raise ConfigError(
            f"Invalid config.{name}. Received: {name}={config[name]!r}; allowed: {allowed}"
        )


def _check_int(config, name, low, allowed, optional=False):
    """`_check` of an integer field `name` >= `low` (or None when `optional`)."""
    _check(config, _is_int(config[name], low, optional), name, allowed)


def _check_float(config, name, low, high, allowed, low_open=False, high_open=False):
    """`_check` of a finite float field `name` in [low, high] (ends open as asked)."""
    _check(config, _is_float(config[name], low, high, low_open, high_open), name, allowed)


def _is_int(value, low, optional=False):
    """Whether `value` is an integer (not a bool) >= `low`, or None when `optional`."""
    if value is None:
        return optional
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= low


def _is_float(value, low, high, low_open=False, high_open=False):
    """Whether `value` is a finite real (not a bool) in [low, high] (ends open as asked)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return False
    value = float(value)
    if not math.isfinite(value):
        return False
    above = value > low if low_open else value >= low
    below = value < high if high_open else value <= high
    return above and below


def _check_run(config):
    """What runs: seed, dataset, model, head, input size, steps and batch size, epochs."""
    # Imported here so that loading a config stays free of TensorFlow (models imports Keras).
    from het_ensembles import data, models

    _check_int(config, "seed", 0, "an integer >= 0")
    _check(
        config, isinstance(config.dataset, str) and config.dataset, "dataset", data.known_names()
    )
    _check(config, config.model in models.ARCHITECTURES, "model", sorted(models.ARCHITECTURES))
    _check(config, config.head in HEADS, "head", list(HEADS))
    _check(
        config,
        config.init_from_member is None
        or (isinstance(config.init_from_member, str) and config.init_from_member),
        "init_from_member",
        "None or a finished member directory (its backbone initialises the model)",
    )
    _check(config, config.head_class in HEAD_CLASSES, "head_class", list(HEAD_CLASSES))
    _check_int(config, "image_size", 1, "None or an integer >= 1", optional=True)
    _check_int(config, "steps_per_epoch", 1, "None or an int >= 1", optional=True)
    _check_int(config, "eval_steps", 1, "None or an integer >= 1", optional=True)
    _check_int(config, "per_core_batch_size", 1, "an integer >= 1")
    _check_int(config, "train_epochs", 1, "an integer >= 1")
    _check_int(config, "ensemble_size", 1, "an integer >= 1 (heads of one model)")
    _check_int(config, "kl_annealing_epochs", 0, "an integer >= 0 (0: no annealing)")
    _check(
        config,
        config.ensemble_size == 1 or not config.multilabel,
        "ensemble_size",
        "1 with multilabel=True (multi-head members are softmax models)",
    )


def _check_mimo(config):
    """The MIMO batch fields: only a MIMO model takes them; its head and batch must fit."""
    from het_ensembles.models import mimo

    _check_int(config, "batch_repetitions", 1, "an integer >= 1")
    _check_float(config, "input_repetition_probability", 0, 1, "a float in [0, 1]")
    if not mimo.is_mimo(config.model):
        for name, default in (("batch_repetitions", 1), ("input_repetition_probability", 0.0)):
            _check(
                config,
                config[name] == default,
                name,
                f"{default!r} unless model is a MIMO architecture {sorted(mimo.BASES)}",
            )
        return
    _check(
        config,
        config.per_core_batch_size % config.batch_repetitions == 0,
        "batch_repetitions",
        f"a divisor of per_core_batch_size={config.per_core_batch_size} (each batch of "
        "per_core_batch_size / batch_repetitions images is repeated batch_repetitions times)",
    )
    _check(
        config,
        config.head == "deterministic"
        or (config.head == "heteroscedastic" and config.head_class == "MCSoftmaxDenseFA"),
        "head",
        f"'deterministic', or 'heteroscedastic' with head_class='MCSoftmaxDenseFA', for a MIMO "
        f"model (model={config.model!r})",
    )
    _check(config, config.mixup_alpha == 0, "mixup_alpha", "0 with a MIMO model")


def _check_optimisation(config):
    """The optimiser and its schedule: learning rate, momentum, L2, warm-up, decay, smoothing."""
    _check_float(config, "base_learning_rate", 0, math.inf, "a finite float > 0", low_open=True)
    _check_int(config, "base_batch_size", 1, "an integer >= 1")
    _check_float(
        config,
        "one_minus_momentum",
        0,
        1,
        "a float in (0, 1] (momentum = 1 - one_minus_momentum)",
        low_open=True,
    )
    _check(config, isinstance(config.nesterov, bool), "nesterov", "True or False")
    _check_float(config, "l2", 0, math.inf, "a finite float >= 0")
    _check_float(config, "warmup_epochs", 0, math.inf, "a float >= 0")
    _check_int(config, "lr_decay_base_epochs", 1, "an integer >= 1")
    decay = tuple(config.lr_decay_epochs)
    _check(
        config,
        all(_is_int(e, 0) and e <= config.lr_decay_base_epochs for e in decay)
        and list(decay) == sorted(decay),
        "lr_decay_epochs",
        f"increasing integers in [0, lr_decay_base_epochs={config.lr_decay_base_epochs}]",
    )
    _check_float(config, "lr_decay_ratio", 0, 1, "(0, 1]", low_open=True)
    _check_float(config, "label_smoothing", 0, 1, "a float in [0, 1]")


def _check_monitoring(config):
    """Evaluation, checkpoints, precision, labels, the validation split and what it chooses."""
    _check_int(config, "num_bins", 1, "an integer >= 1")
    _check_int(config, "checkpoint_interval", 1, "an integer >= 1")
    _check(config, isinstance(config.use_bfloat16, bool), "use_bfloat16", "True or False")
    _check(config, isinstance(config.multilabel, bool), "multilabel", "True or False")
    _check_float(
        config,
        "validation_fraction",
        0,
        1,
        "a float in [0, 1) (the fraction of train held out for validation)",
        high_open=True,
    )
    _check_int(config, "validation_seed", 0, "an integer >= 0")
    _check(
        config,
        isinstance(config.keep_best_epoch, bool)
        and not (config.keep_best_epoch and config.validation_fraction == 0),
        "keep_best_epoch",
        "False, or True with validation_fraction > 0 (the best epoch is chosen on validation NLL)",
    )
    grid = config.temperature_grid
    _check(
        config,
        isinstance(grid, (tuple, list))
        and all(_is_float(t, 0, math.inf, low_open=True) for t in grid)
        and len(set(grid)) == len(grid)
        and not (grid and (config.head != "heteroscedastic" or config.validation_fraction == 0)),
        "temperature_grid",
        "() or distinct finite floats > 0, with head='heteroscedastic' and "
        "validation_fraction > 0 (the temperature is chosen on validation NLL)",
    )


def _check_mixup(config):
    """Mixup's fields: alpha >= 0 (0: off), three booleans; with mixup, a softmax head that
    uncertainty-baselines trains with mixup (deterministic.py, heteroscedastic.py)."""
    _check_float(config, "mixup_alpha", 0, math.inf, "a finite float >= 0 (0: no mixup)")
    for name in ("same_mix_weight_per_batch", "use_random_shuffling", "use_truncated_beta"):
        _check(config, isinstance(config[name], bool), name, "True or False")
    if config.mixup_alpha > 0:
        _check(
            config,
            config.head in ("deterministic", "heteroscedastic")
            and not config.multilabel
            and config.ensemble_size == 1,
            "mixup_alpha",
            "0 unless head is 'deterministic' or 'heteroscedastic' with multilabel=False and "
            "ensemble_size=1 (mixup mixes one-hot softmax targets; uncertainty-baselines' MIMO "
            f"and rank-1 scripts have no mixup). Received head={config.head!r}, "
            f"multilabel={config.multilabel!r}, ensemble_size={config.ensemble_size!r}",
        )


def _check_heteroscedastic_head(config, num_classes):
    """The heteroscedastic head's fields; with `num_classes`, also `num_factors <= num_classes`."""
    _check_float(config, "temperature", 0, math.inf, "a finite float > 0", low_open=True)
    _check_int(config, "train_mc_samples", 1, "an integer >= 1")
    _check_int(config, "test_mc_samples", 1, "an integer >= 1")
    _check_int(config, "mc_chunk_size", 1, "None or int >= 1", optional=True)
    _check_int(config, "mc_memory_budget", 0, "None or an integer >= 0 (MiB)", optional=True)
    sigmoid = config.head_class in SIGMOID_HEAD_CLASSES
    _check(
        config,
        sigmoid == config.multilabel,
        "multilabel",
        f"True exactly when head_class is a sigmoid head {list(SIGMOID_HEAD_CLASSES)} "
        "(per-label binary cross-entropy), False with the softmax heads; head='deterministic' "
        "takes either (a Dense softmax or sigmoid head)",
    )
    if config.head_class == "ExactSigmoidDense":
        for name in MC_HEAD_OPTIONS:
            _check(
                config,
                not config[name],
                name,
                f"{default_config()[name]!r} with head_class='ExactSigmoidDense' (its "
                "predictive is exact: no temperature, samples or factors)",
            )
        return
    if config.head_class != "MCSoftmaxDense":
        low = 0 if sigmoid else 1
        upper = "num_classes" if num_classes is None else f"num_classes={num_classes}"
        _check(
            config,
            _is_int(config.num_factors, low)
            and (num_classes is None or config.num_factors <= num_classes),
            "num_factors",
            f"an integer in [{low}, {upper}]",
        )


def _check_gp_head(config, num_classes):
    """The SNGP / HetSNGP head's fields (HetSNGP: also its MC fields and num_factors)."""
    _check_int(config, "gp_hidden_dim", 1, "an integer >= 1")
    _check_float(config, "gp_scale", 0, math.inf, "a finite float > 0", low_open=True)
    _check_float(config, "gp_bias", -math.inf, math.inf, "a finite float")
    _check(
        config,
        config.gp_random_feature_type in ("orf", "rff"),
        "gp_random_feature_type",
        "'orf' or 'rff'",
    )
    _check_float(config, "gp_cov_ridge_penalty", 0, math.inf, "a float > 0", low_open=True)
    _check_float(
        config,
        "gp_cov_discount_factor",
        -math.inf,
        1,
        "< 0 (exact, reset per epoch) or in [0, 1)",
        high_open=True,
    )
    _check_float(config, "gp_mean_field_factor", -math.inf, math.inf, "a finite float")
    _check(config, not config.multilabel, "multilabel", "False with the SNGP heads (softmax)")
    if config.head == "hetsngp":
        _check_float(config, "temperature", 0, math.inf, "a finite float > 0", low_open=True)
        _check_int(config, "train_mc_samples", 1, "an integer >= 1")
        _check_int(config, "test_mc_samples", 1, "an integer >= 1")
        upper = "num_classes" if num_classes is None else f"num_classes={num_classes}"
        _check(
            config,
            _is_int(config.num_factors, 1)
            and (num_classes is None or config.num_factors <= num_classes),
            "num_factors",
            f"an integer in [1, {upper}]",
        )
        for name in ("sngp_var_weight", "het_var_weight"):
            _check_float(config, name, 0, math.inf, "a finite float >= 0")


def _gp_head_kwargs(config):
    """`build_model`'s head for head="sngp" (the GP, mean-field logits at inference) or
    "hetsngp" (HeteroscedasticSNGPLayer), as uncertainty-baselines' SNGP models build them."""
    kwargs = {
        "num_inducing": config.gp_hidden_dim,
        "gp_kernel_scale": config.gp_scale,
        "gp_output_bias": config.gp_bias,
        "normalize_input": config.gp_input_normalization,
        "gp_cov_momentum": config.gp_cov_discount_factor,
        "gp_cov_ridge_penalty": config.gp_cov_ridge_penalty,
        "scale_random_features": config.scale_random_features,
        "use_custom_random_features": True,
        "gp_random_feature_type": config.gp_random_feature_type,  # build_model's initializer
    }
    if config.l2_regularization is not None:
        kwargs["l2_regularization"] = config.l2_regularization
    if config.gp_output_imagenet_initializer:
        kwargs["kernel_initializer"] = {"class_name": "RandomNormal", "config": {"stddev": 0.01}}
    if config.head == "sngp":
        return {
            "type": "RandomFeatureGaussianProcess",
            "mean_field_factor": config.gp_mean_field_factor,
            **kwargs,
        }
    return {
        "type": "HeteroscedasticSNGPLayer",
        "num_factors": config.num_factors,
        "temperature": config.temperature,
        "train_mc_samples": config.train_mc_samples,
        "test_mc_samples": config.test_mc_samples,
        "share_samples_across_batch": config.share_samples_across_batch,
        "sngp_var_weight": config.sngp_var_weight,
        "het_var_weight": config.het_var_weight,
        "mc_chunk_size": config.mc_chunk_size,
        **kwargs,
    }


def head_kwargs(config):
    """The `head` argument of `models.build_model` for `config` (a dict of layer arguments)."""
    if config.head == "deterministic":
        return {"type": "dense"}
    if config.head in ("sngp", "hetsngp"):
        return _gp_head_kwargs(config)
    if config.head_class == "ExactSigmoidDense":  # closed form: none of the MC head's fields
        return {"type": "ExactSigmoidDense"}
    kwargs = {
        "type": config.head_class,
        "temperature": config.temperature,
        "train_mc_samples": config.train_mc_samples,
        "test_mc_samples": config.test_mc_samples,
        "share_samples_across_batch": config.share_samples_across_batch,
        "learn_temperature": config.learn_temperature,
        "tune_temperature": config.tune_temperature,
        "temperature_lower_bound": config.temperature_lower_bound,
        "temperature_upper_bound": config.temperature_upper_bound,
        "latent_dim": config.latent_dim,
        "mc_chunk_size": config.mc_chunk_size,
    }
    if config.mc_memory_budget is not None:
        kwargs["mc_memory_budget"] = config.mc_memory_budget
    if config.head_class != "MCSoftmaxDense":
        kwargs["num_factors"] = config.num_factors
        kwargs["parameter_efficient"] = config.parameter_efficient
    return kwargs


def config_record(config, *, num_classes):
    """What a member's config.json holds: the fields the run used, plus `num_classes`.

    A deterministic member leaves out `HETEROSCEDASTIC_FIELDS`, which its model never read.
    Tuples become lists, as JSON stores them, so a record compares equal to one read back.
    """
    record = config.to_dict()
    if config.head == "deterministic":
        for name in HETEROSCEDASTIC_FIELDS:
            record.pop(name, None)
    record["num_classes"] = int(num_classes)
    record["multilabel"] = bool(config.multilabel)
    return json.loads(json.dumps(record))
