"""TFDS datasets with uncertainty-baselines preprocessing: ImageNet and its robustness sets, CIFAR.

Sets: `imagenet2012`, `imagenet2012_corrupted/<corruption>_<severity>` (ImageNet-C),
`imagenet_a` (ImageNet-A), `imagenet_r` (ImageNet-R), `imagenet_v2` (ImageNetV2,
matched-frequency; `imagenet_v2/<variant>` for the others), `cifar10`, `cifar100`, `cifar10_n`,
`cifar10_corrupted/<corruption>_<severity>` (CIFAR-10-C, TFDS corruption names). The robustness
sets have a "test" split only and 1000-class ImageNet (or 10-class CIFAR) labels; ImageNet-A
and ImageNet-R use 200 of the classes (`class_subsets`).

Preprocessing follows uncertainty-baselines (`datasets/resnet_preprocessing.py`, `cifar.py`;
the ImageNet part lives in `image_preprocessing`, shared with the streaming sets):

- ImageNet train: Inception-style random crop (area 8%-100%, aspect ratio 3/4-4/3, decoded
  straight from the JPEG crop window), bicubic resize to `image_size`, random left-right flip.
- ImageNet eval (validation and every `imagenet2012_corrupted` set): central crop of 224/256 of
  the shorter side (= resize to 256, center crop 224), bicubic resize to `image_size`. TFDS
  stores ImageNet-C already center-cropped to 224; uncertainty-baselines'
  `ImageNetCorruptedDataset` still applies this eval crop, and so do we, so corrupted-set
  numbers are comparable with its leaderboard.
- ImageNet-A, ImageNet-R, ImageNetV2: the same eval crop. uncertainty-baselines has no loader
  for them; its leaderboard columns come from robustness-metrics, which feeds uncertainty-
  baselines models `ub.datasets.resnet_preprocessing.preprocess_for_eval`
  (`robustness_metrics/models/uncertainty_baselines.py`), the crop above. These images are
  decoded whole (`decode_image`: some files of web-collected sets need not be JPEG) and then
  cropped, which gives the same pixels as decoding the crop window.
- Both then scale to [0, 1] and normalise with the ImageNet mean / std.
- CIFAR train: pad 4 pixels, random 32x32 crop, random flip; CIFAR eval (and CIFAR-10-C, as
  uncertainty-baselines' `baselines/cifar/utils.py` `load_cifar10_c`): unchanged; both
  normalised with the CIFAR-10 mean / std (uncertainty-baselines uses the CIFAR-10 statistics
  for CIFAR-100 too).

Differences from uncertainty-baselines' ResNet-50 scripts:

- Input scale (a real difference, kept for now): `baselines/imagenet/deterministic.py` and
  `heteroscedastic.py` build `ImageNetDataset` with its default `normalize_input=False`, so
  their model sees the bicubic-resized crop as float pixels in [0, 255] (`convert_image_dtype`
  is a no-op on float input) without mean/std normalisation; only the EfficientNet scripts pass
  `normalize_input=True` (and then subtract a [0, 1] mean from [0, 255] pixels). We divide by
  255 and normalise with the ImageNet mean / std, for training and every eval set alike.
- Eval crop fraction: `image_size / (image_size + 32)` there; we keep 224/256 for any
  `image_size` (the same at 224) so that small smoke-test images see the same field of view.

Split "test" is TFDS "validation" for ImageNet and ImageNet-C; `cifar10_n` has its noisy labels
(`label_field`) only on "train", so its "test" and "test_clean" both use the clean `label`.
"""

import dataclasses
import importlib.resources

import tensorflow as tf
import tensorflow_datasets as tfds

from het_ensembles.data import class_subsets, image_preprocessing, pipeline

CIFAR10_MEAN = image_preprocessing.CIFAR10_MEAN
CIFAR10_STD = image_preprocessing.CIFAR10_STD
IMAGENET_IMAGE_SIZE = 224
IMAGENET_SHUFFLE_BUFFER = 16384  # uncertainty-baselines ImageNetDataset default

# tensorflow_datasets imagenet2012_corrupted BENCHMARK_CORRUPTIONS + EXTRA_CORRUPTIONS.
BENCHMARK_CORRUPTIONS = (
    "gaussian_noise",
    "shot_noise",
    "impulse_noise",
    "defocus_blur",
    "glass_blur",
    "motion_blur",
    "zoom_blur",
    "snow",
    "frost",
    "fog",
    "brightness",
    "contrast",
    "elastic_transform",
    "pixelate",
    "jpeg_compression",
)
EXTRA_CORRUPTIONS = ("gaussian_blur", "saturate", "spatter", "speckle_noise")
SEVERITIES = (1, 2, 3, 4, 5)

