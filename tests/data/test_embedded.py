"""Tests of the embedded data sets `noisy_digits` and `synthetic` (no download, no training)."""

import numpy as np
import pytest
from scipy import stats
from sklearn.datasets import load_digits

from het_ensembles import data
from het_ensembles.data import noisy_digits, synthetic

# --- noisy_digits ---------------------------------------------------------------------------


def test_noisy_digits_planted_pairs_and_names_are_exposed():
    assert noisy_digits.planted_pairs == ((1, 7), (3, 8), (4, 9), (5, 6))
    info = data.get_info("noisy_digits")
    assert info.num_classes == 10
    assert info.input_shape == (8, 8, 1)
    assert info.class_names == tuple(str(k) for k in range(10))
    assert info.num_examples == {"train": 1258, "test": 539, "test_clean": 539}


def test_noisy_digits_is_the_sklearn_digits_with_clean_labels_kept():
    arrays = noisy_digits.load_arrays()
    digits = load_digits()
    x = np.concatenate([arrays["x_train"], arrays["x_test"]])[..., 0]
    clean = np.concatenate([arrays["y_train_clean"], arrays["y_test_clean"]])
    # Every sklearn image appears once, with its own label, scaled from 0..16 to [0, 1].
    reference = {img.tobytes(): [] for img in (digits.images / 16.0).astype(np.float32)}
    for img, label in zip((digits.images / 16.0).astype(np.float32), digits.target):
        reference[img.tobytes()].append(label)
    assert len(x) == len(digits.images)
    for img, label in zip(x, clean):
        assert label in reference[img.tobytes()]
    # Stratified split: each class has 30% +- 1 example in test.
    counts = np.bincount(digits.target)
    test_counts = np.bincount(arrays["y_test_clean"], minlength=10)
    np.testing.assert_array_less(np.abs(test_counts - 0.3 * counts), 1.0)


def test_noisy_digits_flips_only_inside_planted_pairs():
    arrays = noisy_digits.load_arrays()
    partner = {}
    for a, b in noisy_digits.planted_pairs:
        partner[a], partner[b] = b, a
    for split in ("train", "test"):
        noisy, clean = arrays[f"y_{split}"], arrays[f"y_{split}_clean"]
        flipped = noisy != clean
        assert 0.1 < flipped.mean() < 0.3
        for y_noisy, y_clean in zip(noisy[flipped], clean[flipped]):
            assert partner[int(y_clean)] == y_noisy
        assert not flipped[np.isin(clean, (0, 2))].any()


def test_noisy_digits_flip_probability_follows_the_documented_formula():
    arrays = noisy_digits.load_arrays()
    x = np.concatenate([arrays["x_train"], arrays["x_test"]])
    ink = x.reshape(len(x), -1).astype(np.float64).mean(1)
    z = (ink - ink.mean()) / ink.std()
    expected = 0.5 * (1.0 - 1.0 / (1.0 + np.exp(-2.0 * z)))  # 0.5 * sigmoid(-2 z)
    paired = np.isin(np.concatenate([arrays["y_train_clean"], arrays["y_test_clean"]]), (0, 2))
    expected[paired] = 0.0
    got = np.concatenate([arrays["flip_probability_train"], arrays["flip_probability_test"]])
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-12)
    # Input-dependent: faint digits of the paired classes are flipped more often than bold ones.
    noisy = np.concatenate([arrays["y_train"], arrays["y_test"]])
    clean = np.concatenate([arrays["y_train_clean"], arrays["y_test_clean"]])
    faint, bold = (z < -0.5) & ~paired, (z > 0.5) & ~paired
    assert (noisy[faint] != clean[faint]).mean() > 2 * (noisy[bold] != clean[bold]).mean()


def test_noisy_digits_load_gives_noisy_and_clean_test_labels_in_order():
    arrays = noisy_digits.load_arrays()
    for split, key in (("test", "y_test"), ("test_clean", "y_test_clean")):
        batches = list(data.load("noisy_digits", split, batch_size=100, is_training=False))
        x = np.concatenate([b[0].numpy() for b in batches])
        y = np.concatenate([b[1].numpy() for b in batches])
        np.testing.assert_array_equal(y, arrays[key])
        np.testing.assert_array_equal(x, arrays["x_test"])


