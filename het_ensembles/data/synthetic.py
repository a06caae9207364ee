"""`synthetic`: labels drawn from the paper's own latent Gaussian model, so the Bayes NLL is known.

Generative model (Collier et al. 2021, section 3, in the temperature -> 0 limit where the softmax
becomes an argmax):

    u = mu(x) + eps,   eps ~ N(0, Sigma(x)),   y = argmax_k u_k
    mu(x) = x W + b                                         # [K]
    Sigma(x) = g(x)^2 (diag(d^2) + V V^T),  g(x) = softplus(x . w_g + b_g)

i.e. a planted low-rank-plus-diagonal covariance (`V` is K x R) whose overall scale depends on the
input. `V` couples the planted class pairs `planted_pairs` with opposite signs, so noise swaps the
two labels of a pair. Inputs are standard normal, D = `INPUT_DIM`. Everything is drawn from fixed
seeds, so the data set is the same for every user.

`bayes_optimal_nll()` computes the test NLL of the true p(y | x): the best NLL any model can reach.
It conditions on the low-rank noise and integrates the diagonal part exactly (Rao-Blackwellised
Monte Carlo), so its error is negligible (it also returns a standard error to prove it).

Variants: `synthetic:<spec>` plants another model (`SyntheticSpec`), e.g.
`synthetic:classes=8,factors=3,sigma=random,seed=5`: the number of classes, input features and
factors, whether Sigma is the paired structure above or random (`sigma=random`: V and d drawn
from the model seed), the noise sizes, the slope of g(x), the set sizes and the seeds; omitted
keys keep the values above. `random_spec(rng)` draws a variant with a random planted Sigma, and
`bayes_optimal_nll(x, y, model=spec.model())` gives its Bayes-optimal NLL.

Splits through `het_ensembles.data.load("synthetic", split)`: `train`, `test` (labels sampled from
the model) and `test_clean` (the noise-free label argmax mu(x)). Inputs are float32 [INPUT_DIM].
"""

import dataclasses
import functools

import numpy as np
from scipy import special

from het_ensembles.data import arrays as _arrays_lib
from het_ensembles.data import register_arrays

NAME = "synthetic"
INPUT_DIM = 4
NUM_CLASSES = 6
NUM_FACTORS = 2
NUM_TRAIN = 4000
NUM_TEST = 2000
CLASS_NAMES = tuple(f"class_{k}" for k in range(NUM_CLASSES))
# Factor r couples classes (2r, 2r + 1) with opposite signs: their labels get swapped.
planted_pairs = ((0, 1), (2, 3))
LOC_SCALE = 1.0  # std of the entries of W: mu_k(x) has std LOC_SCALE * sqrt(INPUT_DIM) = 2
DIAG_SCALE = 0.5  # d_k, the diagonal noise standard deviation before g(x)
FACTOR_SCALE = 1.5  # size of the planted factor entries (+-)
NOISE_SLOPE = 1.0  # |w_g|: how strongly the noise scale depends on x
MODEL_SEED = 0
DATA_SEED = 1


def _softplus(z):
    return np.logaddexp(0.0, z)


