"""Metrics over cached predictions: members, their mean and std, ensembles, ImageNet-C summary.

Everything here is numpy over the prediction cache (`cache.PredictionCache`), computed with the
streaming accumulators of `het_ensembles.metrics` in chunks, so every example counts once and
memory stays bounded for ImageNet-sized sets.
"""

import dataclasses
import itertools
import math

import numpy as np

from het_ensembles import metrics
from het_ensembles.data import class_subsets
from het_ensembles.data.tfds_sets import SEVERITIES  # noqa: F401  (re-exported)
from het_ensembles.metrics import joint as joint_metrics
from het_ensembles.metrics import multilabel as multilabel_metrics

CORRUPTED = "imagenet2012_corrupted"
CIFAR10_CORRUPTED = "cifar10_corrupted"
CIFAR100_CORRUPTED = "cifar100_corrupted"  # read from files: data/cifar100_c.py
# AlexNet's top-1 error per corruption, averaged over the 5 severities (Hendrycks & Dietterich
# 2019, as used by uncertainty-baselines and robustness-metrics for mCE).
ALEXNET_ERRORS = {
    "gaussian_noise": 0.886428,
    "shot_noise": 0.894468,
    "impulse_noise": 0.922640,
    "defocus_blur": 0.819880,
    "glass_blur": 0.826268,
    "motion_blur": 0.785948,
    "zoom_blur": 0.798360,
    "snow": 0.866816,
    "frost": 0.826572,
    "fog": 0.819324,
    "brightness": 0.564592,
    "contrast": 0.853204,
    "elastic_transform": 0.646056,
    "pixelate": 0.717840,
    "jpeg_compression": 0.606500,
}
CORRUPTIONS = tuple(ALEXNET_ERRORS)  # the 15 benchmark corruptions, in the usual order
# Corruption summary entries of metrics.json -> the per-corruption errors their CE is
# normalised by (None: cNLL / cA / cECE only, as uncertainty-baselines' CIFAR tables).
CORRUPTION_SUMMARIES = {
    CORRUPTED: ALEXNET_ERRORS,
    CIFAR10_CORRUPTED: None,
    CIFAR100_CORRUPTED: None,
}


def corruption_summary_of(key):
    """The summary entry a per-corruption dataset key belongs to (None for other sets)."""
    return next((s for s in CORRUPTION_SUMMARIES if key.startswith(s + "/")), None)


def class_subset_key(key, indices):
    """metrics.json key of a set scored on its class subset only, e.g. "imagenet_r@200"."""
    return f"{key}@{len(indices)}"


TOP_ACCURACY_K = 5  # `top5_accuracy`
METRICS_CHUNK_VALUES = 2**23  # values in one [M, n, K] chunk of cached predictions (~64 MB f64)


@dataclasses.dataclass
class Rows:
    """Metric dicts of one dataset (or of the ImageNet-C summary)."""

    members: dict  # member name -> metrics
    ensemble: dict
    subsets: list  # metrics of each sub-ensemble
    # ECE bins (counts, correct, confidence sums) for the plot: member name -> bins, and the
    # ensemble's.
    member_bins: dict | None = None
    ensemble_bins: tuple | None = None
    is_corrupted: bool = False


def subsets_of(num_members, ensemble_size, max_subsets):
    if ensemble_size is None or ensemble_size >= num_members:
        return []
    total = math.comb(num_members, ensemble_size)
    if total <= max_subsets:
        return list(itertools.combinations(range(num_members), ensemble_size))
    rng = np.random.default_rng(0)
    chosen = set()
    while len(chosen) < max_subsets:
        chosen.add(tuple(sorted(rng.choice(num_members, ensemble_size, replace=False).tolist())))
    return sorted(chosen)