def test_noisy_digits_flip_probability_rejects_bad_std():
    with pytest.raises(ValueError, match="ink_std"):
        noisy_digits.flip_probability(np.zeros((2, 8, 8)), ink_mean=0.3, ink_std=0.0)


# --- synthetic ------------------------------------------------------------------------------


def _two_class_model(num_factors=2, seed=0):
    rng = np.random.default_rng(seed)
    return synthetic.LatentGaussianModel(
        loc_kernel=rng.standard_normal((3, 2)),
        loc_bias=np.array([0.3, -0.2]),
        diag_scale=np.array([0.7, 0.4]),
        factors=rng.standard_normal((2, num_factors)),
        noise_kernel=rng.standard_normal(3),
        noise_bias=0.5,
    )


@pytest.mark.parametrize("num_factors", [1, 3])
def test_bayes_nll_matches_two_class_closed_form(num_factors):
    model = _two_class_model(num_factors)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((60, 3))
    y = model.sample_labels(x, rng)
    # u1 - u0 ~ N(mu1 - mu0, g^2 (d0^2 + d1^2 + |V1 - V0|^2)), so P(y=1) = Phi(mean / std).
    mu = x @ model.loc_kernel + model.loc_bias
    g = np.log1p(np.exp(x @ model.noise_kernel + model.noise_bias))
    var = g**2 * (np.sum(model.diag_scale**2) + np.sum((model.factors[1] - model.factors[0]) ** 2))
    z = (mu[:, 1] - mu[:, 0]) / np.sqrt(var)
    expected = -np.mean(np.where(y == 1, stats.norm.logcdf(z), stats.norm.logcdf(-z)))
    nll, se = synthetic.bayes_optimal_nll(x, y, model=model, num_samples=4000)
    assert se < 5e-3
    assert abs(nll - expected) < 4 * se + 1e-4


def test_bayes_nll_is_finite_for_labels_the_model_finds_all_but_impossible():
    model = _two_class_model(1)
    x = np.array([[30.0, -30.0, 30.0]])  # so far out that Phi underflows in linear space
    mu = x @ model.loc_kernel + model.loc_bias
    unlikely = np.array([int(mu[0, 1] < mu[0, 0])])
    nll, _ = synthetic.bayes_optimal_nll(x, unlikely, model=model)
    likely_nll, _ = synthetic.bayes_optimal_nll(x, 1 - unlikely, model=model)
    assert np.isfinite(nll) and nll > 1000.0
    assert 0.0 <= likely_nll < 1e-6


RANDOM_SIGMA = "classes=5,features=3,factors=3,sigma=random,diag=0.4,factor_scale=2,seed=11"


@pytest.mark.parametrize("spec", ["", RANDOM_SIGMA])
def test_label_probability_matches_sampled_label_frequencies(spec):
    spec = synthetic.SyntheticSpec.parse(spec)
    model = spec.model()
    x = np.random.default_rng(2).standard_normal((3, spec.features))
    num_draws = 40_000
    samples = model.sample_labels(np.repeat(x, num_draws, axis=0), np.random.default_rng(3))
    freq = np.stack([np.bincount(s, minlength=spec.classes) for s in samples.reshape(3, -1)])
    freq = freq / num_draws
    for k in range(spec.classes):
        log_p, rel_se = model.label_probability(x, np.full(3, k), num_samples=2000)
        p, se = np.exp(log_p), np.exp(log_p) * rel_se
        binomial_variance = freq[:, k] * (1 - freq[:, k]) / num_draws
        tolerance = 4 * np.sqrt(binomial_variance + se**2)
        np.testing.assert_array_less(np.abs(p - freq[:, k]), tolerance + 1e-3)