# tensorflow_datasets cifar10_corrupted BENCHMARK_CORRUPTIONS (TFDS names: "frosted_glass_blur"
# and "elastic" are ImageNet-C's glass_blur and elastic_transform), the list uncertainty-
# baselines evaluates (`baselines/cifar/utils.py` `load_corrupted_test_info("cifar10")`).
CIFAR10_C_BENCHMARK_CORRUPTIONS = (
    "gaussian_noise",
    "shot_noise",
    "impulse_noise",
    "defocus_blur",
    "frosted_glass_blur",
    "motion_blur",
    "zoom_blur",
    "snow",
    "frost",
    "fog",
    "brightness",
    "contrast",
    "elastic",
    "pixelate",
    "jpeg_compression",
)
CIFAR10_C_EXTRA_CORRUPTIONS = ("gaussian_blur", "saturate", "spatter", "speckle_noise")

# tensorflow_datasets imagenet_v2 configs; the leaderboard's ImageNetV2 column is
# matched-frequency (uncertainty-baselines baselines/imagenet/README.md, "Metrics" 5).
IMAGENET_V2_VARIANTS = ("matched-frequency", "threshold-0.7", "topimages")
IMAGENET_V2_DEFAULT_VARIANT = "matched-frequency"

CIFAR10N_LABEL_FIELDS = (
    "worse_label",
    "aggre_label",
    "random_label1",
    "random_label2",
    "random_label3",
    "label",
)
CIFAR10N_DEFAULT_LABEL_FIELD = "worse_label"  # the noisiest (40% noise), Wei et al. 2022

CIFAR10_CLASS_NAMES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
_CIFAR100_NAMES = """apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl boy
    bridge bus butterfly camel can castle caterpillar cattle chair chimpanzee clock cloud cockroach couch
    crab crocodile cup dinosaur dolphin elephant flatfish forest fox girl hamster house kangaroo
    keyboard lamp lawn_mower leopard lion lizard lobster man maple_tree motorcycle mountain mouse
    mushroom oak_tree orange orchid otter palm_tree pear pickup_truck pine_tree plain plate poppy
    porcupine possum rabbit raccoon ray road rocket rose sea seal shark shrew skunk skyscraper
    snail snake spider squirrel streetcar sunflower sweet_pepper table tank telephone television
    tiger tractor train trout tulip turtle wardrobe whale willow_tree wolf woman worm"""
CIFAR100_CLASS_NAMES = tuple(_CIFAR100_NAMES.split())


@dataclasses.dataclass(frozen=True)
class _Spec:
    """How one of our dataset names maps onto TFDS."""

    tfds_name: str
    family: str  # "imagenet" or "cifar"
    num_classes: int
    native_size: int
    splits: dict  # our split -> (TFDS split, label feature or None for `label_field`)
    num_examples: dict  # our split -> count (published sizes; TFDS metadata may be absent)
    class_subset: tuple | None = None  # the classes the labels can take (ImageNet-A / -R)
    decode_any_format: bool = False  # decode whole images of any format, then crop (eval only)


_IMAGENET_TRAIN, _IMAGENET_VALIDATION = 1_281_167, 50_000
_CIFAR_TRAIN, _CIFAR_TEST = 50_000, 10_000
# Test-set sizes of the robustness sets (their papers; TFDS catalog).
_IMAGENET_A_TEST, _IMAGENET_R_TEST, _IMAGENET_V2_TEST = 7_500, 30_000, 10_000

_PLAIN_NAMES = ("imagenet2012", "imagenet_a", "imagenet_r", "imagenet_v2")
_PLAIN_NAMES += ("cifar10", "cifar100", "cifar10_n")
_PREFIXES = ("imagenet2012_corrupted/", "imagenet_v2/", "cifar10_corrupted/")


def is_tfds_name(name):
    return name in _PLAIN_NAMES or name.startswith(_PREFIXES)


def corrupted_names(corruptions=BENCHMARK_CORRUPTIONS, severities=SEVERITIES):
    """`imagenet2012_corrupted/<corruption>_<severity>` names, corruption-major."""
    return [f"imagenet2012_corrupted/{c}_{s}" for c in corruptions for s in severities]


