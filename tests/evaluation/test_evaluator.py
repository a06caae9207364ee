"""Tests for het_ensembles.evaluation: tiny Dense members built here, numpy references."""

import hashlib
import itertools
import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from scipy import special

from het_ensembles import evaluation

NUM_FEATURES, NUM_CLASSES, NUM_EXAMPLES = 4, 3, 37


def _write_member(directory, seed, *, num_classes=NUM_CLASSES, config=None, input_shape=None):
    """A Dense softmax (or sigmoid) member; returns (kernel, bias) for the numpy reference."""
    rng = np.random.default_rng(seed)
    os.makedirs(directory, exist_ok=True)
    input_shape = input_shape or (NUM_FEATURES,)
    inputs = keras.Input(input_shape)
    features = inputs if len(input_shape) == 1 else keras.layers.GlobalAveragePooling2D()(inputs)
    outputs = keras.layers.Dense(num_classes, name="head")(features)
    model = keras.Model(inputs, outputs)
    kernel = rng.normal(size=(input_shape[-1], num_classes)).astype(np.float32)
    bias = rng.normal(size=num_classes).astype(np.float32)
    model.set_weights([kernel, bias])
    model.save(os.path.join(directory, "model.keras"))
    record = {"num_classes": num_classes, "multilabel": False, "head": "deterministic"}
    record.update(config or {})
    with open(os.path.join(directory, "config.json"), "w") as f:
        json.dump(record, f)
    return kernel, bias


def _data(seed=0, num_examples=NUM_EXAMPLES):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(num_examples, NUM_FEATURES)).astype(np.float32)
    y = rng.integers(0, NUM_CLASSES, size=num_examples)
    return x, y


def _reference_log_probs(x, weights, multilabel=False):
    logits = x.astype(np.float64) @ weights[0] + weights[1]
    if multilabel:
        return -np.logaddexp(0.0, -logits)
    return special.log_softmax(logits, axis=1)


def _ensemble_nll(y, member_log_probs):
    member_probs = np.exp(np.asarray(member_log_probs))
    return -np.mean(np.log(np.mean(member_probs[:, np.arange(len(y)), y], axis=0)))