def compute_rows(cache, members, subsets, multilabel, num_bins, *, class_subset=None):
    """Metrics of every member, the ensemble and the sub-ensembles over one cached dataset.

    Multi-label members: the streaming pass gives prec@1, NLL, ECE and Brier; gAP and mAP
    (which rank every example) are computed after it, one model at a time (`ranking_metrics`).

    Args:
      class_subset: score on these classes only (ImageNet-A / -R as their authors do): the
        log-probabilities are renormalised over them and labels mapped into the subset.
    """
    labels = np.load(cache.labels_path, mmap_mode="r")
    if class_subset is not None:
        labels = class_subsets.subset_labels(labels, class_subset)
    loaded = [cache.load(m) for m in members]
    arrays = [a for a, _ in loaded]
    num_examples, num_classes = arrays[0].shape
    if any(a.shape != (num_examples, num_classes) for a in arrays) or len(labels) != num_examples:
        raise ValueError(
            f"Cached predictions of {cache.dataset.key} disagree in shape: "
            f"{[a.shape for a in arrays]}, labels {labels.shape}"
        )
    kwargs = {"multilabel": multilabel, "num_bins": num_bins, "top_k": TOP_ACCURACY_K}
    if multilabel:
        kwargs["rank_metrics"] = False  # gAP and mAP below, with bounded memory
    member_metrics = [metrics.ClassificationMetrics(**kwargs) for _ in members]
    # The full ensemble first, then the sub-ensembles, sharing the per-member work.
    ensembles = metrics.SubEnsembleMetrics([tuple(range(len(members))), *subsets], **kwargs)
    chunk = max(1, METRICS_CHUNK_VALUES // (len(members) * num_classes))
    for start in range(0, num_examples, chunk):
        y = labels[start : start + chunk]
        stacked = np.stack([a[start : start + chunk] for a in arrays])  # [M, n, K]
        if class_subset is not None:
            stacked = np.stack(
                [class_subsets.restrict_log_probs(lp, class_subset) for lp in stacked]
            )
        for accumulator, log_probs in zip(member_metrics, stacked):
            accumulator.update_state(y, log_probs)
        ensembles.update_state(y, stacked)

    member_rows = {}
    for member, accumulator, (_, sidecar) in zip(members, member_metrics, loaded):
        row = accumulator.result()
        row["ms_per_example"] = sidecar.get("ms_per_example")
        row["num_params"] = sidecar.get("num_params")
        member_rows[member.name] = row
    costs = [(r["ms_per_example"], r["num_params"]) for r in member_rows.values()]

    def with_costs(row, indices):
        # Summed over the models run: the heads of one multi-head model cost it once.
        distinct = {members[i].model_path: costs[i] for i in indices}
        ms = [cost[0] for cost in distinct.values()]
        params = [cost[1] for cost in distinct.values()]
        row["ms_per_example"] = None if None in ms else float(sum(ms))
        row["num_params"] = None if None in params else int(sum(params))
        return row

    ensemble_result, *subset_results = ensembles.result()
    if multilabel:
        models = [(i,) for i in range(len(members))] + [tuple(range(len(members))), *subsets]
        scored = [*member_rows.values(), ensemble_result, *subset_results]
        for row, (gap, map_) in zip(scored, ranking_metrics(arrays, labels, models)):
            row["gap"], row["map"] = gap, map_
    ensemble_row = with_costs(ensemble_result, range(len(members)))
    subset_rows = [with_costs(r, s) for r, s in zip(subset_results, subsets)]
    # Joint NLL from the cached tables (none on a class subset: they hold the full softmax).
    tables = [None if class_subset is not None else cache.load_joint(m) for m in members]
    for row, table in zip(member_rows.values(), tables):
        row["joint_nll"] = joint_nll([table])
    ensemble_row["joint_nll"] = joint_nll(tables)
    for row, subset in zip(subset_rows, subsets):
        row["joint_nll"] = joint_nll([tables[i] for i in subset])
    for row in [*member_rows.values(), ensemble_row, *subset_rows]:
        if row["num_examples"] != num_examples:
            raise RuntimeError(f"Counted {row['num_examples']} examples of {num_examples}.")
    return Rows(
        member_rows,
        ensemble_row,
        subset_rows,
        is_corrupted=cache.dataset.is_corrupted,
        member_bins={name: _bins(a.ece) for name, a in zip(member_rows, member_metrics)},
        ensemble_bins=_bins(ensembles.ensembles[0].ece),
    )


def joint_nll(tables):
    """uncertainty-baselines' `test/joint_nll` of models' ENN samples taken together (an
    ensemble's: all its members' samples, as `het_mimo.py` and `het_rank1_bnn.py` pool their
    heads' MC samples), from `(table, S)` pairs (`cache.load_joint`); None if a model has no
    table or the set no block."""
    if not tables or any(t is None for t in tables) or not len(tables[0][0]):
        return None
    pooled = joint_metrics.pool_blocks([t for t, _ in tables], [s for _, s in tables])
    return joint_metrics.joint_nll_from_blocks(pooled)


def ranking_metrics(arrays, labels, models):
    """gAP and mAP of each model over cached multi-label predictions, with bounded memory.

    gAP streams over row chunks (keeping each example's top `metrics.GAP_TOP_K` scores); mAP
    ranks each class over column chunks of the (memory-mapped) arrays.

    Args:
      arrays: the members' cached log-probabilities, M arrays [N, K].
      labels: 0/1 targets [N, K].
      models: tuples of member indices; each model predicts its members' mean probability.

    Returns:
      A list of `(gap, map)` per model.
    """
    num_examples, num_classes = arrays[0].shape
    out = []
    for model in models:

        def mean_probs(rows, columns, model=model):
            stacked = np.stack([np.asarray(arrays[i][rows, columns], np.float64) for i in model])
            return np.mean(np.exp(stacked), axis=0)

        # Several [n, k] temporaries per chunk: a smaller chunk than the streaming pass's.
        budget = METRICS_CHUNK_VALUES // max(8, len(model))
        gap = metrics.GlobalAveragePrecision()
        step = max(1, budget // num_classes)
        for start in range(0, num_examples, step):
            rows = slice(start, start + step)
            gap.update_state(labels[rows], mean_probs(rows, slice(None)))
        step = max(1, budget // max(1, num_examples))
        per_class = [
            metrics.average_precision_per_class(
                mean_probs(slice(None), slice(c, c + step)), labels[:, c : c + step]
            )
            for c in range(0, num_classes, step)
        ]
        out.append(
            (gap.result(), multilabel_metrics.mean_of_present_classes(np.concatenate(per_class)))
        )
    return out


def _bins(ece):
    return ece.bin_counts.copy(), ece.bin_correct.copy(), ece.bin_confidence.copy()


def corruption_rows(rows, members, summary=CORRUPTED):
    """A corruption summary per row: cNLL, cA, cECE (means over the sets).

    For ImageNet-C (`summary` "imagenet2012_corrupted") also the CE per corruption and the mCE,
    normalised by AlexNet's errors, over the 15 benchmark corruptions only; CIFAR-10-C
    ("cifar10_corrupted") and CIFAR-100-C ("cifar100_corrupted") average every set given. None if no set of `summary` was evaluated.
    """
    normaliser = CORRUPTION_SUMMARIES[summary]
    by_corruption = {}
    for key, r in rows.items():
        if corruption_summary_of(key) != summary:
            continue
        corruption = key.split("/", 1)[1].rpartition("_")[0]
        if normaliser is None or corruption in normaliser:
            by_corruption.setdefault(corruption, []).append(r)
    if not by_corruption:
        return None
    all_rows = [r for group in by_corruption.values() for r in group]

    def summarise(pick):
        per_set = [pick(r) for r in all_rows]
        out = {
            "nll": float(np.mean([p["nll"] for p in per_set])),
            "accuracy": float(np.mean([p["accuracy"] for p in per_set])),
            "ece": float(np.mean([p["ece"] for p in per_set])),
        }
        if normaliser is not None:
            for corruption, group in by_corruption.items():
                error = np.mean([1.0 - pick(r)["accuracy"] for r in group])
                out[f"ce/{corruption}"] = float(error / normaliser[corruption])
            out["mce"] = float(np.mean([out[f"ce/{c}"] for c in by_corruption]))
        out["num_datasets"] = len(all_rows)
        times = [p["ms_per_example"] for p in per_set]
        out["ms_per_example"] = None if None in times else float(np.mean(times))
        out["num_params"] = per_set[0]["num_params"]  # the same model on every set
        return out

    member_rows = {m.name: summarise(lambda r, n=m.name: r.members[n]) for m in members}
    ensemble_row = summarise(lambda r: r.ensemble)
    num_subsets = len(all_rows[0].subsets)
    subset_rows = [summarise(lambda r, i=i: r.subsets[i]) for i in range(num_subsets)]
    return Rows(member_rows, ensemble_row, subset_rows)


def format_rows(rows, members, ensemble_size):
    member_rows = [rows.members[m.name] for m in members]
    out = {
        "ensemble": rows.ensemble,
        "member_mean": _mean(member_rows),
        "member_std": _std(member_rows),
        "members": rows.members,
    }
    if rows.subsets:
        out["ensemble_subsets"] = {
            "ensemble_size": ensemble_size,
            "num_subsets": len(rows.subsets),
            "mean": _mean(rows.subsets),
            "std": _std(rows.subsets),
        }
    return out


def _numeric_keys(rows):
    return [k for k, v in rows[0].items() if isinstance(v, (int, float))]


def _mean(rows):
    return {
        k: float(np.mean([r[k] for r in rows]))
        for k in _numeric_keys(rows)
        if all(r[k] is not None for r in rows)
    }


def _std(rows):
    """Sample standard deviation (ddof=1) over rows; 0 for a single row."""
    ddof = 1 if len(rows) > 1 else 0
    return {
        k: float(np.std([r[k] for r in rows], ddof=ddof))
        for k in _numeric_keys(rows)
        if all(r[k] is not None for r in rows)
    }
