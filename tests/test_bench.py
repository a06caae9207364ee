"""Tests of the bench's bookkeeping on hand-made round results (no timing is measured here)."""

import pytest

from het_ensembles import bench


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