@dataclasses.dataclass(frozen=True)
class LatentGaussianModel:
    """u = mu(x) + g(x) (d * eps_K + V eps_R), y = argmax u (see the module docstring).

    Attributes:
      loc_kernel: W, [D, K].
      loc_bias: b, [K].
      diag_scale: d, [K], positive.
      factors: V, [K, R].
      noise_kernel: w_g, [D].
      noise_bias: b_g, scalar.
    """

    loc_kernel: np.ndarray
    loc_bias: np.ndarray
    diag_scale: np.ndarray
    factors: np.ndarray
    noise_kernel: np.ndarray
    noise_bias: float = 0.0

    def __post_init__(self):
        num_classes = np.shape(self.loc_kernel)[1]
        if num_classes < 2:
            raise ValueError(f"Need at least 2 classes. Received: num_classes={num_classes}")
        if np.any(np.asarray(self.diag_scale) <= 0):
            raise ValueError(
                f"`diag_scale` must be > 0 everywhere. Received: diag_scale={self.diag_scale}"
            )

    @property
    def num_classes(self):
        return np.shape(self.loc_kernel)[1]

    def loc(self, x):
        """mu(x), [N, K]."""
        return np.asarray(x, np.float64) @ self.loc_kernel + self.loc_bias

    def noise_scale(self, x):
        """g(x), [N]."""
        return _softplus(np.asarray(x, np.float64) @ self.noise_kernel + self.noise_bias)

    def covariance(self, x):
        """Sigma(x) = g(x)^2 (diag(d^2) + V V^T), [N, K, K]."""
        base = np.diag(np.square(self.diag_scale)) + self.factors @ self.factors.T
        return np.square(self.noise_scale(x))[:, None, None] * base

    def sample_labels(self, x, rng):
        """Draws y = argmax(mu(x) + eps) once per example, [N] int32."""
        loc = self.loc(x)
        scale = self.noise_scale(x)[:, None]
        eps_k = rng.standard_normal(loc.shape)
        eps_r = rng.standard_normal((len(loc), self.factors.shape[1]))
        u = loc + scale * (self.diag_scale * eps_k + eps_r @ self.factors.T)
        return np.argmax(u, axis=-1).astype(np.int32)

    def label_probability(self, x, y, *, num_samples=1000, num_quadrature=16, seed=0):
        """p(y | x) under the model, with its Monte Carlo standard error.

        Conditioned on the low-rank noise eps_R the logits are independent normals
        u_k ~ N(m_k, s_k^2), and P(argmax = y | eps_R) = E_{t ~ N(m_y, s_y^2)} prod_{j != y}
        Phi((t - m_j) / s_j), a 1-d integral done by Gauss-Hermite quadrature. Only eps_R is
        sampled (Rao-Blackwellisation), which makes the estimate smooth and never zero.

        Args:
          x: [N, D] inputs.
          y: [N] integer labels in [0, K).
          num_samples: Monte Carlo samples of eps_R per example (>= 2).
          num_quadrature: Gauss-Hermite nodes for the inner integral (>= 2).
          seed: seed of the eps_R draws.

        Returns:
          (log_p [N], relative_standard_error [N]), float64: log p(y | x) and the standard error
          of the estimate of p divided by p (which is also the standard error of log_p).

        Raises:
          ValueError: on bad sample counts or labels.
        """
        if num_samples < 2:
            raise ValueError(f"`num_samples` must be >= 2. Received: num_samples={num_samples}")
        if num_quadrature < 2:
            raise ValueError(
                f"`num_quadrature` must be >= 2. Received: num_quadrature={num_quadrature}"
            )
        y = np.asarray(y)
        if y.ndim != 1 or len(y) != len(x) or y.min() < 0 or y.max() >= self.num_classes:
            raise ValueError(
                f"`y` must be [N] labels in [0, {self.num_classes}) with N = len(x) = {len(x)}. "
                f"Received: y.shape={y.shape}, range=[{y.min()}, {y.max()}]"
            )
        nodes, weights = np.polynomial.hermite.hermgauss(num_quadrature)
        nodes, weights = np.sqrt(2.0) * nodes, weights / np.sqrt(np.pi)  # standard normal
        eps_r = np.random.default_rng(seed).standard_normal((num_samples, self.factors.shape[1]))
        shift = eps_r @ self.factors.T  # [S, K]
        loc, scale = self.loc(x), self.noise_scale(x)
        log_p, rel_se = np.empty(len(y)), np.empty(len(y))
        chunk = max(1, 1_000_000 // (num_samples * num_quadrature * self.num_classes))
        for start in range(0, len(y), chunk):
            sl = slice(start, start + chunk)
            g = scale[sl, None, None]
            m = loc[sl, None, :] + g * shift[None]  # [n, S, K]
            s = g[..., 0] * self.diag_scale  # [n, K]
            log_p[sl], rel_se[sl] = _log_label_probability(m, s, y[sl], nodes, weights)
        return log_p, rel_se


def _log_label_probability(m, s, y, nodes, weights, *, log_space=False):
    """log of mean_S P(argmax = y | eps_R) for conditional means m [n, S, K], stds s [n, K].

    Fast path with Phi in linear space; examples whose probability underflows (labels the model
    finds all but impossible) are redone with log Phi, which is ~4x slower.
    """
    rows = np.arange(len(m))
    t = m[rows, :, y][..., None] + s[rows, y][:, None, None] * nodes  # [n, S, Q]
    z = (t[..., None] - m[:, :, None, :]) / s[:, None, None, :]  # [n, S, Q, K]
    if log_space:
        log_cdf = special.log_ndtr(z)
        log_cdf[rows, :, :, y] = 0.0  # the product runs over j != y
        log_conditional = special.logsumexp(log_cdf.sum(-1), b=weights, axis=-1)  # [n, S]
        log_p = special.logsumexp(log_conditional, axis=-1) - np.log(m.shape[1])
        ratio = np.exp(log_conditional - log_p[:, None])  # conditional / p
        return log_p, ratio.std(-1, ddof=1) / np.sqrt(m.shape[1])
    cdf = special.ndtr(z)
    cdf[rows, :, :, y] = 1.0  # the product runs over j != y
    conditional = np.prod(cdf, axis=-1) @ weights  # [n, S]
    p = conditional.mean(-1)
    tiny = p < 1e-250
    with np.errstate(divide="ignore", invalid="ignore"):
        log_p, rel_se = np.log(p), conditional.std(-1, ddof=1) / np.sqrt(m.shape[1]) / p
    if tiny.any():
        log_p[tiny], rel_se[tiny] = _log_label_probability(
            m[tiny], s[tiny], y[tiny], nodes, weights, log_space=True
        )
    return log_p, rel_se


def bayes_optimal_nll(x=None, y=None, *, model=None, num_samples=1000, num_quadrature=16, seed=0):
    """Mean -log p(y | x) under the true model: the Bayes-optimal NLL of a labelled set.

    Args:
      x: [N, D] inputs; default: the `synthetic` test inputs.
      y: [N] labels; default: the `synthetic` (noisy) test labels.
      model: a `LatentGaussianModel`; default: the planted one (`planted_model()`).
      num_samples: eps_R samples per example (see `LatentGaussianModel.label_probability`).
      num_quadrature: Gauss-Hermite nodes.
      seed: seed of the Monte Carlo draws.

    Returns:
      (nll, standard_error): floats; the standard error is that of the Monte Carlo estimate
      (delta method, summed over examples), not of the finite test set. With the defaults it
      is below 1e-3 on the `synthetic` test set.

    Raises:
      ValueError: if only one of `x`, `y` is given, or on bad labels or sample counts.
    """
    if (x is None) != (y is None):
        raise ValueError("Pass both `x` and `y` or neither. Received: only one of them")
    if x is None:
        arrays = load_arrays()
        x, y = arrays["x_test"], arrays["y_test"]
    model = planted_model() if model is None else model
    log_p, rel_se = model.label_probability(
        x, y, num_samples=num_samples, num_quadrature=num_quadrature, seed=seed
    )
    nll = float(-np.mean(log_p))
    standard_error = float(np.sqrt(np.sum(np.square(rel_se))) / len(log_p))
    return nll, standard_error


@dataclasses.dataclass(frozen=True)
class SyntheticSpec:
    """A planted latent Gaussian model and the data drawn from it; the default is `synthetic`.

    Attributes:
      classes: K, >= 2.
      features: D, the input dimension, >= 1.
      factors: R, the rank of the planted low-rank part, >= 1 (`2 R <= K` for `sigma="pairs"`).
      sigma: `"pairs"`: factor r is +-`factor_scale` on classes (2r, 2r + 1) and every d_k is
        `diag` (the `synthetic` set); `"random"`: V's entries are N(0, factor_scale^2 / R) and
        d_k = diag * 2^u with u ~ U(-1, 1), drawn from `seed`, so Sigma has no structure a
        recipe could have been tuned to.
      diag: the diagonal noise standard deviation (before g(x)), > 0.
      factor_scale: the size of the factors (a row of V has squared norm ~factor_scale^2), > 0.
      slope: |w_g|, how strongly the noise scale g(x) depends on x, >= 0.
      train, test: numbers of examples, >= 1.
      seed: draws the model (W, w_g and, for `"random"`, V and d).
      data_seed: draws the inputs and their labels.
    """

    classes: int = NUM_CLASSES
    features: int = INPUT_DIM
    factors: int = NUM_FACTORS
    sigma: str = "pairs"
    diag: float = DIAG_SCALE
    factor_scale: float = FACTOR_SCALE
    slope: float = NOISE_SLOPE
    train: int = NUM_TRAIN
    test: int = NUM_TEST
    seed: int = MODEL_SEED
    data_seed: int = DATA_SEED

    def __post_init__(self):
        ints = {"classes": (2, 1000), "features": (1, 10_000), "factors": (1, 1000)}
        ints.update(train=(1, 10_000_000), test=(1, 10_000_000))
        ints.update(seed=(0, 2**63 - 1), data_seed=(0, 2**63 - 1))
        for key, (low, high) in ints.items():
            value = getattr(self, key)
            if not (isinstance(value, int) and low <= value <= high):
                raise ValueError(
                    f"{key} must be an integer in [{low}, {high}]. Received: {key}={value!r}"
                )
        if self.sigma not in SIGMAS:
            raise ValueError(
                f"Unknown sigma. Received: sigma={self.sigma!r}; allowed: {list(SIGMAS)}"
            )
        limit = self.classes // 2 if self.sigma == "pairs" else self.classes
        if self.factors > limit:
            raise ValueError(
                f"factors must be <= {limit} for sigma={self.sigma!r} and classes={self.classes}. "
                f"Received: factors={self.factors}"
            )
        for key, minimum in (("diag", "> 0"), ("factor_scale", "> 0"), ("slope", ">= 0")):
            value = getattr(self, key)
            if not (
                isinstance(value, float)
                and np.isfinite(value)
                and (value > 0 if minimum == "> 0" else value >= 0)
            ):
                raise ValueError(
                    f"{key} must be a finite float {minimum}. Received: {key}={value!r}"
                )

    @classmethod
    def parse(cls, text):
        """The spec of `"classes=8,factors=3,sigma=random,seed=5"` (any subset of the fields).

        Raises:
          ValueError: naming the key that is unknown or malformed.
        """
        parsers = {field.name: field.type for field in dataclasses.fields(cls)}
        return cls(**_arrays_lib.parse_spec(NAME, text, parsers))

    @property
    def name(self):
        """The dataset name of this variant (canonical: every key, in order)."""
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return _arrays_lib.spec_name(NAME, fields)

    def model(self):
        """The planted `LatentGaussianModel`."""
        rng = np.random.default_rng(self.seed)
        noise_kernel = rng.standard_normal(self.features)
        loc_kernel = LOC_SCALE * rng.standard_normal((self.features, self.classes))
        if self.sigma == "pairs":
            factors = np.zeros((self.classes, self.factors))
            for r in range(self.factors):
                factors[2 * r, r], factors[2 * r + 1, r] = self.factor_scale, -self.factor_scale
            diag_scale = np.full(self.classes, self.diag)
        else:
            scale = self.factor_scale / np.sqrt(self.factors)
            factors = scale * rng.standard_normal((self.classes, self.factors))
            diag_scale = self.diag * 2.0 ** rng.uniform(-1.0, 1.0, self.classes)
        return LatentGaussianModel(
            loc_kernel=loc_kernel,
            loc_bias=np.zeros(self.classes),
            diag_scale=diag_scale,
            factors=factors,
            noise_kernel=self.slope * noise_kernel / np.linalg.norm(noise_kernel),
            noise_bias=0.0,
        )


SIGMAS = ("pairs", "random")


def random_spec(rng):
    """A random variant with a random planted Sigma (`sigma="random"`): K in 4..10, R in 1..3,
    diag in [0.3, 1], factor_scale in [1, 2.5], slope in [0.5, 1.5], a 10,000-example test set
    (tight paired intervals) and fresh model and data seeds."""
    return SyntheticSpec(
        classes=int(rng.integers(4, 11)),
        factors=int(rng.integers(1, 4)),
        sigma="random",
        diag=round(float(rng.uniform(0.3, 1.0)), 2),
        factor_scale=round(float(rng.uniform(1.0, 2.5)), 2),
        slope=round(float(rng.uniform(0.5, 1.5)), 2),
        test=10_000,
        seed=int(rng.integers(0, 2**31 - 1)),
        data_seed=int(rng.integers(0, 2**31 - 1)),
    )


def planted_model():
    """The fixed `LatentGaussianModel` behind the `synthetic` data set."""
    return _model(SyntheticSpec())


@functools.lru_cache(maxsize=32)
def _model(spec):
    return spec.model()


@functools.lru_cache(maxsize=32)
def make_arrays(spec):
    """The data of `spec` (see `load_arrays` for the keys); cached, do not modify in place."""
    model = _model(spec)
    rng = np.random.default_rng(spec.data_seed)
    # float32 first, so that the labels belong to exactly the inputs a model sees.
    x = rng.standard_normal((spec.train + spec.test, spec.features)).astype(np.float32)
    y = model.sample_labels(x, rng)
    x_test = x[spec.train :]
    return {
        "x_train": x[: spec.train],
        "y_train": y[: spec.train],
        "x_test": x_test,
        "y_test": y[spec.train :],
        "y_test_clean": np.argmax(model.loc(x_test), axis=-1).astype(np.int32),
        "class_names": tuple(f"class_{k}" for k in range(spec.classes)),
    }


def load_arrays():
    """The data set as numpy arrays (computed once, then cached; do not modify them in place).

    Returns:
      dict with `x_train` [4000, 4] float32, `y_train` [4000] int32, `x_test` [2000, 4],
      `y_test` (sampled labels), `y_test_clean` (argmax mu(x)) and `class_names`.
    """
    return make_arrays(SyntheticSpec())


register_arrays(NAME, load_arrays)
_arrays_lib.register_family(NAME, lambda text: make_arrays(SyntheticSpec.parse(text)))