def cifar10_corrupted_names(corruptions=CIFAR10_C_BENCHMARK_CORRUPTIONS, severities=SEVERITIES):
    """`cifar10_corrupted/<corruption>_<severity>` names (CIFAR-10-C), corruption-major."""
    return [f"cifar10_corrupted/{c}_{s}" for c in corruptions for s in severities]


def _corruption_and_severity(name, prefix, allowed):
    corruption, _, severity = name[len(prefix) :].rpartition("_")
    if corruption not in allowed or severity not in {str(s) for s in SEVERITIES}:
        raise ValueError(
            f"Expected a name '{prefix}<corruption>_<severity>' with corruption in "
            f"{list(allowed)} and severity in 1..5. Received: name={name!r}"
        )


def spec(name):
    """The `_Spec` of a TFDS dataset name; ValueError for malformed ImageNet-C names."""
    for family_spec in (_imagenet_spec, _cifar_spec):
        found = family_spec(name)
        if found is not None:
            return found
    raise ValueError(f"Not a TFDS dataset name. Received: name={name!r}")


def _imagenet_spec(name):
    """The `_Spec` of an ImageNet-family name (ImageNet, -C, -A, -R, -V2), else None."""
    if name == "imagenet2012":
        return _Spec(
            "imagenet2012",
            "imagenet",
            1000,
            IMAGENET_IMAGE_SIZE,
            {"train": ("train", "label"), "test": ("validation", "label")},
            {"train": _IMAGENET_TRAIN, "test": _IMAGENET_VALIDATION},
        )
    if name.startswith("imagenet2012_corrupted/"):
        allowed = BENCHMARK_CORRUPTIONS + EXTRA_CORRUPTIONS
        _corruption_and_severity(name, "imagenet2012_corrupted/", allowed)
        return _Spec(
            name,
            "imagenet",
            1000,
            IMAGENET_IMAGE_SIZE,
            {"test": ("validation", "label")},
            {"test": _IMAGENET_VALIDATION},
        )
    if name in ("imagenet_a", "imagenet_r"):
        return _Spec(
            name,
            "imagenet",
            1000,
            IMAGENET_IMAGE_SIZE,
            {"test": ("test", "label")},
            {"test": _IMAGENET_A_TEST if name == "imagenet_a" else _IMAGENET_R_TEST},
            class_subset=class_subsets.class_subset(name),
            decode_any_format=True,
        )
    if name == "imagenet_v2" or name.startswith("imagenet_v2/"):
        variant = name.split("/", 1)[1] if "/" in name else IMAGENET_V2_DEFAULT_VARIANT
        if variant not in IMAGENET_V2_VARIANTS:
            raise ValueError(
                f"Expected 'imagenet_v2' or 'imagenet_v2/<variant>' with variant in "
                f"{list(IMAGENET_V2_VARIANTS)}. Received: name={name!r}"
            )
        return _Spec(
            f"imagenet_v2/{variant}",
            "imagenet",
            1000,
            IMAGENET_IMAGE_SIZE,
            {"test": ("test", "label")},
            {"test": _IMAGENET_V2_TEST},
            decode_any_format=True,
        )
    return None


def _cifar_spec(name):
    """The `_Spec` of a CIFAR-family name (CIFAR-10, -100, -10-C, -10N), else None."""
    if name.startswith("cifar10_corrupted/"):
        allowed = CIFAR10_C_BENCHMARK_CORRUPTIONS + CIFAR10_C_EXTRA_CORRUPTIONS
        _corruption_and_severity(name, "cifar10_corrupted/", allowed)
        return _Spec(
            name,
            "cifar",
            10,
            32,
            {"test": ("test", "label")},
            {"test": _CIFAR_TEST},
        )
    if name in ("cifar10", "cifar100"):
        return _Spec(
            name,
            "cifar",
            10 if name == "cifar10" else 100,
            32,
            {"train": ("train", "label"), "test": ("test", "label")},
            {"train": _CIFAR_TRAIN, "test": _CIFAR_TEST},
        )
    if name == "cifar10_n":
        return _Spec(
            "cifar10_n",
            "cifar",
            10,
            32,
            {
                "train": ("train", None),
                "test": ("test", "label"),
                "test_clean": ("test", "label"),
            },
            {"train": _CIFAR_TRAIN, "test": _CIFAR_TEST, "test_clean": _CIFAR_TEST},
        )
    return None


