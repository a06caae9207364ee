"""`noisy_digits`: scikit-learn's 8x8 digits with planted input-dependent, class-correlated label noise.

The embedded data set behind `het-ensembles demo`. It needs no download:
`sklearn.datasets.load_digits` ships with scikit-learn. Everything is fixed (no seed argument), so
every user and every ensemble member sees the same data.

Noise process (applied to train and test labels alike; the clean test labels are kept):

- Four confusable class pairs are planted, `planted_pairs = ((1, 7), (3, 8), (4, 9), (5, 6))`.
  Labels only ever flip inside a pair (a -> b or b -> a), so the noise is class-correlated.
  Classes 0 and 2 are never flipped.
- The flip probability depends on the image: faint digits (little ink) are ambiguous, bold ones are
  not. With `ink(x)` the mean pixel intensity in [0, 1] and `z(x) = (ink(x) - m) / s` (m, s: mean
  and standard deviation of `ink` over all 1,797 images),
  `p_flip(x) = MAX_FLIP_PROBABILITY * sigmoid(-INK_SHARPNESS * z(x))`,
  i.e. ~0.44 for a digit one standard deviation fainter than average, 0.25 at the average and
  ~0.06 one standard deviation bolder.
- Flips are drawn once with `numpy.random.default_rng(NOISE_SEED)`; the train/test split is a fixed
  stratified permutation (`SPLIT_SEED`), `TEST_FRACTION` of the examples in test.

Variants: `noisy_digits:<spec>` plants another noise process on the same images, e.g.
`noisy_digits:pairs=0-6+2-5,feature=top_heaviness,rate=0.4,seed=3` (`NoiseSpec`): which class
pairs swap, which image feature drives the flip rate (`FEATURES`: `ink`, `top_heaviness`,
`left_heaviness`, `centre_ink`; faint / low values flip most), the largest flip probability
`rate`, the logistic's `sharpness` and the noise `seed`; omitted keys keep the values above.
`random_spec(rng)` draws a variant, so anyone can make held-out sets nothing was tuned on.

Class subsets, for out-of-distribution detection: `classes=0+1+2+3+4+5+6+7` keeps only those
classes, relabelled 0..len-1 in the order given (an example is kept when both its clean and its
noisy label are among them, so no label falls outside), and `classes=8+9` gives the two
held-out digits, an OOD set for members trained on the first:
`het-ensembles evaluate --dataset noisy_digits:classes=0+1+2+3+4+5+6+7
--ood_dataset noisy_digits:classes=8+9 ...`.

Splits through `het_ensembles.data.load("noisy_digits", split)`: `train` (noisy labels), `test`
(noisy labels, what a model trained on this data is scored against) and `test_clean` (the same
test images with their true labels). Images are float32 [8, 8, 1] in [0, 1].
"""

import dataclasses
import functools
import math

import numpy as np

from het_ensembles.data import arrays as _arrays_lib
from het_ensembles.data import register_arrays

NAME = "noisy_digits"
NUM_CLASSES = 10
CLASS_NAMES = ("0", "1", "2", "3", "4", "5", "6", "7", "8", "9")
# Pairs of digits that look alike at 8x8; labels flip only inside a pair.
planted_pairs = ((1, 7), (3, 8), (4, 9), (5, 6))
MAX_FLIP_PROBABILITY = 0.5  # a maximally faint digit gets a coin-flip label within its pair
INK_SHARPNESS = 2.0  # slope of the logistic in standardised ink units
NOISE_SEED = 0
SPLIT_SEED = 0
TEST_FRACTION = 0.3
_PIXEL_MAX = 16.0  # load_digits stores intensities as integers 0..16


def ink(images):
    """Mean pixel intensity of each image.

    Args:
      images: float array [N, ...] of intensities in [0, 1].

    Returns:
      float64 array [N].
    """
    images = np.asarray(images, dtype=np.float64)
    return images.reshape(len(images), -1).mean(axis=1)


def top_heaviness(images):
    """Mean intensity of the top half minus that of the bottom half of each image."""
    images = np.asarray(images, dtype=np.float64)[..., 0] if np.ndim(images) == 4 else images
    half = images.shape[1] // 2
    return images[:, :half].mean(axis=(1, 2)) - images[:, half:].mean(axis=(1, 2))


def left_heaviness(images):
    """Mean intensity of the left half minus that of the right half of each image."""
    images = np.asarray(images, dtype=np.float64)[..., 0] if np.ndim(images) == 4 else images
    half = images.shape[2] // 2
    return images[:, :, :half].mean(axis=(1, 2)) - images[:, :, half:].mean(axis=(1, 2))