def test_planted_covariance_is_low_rank_plus_diagonal_with_planted_pairs():
    model = synthetic.planted_model()
    x = synthetic.load_arrays()["x_test"][:4]
    cov = model.covariance(x)
    assert cov.shape == (4, 6, 6)
    g2 = np.log1p(np.exp(x.astype(np.float64) @ model.noise_kernel)) ** 2
    base = cov / g2[:, None, None]
    np.testing.assert_allclose(base, np.broadcast_to(base[0], base.shape), rtol=1e-10)
    # Off-diagonal mass is exactly the planted pairs, with opposite signs.
    off = base[0] - np.diag(np.diag(base[0]))
    pairs = {(i, j) for i, j in zip(*np.nonzero(off)) if i < j}
    assert pairs == set(synthetic.planted_pairs)
    assert all(off[i, j] < 0 for i, j in pairs)


def test_synthetic_is_registered_with_clean_labels():
    info = data.get_info("synthetic")
    assert info.num_classes == 6
    assert info.input_shape == (synthetic.INPUT_DIM,)
    assert info.num_examples == {"train": 4000, "test": 2000, "test_clean": 2000}
    arrays = synthetic.load_arrays()
    np.testing.assert_array_equal(
        arrays["y_test_clean"],
        np.argmax(arrays["x_test"] @ synthetic.planted_model().loc_kernel, 1),
    )
    # Labels are noisy: a sizeable share differs from the noise-free argmax.
    assert 0.1 < np.mean(arrays["y_test"] != arrays["y_test_clean"]) < 0.5


def test_the_default_synthetic_spec_is_synthetic_and_names_round_trip():
    assert synthetic.make_arrays(synthetic.SyntheticSpec()) is synthetic.load_arrays()
    np.testing.assert_array_equal(
        synthetic.SyntheticSpec().model().factors, synthetic.planted_model().factors
    )
    spec = synthetic.random_spec(np.random.default_rng(7))
    assert spec == synthetic.random_spec(np.random.default_rng(7))
    assert synthetic.SyntheticSpec.parse(spec.name.partition(":")[2]) == spec
    assert spec.sigma == "random" and 4 <= spec.classes <= 10 and spec.test == 10_000
    # Floats are written in full, so a name always reads back as the same data.
    odd = synthetic.SyntheticSpec(diag=0.1234567891, slope=0.0)
    assert synthetic.SyntheticSpec.parse(odd.name.partition(":")[2]) == odd


def test_a_random_sigma_variant_is_its_planted_model():
    spec = synthetic.SyntheticSpec.parse(RANDOM_SIGMA + ",train=300,test=1500,data_seed=4")
    model = spec.model()
    # A dense, full-rank-plus-diagonal Sigma with per-class diagonal in [diag / 2, 2 diag].
    assert model.factors.shape == (5, 3) and np.all(model.factors != 0)
    assert np.all((model.diag_scale >= 0.2) & (model.diag_scale <= 0.8))
    assert len(np.unique(model.diag_scale)) == 5
    info = data.get_info(spec.name)
    assert info.num_classes == 5 and info.input_shape == (3,)
    assert info.num_examples == {"train": 300, "test": 1500, "test_clean": 1500}
    arrays = synthetic.make_arrays(spec)
    x, y = arrays["x_test"], arrays["y_test"]
    # The labels are draws from this model: it gives them a lower NLL than a model with any one
    # of its noise parameters moved (the margins are >= 0.009, the Monte Carlo error ~0.001).
    nll, _ = synthetic.bayes_optimal_nll(x, y, model=model)
    for moved in (",slope=0.5", ",factor_scale=1.5", ",diag=0.8"):
        other = synthetic.SyntheticSpec.parse(RANDOM_SIGMA + moved).model()
        assert nll < synthetic.bayes_optimal_nll(x, y, model=other)[0], moved
    np.testing.assert_array_equal(arrays["y_test_clean"], np.argmax(model.loc(x), axis=1))


@pytest.mark.parametrize(
    "text, message",
    [
        ("classes=1", r"classes must be an integer in \[2, 1000\]"),
        ("classes=6,factors=4", "factors must be <= 3 for sigma='pairs'"),
        ("sigma=full", "Unknown sigma"),
        ("diag=0", "diag must be a finite float > 0"),
        ("slope=-0.5", "slope must be a finite float >= 0"),
        ("test=2.5", "Malformed test='2.5'"),
        ("colour=red", "Unknown key 'colour' in the synthetic spec"),
    ],
)
def test_bad_synthetic_specs_name_the_key(text, message):
    with pytest.raises(ValueError, match=message):
        data.get_info(f"synthetic:{text}")