def check_label_field(name, label_field):
    """Returns the label feature to train on; ValueError if `label_field` does not apply."""
    if name == "cifar10_n":
        if label_field is None:
            return CIFAR10N_DEFAULT_LABEL_FIELD
        if label_field not in CIFAR10N_LABEL_FIELDS:
            raise ValueError(
                f"label_field for cifar10_n must be one of {list(CIFAR10N_LABEL_FIELDS)}. "
                f"Received: label_field={label_field!r}"
            )
        return label_field
    if label_field not in (None, "label"):
        raise ValueError(
            f"label_field applies only to cifar10_n ({list(CIFAR10N_LABEL_FIELDS)}); {name} has "
            f"one label. Received: label_field={label_field!r}"
        )
    return "label"


def class_names(name):
    if name in ("cifar10", "cifar10_n") or name.startswith("cifar10_corrupted/"):
        return CIFAR10_CLASS_NAMES
    if name == "cifar100":
        return CIFAR100_CLASS_NAMES
    # ImageNet: the WordNet ids shipped with tensorflow_datasets, in label order.
    path = importlib.resources.files("tensorflow_datasets") / "datasets/imagenet2012/labels.txt"
    try:
        return tuple(line for line in path.read_text().split("\n") if line)
    except OSError:
        return None


def input_shape(name, image_size):
    size = spec(name).native_size if image_size is None else image_size
    return (size, size, 3)


def load(
    name,
    split,
    *,
    batch_size,
    is_training,
    seed,
    image_size,
    data_dir,
    label_field,
    drop_remainder,
    strategy,
    holdout=None,
):
    """The pipeline for a TFDS set; arguments already validated by `het_ensembles.data.load`.

    Args:
      holdout: None, or `(validation examples, seed)` for the "train" and "validation" splits
        of a set with a validation split: `holdout_split` (the seed is not used).
    """
    dataset_spec = spec(name)
    tfds_split, label_key = dataset_spec.splits["train" if split == "validation" else split]
    if holdout is not None:
        tfds_split = holdout_split(dataset_spec, split, holdout[0])
    label_key = label_key or check_label_field(name, label_field)
    size = dataset_spec.native_size if image_size is None else image_size
    builder = tfds.builder(dataset_spec.tfds_name, data_dir=data_dir)

    if dataset_spec.family == "imagenet":
        # Keep JPEG bytes: the train crop is decoded straight from its window (fast path).
        decoders = {"image": tfds.decode.SkipDecoding()}

        def preprocess(example, example_seed):
            if dataset_spec.decode_any_format:  # a test-only set: no training crop
                image = image_preprocessing.imagenet_image_any_format(example["image"], size, False)
            else:
                image = image_preprocessing.imagenet_image(
                    example["image"], size, is_training, example_seed
                )
            return image, tf.cast(example[label_key], tf.int32)

        shuffle_buffer = IMAGENET_SHUFFLE_BUFFER
    else:
        decoders = None

        def preprocess(example, example_seed):
            image = image_preprocessing.cifar_image(
                example["image"], dataset_spec.native_size, size, is_training, example_seed
            )
            return image, tf.cast(example[label_key], tf.int32)

        shuffle_buffer = dataset_spec.num_examples.get("train", _CIFAR_TRAIN)

    def make_source():
        read_config = tfds.ReadConfig(
            shuffle_seed=pipeline.derive_seed(seed, 2), try_autocache=False
        )
        return builder.as_dataset(
            split=tfds_split,
            decoders=decoders,
            shuffle_files=is_training,
            read_config=read_config,
        )

    return pipeline.build(
        make_source,
        preprocess,
        batch_size=batch_size,
        is_training=is_training,
        seed=seed,
        drop_remainder=drop_remainder,
        shuffle_buffer=shuffle_buffer,
        strategy=strategy,
        cache_source=dataset_spec.family == "cifar",
    )


def holdout_split(dataset_spec, split, num_validation):
    """The TFDS split string of "train" or "validation" with `num_validation` held out.

    The last `num_validation` examples of the TFDS train split, as uncertainty-baselines'
    `get_validation_percent_split` (`train_proportion < 1`): "train[:n]" and "train[n:]" with
    `n` the number kept for training, absolute counts so that every example is in exactly one.
    """
    tfds_train = dataset_spec.splits["train"][0]
    kept = dataset_spec.num_examples["train"] - num_validation
    return f"{tfds_train}[:{kept}]" if split == "train" else f"{tfds_train}[{kept}:]"
