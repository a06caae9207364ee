"""Tests of the where-Het-helps analysis (paper Figure 2 / Table 5) against numpy references.

The references here rank by sorting (Python's `sorted`), where the module counts larger
entries, and build Sigma(x), the predictions and the centring by hand.
"""

import json
import os
import shutil

import console
import keras
import numpy as np
import pytest

from het_ensembles.analysis import where_het_helps, where_het_helps_outputs

K = 5


def _sorted_rank(values, target):
    """1 + the position of the first entry of |values| sorted descending equal to |target|."""
    ordered = sorted((abs(v) for v in values), reverse=True)
    return 1 + next(i for i, v in enumerate(ordered) if v == abs(target))


def _reference_ranks(cov, y, h, within):
    ranks = []
    for c, yi, hi in zip(cov, y, h):
        c = (c + c.T) / 2  # a covariance is symmetric; P S P in floating point is not quite
        if within == "row":
            candidates = [c[yi, j] for j in range(len(c)) if j != yi]
        else:
            candidates = [c[i, j] for i in range(len(c)) for j in range(i + 1, len(c))]
        ranks.append(_sorted_rank(candidates, c[yi, hi]))
    return ranks


@pytest.mark.parametrize("within", ["row", "pairs"])
def test_covariance_ranks_match_a_sorted_ranking(within):
    rng = np.random.default_rng(0)
    a = rng.standard_normal((30, 6, 6))
    cov = a @ a.transpose(0, 2, 1)
    cov[3, 1, 2] = cov[3, 2, 1] = cov[3, 1, 4] = cov[3, 4, 1] = -7.0  # a tie in row 1
    y = rng.integers(0, 6, 30)
    h = (y + rng.integers(1, 6, 30)) % 6
    y[3], h[3] = 1, 4
    values, ranks = where_het_helps.covariance_ranks(cov, y, h, within=within)
    np.testing.assert_array_equal(values, cov[np.arange(30), y, h])
    np.testing.assert_array_equal(ranks, _reference_ranks(cov, y, h, within))
    assert ranks.min() >= 1 and ranks.max() <= where_het_helps.max_rank(6, within)
    if within == "row":
        assert ranks[3] == 1  # tied with C[1, 2] for the largest: ties share the better rank


def test_covariance_ranks_hand_cases_and_bad_arguments():
    # A planted swap 0 <-> 2 is the largest entry of row 0; the diagonal never counts.
    swap = np.array([1.0, 0.0, -1.0, 0.0])
    cov = (0.1 * np.eye(4) + np.outer(swap, swap))[None]
    values, ranks = where_het_helps.covariance_ranks(cov, [0], [2])
    assert values[0] == pytest.approx(-1.0) and ranks[0] == 1
    _, ranks = where_het_helps.covariance_ranks(cov, [0], [1])
    assert ranks[0] == 2  # |C[0, 1]| = 0 ties with C[0, 3], behind |C[0, 2]| = 1
    with pytest.raises(ValueError, match="differ from the true class"):
        where_het_helps.covariance_ranks(cov, [1], [1])
    with pytest.raises(ValueError, match=r"true_classes.*\[0, 4\)"):
        where_het_helps.covariance_ranks(cov, [4], [1])
    with pytest.raises(ValueError, match="within='column'"):
        where_het_helps.covariance_ranks(cov, [0], [1], within="column")
    with pytest.raises(ValueError, match=r"\[N, K, K\]"):
        where_het_helps.covariance_ranks(np.eye(3), [0], [1])


@keras.saving.register_keras_serializable(package="test_where_het_helps")
class SlicedHead(keras.layers.Layer):
    """Logits x[:, :K]; Sigma(x) = 0.1 I + v v^T + 4 * 11^T with v = x[:, K:2K] (the last term
    is common-mode noise, which centring removes)."""

    def call(self, x):
        return x[:, :K]

    def covariance(self, x):
        v = x[:, K : 2 * K]
        return 0.1 * keras.ops.eye(K) + v[:, :, None] * v[:, None, :] + 4.0

    def compute_output_shape(self, input_shape):
        return (input_shape[0], K)


class HomLogits(keras.layers.Layer):
    def call(self, x):
        return x[:, 2 * K :]

    def compute_output_shape(self, input_shape):
        return (input_shape[0], K)


def _hand_models():
    inputs = keras.Input((3 * K,))
    het = keras.Model(inputs, SlicedHead(name="head")(inputs))
    hom = keras.Model(inputs, HomLogits(name="hom_logits")(inputs))
    return het, hom


