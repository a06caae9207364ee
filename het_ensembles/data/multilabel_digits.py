"""`multilabel_digits`: 1-3 scikit-learn digits on a 16x16 canvas, with web-like multi-label noise.

The embedded multi-label set behind `het-ensembles demo --multilabel` (the shape of Collier et
al. 2021's Table 3, ImageNet-21k / JFT with sigmoid heads, on a laptop CPU). It needs no
download: `sklearn.datasets.load_digits` ships with scikit-learn. Everything is fixed by a seed.

Generative process (`make_arrays`):

- Source images: the 1,797 8x8 digits, intensities scaled from 0..16 to [0, 1], split once into
  train and test sources, stratified by class (`SOURCE_TEST_FRACTION` to test,
  `sklearn.model_selection.train_test_split`, `SPLIT_SEED`). Train composites use only train
  sources and test composites only test sources.
- A composite: a canvas of 16x16 (four 8x8 quadrants), k ~ Uniform{1, 2, 3} distinct digit
  classes, for each a random source image of that class placed in its own random quadrant,
  multiplied by a contrast `1 - MAX_FADE * f` with the faintness `f ~ Uniform(0, 1)` (so a
  digit's ink runs from full down to a quarter). Images are float32 [16, 16, 1] in [0, 1].
- Clean labels: multi-hot [10] of the classes placed (`y_test_clean`, `y_train_clean`).

Planted noise: each placed digit d with faintness f gets at most one of these events, drawn
independently per digit with `numpy.random.default_rng(seed)`; the label vector is the union of
what every placed digit contributes:

- missing (`EVENT_MISSING`): d's label is dropped, with probability `miss * f`, times
  `OFTEN_MISSED_FACTOR` for the thin digits `OFTEN_MISSED = (1, 7)`;
- swapped (`EVENT_SWAPPED`): d's label is replaced by its confusable partner's, probability
  `swap * f`;
- added (`EVENT_ADDED`): d's label is kept and its partner's added, probability `add * f`.

Partners are `planted_pairs = ((1, 7), (3, 8), (4, 9), (5, 6))` (as `noisy_digits`); 0 and 2
have none and are only ever missed. So the noise is input-dependent (faint digits are mislabelled,
bold ones almost never) and correlated between the labels of specific class pairs: a swap moves
one label of a pair down and the other up, an addition moves the partner up with the digit.
With the defaults (`miss=0.3`, `swap=0.25`, `add=0.25`) and `f` uniform, the mean rates per
placed digit are exactly half the maxima: 15% missing (25% for 1 and 7), 12.5% swapped and
12.5% added for paired digits, i.e. 40% (50% for 1 and 7) of the paired digits and 15% of 0 and
2 carry some noise. The same process is applied to train and test labels; the clean ones are
kept.

Sizes: `NUM_TRAIN = 3000` and `NUM_TEST = 1000` composites. Splits through
`het_ensembles.data.load("multilabel_digits", split)`: `train` (noisy labels), `test` (noisy)
and `test_clean`; labels are int32 multi-hot [B, 10].

Variants: `multilabel_digits:<spec>` (`NoiseSpec`), e.g.
`multilabel_digits:miss=0.2,swap=0.3,add=0.1,seed=3`: the maximum rates and the seed of the
composites and the noise; omitted keys keep the values above.
"""

import dataclasses
import functools

import numpy as np

from het_ensembles.data import arrays as _arrays_lib
from het_ensembles.data import register_arrays

NAME = "multilabel_digits"
NUM_CLASSES = 10
CLASS_NAMES = ("0", "1", "2", "3", "4", "5", "6", "7", "8", "9")
# Pairs of digits that look alike at 8x8 (as noisy_digits): a swap or an added label stays inside.
planted_pairs = ((1, 7), (3, 8), (4, 9), (5, 6))
OFTEN_MISSED = (1, 7)  # thin strokes: a faint 1 or 7 is the easiest digit to overlook
OFTEN_MISSED_FACTOR = 5.0 / 3.0  # miss rate 0.5 * f for them with the default miss=0.3
MAX_MISS, MAX_SWAP, MAX_ADD = 0.3, 0.25, 0.25  # event probabilities at faintness f = 1
MAX_FADE = 0.75  # contrast 1 - MAX_FADE * f: a maximally faint digit keeps a quarter of its ink
MAX_DIGITS = 3
CANVAS = 16
SLOT = 8  # the digits' side; the canvas holds (CANVAS // SLOT) ** 2 = 4 slots
NUM_TRAIN, NUM_TEST = 3000, 1000
SOURCE_TEST_FRACTION = 0.3
SPLIT_SEED = 0
NOISE_SEED = 0
EVENT_NONE, EVENT_MISSING, EVENT_SWAPPED, EVENT_ADDED = 0, 1, 2, 3
_PIXEL_MAX = 16.0  # load_digits stores intensities as integers 0..16


