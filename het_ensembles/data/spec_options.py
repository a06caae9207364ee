"""The names of the streaming sets: `<kind>:<location>[?<option>=<value>&...]`.

Kinds: `folder:DIR`, `tfrecord:DIR`, `tfds:NAME[/CONFIG]`, `webvision:ROOT`. Options follow the
location as a URL-style query, e.g. `tfrecord:/data/in21k?label_offset=1&test_fraction=0.04`.
The options are part of the name, so they travel with it wherever the name goes: a member's
config.json, the evaluator's cache key and its metrics.json keys.

Options (`OPTIONS` says which kind takes which):

- `test_fraction` (float in (0, 1)): carve a test split out of a set that has only train.
- `skip_corrupt` (true / false, default false): skip truncated, corrupt or non-image files and
  count them instead of stopping with an error that names the file.
- `num_classes` (int >= 1): K, instead of max label + 1 (for TFRecord: no label scan).
- `label_offset` (int >= 0): subtracted from every stored label (1 for TF-slim ImageNet).
- `multilabel` (true / false): a TFRecord label list is multi-hot (default: when some example
  has other than one label, found by the label scan).
- `image_key`, `label_key`: the TFDS features to read (default: the builder's only image and
  only ClassLabel or Sequence(ClassLabel) feature).
- `preprocessing` (imagenet / cifar, default imagenet): uncertainty-baselines' ImageNet crops at
  224 (`image_preprocessing.imagenet_image_any_format`), or its CIFAR pipeline at 32x32 with the
  CIFAR-10 statistics (`cifar_image_any_format`) — e.g. `tfds:svhn_cropped?preprocessing=cifar`
  as an out-of-distribution set for CIFAR members, as uncertainty-baselines normalises its OOD
  sets "by CIFAR"; or `bit`: BiT's fine-tuning crops (Kolesnikov et al. 2020; default 128) with
  the ImageNet mean / std (`image_preprocessing.bit_image`).
- `bit_resize` (int >= 1, with preprocessing=bit): training images are resized to this square
  and randomly cropped to `image_size` (BiT-HyperRule: 160 -> 128, 448 -> 384); default
  `image_size` (no crop). Eval images are resized to `image_size`.
- `flip` (true / false, default true, with preprocessing=bit): the random left-right flip of
  training images (off where the label is an orientation, as BiT does).
- `train_examples` (int >= 1): train is only the first N examples (source order) of what is
  left after any test carve-out; `validation_fraction` then holds out of these N (VTAB-1k:
  `train_examples=1000` with `validation_fraction=0.2` is train800 / val200).
"""

import dataclasses

KINDS = ("folder", "tfrecord", "tfds", "webvision")
_COMMON = (
    "test_fraction",
    "skip_corrupt",
    "preprocessing",
    "bit_resize",
    "flip",
    "train_examples",
)
PREPROCESSING = ("imagenet", "cifar", "bit")
OPTIONS = {
    "folder": _COMMON,
    "tfrecord": (*_COMMON, "num_classes", "label_offset", "multilabel"),
    "tfds": (*_COMMON, "image_key", "label_key"),
    "webvision": (*_COMMON, "num_classes"),
}
_BOOLEANS = {"true": True, "false": False}


def _fraction(text):
    value = float(text)
    if not 0 < value < 1:
        raise ValueError(text)
    return value


def _integer(minimum):
    def parse(text):
        value = int(text)
        if value < minimum:
            raise ValueError(text)
        return value

    return parse


def _boolean(text):
    return _BOOLEANS[text.lower()]


def _preprocessing(text):
    if text not in PREPROCESSING:
        raise ValueError(text)
    return text


def _key(text):
    if not text:
        raise ValueError(text)
    return text


# option -> (parser of its text, what is allowed)
_PARSERS = {
    "test_fraction": (_fraction, "a float in (0, 1)"),
    "skip_corrupt": (_boolean, "true or false"),
    "num_classes": (_integer(1), "an integer >= 1"),
    "label_offset": (_integer(0), "an integer >= 0"),
    "multilabel": (_boolean, "true or false"),
    "image_key": (_key, "a feature name"),
    "label_key": (_key, "a feature name"),
    "preprocessing": (_preprocessing, " or ".join(PREPROCESSING)),
    "bit_resize": (_integer(1), "an integer >= the image size (the square resized to)"),
    "flip": (_boolean, "true or false"),
    "train_examples": (_integer(1), "an integer >= 1"),
}
# Options that only preprocessing=bit reads.
BIT_OPTIONS = ("bit_resize", "flip")


@dataclasses.dataclass(frozen=True)
class Spec:
    """A parsed streaming-set name.

    Attributes:
      name: the name as given.
      kind: one of `KINDS`.
      location: the directory (folder, tfrecord, webvision) or TFDS `NAME[/CONFIG]`.
      options: `{option: parsed value}` for the options given.
    """

    name: str
    kind: str
    location: str
    options: dict

    def get(self, option, default=None):
        return self.options.get(option, default)


def is_streaming_name(name):
    return isinstance(name, str) and name.partition(":")[0] in KINDS and ":" in name


def parse(name):
    """The `Spec` of a streaming-set name.

    Raises:
      ValueError: for an empty location, a malformed query, an option the kind does not take
        or a bad value, naming the option and what is allowed.
    """
    kind, _, rest = name.partition(":")
    location, _, query = rest.partition("?")
    if kind not in KINDS or not location:
        raise ValueError(
            f"Expected '<kind>:<location>[?option=value&...]' with kind in {list(KINDS)}. "
            f"Received: name={name!r}"
        )
    options = {}
    for item in filter(None, query.split("&")):
        option, equals, value = item.partition("=")
        if option not in OPTIONS[kind] or not equals:
            raise ValueError(
                f"Unknown option {item!r} in dataset name {name!r}; {kind}: takes "
                f"{', '.join(o + '=...' for o in OPTIONS[kind])}"
            )
        if option in options:
            raise ValueError(f"Option {option} given twice in dataset name {name!r}")
        parser, allowed = _PARSERS[option]
        try:
            options[option] = parser(value)
        except (KeyError, ValueError) as error:
            raise ValueError(
                f"Bad value for option {option} in dataset name {name!r}. Received: "
                f"{option}={value!r}; allowed: {allowed}"
            ) from error
    bit_only = [o for o in BIT_OPTIONS if o in options]
    if bit_only and options.get("preprocessing") != "bit":
        raise ValueError(
            f"Options {bit_only} in dataset name {name!r} need preprocessing=bit. Received: "
            f"preprocessing={options.get('preprocessing', 'imagenet')!r}"
        )
    return Spec(name=name, kind=kind, location=location, options=options)
