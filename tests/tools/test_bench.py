"""Tests of the bench: its bookkeeping on hand-made round results, and every row's step at tiny
shapes (no timing is measured here)."""

import numpy as np
import pytest

from het_ensembles.tools import bench


def _rounds(times, memory=100.0, outputs=10.0):
    """One `_worker` result per round, with the given step times."""
    return [
        {"times": t, "cpu_times": t, "peak_rss_mib": 500.0, "step_memory_mib": memory,
         "output_mib": outputs}
        for t in times
    ]  # fmt: skip


def test_ratios_pair_rounds_and_report_their_spread():
    ours = bench._summarise(("het_ensembles", False, 10), _rounds([[2.0, 1.0], [1.5], [3.0]]))
    theirs = bench._summarise(
        ("edward2", False, 10), _rounds([[2.0], [3.0, 4.0], [4.0]], memory=1010.0)
    )
    floor = bench._summarise(("floor", False, 10), _rounds([[0.5], [0.5], [0.5]]))
    assert ours["seconds_min"] == 1.0 and ours["seconds_median"] == 1.75
    assert ours["round_seconds"] == [1.0, 1.5, 3.0]  # each round's fastest step
    warnings = bench.compare([ours, theirs, floor])
    # Per-round pairs: 1/2, 1.5/3, 3/4 -> median 0.5, spread 0.5-0.75.
    assert ours["vs_edward2"]["rounds"] == [0.5, 0.5, 0.75]
    assert ours["vs_edward2"]["median"] == 0.5
    assert (ours["vs_edward2"]["min"], ours["vs_edward2"]["max"]) == (0.5, 0.75)
    assert ours["vs_floor"]["median"] == 3.0
    assert ours["memory_vs_edward2"] == pytest.approx(100 / 1010)
    assert ours["working_memory_vs_edward2"] == pytest.approx(90 / 1000)
    # Rounds 1.0 vs 3.0 (200%), ratios 0.5 vs 0.75 (50%), edward2 2.0 vs 4.0: all warned about.
    assert any("het_ensembles per-example S=10: rounds disagree by 200%" in w for w in warnings)
    assert any("vs_edward2: per-round ratios disagree by 50%" in w for w in warnings)
    assert any(w.startswith("edward2 per-example S=10") for w in warnings)
    assert not any(w.startswith("floor") for w in warnings)


def test_steady_rounds_give_no_warning_and_a_failed_row_no_ratio():
    ours = bench._summarise(("het_ensembles", True, 10), _rounds([[1.0], [1.1], [1.05]]))
    theirs = bench._summarise(("edward2", True, 10), [{"error": "boom"}] + _rounds([[2.0]] * 2))
    assert theirs["error"] == "boom"
    assert bench.compare([ours, theirs]) == []
    assert ours["vs_edward2"] is None
    assert "failed: boom" in bench._format_table([ours, theirs])


TINY = {"batch": 4, "dim": 8, "classes": 5, "factors": 2, "temperature": 1.5}


@pytest.mark.parametrize("impl, share", [("dense", False), *bench.ROWS])
def test_every_row_steps_and_differentiates_all_its_weights(impl, share):
    """Each row's step runs at tiny shapes and returns a finite gradient for every trainable
    parameter it reports (a broken row only shows as "failed" in the bench's table)."""
    step = bench._train_step(impl, share, 3, TINY)
    grads = step()
    grads = grads if isinstance(grads, list) else [grads]
    assert all(np.isfinite(g.numpy()).all() for g in grads)
    if impl == "floor":  # the gradient of log_softmax over one [B, S, K] tensor
        assert grads[0].shape == (4, 3, 5)
    else:
        assert step.parameters == sum(int(np.prod(g.shape)) for g in grads) > 0


@pytest.mark.parametrize("head, phase", [(h, p) for _, h, p in bench.CONTEXT_ROWS])
def test_every_context_row_runs_at_tiny_shapes(head, phase):
    head = {**bench.context_head(), "num_factors": 2, "train_mc_samples": 3, "test_mc_samples": 4}
    spec = {**bench.CONTEXT_SPEC, "batch": 2, "image_size": 32, "classes": 5, "head": head}
    out = bench._context_step(head, phase, spec)()
    outs = out if isinstance(out, list) else [out]
    assert all(np.isfinite(o.numpy()).all() for o in outs)
    if phase == "test":
        assert outs[0].shape == (2, 5)
    else:  # one gradient per trainable weight of ResNet-50 and its head
        assert len(outs) > 100


def test_context_rows_bench_the_shipped_imagenet_recipe_head():
    # uncertainty-baselines' imagenet/heteroscedastic.py: --num_mc_samples=5000 (training and
    # test), --num_factors=15, --temperature=1.5, samples shared across the batch.
    head = bench.context_head()
    assert head["type"] == "MCSoftmaxDenseFA"
    assert (head["num_factors"], head["temperature"]) == (15, 1.5)
    assert (head["train_mc_samples"], head["test_mc_samples"]) == (5000, 5000)
    assert head["share_samples_across_batch"] is True


def test_without_edward2_the_bench_says_to_install_the_reference_extra(monkeypatch, capsys):
    real_find_spec = bench.importlib.util.find_spec
    monkeypatch.setattr(
        bench.importlib.util,
        "find_spec",
        lambda name, *a: None if name == "edward2" else real_find_spec(name, *a),
    )
    with pytest.raises(SystemExit) as exit_info:
        bench.cli_main(["--quick"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert 'pip install "het-ensembles[reference]"' in err
    assert "--only het_ensembles,het_xl,floor" in err