@dataclasses.dataclass(frozen=True)
class NoiseSpec:
    """The maximum event rates (at faintness 1) and the seed of the composites and their noise.

    The default spec is `multilabel_digits` itself.
    """

    miss: float = MAX_MISS
    swap: float = MAX_SWAP
    add: float = MAX_ADD
    seed: int = NOISE_SEED

    def __post_init__(self):
        for key in ("miss", "swap", "add"):
            value = getattr(self, key)
            if not (isinstance(value, float) and 0 <= value <= 1):
                raise ValueError(f"{key} must be a float in [0, 1]. Received: {key}={value!r}")
        worst = self.miss * OFTEN_MISSED_FACTOR + self.swap + self.add
        if worst > 1:
            raise ValueError(
                "The event probabilities of a maximally faint 1 or 7 must sum to at most 1: "
                f"miss * {OFTEN_MISSED_FACTOR:.4g} + swap + add <= 1. Received: miss={self.miss}, "
                f"swap={self.swap}, add={self.add} (sum {worst:.4g})"
            )
        if not (isinstance(self.seed, int) and self.seed >= 0):
            raise ValueError(f"seed must be an integer >= 0. Received: seed={self.seed!r}")

    @classmethod
    def parse(cls, text):
        """The spec of `"miss=0.3,swap=0.25,add=0.25,seed=0"` (any subset of the keys).

        Raises:
          ValueError: naming the key that is unknown or malformed, or a range violated.
        """
        parsers = {"miss": float, "swap": float, "add": float, "seed": int}
        return cls(**_arrays_lib.parse_spec(NAME, text, parsers))

    @property
    def name(self):
        """The dataset name of this variant (canonical: every key, in order)."""
        return _arrays_lib.spec_name(NAME, dataclasses.asdict(self))


def partner_of(pairs=planted_pairs):
    """Array [NUM_CLASSES]: each class's partner in `pairs`, -1 for an unpaired class."""
    partner = np.full(NUM_CLASSES, -1)
    for a, b in pairs:
        partner[a], partner[b] = b, a
    return partner


def event_probabilities(digits, faintness, spec=None):
    """The planted probabilities of each event for placed digits.

    Args:
      digits: int array [...] of digit classes.
      faintness: float array of the same shape, in [0, 1].
      spec: the `NoiseSpec` (default: `multilabel_digits`'s own).

    Returns:
      float64 array [..., 3]: P(missing), P(swapped), P(added); 0 for an unpaired digit's swap
      and addition.
    """
    spec = spec or NoiseSpec()
    digits = np.asarray(digits)
    f = np.asarray(faintness, dtype=np.float64)
    paired = partner_of()[digits] >= 0
    miss = spec.miss * np.where(np.isin(digits, OFTEN_MISSED), OFTEN_MISSED_FACTOR, 1.0)
    return np.stack([miss * f, paired * spec.swap * f, paired * spec.add * f], axis=-1)