def centre_ink(images):
    """Mean intensity of the central half (rows and columns) of each image."""
    images = np.asarray(images, dtype=np.float64)[..., 0] if np.ndim(images) == 4 else images
    h, w = images.shape[1:3]
    return images[:, h // 4 : h - h // 4, w // 4 : w - w // 4].mean(axis=(1, 2))


# Image features that can drive the flip rate (low standardised values flip most).
FEATURES = {
    "ink": ink,
    "top_heaviness": top_heaviness,
    "left_heaviness": left_heaviness,
    "centre_ink": centre_ink,
}


@dataclasses.dataclass(frozen=True)
class NoiseSpec:
    """A planted noise process on the digits: `p_flip(x) = rate * sigmoid(-sharpness * z(x))`.

    `z(x)` is `feature(x)` standardised over all 1,797 images; labels flip only inside `pairs`.
    The default spec is `noisy_digits` itself.
    """

    pairs: tuple = planted_pairs
    feature: str = "ink"
    rate: float = MAX_FLIP_PROBABILITY
    sharpness: float = INK_SHARPNESS
    seed: int = NOISE_SEED
    classes: tuple = tuple(range(NUM_CLASSES))  # the classes kept, relabelled in this order

    def __post_init__(self):
        classes = [c for pair in self.pairs for c in pair]
        if (
            not self.pairs
            or any(len(pair) != 2 for pair in self.pairs)
            or any(not isinstance(c, int) or not 0 <= c < NUM_CLASSES for c in classes)
            or len(set(classes)) != len(classes)
        ):
            raise ValueError(
                "pairs must be disjoint pairs of distinct classes in 0..9, e.g. pairs=1-7+3-8. "
                f"Received: pairs={self.pairs!r}"
            )
        if self.feature not in FEATURES:
            raise ValueError(
                f"Unknown feature. Received: feature={self.feature!r}; allowed: {sorted(FEATURES)}"
            )
        if not (isinstance(self.rate, float) and 0 < self.rate <= 1):
            raise ValueError(f"rate must be a float in (0, 1]. Received: rate={self.rate!r}")
        if not (isinstance(self.sharpness, float) and 0 < self.sharpness < math.inf):
            raise ValueError(
                f"sharpness must be a float > 0. Received: sharpness={self.sharpness!r}"
            )
        if not (isinstance(self.seed, int) and self.seed >= 0):
            raise ValueError(f"seed must be an integer >= 0. Received: seed={self.seed!r}")
        if (
            not self.classes
            or any(not isinstance(c, int) or not 0 <= c < NUM_CLASSES for c in self.classes)
            or len(set(self.classes)) != len(self.classes)
        ):
            raise ValueError(
                "classes must be distinct classes in 0..9, e.g. classes=0+1+2. Received: "
                f"classes={self.classes!r}"
            )

    @classmethod
    def parse(cls, text):
        """The spec of `"pairs=1-7+3-8,feature=ink,rate=0.5,sharpness=2,seed=0"` (any subset).

        Raises:
          ValueError: naming the key that is unknown or malformed.
        """
        parsers = {
            "pairs": _parse_pairs,
            "feature": str,
            "rate": float,
            "sharpness": float,
            "seed": int,
            "classes": _parse_classes,
        }
        return cls(**_arrays_lib.parse_spec(NAME, text, parsers))

    @property
    def name(self):
        """The dataset name of this variant (canonical: every key, in order)."""
        pairs = "+".join(f"{a}-{b}" for a, b in self.pairs)
        fields = {"pairs": pairs, "feature": self.feature, "rate": self.rate}
        fields.update(sharpness=self.sharpness, seed=self.seed)
        if self.classes != tuple(range(NUM_CLASSES)):
            fields["classes"] = "+".join(str(c) for c in self.classes)
        return _arrays_lib.spec_name(NAME, fields)


def _parse_pairs(text):
    """`"1-7+3-8"` -> ((1, 7), (3, 8))."""
    return tuple(tuple(int(c) for c in pair.split("-")) for pair in text.split("+"))


def _parse_classes(text):
    """`"0+1+2"` -> (0, 1, 2)."""
    return tuple(int(c) for c in text.split("+"))


def random_spec(rng):
    """A random variant: 2-4 disjoint pairs, a feature, rate in [0.3, 0.6], a noise seed."""
    classes = rng.permutation(NUM_CLASSES)
    num_pairs = int(rng.integers(2, 5))
    pairs = tuple(
        tuple(sorted(int(c) for c in classes[2 * i : 2 * i + 2])) for i in range(num_pairs)
    )
    return NoiseSpec(
        pairs=pairs,
        feature=str(rng.choice(sorted(FEATURES))),
        rate=round(float(rng.uniform(0.3, 0.6)), 2),
        sharpness=INK_SHARPNESS,
        seed=int(rng.integers(0, 2**31 - 1)),
    )


def flip_probability(images, *, ink_mean, ink_std, spec=None):
    """Probability that an image's label is flipped to its planted partner.

    Args:
      images: float array [N, ...] of intensities in [0, 1].
      ink_mean: mean of the spec's feature (`ink` for `noisy_digits`) over the reference set.
      ink_std: its standard deviation over the reference set (> 0).
      spec: the `NoiseSpec` (default: `noisy_digits`'s own).

    Returns:
      float64 array [N] in [0, spec.rate].

    Raises:
      ValueError: if `ink_std` is not positive.
    """
    spec = spec or NoiseSpec()
    if not ink_std > 0:
        raise ValueError(f"`ink_std` must be > 0. Received: ink_std={ink_std}")
    z = (FEATURES[spec.feature](images) - ink_mean) / ink_std
    return spec.rate / (1.0 + np.exp(spec.sharpness * z))


def partner_of(pairs=planted_pairs):
    """Array [NUM_CLASSES] mapping each class to its partner in `pairs` (itself if unpaired)."""
    partner = np.arange(NUM_CLASSES)
    for a, b in pairs:
        partner[a], partner[b] = b, a
    return partner


def plant_noise(images, labels, rng, *, ink_mean, ink_std, spec=None):
    """Flips labels inside the spec's pairs with the image-dependent probability.

    Args:
      images: float array [N, ...] in [0, 1].
      labels: int array [N] of clean labels in [0, NUM_CLASSES).
      rng: a `numpy.random.Generator`.
      ink_mean: mean of the spec's feature over the reference set.
      ink_std: standard deviation of that feature over the reference set (> 0).
      spec: the `NoiseSpec` (default: `noisy_digits`'s own).

    Returns:
      (noisy_labels [N] int32, flip_probabilities [N] float64); unpaired classes have probability 0.
    """
    spec = spec or NoiseSpec()
    labels = np.asarray(labels)
    partner = partner_of(spec.pairs)
    p = flip_probability(images, ink_mean=ink_mean, ink_std=ink_std, spec=spec)
    p = np.where(partner[labels] != labels, p, 0.0)
    flipped = rng.random(len(labels)) < p
    noisy = np.where(flipped, partner[labels], labels).astype(np.int32)
    return noisy, p


@functools.lru_cache(maxsize=32)
def make_arrays(spec):
    """The digits with `spec`'s planted noise (see `load_arrays` for the keys); cached."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = (digits.images / _PIXEL_MAX).astype(np.float32)[..., None]  # [N, 8, 8, 1]
    clean = digits.target.astype(np.int32)
    amount = FEATURES[spec.feature](images)
    noisy, p = plant_noise(
        images,
        clean,
        np.random.default_rng(spec.seed),
        ink_mean=float(amount.mean()),
        ink_std=float(amount.std()),
        spec=spec,
    )
    # Stratified split: a fixed permutation per class, the first TEST_FRACTION of each to test.
    rng = np.random.default_rng(SPLIT_SEED)
    is_test = np.zeros(len(clean), dtype=bool)
    for c in range(NUM_CLASSES):
        idx = rng.permutation(np.flatnonzero(clean == c))
        is_test[idx[: round(TEST_FRACTION * len(idx))]] = True
    train, test = np.flatnonzero(~is_test), np.flatnonzero(is_test)
    return {
        "x_train": images[train],
        "y_train": noisy[train],
        "y_train_clean": clean[train],
        "x_test": images[test],
        "y_test": noisy[test],
        "y_test_clean": clean[test],
        "flip_probability_train": p[train],
        "flip_probability_test": p[test],
        "class_names": CLASS_NAMES,
    }


def _arrays():
    return make_arrays(NoiseSpec())


def load_arrays():
    """The data set as numpy arrays (computed once, then cached; do not modify them in place).

    Returns:
      dict with `x_train` [N, 8, 8, 1] float32, `y_train` [N] int32 (noisy), `y_train_clean`,
      `x_test`, `y_test` (noisy), `y_test_clean`, `flip_probability_train` / `_test` (the planted
      per-example flip probability) and `class_names`.
    """
    return _arrays()


def _registered_arrays(spec=None):
    spec = spec or NoiseSpec()
    arrays = make_arrays(spec)
    keys = ("x_train", "y_train", "x_test", "y_test", "y_test_clean", "class_names")
    out = {key: arrays[key] for key in keys}
    if spec.classes != tuple(range(NUM_CLASSES)):
        out = _class_subset(out, arrays["y_train_clean"], spec.classes)
    return out


def _class_subset(arrays, y_train_clean, classes):
    """`arrays` restricted to examples whose clean and noisy labels are in `classes`, both
    relabelled to their position in `classes`."""
    relabel = np.full(NUM_CLASSES, -1, dtype=np.int32)
    relabel[list(classes)] = np.arange(len(classes), dtype=np.int32)
    out = {"class_names": tuple(CLASS_NAMES[c] for c in classes)}
    for split, clean in (("train", y_train_clean), ("test", arrays["y_test_clean"])):
        keep = (relabel[clean] >= 0) & (relabel[arrays[f"y_{split}"]] >= 0)
        out[f"x_{split}"] = arrays[f"x_{split}"][keep]
        out[f"y_{split}"] = relabel[arrays[f"y_{split}"][keep]]
        if split == "test":
            out["y_test_clean"] = relabel[clean[keep]]
    return out


register_arrays(NAME, _registered_arrays)
_arrays_lib.register_family(NAME, lambda text: _registered_arrays(NoiseSpec.parse(text)))
