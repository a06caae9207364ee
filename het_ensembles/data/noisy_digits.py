"""`noisy_digits`: scikit-learn's 8x8 digits with planted input-dependent, class-correlated label noise.

The embedded data set behind `het-ensembles demo` (DESIGN section 7). It needs no download:
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

Splits through `het_ensembles.data.load("noisy_digits", split)`: `train` (noisy labels), `test`
(noisy labels, what a model trained on this data is scored against) and `test_clean` (the same
test images with their true labels). Images are float32 [8, 8, 1] in [0, 1].
"""

import functools

import numpy as np

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


def flip_probability(images, *, ink_mean, ink_std):
    """Probability that an image's label is flipped to its planted partner.

    Args:
      images: float array [N, ...] of intensities in [0, 1].
      ink_mean: mean of `ink` over the reference set.
      ink_std: standard deviation of `ink` over the reference set (> 0).

    Returns:
      float64 array [N] in [0, MAX_FLIP_PROBABILITY].

    Raises:
      ValueError: if `ink_std` is not positive.
    """
    if not ink_std > 0:
        raise ValueError(f"`ink_std` must be > 0. Received: ink_std={ink_std}")
    z = (ink(images) - ink_mean) / ink_std
    return MAX_FLIP_PROBABILITY / (1.0 + np.exp(INK_SHARPNESS * z))


def partner_of():
    """Array [NUM_CLASSES] mapping each class to its planted partner (itself if unpaired)."""
    partner = np.arange(NUM_CLASSES)
    for a, b in planted_pairs:
        partner[a], partner[b] = b, a
    return partner


def plant_noise(images, labels, rng, *, ink_mean, ink_std):
    """Flips labels inside the planted pairs with the image-dependent probability.

    Args:
      images: float array [N, ...] in [0, 1].
      labels: int array [N] of clean labels in [0, NUM_CLASSES).
      rng: a `numpy.random.Generator`.
      ink_mean: see `flip_probability`.
      ink_std: see `flip_probability`.

    Returns:
      (noisy_labels [N] int32, flip_probabilities [N] float64); unpaired classes have probability 0.
    """
    labels = np.asarray(labels)
    partner = partner_of()
    p = flip_probability(images, ink_mean=ink_mean, ink_std=ink_std)
    p = np.where(partner[labels] != labels, p, 0.0)
    flipped = rng.random(len(labels)) < p
    noisy = np.where(flipped, partner[labels], labels).astype(np.int32)
    return noisy, p


@functools.lru_cache(maxsize=1)
def _arrays():
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = (digits.images / _PIXEL_MAX).astype(np.float32)[..., None]  # [N, 8, 8, 1]
    clean = digits.target.astype(np.int32)
    amount = ink(images)
    noisy, p = plant_noise(
        images,
        clean,
        np.random.default_rng(NOISE_SEED),
        ink_mean=float(amount.mean()),
        ink_std=float(amount.std()),
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


def load_arrays():
    """The data set as numpy arrays (computed once, then cached; do not modify them in place).

    Returns:
      dict with `x_train` [N, 8, 8, 1] float32, `y_train` [N] int32 (noisy), `y_train_clean`,
      `x_test`, `y_test` (noisy), `y_test_clean`, `flip_probability_train` / `_test` (the planted
      per-example flip probability) and `class_names`.
    """
    return _arrays()


def _registered_arrays():
    arrays = _arrays()
    keys = ("x_train", "y_train", "x_test", "y_test", "y_test_clean", "class_names")
    return {key: arrays[key] for key in keys}


register_arrays(NAME, _registered_arrays)