def _composites(images, targets, pool, count, rng, spec):
    """`count` composites drawn from the source images `pool`; see the module docstring.

    Returns:
      dict: "x" [count, 16, 16, 1] float32, "y_clean" and "y" [count, 10] int32, "source",
      "digit", "slot", "event" [count, MAX_DIGITS] int (-1 / 0 where no digit) and "faintness"
      [count, MAX_DIGITS] float64 (nan where no digit).
    """
    per_side = CANVAS // SLOT
    by_class = [pool[targets[pool] == c] for c in range(NUM_CLASSES)]
    out = {
        "x": np.zeros((count, CANVAS, CANVAS, 1), np.float32),
        "y_clean": np.zeros((count, NUM_CLASSES), np.int32),
        "y": np.zeros((count, NUM_CLASSES), np.int32),
        "source": np.full((count, MAX_DIGITS), -1),
        "digit": np.full((count, MAX_DIGITS), -1),
        "slot": np.full((count, MAX_DIGITS), -1),
        "event": np.zeros((count, MAX_DIGITS), np.int64),
        "faintness": np.full((count, MAX_DIGITS), np.nan),
    }
    partner = partner_of()
    for i in range(count):
        k = int(rng.integers(1, MAX_DIGITS + 1))
        digits = rng.choice(NUM_CLASSES, size=k, replace=False)
        slots = rng.choice(per_side**2, size=k, replace=False)
        faint = rng.random(k)
        p = event_probabilities(digits, faint, spec)  # [k, 3]
        draws = rng.random(k)
        events = np.where(
            draws < p[:, 0],
            EVENT_MISSING,
            np.where(
                draws < p[:, :2].sum(1),
                EVENT_SWAPPED,
                np.where(draws < p.sum(1), EVENT_ADDED, EVENT_NONE),
            ),
        )
        for j, (digit, slot) in enumerate(zip(digits, slots)):
            source = int(rng.choice(by_class[digit]))
            row, col = divmod(int(slot), per_side)
            patch = images[source] * (1.0 - MAX_FADE * faint[j])
            out["x"][i, row * SLOT : (row + 1) * SLOT, col * SLOT : (col + 1) * SLOT, 0] = patch
            out["y_clean"][i, digit] = 1
            if events[j] in (EVENT_NONE, EVENT_ADDED):
                out["y"][i, digit] = 1
            if events[j] in (EVENT_SWAPPED, EVENT_ADDED):
                out["y"][i, partner[digit]] = 1
            out["source"][i, j], out["digit"][i, j], out["slot"][i, j] = source, digit, slot
            out["event"][i, j], out["faintness"][i, j] = events[j], faint[j]
    return out


def source_split():
    """Indices of `load_digits()` used for train and for test composites (disjoint, stratified).

    Returns:
      (train_sources, test_sources): sorted int arrays.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    target = load_digits().target
    train, test = train_test_split(
        np.arange(len(target)),
        test_size=SOURCE_TEST_FRACTION,
        stratify=target,
        random_state=SPLIT_SEED,
    )
    return np.sort(train), np.sort(test)


@functools.lru_cache(maxsize=8)
def make_arrays(spec):
    """The composites of `spec` (see `load_arrays` for the keys); cached."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = (digits.images / _PIXEL_MAX).astype(np.float32)  # [1797, 8, 8]
    train_sources, test_sources = source_split()
    rng = np.random.default_rng(spec.seed)
    arrays = {"class_names": CLASS_NAMES}
    for split, pool, count in (
        ("train", train_sources, NUM_TRAIN),
        ("test", test_sources, NUM_TEST),
    ):
        part = _composites(images, digits.target, pool, count, rng, spec)
        arrays[f"x_{split}"] = part.pop("x")
        arrays[f"y_{split}"] = part.pop("y")
        arrays[f"y_{split}_clean"] = part.pop("y_clean")
        arrays.update({f"{key}_{split}": value for key, value in part.items()})
    return arrays


def load_arrays(spec=None):
    """The data set as numpy arrays (computed once, then cached; do not modify them in place).

    Args:
      spec: a `NoiseSpec` (default: `multilabel_digits`'s own).

    Returns:
      dict with, for split in train / test: `x_<split>` [N, 16, 16, 1] float32, `y_<split>`
      (noisy) and `y_<split>_clean` [N, 10] int32 multi-hot; per placed digit (-1, 0 or nan in
      unused places) `source_<split>` (index into `load_digits()`), `digit_<split>`,
      `slot_<split>` (quadrant 0..3, row-major), `faintness_<split>` and `event_<split>`
      (`EVENT_*`), all [N, MAX_DIGITS]; and `class_names`.
    """
    return make_arrays(spec or NoiseSpec())


def _registered_arrays(spec=None):
    arrays = make_arrays(spec or NoiseSpec())
    keys = ("x_train", "y_train", "x_test", "y_test", "y_test_clean", "class_names")
    return {key: arrays[key] for key in keys}


register_arrays(NAME, _registered_arrays)
_arrays_lib.register_family(NAME, lambda text: _registered_arrays(NoiseSpec.parse(text)))