def _hand_data(n=41, seed=1):
    """x = [Het logits | factor v | Hom logits], labels; many Het-right-Hom-wrong examples."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, K, n)
    het_logits = rng.standard_normal((n, K))
    het_logits[np.arange(n), y] += 2.0 * (rng.random(n) < 0.8)
    hom_logits = rng.standard_normal((n, K))
    v = rng.standard_normal((n, K))
    return np.concatenate([het_logits, v, hom_logits], 1).astype(np.float32), y


def _reference(x, y, within="row", top_n=6):
    het, hom = x[:, :K].argmax(1), x[:, 2 * K :].argmax(1)
    chosen = np.flatnonzero((het == y) & (hom != y))
    p = np.eye(K) - np.ones((K, K)) / K
    rows = []
    for i in chosen:
        v = x[i, K : 2 * K].astype(np.float64)
        cov = p @ (0.1 * np.eye(K) + np.outer(v, v) + 4.0) @ p
        a, b = y[i], hom[i]
        rank = _reference_ranks(cov[None], [a], [b], within)[0]
        rows.append(
            (int(i), int(a), int(b), cov[a, b], cov[a, b] / np.sqrt(cov[a, a] * cov[b, b]), rank)
        )
    top = sorted(rows, key=lambda r: (-abs(r[3]), r[0]))[:top_n]
    return chosen, rows, top, int((het == y).sum()), int((hom == y).sum())


@pytest.mark.parametrize("within", ["row", "pairs"])
def test_streaming_analysis_matches_numpy_on_hand_built_models(within, monkeypatch):
    het, hom = _hand_models()
    x, y = _hand_data()
    batches = [(x[i : i + 7], y[i : i + 7]) for i in range(0, len(x), 7)]
    chosen, rows, top, het_right, hom_right = _reference(x, y, within)
    assert len(chosen) >= 10
    monkeypatch.setattr(where_het_helps, "_COVARIANCE_BYTES", 8 * K * K * 2)  # chunks of 2
    result = where_het_helps.where_het_helps(het, hom, batches, within=within, top_n=6)
    assert result["num_examples"] == len(x)
    assert (result["num_het_correct"], result["num_hom_correct"]) == (het_right, hom_right)
    assert result["num_het_right_hom_wrong"] == len(chosen) and result["centered"]
    selected = result["selected"]
    np.testing.assert_array_equal(selected["index"], chosen)
    np.testing.assert_array_equal(selected["hom_class"], [r[2] for r in rows])
    np.testing.assert_allclose(selected["covariance"], [r[3] for r in rows], rtol=1e-5)
    np.testing.assert_allclose(selected["correlation"], [r[4] for r in rows], rtol=1e-5)
    np.testing.assert_array_equal(selected["rank"], [r[5] for r in rows])
    fields = result["top"].fields
    np.testing.assert_array_equal(fields["index"], [r[0] for r in top])
    np.testing.assert_array_equal(result["top"].inputs, x[[r[0] for r in top]])
    counts = np.bincount([r[5] for r in rows])
    assert where_het_helps.rank_histogram(selected["rank"]) == {
        r: int(c) for r, c in enumerate(counts) if c
    }
    # max_examples stops early, and without centring the common mode (+4) dominates.
    first = where_het_helps.where_het_helps(het, hom, batches, max_examples=10, center=False)
    assert first["num_examples"] == 10
    assert list(first["selected"]["index"]) == [i for i in chosen if i < 10]
    np.testing.assert_allclose(
        first["selected"]["covariance"],
        [4.0 + x[i, K + y[i]] * x[i, K + x[i, 2 * K :].argmax()] for i in chosen if i < 10],
        rtol=1e-5,
    )


def test_summary_counts_planted_pairs_and_names_classes():
    het, hom = _hand_models()
    x, y = _hand_data()
    result = where_het_helps.where_het_helps(het, hom, [(x, y)], top_n=3)
    names = ("a", "b", "c", "d", "e")
    out = where_het_helps.summary(result, class_names=names, planted_pairs=((1, 0), (3, 4)))
    _, rows, top, _, _ = _reference(x, y, top_n=3)
    planted = sum(tuple(sorted(r[1:3])) in {(0, 1), (3, 4)} for r in rows)
    assert out["num_in_planted_pairs"] == planted and out["planted_pairs"] == [(0, 1), (3, 4)]
    assert [e["index"] for e in out["top_examples"]] == [r[0] for r in top]
    assert out["top_examples"][0]["true_name"] == names[top[0][1]]
    assert out["top_examples"][0]["hom_name"] == names[top[0][2]]
    ranks = np.array([r[5] for r in rows])
    assert out["rank_summary"]["mean_rank"] == pytest.approx(ranks.mean())
    assert out["rank_summary"]["fraction_rank_1"] == pytest.approx(np.mean(ranks == 1))
    assert out["rank_summary"]["chance_mean_rank"] == (K - 1 + 1) / 2
    assert sum(out["histogram"].values()) == len(rows)
    json.dumps(out)  # JSON-ready


def test_no_het_right_hom_wrong_example_still_writes_the_json_and_histogram(tmp_path):
    het, hom = _hand_models()
    x, y = _hand_data()
    x[:, 2 * K :] = x[:, :K]  # Hom predicts what Het predicts: never right where Het is wrong
    result = where_het_helps.where_het_helps(het, hom, [(x, y)])
    assert result["num_het_right_hom_wrong"] == 0
    out = where_het_helps.summary(result, class_names=tuple("abcde"))
    assert out["histogram"] == {} and out["top_examples"] == []
    assert out["rank_summary"]["mean_rank"] is None and out["num_in_planted_pairs"] is None
    written = where_het_helps_outputs.write_outputs(out, result["top"].inputs, str(tmp_path))
    assert written == ["where_het_helps.json", "rank_histogram.png"]
    assert sorted(os.listdir(tmp_path)) == sorted(written)
    assert "Het right and Hom wrong: 0" in where_het_helps_outputs.format_report(out)


def test_top_examples_keeps_the_largest_magnitudes_across_adds():
    top = where_het_helps.TopExamples(3)
    top.add(np.arange(4), index=np.arange(4), covariance=np.array([0.5, -2.0, 1.0, 0.1]))
    top.add(np.arange(4, 7), index=np.arange(4, 7), covariance=np.array([-1.0, 3.0, 0.2]))
    assert list(top.fields["index"]) == [5, 1, 2]  # |3| > |-2| > 1 = |-1|: index 2 first
    assert list(top.inputs) == [5, 1, 2]
    with pytest.raises(ValueError, match="top_n"):
        where_het_helps.TopExamples(0)


def _fake_member(path, **config):
    os.makedirs(path)
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump({"dataset": "noisy_digits", "num_classes": 10, **config}, f)
    open(os.path.join(path, "model.keras"), "w").close()
    return path


@pytest.mark.parametrize(
    "het_config, hom_config, message",
    [
        ({}, {"dataset": "synthetic"}, r"het_0 and .*det_0 differ .*dataset: 'noisy_digits' vs"),
        ({}, {"image_size": 16}, r"image_size: None vs 16"),
        ({}, {"num_classes": 4}, r"number of classes.*'het_0': 10, 'det_0': 4"),
        ({"multilabel": True}, {"multilabel": True}, "multilabel"),
    ],
)
def test_members_that_differ_are_refused_by_name(tmp_path, het_config, hom_config, message):
    het = _fake_member(str(tmp_path / "het" / "0"), **het_config)
    hom = _fake_member(str(tmp_path / "det" / "0"), **hom_config)
    with pytest.raises(ValueError, match=message):
        where_het_helps.analyze_members(het, hom, output_dir="")


def test_missing_or_repeated_members_are_named(tmp_path):
    het = _fake_member(str(tmp_path / "het" / "0"))
    with pytest.raises(ValueError, match=r"--baseline_member: Not a member directory.*det/9"):
        where_het_helps.analyze_members(het, str(tmp_path / "det" / "9"), output_dir="")
    with pytest.raises(ValueError, match="The baseline must be another member"):
        where_het_helps.analyze_members(het, het, output_dir="")


def test_cli_rejects_a_bad_top_n_before_loading_anything(tmp_path, capsys):
    from het_ensembles.analysis import covariance

    args = ["--member", str(tmp_path), "--baseline_member", str(tmp_path), "--top_n", "0"]
    assert covariance.cli_main(args) == 2
    assert "--top_n must be >= 1. Received: 0" in capsys.readouterr().err


def test_plots_are_pngs_written_atomically(tmp_path):
    hist = tmp_path / "h" / "rank_histogram.png"
    where_het_helps_outputs.plot_rank_histogram({"1": 5, "3": 2}, 9, str(hist), title="t")
    big = tmp_path / "h" / "big.png"
    where_het_helps_outputs.plot_rank_histogram({1: 5, 700: 2}, 999, str(big))
    grid = tmp_path / "g" / "top.png"
    examples = [
        {"true_name": "African elephant", "hom_name": "tusker", "covariance": -0.5, "rank": 1}
    ] * 3
    images = np.random.default_rng(0).normal(size=(3, 8, 8, 3))
    where_het_helps_outputs.plot_top_examples(images, examples, str(grid))
    for path in (hist, big, grid):
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(os.listdir(tmp_path / "h")) == ["big.png", "rank_histogram.png"]


# --- End to end: the console script on members the trainer made -----------------------------


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """runs/{det,het}/0: the shipped noisy_digits configs, 1 epoch, trained by the trainer here
    (in-process: a console-script start per member would double the test's time)."""
    from het_ensembles import training

    cwd = tmp_path_factory.mktemp("where_het_helps")
    configs = os.path.join(console.REPO, "configs", "noisy_digits")
    for kind, name in (("det", "deterministic"), ("het", "heteroscedastic")):
        config = training.load_config(os.path.join(configs, f"{name}.py"))
        config.seed, config.train_epochs = 0, 1
        config.train_mc_samples, config.test_mc_samples = 16, 64
        training.train_and_evaluate(config, str(cwd / "runs" / kind / "0"))
    return cwd


def _numpy_reference(cwd, top_n):
    """Counts, ranks and top examples recomputed from the members' own predictions and
    `head.covariance`, with numpy (features through a model built here, centring as P S P)."""
    from het_ensembles import data, member_dir

    het = member_dir.read_member(str(cwd / "runs" / "het" / "0")).load_model()
    hom = member_dir.read_member(str(cwd / "runs" / "det" / "0")).load_model()
    x, y = next(iter(data.load("noisy_digits", "test", batch_size=1000, is_training=False)))
    x, y = x.numpy(), y.numpy()
    het_classes = het.predict(x, batch_size=100, verbose=0).argmax(1)
    hom_classes = hom.predict(x, batch_size=100, verbose=0).argmax(1)
    chosen = np.flatnonzero((het_classes == y) & (hom_classes != y))
    features = keras.Model(het.inputs[0], het.get_layer("head").input)(x[chosen])
    sigma = np.asarray(het.get_layer("head").covariance(features), np.float64)
    p = np.eye(10) - 0.1
    rows = []
    for i, s in zip(chosen, sigma):
        c = p @ s @ p
        a, b = y[i], hom_classes[i]
        rank = _reference_ranks(c[None], [a], [b], "row")[0]
        rows.append((int(i), int(a), int(b), c[a, b], rank))
    top = sorted(rows, key=lambda r: (-abs(r[3]), r[0]))[:top_n]
    counts = (len(y), int((het_classes == y).sum()), int((hom_classes == y).sum()))
    return counts, rows, top


def test_console_script_writes_figure_2_and_table_5(trained):
    done = console.run(
        ["covariance", "--member", "runs/het/0", "--baseline_member", "runs/det/0"]
        + ["--top_n", "5", "--output_dir", "out", "--no_progress"],
        trained,
    )
    out = json.loads((trained / "out" / "where_het_helps.json").read_text())
    counts, rows, top = _numpy_reference(trained, 5)
    assert (out["num_examples"], out["num_het_correct"], out["num_hom_correct"]) == counts
    assert out["num_het_right_hom_wrong"] == len(rows) > 0
    assert out["max_rank"] == 9 and out["centered"] and out["rank_within"] == "row"
    expected_hist = {}
    for r in rows:
        expected_hist[str(r[4])] = expected_hist.get(str(r[4]), 0) + 1
    assert out["histogram"] == dict(sorted(expected_hist.items(), key=lambda kv: int(kv[0])))
    got = [(e["index"], e["true_class"], e["hom_class"], e["rank"]) for e in out["top_examples"]]
    assert got == [(r[0], r[1], r[2], r[4]) for r in top]
    np.testing.assert_allclose(
        [e["covariance"] for e in out["top_examples"]], [r[3] for r in top], rtol=1e-4, atol=1e-6
    )
    planted = {(1, 7), (3, 8), (4, 9), (5, 6)}
    assert out["num_in_planted_pairs"] == sum(tuple(sorted(r[1:3])) in planted for r in rows)
    assert set(out["files"]) == {"where_het_helps.json", "rank_histogram.png", "top_examples.png"}
    for name in out["files"]:
        assert (trained / "out" / name).stat().st_size > 500
    assert f"Het right and Hom wrong: {len(rows)}" in done.stdout
    assert sorted(os.listdir(trained / "out")) == sorted(out["files"])  # no temp files


def test_console_script_refuses_a_baseline_trained_on_other_data(trained):
    other = trained / "runs" / "det_other" / "0"
    shutil.copytree(trained / "runs" / "det" / "0", other)
    config = json.loads((other / "config.json").read_text())
    config["dataset"] = "synthetic"
    (other / "config.json").write_text(json.dumps(config))
    done = console.run(
        ["covariance", "--member", "runs/het/0", "--baseline_member", "runs/det_other/0"],
        trained,
        check=False,
    )
    assert done.returncode == 2
    assert "het_0 and baseline_member=det_other_0 differ" in done.stderr
    assert "dataset: 'noisy_digits' vs 'synthetic'" in done.stderr
    assert not (trained / "runs" / "het" / "0" / "covariance").exists()
