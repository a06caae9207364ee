"""`--synthetic`: one Hom and one Het member on `synthetic`, against the Bayes-optimal NLL."""

import os

from het_ensembles.demo.members import METHODS, member_config, say
from het_ensembles.training.progress import train_member

# ----------------------------------------------------------------------------------------------
# synthetic: the gap to the Bayes-optimal NLL.


def run_synthetic(output_dir, config_dir, *, quick, progress=True):
    """One Hom and one Het member on `synthetic`; their test NLL against the Bayes-optimal one.

    Returns:
      dict with "hom_nll", "het_nll", "bayes_nll", "bayes_nll_standard_error" and
      "gap_closed" = (hom - het) / (hom - bayes).
    """
    from het_ensembles import evaluation
    from het_ensembles.data import synthetic

    nll = {}
    for index, (key, config_file, row) in enumerate(METHODS, start=1):
        config = member_config(config_dir, "synthetic", config_file, seed=0, quick=quick)
        member_dir = os.path.join(output_dir, "synthetic", "members", key, "0")
        train_member(
            config, member_dir, label=f"[synthetic {index}/2] {row} seed 0", progress=progress
        )
        result = evaluation.evaluate(
            [member_dir],
            ["synthetic"],
            os.path.join(output_dir, "synthetic", "eval", key),
            method=row,
            progress=progress,
        )
        nll[key] = result["synthetic"]["ensemble"]["nll"]  # one member: its own NLL
    say("Computing the Bayes-optimal test NLL of synthetic (Monte Carlo)")
    bayes, bayes_se = synthetic.bayes_optimal_nll()
    return {
        "hom_nll": float(nll["hom"]),
        "het_nll": float(nll["het"]),
        "bayes_nll": bayes,
        "bayes_nll_standard_error": bayes_se,
        "gap_closed": gap_closed(nll["hom"], nll["het"], bayes),
    }


def gap_closed(hom_nll, het_nll, bayes_nll):
    """Share of the NLL gap between Hom and the Bayes-optimal NLL that Het closes.

    1 means Het reaches the Bayes-optimal NLL, 0 that it is no better than Hom, < 0 worse; nan
    when Hom is already at (or below, by chance) the Bayes-optimal NLL.
    """
    gap = hom_nll - bayes_nll
    return float((hom_nll - het_nll) / gap) if gap > 0 else float("nan")


def synthetic_text(s):
    return (
        f"synthetic test NLL: Hom {s['hom_nll']:.4f}, Het {s['het_nll']:.4f}, Bayes-optimal "
        f"{s['bayes_nll']:.4f} (+- {s['bayes_nll_standard_error']:.4f} Monte Carlo); Het closes "
        f"{s['gap_closed']:.0%} of the gap between Hom and the Bayes-optimal NLL "
        f"(target >= 75%: {'met' if s['gap_closed'] >= 0.75 else 'NOT met'})."
    )