def test_bayes_nll_rejects_bad_arguments():
    model = _two_class_model()
    x = np.zeros((2, 3))
    with pytest.raises(ValueError, match="num_samples"):
        synthetic.bayes_optimal_nll(x, np.zeros(2, int), model=model, num_samples=1)
    with pytest.raises(ValueError, match="`y` must be"):
        synthetic.bayes_optimal_nll(x, np.array([0, 2]), model=model)
    with pytest.raises(ValueError, match="both"):
        synthetic.bayes_optimal_nll(x)
    with pytest.raises(ValueError, match="diag_scale"):
        synthetic.LatentGaussianModel(
            loc_kernel=np.zeros((3, 2)),
            loc_bias=np.zeros(2),
            diag_scale=np.array([1.0, 0.0]),
            factors=np.zeros((2, 1)),
            noise_kernel=np.zeros(3),
        )


# --- noisy_digits variants ------------------------------------------------------------------

VARIANT = "pairs=0-6+2-5,feature=top_heaviness,rate=0.4,seed=3"


def test_a_variant_flips_only_its_pairs_with_its_feature_driving_the_rate():
    spec = noisy_digits.NoiseSpec.parse(VARIANT)
    arrays = noisy_digits.make_arrays(spec)
    base = noisy_digits.load_arrays()
    np.testing.assert_array_equal(arrays["x_train"], base["x_train"])  # same images and split
    np.testing.assert_array_equal(arrays["y_test_clean"], base["y_test_clean"])
    x = np.concatenate([arrays["x_train"], arrays["x_test"]])[..., 0].astype(np.float64)
    feature = x[:, :4].mean(axis=(1, 2)) - x[:, 4:].mean(axis=(1, 2))  # top minus bottom half
    z = (feature - feature.mean()) / feature.std()
    clean = np.concatenate([arrays["y_train_clean"], arrays["y_test_clean"]])
    expected = np.where(np.isin(clean, (0, 6, 2, 5)), 0.4 / (1.0 + np.exp(2.0 * z)), 0.0)
    got = np.concatenate([arrays["flip_probability_train"], arrays["flip_probability_test"]])
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-12)
    noisy = np.concatenate([arrays["y_train"], arrays["y_test"]])
    partner = {0: 6, 6: 0, 2: 5, 5: 2}
    flipped = noisy != clean
    assert 0.02 < flipped.mean() < 0.2
    assert all(partner[int(c)] == int(n) for c, n in zip(clean[flipped], noisy[flipped]))
    # Through the data layer by name, with the split syntax the evaluator uses.
    name = f"noisy_digits:{VARIANT}"
    assert data.get_info(name).num_examples == {"train": 1258, "test": 539, "test_clean": 539}
    y = np.concatenate(
        [b[1].numpy() for b in data.load(name, "test", batch_size=200, is_training=False)]
    )
    np.testing.assert_array_equal(y, arrays["y_test"])


def test_the_default_spec_is_noisy_digits_and_names_round_trip():
    assert noisy_digits.make_arrays(noisy_digits.NoiseSpec()) is noisy_digits.load_arrays()
    spec = noisy_digits.random_spec(np.random.default_rng(7))
    assert noisy_digits.NoiseSpec.parse(spec.name.partition(":")[2]) == spec
    assert spec == noisy_digits.random_spec(np.random.default_rng(7))
    assert 2 <= len(spec.pairs) <= 4 and 0.3 <= spec.rate <= 0.6


@pytest.mark.parametrize(
    "text, message",
    [
        ("pairs=1-1", "pairs must be disjoint pairs"),
        ("pairs=1-7+7-3", "pairs must be disjoint pairs"),
        ("feature=x", "Unknown feature"),
        ("rate=0", r"rate must be a float in \(0, 1\]"),
        ("rate=abc", "Malformed rate='abc'"),
        ("seed=-1", "seed must be an integer >= 0"),
        ("colour=red", "Unknown key 'colour'"),
    ],
)
def test_bad_variant_specs_name_the_key(text, message):
    with pytest.raises(ValueError, match=message):
        data.get_info(f"noisy_digits:{text}")