@pytest.fixture(scope="module")
def four_members(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    weights = [_write_member(str(root / "het" / str(i)), seed=i) for i in range(4)]
    x, y = _data()
    output_dir = str(root / "eval")
    results = evaluation.evaluate(
        str(root / "het" / "*"),
        {"toy": (x, y)},
        output_dir,
        ensemble_size=2,
        batch_size=8,
        method="Toy",
        progress=False,
    )
    references = [_reference_log_probs(x, w) for w in weights]
    return results, output_dir, root, x, y, references


class TestEvaluate:
    def test_cached_predictions_match_the_models(self, four_members):
        _, output_dir, root, _, y, references = four_members
        directory = os.path.join(output_dir, "predictions", "toy")
        np.testing.assert_array_equal(np.load(os.path.join(directory, "labels.npy")), y)
        for i, reference in enumerate(references):
            cached = np.load(os.path.join(directory, f"{i}.npy"))
            assert cached.dtype == np.float32 and cached.shape == (NUM_EXAMPLES, NUM_CLASSES)
            np.testing.assert_allclose(cached, reference, atol=1e-5)
            with open(os.path.join(directory, f"{i}.json")) as f:
                sidecar = json.load(f)
            with open(root / "het" / str(i) / "model.keras", "rb") as f:
                assert sidecar["model_sha256"] == hashlib.sha256(f.read()).hexdigest()

    def test_member_and_ensemble_metrics_match_numpy(self, four_members):
        results, _, _, _, y, references = four_members
        result = results["toy"]
        member_nlls = [-np.mean(r[np.arange(NUM_EXAMPLES), y]) for r in references]
        member_accuracies = [np.mean(np.argmax(r, 1) == y) for r in references]
        for i, (nll, acc) in enumerate(zip(member_nlls, member_accuracies)):
            row = result["members"][str(i)]
            assert row["nll"] == pytest.approx(nll, rel=1e-5)
            assert row["accuracy"] == pytest.approx(acc)
            probs = np.exp(references[i])
            brier = np.mean(np.sum((probs - np.eye(NUM_CLASSES)[y]) ** 2, axis=1))
            assert row["brier"] == pytest.approx(brier, rel=1e-5)
            assert row["num_examples"] == NUM_EXAMPLES
            assert row["num_params"] == NUM_FEATURES * NUM_CLASSES + NUM_CLASSES
            assert row["ms_per_example"] > 0
        assert result["member_mean"]["nll"] == pytest.approx(np.mean(member_nlls), rel=1e-5)
        assert result["member_std"]["nll"] == pytest.approx(np.std(member_nlls, ddof=1), rel=1e-4)

        ens = result["ensemble"]
        assert ens["nll"] == pytest.approx(_ensemble_nll(y, references), rel=1e-5)
        mean_probs = np.mean(np.exp(references), axis=0)
        assert ens["accuracy"] == pytest.approx(np.mean(np.argmax(mean_probs, 1) == y))
        assert ens["gibbs_nll"] == pytest.approx(np.mean(member_nlls), rel=1e-5)
        predictions = np.argmax(references, axis=2)
        pairs = list(itertools.combinations(range(4), 2))
        assert ens["disagreement"] == pytest.approx(
            np.mean([np.mean(predictions[i] != predictions[j]) for i, j in pairs])
        )
        assert ens["ensemble_size"] == 4
        assert ens["num_params"] == 4 * (NUM_FEATURES * NUM_CLASSES + NUM_CLASSES)

    def test_ensemble_subsets(self, four_members):
        results, _, _, _, y, references = four_members
        subsets = results["toy"]["ensemble_subsets"]
        combos = list(itertools.combinations(range(4), 2))
        nlls = [_ensemble_nll(y, [references[i] for i in c]) for c in combos]
        assert subsets["num_subsets"] == 6 and subsets["ensemble_size"] == 2
        assert subsets["mean"]["nll"] == pytest.approx(np.mean(nlls), rel=1e-5)
        assert subsets["std"]["nll"] == pytest.approx(np.std(nlls, ddof=1), rel=1e-4)

    def test_reports_on_disk(self, four_members):
        results, output_dir, _, _, _, _ = four_members
        with open(os.path.join(output_dir, "metrics.json")) as f:
            assert json.load(f) == json.loads(json.dumps(results))
        with open(os.path.join(output_dir, "leaderboard.md")) as f:
            leaderboard = f.read()
        # A generic table (toy is neither ImageNet nor CIFAR) in uncertainty-baselines' style.
        header = (
            "| Method | toy | Train Runtime (hours) | Test Runtime (ms / example)| # Parameters |"
        )
        assert header in leaderboard.splitlines()
        mean = results["toy"]["member_mean"]
        row = next(line for line in leaderboard.splitlines() if line.startswith("| Toy |"))
        cells = [c.strip() for c in row.strip("|").split("|")]
        nll, accuracy, ece = cells[1].split(" / ")
        assert float(nll) == pytest.approx(mean["nll"], abs=0.005)
        assert accuracy == f"{100 * mean['accuracy']:.1f}%" and ece == f"{mean['ece']:.3f}"
        assert cells[2] == "-"  # hand-written members: no train/hours
        assert float(cells[3].split(" (")[0]) == pytest.approx(mean["ms_per_example"], rel=0.01)
        assert cells[4] == "15"  # 4 x 3 kernel + 3 biases
        sub = results["toy"]["ensemble_subsets"]["mean"]
        ensemble_row = "| Toy ensemble (size=2, mean over 6 subsets of the 4 members) | "
        row = next(line for line in leaderboard.splitlines() if line.startswith(ensemble_row))
        assert row.split(" | ")[1].split(" / ")[1] == f"{100 * sub['accuracy']:.1f}%"
        with open(os.path.join(output_dir, "reliability_diagram.png"), "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"
        assert not [n for n in os.listdir(output_dir) if n.startswith(".tmp")]


class TestCache:
    def test_reused_then_recomputed_for_the_changed_member(self, tmp_path, monkeypatch):
        _write_member(str(tmp_path / "m" / "a"), seed=1)
        _write_member(str(tmp_path / "m" / "b"), seed=2)
        x, y = _data()
        args = (str(tmp_path / "m" / "*"), {"toy": (x, y)}, str(tmp_path / "out"))
        first = evaluation.evaluate(*args, progress=False)
        cached_b = tmp_path / "out" / "predictions" / "toy" / "b.npy"
        stamp = os.stat(cached_b).st_mtime_ns

        def refuse(*args, **kwargs):
            raise AssertionError("a cached member was loaded again")

        with monkeypatch.context() as patch:
            patch.setattr(keras.saving, "load_model", refuse)
            assert evaluation.evaluate(*args, progress=False) == first

        new_weights = _write_member(str(tmp_path / "m" / "a"), seed=7)  # retrained member
        second = evaluation.evaluate(*args, progress=False)
        cached_a = np.load(tmp_path / "out" / "predictions" / "toy" / "a.npy")
        np.testing.assert_allclose(cached_a, _reference_log_probs(x, new_weights), atol=1e-5)
        assert os.stat(cached_b).st_mtime_ns == stamp
        assert second["toy"]["members"]["b"] == first["toy"]["members"]["b"]
        assert second["toy"]["members"]["a"]["nll"] != first["toy"]["members"]["a"]["nll"]

    def test_another_batch_size_reuses_the_cache(self, tmp_path, monkeypatch):
        # A heteroscedastic head's inference noise is fixed by its seed, not by the batch, so
        # the batch size is not part of the cache key: a second batch size predicts nothing.
        from het_ensembles import models

        model = models.build_model(
            "mlp",
            input_shape=(NUM_FEATURES,),
            num_classes=NUM_CLASSES,
            head={"type": "MCSoftmaxDenseFA", "num_factors": 2, "test_mc_samples": 16},
            seed=0,
            hidden_units=(8,),
        )
        os.makedirs(tmp_path / "het")
        model.save(tmp_path / "het" / "model.keras")
        x, y = _data()
        first = evaluation.evaluate(
            str(tmp_path / "het"),
            {"toy": (x, y)},
            str(tmp_path / "out"),
            batch_size=8,
            progress=False,
        )

        def refuse(*args, **kwargs):
            raise AssertionError("the member was loaded again to predict")

        with monkeypatch.context() as patch:
            patch.setattr(keras.saving, "load_model", refuse)
            again = evaluation.evaluate(
                str(tmp_path / "het"),
                {"toy": (x, y)},
                str(tmp_path / "out"),
                batch_size=5,
                progress=False,
            )
        assert again == first
        # ... and predicting afresh at that batch size gives the same numbers.
        fresh = evaluation.evaluate(
            str(tmp_path / "het"),
            {"toy": (x, y)},
            str(tmp_path / "fresh"),
            batch_size=5,
            progress=False,
        )
        np.testing.assert_allclose(
            np.load(tmp_path / "fresh" / "predictions" / "toy" / "het.npy"),
            np.load(tmp_path / "out" / "predictions" / "toy" / "het.npy"),
            atol=1e-6,
        )
        assert fresh["toy"]["ensemble"]["nll"] == pytest.approx(first["toy"]["ensemble"]["nll"])

    @pytest.mark.parametrize("damage", ["garbage", "plausible_values", "labels"])
    def test_damaged_file_is_recomputed_not_trusted(self, tmp_path, damage):
        weights = _write_member(str(tmp_path / "m" / "a"), seed=1)
        x, y = _data()
        args = (str(tmp_path / "m" / "*"), {"toy": (x, y)}, str(tmp_path / "out"))
        first = evaluation.evaluate(*args, progress=False)
        directory = tmp_path / "out" / "predictions" / "toy"
        if damage == "garbage":
            (directory / "a.npy").write_bytes(b"\x93NUMPY not really")
        elif damage == "plausible_values":  # a valid array of the right shape, wrong content
            np.save(directory / "a.npy", np.zeros((NUM_EXAMPLES, NUM_CLASSES), np.float32))
        else:
            (directory / "labels.npy").write_bytes(b"")
        with pytest.warns(UserWarning, match="damaged"):
            second = evaluation.evaluate(*args, progress=False)
        assert second["toy"]["members"]["a"]["nll"] == first["toy"]["members"]["a"]["nll"]
        np.testing.assert_allclose(
            np.load(directory / "a.npy"), _reference_log_probs(x, weights), atol=1e-5
        )
        np.testing.assert_array_equal(np.load(directory / "labels.npy"), y)

    def test_new_labels_invalidate_the_cache(self, tmp_path):
        _write_member(str(tmp_path / "m" / "a"), seed=1)
        x, y = _data()
        y_new = (y + 1) % NUM_CLASSES
        members, output_dir = str(tmp_path / "m" / "*"), str(tmp_path / "out")
        evaluation.evaluate(members, {"toy": (x, y)}, output_dir, progress=False)
        with pytest.warns(UserWarning, match="labels of toy differ"):
            result = evaluation.evaluate(members, {"toy": (x, y_new)}, output_dir, progress=False)
        reference = np.load(tmp_path / "out" / "predictions" / "toy" / "a.npy")
        assert result["toy"]["members"]["a"]["nll"] == pytest.approx(
            -np.mean(reference[np.arange(NUM_EXAMPLES), y_new]), rel=1e-6
        )


class TestValidation:
    def test_find_members_recursive(self, tmp_path):
        for path in ("runs/het/0", "runs/het/1", "runs/det/0"):
            _write_member(str(tmp_path / path), seed=0)
        os.makedirs(tmp_path / "runs" / "het" / "0" / "checkpoints")
        (tmp_path / "runs" / "notes.txt").write_text("not a member")
        for pattern in ("runs", "runs/*", "runs/**/model.keras"):
            members = evaluation.find_members(str(tmp_path / pattern))
            assert [m.name for m in members] == ["det_0", "het_0", "het_1"]
        assert evaluation.find_members([str(tmp_path / "runs/det/0")])[0].name == "0"

    def test_bad_members(self, tmp_path):
        x, y = _data()
        data = {"toy": (x, y)}
        out = str(tmp_path / "out")
        with pytest.raises(ValueError, match="No member directory matches"):
            evaluation.evaluate(str(tmp_path / "nothing*"), data, out)
        os.makedirs(tmp_path / "unfinished" / "checkpoints")
        with pytest.raises(ValueError, match="has no model.keras"):
            evaluation.evaluate(str(tmp_path / "unfinished"), data, out)

        _write_member(str(tmp_path / "a"), seed=0)
        _write_member(str(tmp_path / "b"), seed=1, num_classes=5)
        with pytest.raises(ValueError, match="disagree on the number of classes"):
            evaluation.evaluate([str(tmp_path / "a"), str(tmp_path / "b")], data, out)
        _write_member(str(tmp_path / "c"), seed=1, config={"multilabel": True})
        with pytest.raises(ValueError, match="mix softmax and multilabel"):
            evaluation.evaluate([str(tmp_path / "a"), str(tmp_path / "c")], data, out)
        _write_member(str(tmp_path / "d"), seed=1, config={"num_classes": 4})
        with pytest.raises(ValueError, match="outputs 3 classes; expected 4"):
            evaluation.evaluate(str(tmp_path / "d"), {"toy": (x, y % 2)}, out)
        _write_member(str(tmp_path / "e"), seed=1)
        (tmp_path / "e" / "model.keras").write_bytes(b"not a zip file")
        with pytest.raises(ValueError, match="Cannot load member e"):
            evaluation.evaluate([str(tmp_path / "a"), str(tmp_path / "e")], data, out)

    def test_bad_arguments(self, tmp_path):
        _write_member(str(tmp_path / "a"), seed=0)
        x, y = _data()
        members, out = str(tmp_path / "a"), str(tmp_path / "out")
        with pytest.raises(ValueError, match="ensemble_size must be <= the number of members"):
            evaluation.evaluate(members, {"toy": (x, y)}, out, ensemble_size=2)
        with pytest.raises(ValueError, match="batch_size must be an integer >= 1"):
            evaluation.evaluate(members, {"toy": (x, y)}, out, batch_size=0)
        with pytest.raises(ValueError, match="same non-zero length"):
            evaluation.evaluate(members, {"toy": (x, y[:3])}, out)
        with pytest.raises(ValueError, match="do not fit 3 classes"):
            evaluation.evaluate(members, {"toy": (x, y + 3)}, out, progress=False)
        with pytest.raises(ValueError, match="severities"):
            evaluation.corrupted_datasets(severities=[6])


def test_multilabel_members(tmp_path):
    weights = [
        _write_member(str(tmp_path / "m" / str(i)), seed=i, config={"multilabel": True})
        for i in range(2)
    ]
    x, _ = _data()
    targets = (np.random.default_rng(3).uniform(size=(NUM_EXAMPLES, NUM_CLASSES)) < 0.4).astype(
        np.int32
    )
    results = evaluation.evaluate(
        str(tmp_path / "m" / "*"), {"tags": (x, targets)}, str(tmp_path / "out"), progress=False
    )
    log_p = np.stack([_reference_log_probs(x, w, multilabel=True) for w in weights])
    p = np.exp(log_p)
    cached = np.load(tmp_path / "out" / "predictions" / "tags" / "0.npy")
    np.testing.assert_allclose(cached, log_p[0], atol=1e-5)

    def bce(q):
        return -np.mean(np.sum(targets * np.log(q) + (1 - targets) * np.log(1 - q), axis=1))

    assert results["tags"]["members"]["0"]["nll"] == pytest.approx(bce(p[0]), rel=1e-5)
    assert results["tags"]["ensemble"]["nll"] == pytest.approx(bce(p.mean(0)), rel=1e-5)
    top = np.argmax(p.mean(0), axis=1)
    has_positive = targets.max(axis=1) > 0  # prec@1 leaves out examples without a positive
    assert results["tags"]["ensemble"]["prec@1"] == pytest.approx(
        np.mean(targets[np.arange(NUM_EXAMPLES), top][has_positive])
    )


def test_mixed_ensemble_with_a_heteroscedastic_member(tmp_path):
    from het_ensembles import models

    heads = {
        "det": None,
        "het": {"type": "MCSoftmaxDenseFA", "num_factors": 2, "test_mc_samples": 16},
    }
    for seed, (name, head) in enumerate(heads.items()):
        model = models.build_model(
            "mlp",
            input_shape=(NUM_FEATURES,),
            num_classes=NUM_CLASSES,
            head=head,
            seed=seed,
            hidden_units=(8,),
        )
        os.makedirs(tmp_path / name)
        model.save(tmp_path / name / "model.keras")
        config = {
            "num_classes": NUM_CLASSES,
            "head": "heteroscedastic" if head else "deterministic",
        }
        (tmp_path / name / "config.json").write_text(json.dumps(config))
    x, y = _data()
    results = evaluation.evaluate(
        [str(tmp_path / "det"), str(tmp_path / "het")],
        {"toy": (x, y)},
        str(tmp_path / "out"),
        batch_size=8,
        progress=False,
    )
    references = []
    for name in heads:  # an independent load and call, batch by batch
        model = keras.saving.load_model(tmp_path / name / "model.keras")
        logits = np.concatenate(
            [np.asarray(model(x[i : i + 8], training=False)) for i in range(0, NUM_EXAMPLES, 8)]
        )
        references.append(special.log_softmax(logits.astype(np.float64), axis=1))
        cached = np.load(tmp_path / "out" / "predictions" / "toy" / f"{name}.npy")
        np.testing.assert_allclose(cached, references[-1], atol=1e-5)
    assert results["toy"]["ensemble"]["nll"] == pytest.approx(
        _ensemble_nll(y, references), rel=1e-5
    )
    with open(tmp_path / "out" / "leaderboard.md") as f:
        assert "| Mixed (1 deterministic + 1 heteroscedastic) ensemble (size=2) |" in f.read()


def test_imagenet_c_summary_and_mce(tmp_path):
    for i in range(2):
        _write_member(str(tmp_path / "m" / str(i)), seed=i)
    sets = {}
    for seed, name in enumerate(
        ["gaussian_noise_1", "gaussian_noise_2", "snow_1", "speckle_noise_1"], start=1
    ):
        sets[f"imagenet2012_corrupted/{name}"] = _data(seed)
    sets["imagenet2012"] = _data(0)
    results = evaluation.evaluate(
        str(tmp_path / "m" / "*"), sets, str(tmp_path / "out"), progress=False
    )
    summary = results["imagenet2012_corrupted"]
    benchmark = ["gaussian_noise_1", "gaussian_noise_2", "snow_1"]  # no AlexNet error: speckle
    for row, pick in (("ensemble", lambda r: r["ensemble"]), ("0", lambda r: r["members"]["0"])):
        per_set = {n: pick(results[f"imagenet2012_corrupted/{n}"]) for n in benchmark}
        got = summary["ensemble"] if row == "ensemble" else summary["members"]["0"]
        assert got["nll"] == pytest.approx(np.mean([per_set[n]["nll"] for n in benchmark]))
        assert got["accuracy"] == pytest.approx(
            np.mean([per_set[n]["accuracy"] for n in benchmark])
        )
        ce_noise = (
            np.mean([1 - per_set[f"gaussian_noise_{s}"]["accuracy"] for s in (1, 2)]) / 0.886428
        )
        ce_snow = (1 - per_set["snow_1"]["accuracy"]) / 0.866816
        assert got["ce/gaussian_noise"] == pytest.approx(ce_noise)
        assert got["mce"] == pytest.approx((ce_noise + ce_snow) / 2)
        assert got["num_datasets"] == 3
    with open(tmp_path / "out" / "leaderboard.md") as f:
        leaderboard = f.read()
    c = summary["member_mean"]
    assert 1 <= c["nll"] < 10  # so 3 significant figures are 2 decimals
    cells = f"{c['nll']:.2f} / {100 * c['accuracy']:.1f}% / {c['ece']:.3f} ({100 * c['mce']:.1f}%)"
    assert f" | {cells} | - | - |" in leaderboard  # ImageNet-C, then ImageNet-A and V2 missing
    assert "Only 3 of the 75 sets" in leaderboard


def _write_imagenet_members(root, count=2):
    """Dense 1000-class members on 8 x 8 images (mock TFDS ImageNet sets)."""
    for i in range(count):
        _write_member(
            str(root / str(i)),
            seed=i,
            num_classes=1000,
            config={"image_size": 8},
            input_shape=(8, 8, 3),
        )


def test_imagenet_c_end_to_end_on_mock_tfds(tmp_path):
    _write_imagenet_members(tmp_path / "m")
    with tfds.testing.mock_data(num_examples=5):
        results = evaluation.evaluate(
            str(tmp_path / "m" / "*"),
            ["imagenet2012", "imagenet2012_corrupted/gaussian_noise"],
            str(tmp_path / "out"),
            batch_size=4,
            progress=False,
        )
    names = [f"imagenet2012_corrupted/gaussian_noise_{s}" for s in range(1, 6)]
    assert set(results) == {"imagenet2012", "imagenet2012_corrupted", *names}
    for name in ["imagenet2012", *names]:
        assert results[name]["ensemble"]["num_examples"] == 5
        cached = np.load(tmp_path / "out" / "predictions" / name / "0.npy")
        assert cached.shape == (5, 1000)
        np.testing.assert_allclose(special.logsumexp(cached, axis=1), 0.0, atol=1e-4)
    errors = [1 - results[n]["ensemble"]["accuracy"] for n in names]
    assert results["imagenet2012_corrupted"]["ensemble"]["mce"] == pytest.approx(
        np.mean(errors) / evaluation.ALEXNET_ERRORS["gaussian_noise"]
    )


def test_cli_on_npz_with_a_clean_split(tmp_path, capsys):
    for i in range(2):
        _write_member(str(tmp_path / "m" / str(i)), seed=i)
    x, y = _data()
    y_clean = (y + 1) % NUM_CLASSES
    path = str(tmp_path / "set.npz")
    np.savez(path, x_train=x, y_train=y, x_test=x, y_test=y, y_test_clean=y_clean)
    out = str(tmp_path / "out")
    argv = ["--members", str(tmp_path / "m" / "*"), "--output_dir", out, "--no_progress"]
    argv += ["--dataset", f"npz:{path}", f"npz:{path}:test_clean", "--batch_size", "16"]
    assert evaluation.cli_main(argv) == 0
    assert "ensemble" in capsys.readouterr().out
    with open(os.path.join(out, "metrics.json")) as f:
        results = json.load(f)
    (noisy_dir,) = [d for d in os.listdir(os.path.join(out, "predictions")) if "clean" not in d]
    member_log_probs = np.stack(
        [np.load(os.path.join(out, "predictions", noisy_dir, f"{i}.npy")) for i in range(2)]
    )
    for key, labels in ((f"npz:{path}", y), (f"npz:{path}:test_clean", y_clean)):
        assert results[key]["ensemble"]["nll"] == pytest.approx(
            _ensemble_nll(labels, member_log_probs), rel=1e-6
        )

    argv = ["--members", str(tmp_path / "none*"), "--dataset", "toy", "--output_dir", out]
    assert evaluation.cli_main(argv) == 2
    assert "No member directory matches" in capsys.readouterr().err


def test_members_from_the_trainer_reproduce_their_own_test_metrics(tmp_path):
    """Two members from `training.train_and_evaluate` (dense and heteroscedastic head): the
    evaluator's per-member numbers equal the trainer's metrics.json (same data, same metrics),
    on the test set and on the validation split they held out.

    The batch size is the trainer's: a heteroscedastic head's inference noise is fixed per
    position in the batch, so with few MC samples its predictions depend on the batching.
    """
    from het_ensembles import training

    rng = np.random.default_rng(0)
    centers = rng.normal(size=(NUM_CLASSES, NUM_FEATURES))
    y_train, y_test = rng.integers(0, NUM_CLASSES, 48), rng.integers(0, NUM_CLASSES, 21)
    x_train = (centers[y_train] + rng.normal(size=(48, NUM_FEATURES))).astype(np.float32)
    x_test = (centers[y_test] + rng.normal(size=(21, NUM_FEATURES))).astype(np.float32)
    npz = str(tmp_path / "tiny.npz")
    np.savez(npz, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    heads = {
        "det": {},
        "het": {
            "head": "heteroscedastic",
            "num_factors": 2,
            "train_mc_samples": 8,
            "test_mc_samples": 8,
        },
    }
    for name, overrides in heads.items():
        config = training.default_config()
        config.update(
            {
                "dataset": f"npz:{npz}",
                "model": "mlp",
                "model_kwargs": {"hidden_units": (8,)},
                "per_core_batch_size": 8,
                "train_epochs": 1,
                "warmup_epochs": 0,
                "validation_fraction": 0.25,
                "validation_seed": 3,
                **overrides,
            }
        )
        training.train_and_evaluate(config, str(tmp_path / "runs" / name))
    validation = f"npz:{npz}:validation"
    results = evaluation.evaluate(
        str(tmp_path / "runs" / "*"),
        [f"npz:{npz}", validation],
        str(tmp_path / "out"),
        batch_size=8,
        progress=False,
    )
    for name in heads:
        with open(tmp_path / "runs" / name / "metrics.json") as f:
            trained = json.load(f)
        for dataset, prefix, size in ((f"npz:{npz}", "test", 21), (validation, "val", 12)):
            ours = results[dataset]["members"][name]
            for key in ("nll", "accuracy", "ece"):
                assert ours[key] == pytest.approx(trained[f"{prefix}/{key}"], rel=1e-4, abs=1e-6)
            assert ours["num_examples"] == size
    # The validation labels are the held-out training labels (data.holdout_indices' choice).
    from het_ensembles.data import arrays

    labels, _ = evaluation.cached_predictions(
        str(tmp_path / "out"), str(tmp_path / "runs" / "*"), validation
    )
    np.testing.assert_array_equal(labels, y_train[arrays.holdout_indices(48, 12, 3)[1]])


def test_a_validation_split_needs_members_that_held_out_the_same_one(tmp_path):
    x, y = _data()
    npz = str(tmp_path / "tiny.npz")
    np.savez(npz, x_train=x, y_train=y, x_test=x, y_test=y)
    _write_member(tmp_path / "none" / "a", 0)
    with pytest.raises(ValueError, match="held out no validation split.*validation_fraction=0"):
        evaluation.evaluate(str(tmp_path / "none" / "*"), [f"npz:{npz}:validation"], str(tmp_path))
    _write_member(tmp_path / "two" / "a", 0, config={"validation_fraction": 0.2})
    _write_member(
        tmp_path / "two" / "b", 1, config={"validation_fraction": 0.2, "validation_seed": 1}
    )
    with pytest.raises(ValueError, match="held out different validation splits"):
        evaluation.evaluate(str(tmp_path / "two" / "*"), [f"npz:{npz}:validation"], str(tmp_path))


def test_imagenet_suite_rows_paste_under_the_published_table(tmp_path, capsys):
    # Every set of the ImageNet table that TFDS has, through the CLI, on mock data whose labels
    # lie in both 200-class subsets (ImageNet-A and -R hold only those classes).
    from het_ensembles.data import class_subsets
    from het_ensembles.evaluation import leaderboard as published

    labels = sorted(set(class_subsets.IMAGENET_A_INDICES) & set(class_subsets.IMAGENET_R_INDICES))
    rng = np.random.default_rng(0)
    images = [
        tf.io.encode_jpeg(rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)).numpy()
        for _ in range(6)
    ]

    def as_dataset(builder, split, **kwargs):
        del builder, split, kwargs  # the same 6 images for every set
        return tf.data.Dataset.from_tensor_slices(
            {"image": images, "label": np.array(labels[:6], np.int64)}
        )

    _write_imagenet_members(tmp_path / "m")
    out = tmp_path / "out"
    argv = ["--members", str(tmp_path / "m" / "*"), "--suite", "imagenet", "--output_dir", str(out)]
    argv += ["--corruptions", "gaussian_noise", "--severities", "1", "--no_progress"]
    with tfds.testing.mock_data(as_dataset_fn=as_dataset):
        assert evaluation.cli_main(argv) == 0
    results = json.loads((out / "metrics.json").read_text())
    for name in ("imagenet2012", "imagenet_a", "imagenet_v2", "imagenet_r"):
        assert results[name]["ensemble"]["num_examples"] == 6
    # The authors' 200-class scores: log-probs renormalised over the subset, by hand.
    for name, indices in (
        ("imagenet_a", class_subsets.IMAGENET_A_INDICES),
        ("imagenet_r", class_subsets.IMAGENET_R_INDICES),
    ):
        log_probs = np.load(out / "predictions" / name / "0.npy").astype(np.float64)
        kept = log_probs[:, list(indices)]
        restricted = kept - special.logsumexp(kept, axis=1, keepdims=True)
        position = [list(indices).index(y) for y in labels[:6]]
        nll = -np.mean(restricted[np.arange(6), position])
        assert results[f"{name}@200"]["members"]["0"]["nll"] == pytest.approx(nll, rel=1e-6)
        accuracy = np.mean(restricted.argmax(1) == position)
        assert results[f"{name}@200"]["members"]["0"]["accuracy"] == pytest.approx(accuracy)
    text = (out / "leaderboard.md").read_text()
    lines = text.splitlines()
    start = lines.index(published.IMAGENET_HEADER[0])
    assert lines[start + 1] == published.IMAGENET_HEADER[1]
    single = [c.strip() for c in lines[start + 2].strip("|").split("|")]
    assert single[0] == "Deterministic"
    for column, name in ((1, "imagenet2012"), (3, "imagenet_a"), (4, "imagenet_v2")):
        mean = results[name]["member_mean"]
        nll, accuracy, ece = single[column].split(" / ")
        assert float(nll) == pytest.approx(mean["nll"], rel=5e-3)
        percent = 100 * mean["accuracy"]  # the published rows: 2 decimals below 1%
        assert accuracy == (f"{percent:.1f}%" if percent >= 1 else f"{percent:.2f}%")
        assert ece == f"{mean['ece']:.3f}"
    corrupted = results["imagenet2012_corrupted"]["member_mean"]
    assert single[2].endswith(f"({100 * corrupted['mce']:.1f}%)")
    assert single[5:8] == ["-", "-", "-"]  # Vid-Robust, YTBB-Robust, ObjectNet: not in TFDS
    assert "imagenet_r@200 (beside the table" in text and "imagenet_a@200" in text


def test_cifar_rows_with_the_cifar10_c_summary(tmp_path):
    from het_ensembles.evaluation import leaderboard as published

    for i in range(2):
        _write_member(str(tmp_path / "m" / str(i)), seed=i)
    sets = {"cifar10": _data(0), "cifar10_corrupted/fog_1": _data(1)}
    sets["cifar10_corrupted/snow_2"] = _data(2)
    results = evaluation.evaluate(
        str(tmp_path / "m" / "*"), sets, str(tmp_path / "out"), progress=False
    )
    summary = results["cifar10_corrupted"]["member_mean"]
    per_set = [
        results[k]["member_mean"] for k in ("cifar10_corrupted/fog_1", "cifar10_corrupted/snow_2")
    ]
    for key in ("nll", "accuracy", "ece"):
        assert summary[key] == pytest.approx(np.mean([p[key] for p in per_set]))
    assert "mce" not in summary  # no AlexNet normalisation for CIFAR-10-C
    lines = (tmp_path / "out" / "leaderboard.md").read_text().splitlines()
    start = lines.index(published.CIFAR_HEADER[0])
    cells = [c.strip() for c in lines[start + 2].strip("|").split("|")]
    clean = results["cifar10"]["member_mean"]
    assert float(cells[1]) == pytest.approx(clean["nll"], rel=5e-3)
    assert cells[2] == f"{100 * clean['accuracy']:.1f}%" and cells[3] == f"{clean['ece']:.3f}"
    nll, accuracy, ece = cells[4].split(" / ")
    assert float(nll) == pytest.approx(summary["nll"], rel=5e-3)
    assert accuracy == f"{100 * summary['accuracy']:.1f}%" and ece == f"{summary['ece']:.3f}"


def test_corrupted_datasets_name_tfds_configs_of_either_family():
    from tensorflow_datasets.image_classification import cifar10_corrupted, imagenet2012_corrupted

    cifar = evaluation.corrupted_datasets(family="cifar10_corrupted")
    tfds_cifar = {c.name for c in cifar10_corrupted.Cifar10Corrupted.BUILDER_CONFIGS}
    assert [n.split("/")[1] for n in cifar] == [
        f"{c}_{s}" for c in cifar10_corrupted.BENCHMARK_CORRUPTIONS for s in range(1, 6)
    ]
    assert {n.split("/")[1] for n in cifar} <= tfds_cifar
    imagenet = evaluation.corrupted_datasets(["snow", "fog"], [2, 5])
    assert imagenet == [f"imagenet2012_corrupted/{c}_{s}" for c in ("snow", "fog") for s in (2, 5)]
    tfds_imagenet = {c.name for c in imagenet2012_corrupted.Imagenet2012Corrupted.BUILDER_CONFIGS}
    assert {n.split("/")[1] for n in imagenet} <= tfds_imagenet
    with pytest.raises(ValueError, match="family='svhn'"):
        evaluation.corrupted_datasets(family="svhn")
