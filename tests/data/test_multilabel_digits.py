"""Tests of the embedded multi-label set `multilabel_digits` (no training).

References: scikit-learn's own digits and targets (what was placed where), the closed-form
event rates of the documented process (faintness uniform on [0, 1]), and a label union written
here from the recorded events.
"""

import numpy as np
import pytest
from sklearn.datasets import load_digits

from het_ensembles import data
from het_ensembles.data import multilabel_digits as mld

PARTNER = {1: 7, 7: 1, 3: 8, 8: 3, 4: 9, 9: 4, 5: 6, 6: 5}


@pytest.fixture(scope="module")
def arrays():
    return mld.load_arrays()


@pytest.fixture(scope="module")
def placements(arrays):
    """Every placed digit of both splits: digit, faintness, event (1-D arrays)."""
    out = {}
    for key in ("digit", "faintness", "event"):
        values = np.concatenate([arrays[f"{key}_train"], arrays[f"{key}_test"]])
        placed = np.concatenate([arrays["digit_train"], arrays["digit_test"]]) >= 0
        out[key] = values[placed]
    return out


def test_info_and_pipeline_give_multi_hot_batches():
    info = data.get_info("multilabel_digits")
    assert info.multilabel and info.num_classes == 10
    assert info.input_shape == (16, 16, 1)
    assert info.num_examples == {"train": 3000, "test": 1000, "test_clean": 1000}
    x, y = next(iter(data.load("multilabel_digits", "test_clean", batch_size=7, is_training=False)))
    assert x.shape == (7, 16, 16, 1) and y.shape == (7, 10) and y.dtype.name == "int32"
    np.testing.assert_array_equal(y.numpy(), mld.load_arrays()["y_test_clean"][:7])


@pytest.mark.parametrize("split", ["train", "test"])
def test_canvases_hold_the_sklearn_digits_their_clean_labels_name(arrays, split):
    digits = load_digits()
    x = arrays[f"x_{split}"][..., 0]
    for i in range(0, len(x), 7):  # every 7th composite: ~570 canvases, all four quadrants
        expected = np.zeros((16, 16))
        names = set()
        placed = arrays[f"source_{split}"][i] >= 0
        assert 1 <= placed.sum() <= 3
        for source, slot, faint in zip(
            arrays[f"source_{split}"][i][placed],
            arrays[f"slot_{split}"][i][placed],
            arrays[f"faintness_{split}"][i][placed],
        ):
            row, col = divmod(int(slot), 2)
            block = expected[8 * row : 8 * row + 8, 8 * col : 8 * col + 8]
            assert not block.any(), "two digits in one quadrant"
            block[:] = digits.images[source] / 16.0 * (1 - 0.75 * faint)
            names.add(int(digits.target[source]))
        np.testing.assert_allclose(x[i], expected, atol=1e-6)
        assert len(names) == placed.sum(), "classes in one canvas must be distinct"
        assert set(np.flatnonzero(arrays[f"y_{split}_clean"][i])) == names


@pytest.mark.parametrize("split", ["train", "test"])
def test_noisy_labels_are_the_union_of_the_recorded_events(arrays, split):
    for i in range(len(arrays[f"y_{split}"])):
        positives = set()
        for digit, event in zip(arrays[f"digit_{split}"][i], arrays[f"event_{split}"][i]):
            if digit < 0:
                continue
            if event in (0, 3):  # kept (none, or added alongside its partner)
                positives.add(int(digit))
            if event in (2, 3):  # swapped to, or added, the partner
                positives.add(PARTNER[int(digit)])
        assert set(np.flatnonzero(arrays[f"y_{split}"][i])) == positives, i


def test_event_rates_match_the_planted_rates_within_binomial_error(placements):
    """With faintness f ~ U(0, 1) and P(event) = rate * f, the mean rate is rate / 2; in the faint
    half (f > 0.5) it is 3 rate / 4 and in the bold half rate / 4."""
    digit, faint, event = placements["digit"], placements["faintness"], placements["event"]
    often = np.isin(digit, (1, 7))
    paired = ~np.isin(digit, (0, 2))
    cases = [
        ("missing, digits other than 1 and 7", ~often, 1, 0.3),
        ("missing, 1 and 7", often, 1, 0.5),
        ("swapped, paired digits", paired, 2, 0.25),
        ("added, paired digits", paired, 3, 0.25),
    ]
    for name, group, code, rate in cases:
        for part, scale in (
            (np.ones_like(faint, bool), 0.5),
            (faint > 0.5, 0.75),
            (faint <= 0.5, 0.25),
        ):
            mask = group & part
            p = rate * scale
            observed = np.mean(event[mask] == code)
            se = np.sqrt(p * (1 - p) / mask.sum())
            assert abs(observed - p) < 4 * se, (name, scale, observed, p, mask.sum())
    assert not np.isin(event[~paired], (2, 3)).any(), "0 and 2 have no partner"
    # Faintness is uniform on [0, 1] (Kolmogorov-Smirnov against the closed-form CDF).
    from scipy import stats

    assert stats.kstest(faint, "uniform").pvalue > 1e-3


def test_train_and_test_composites_use_disjoint_source_images(arrays):
    train = set(arrays["source_train"][arrays["source_train"] >= 0].tolist())
    test = set(arrays["source_test"][arrays["source_test"] >= 0].tolist())
    assert train and test and not train & test
    train_pool, test_pool = mld.source_split()
    assert train <= set(train_pool.tolist()) and test <= set(test_pool.tolist())
    assert len(train_pool) + len(test_pool) == 1797
    # Stratified: each class has 30% +- 1 of its images among the test sources.
    target = load_digits().target
    np.testing.assert_array_less(
        np.abs(np.bincount(target[test_pool], minlength=10) - 0.3 * np.bincount(target)), 1.0
    )


def test_deterministic_given_the_seed_and_different_for_another():
    spec = mld.NoiseSpec(seed=5)
    first = mld.make_arrays.__wrapped__(spec)
    second = mld.make_arrays.__wrapped__(spec)
    for key in first:
        np.testing.assert_array_equal(first[key], second[key], err_msg=key)
    other = mld.make_arrays.__wrapped__(mld.NoiseSpec(seed=6))
    assert not np.array_equal(first["y_train"], other["y_train"])


def test_variants_parse_and_reject_bad_specs():
    spec = mld.NoiseSpec.parse("miss=0.2,add=0.1,seed=3")
    assert spec == mld.NoiseSpec(miss=0.2, swap=0.25, add=0.1, seed=3)
    assert mld.NoiseSpec.parse(spec.name.partition(":")[2]) == spec
    no_noise = data.get_info("multilabel_digits:miss=0,swap=0,add=0")
    assert no_noise.multilabel and no_noise.num_examples["train"] == 3000
    clean = mld.load_arrays(mld.NoiseSpec(miss=0.0, swap=0.0, add=0.0))
    np.testing.assert_array_equal(clean["y_train"], clean["y_train_clean"])
    with pytest.raises(ValueError, match="Unknown key 'rate'"):
        mld.NoiseSpec.parse("rate=0.3")
    with pytest.raises(ValueError, match="must sum to at most 1"):
        mld.NoiseSpec(miss=0.3, swap=0.3, add=0.3)
    with pytest.raises(ValueError, match="seed must be an integer >= 0. Received: seed=-1"):
        mld.NoiseSpec(seed=-1)
