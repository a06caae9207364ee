"""Out-of-distribution detection over cached predictions: members and ensemble, per OOD set.

`evaluate(..., ood_datasets=[...])` predicts each OOD set like any dataset (into the same
prediction cache; its labels are not used) and pairs it with the in-distribution test set, the
first dataset evaluated, as uncertainty-baselines' `hetsngp.py` / `sngp.py` pair `--ood_dataset`
with their test set. For every member and for the ensemble (mean of the member probabilities)
it reports `het_ensembles.metrics.ood.ood_metrics`: AUROC, AUPRC (in distribution = positive)
and FPR at 95% TPR, each for the max-probability (`msp`) and negative-entropy (`entropy`)
scores. metrics.json holds them under `"ood/<ood set>"`:
`{"in_distribution": <key>, "num_in_distribution": N, "num_ood": M, "ensemble": {...},
"member_mean": {...}, "member_std": {...}, "members": {...}}`.
"""

import numpy as np

from het_ensembles import metrics
from het_ensembles.evaluation import scoring
from het_ensembles.metrics import ood as ood_metrics

PREFIX = "ood/"


def ood_key(dataset_key):
    """metrics.json key of an OOD set's entry."""
    return PREFIX + dataset_key


def is_ood_key(key):
    return key.startswith(PREFIX)


def ood_results(in_cache, ood_caches, members, *, multilabel):
    """`{"ood/<key>": entry}` for each OOD cache against the in-distribution cache.

    Args:
      in_cache: the `cache.PredictionCache` of the in-distribution test set (filled).
      ood_caches: the filled caches of the OOD sets.
      members: the `member_dir.Member`s (all cached on every set).
      multilabel: sigmoid members (scores from per-label probabilities).
    """
    if not ood_caches:  # most evaluations: nothing to load (ImageNet-sized arrays otherwise)
        return {}
    in_log_probs = [np.asarray(in_cache.load(m)[0], dtype=np.float64) for m in members]
    in_ensemble = metrics.ensemble_log_probs(in_log_probs)
    out = {}
    for cache in ood_caches:
        log_probs = [np.asarray(cache.load(m)[0], dtype=np.float64) for m in members]
        if log_probs[0].shape[1] != in_log_probs[0].shape[1]:
            raise RuntimeError(f"Cached predictions of {cache.dataset.key} have another K.")

        def score(in_lp, out_lp):
            return ood_metrics.ood_metrics(in_lp, out_lp, multilabel=multilabel)

        rows = scoring.Rows(
            members={m.name: score(a, b) for m, a, b in zip(members, in_log_probs, log_probs)},
            ensemble=score(in_ensemble, metrics.ensemble_log_probs(log_probs)),
            subsets=[],
        )
        entry = {
            "in_distribution": in_cache.dataset.key,
            "num_in_distribution": len(in_ensemble),
            "num_ood": len(log_probs[0]),
        }
        entry.update(scoring.format_rows(rows, members, None))
        out[ood_key(cache.dataset.key)] = entry
    return out


def table_lines(results):
    """Markdown lines of the OOD entries of `results` (empty if none): ensemble and member
    mean +- std of each metric with the max-probability score."""
    entries = {k: v for k, v in results.items() if is_ood_key(k)}
    if not entries:
        return []
    lines = [
        "Out-of-distribution detection (score: max probability; in distribution = positive):",
        "",
        "| OOD set | vs | row | AUROC | AUPRC | FPR@95%TPR |",
        "|---|---|---|---|---|---|",
    ]
    for key, entry in entries.items():
        mean, std, ensemble = entry["member_mean"], entry["member_std"], entry["ensemble"]
        columns = ("auroc_msp", "auprc_msp", "fpr@95tpr_msp")
        member = " | ".join(f"{mean[c]:.3f} ± {std[c]:.3f}" for c in columns)
        lines.append(f"| {key[len(PREFIX) :]} | {entry['in_distribution']} | members | {member} |")
        lines.append(
            f"| {key[len(PREFIX) :]} | {entry['in_distribution']} | ensemble | "
            + " | ".join(f"{ensemble[c]:.3f}" for c in columns)
            + " |"
        )
    return lines + [""]
