"""`evaluate`: members and datasets in; predictions cached, metrics.json, leaderboard.md, plot out.

The steps, each in its own module: find and check members (`member_dir`, `members`), parse and
check datasets (`datasets`), predict what the cache lacks (`predict` into `cache`), score
(`scoring`) and write the report (`report`).
"""

import dataclasses
import os
import warnings

import numpy as np

from het_ensembles import member_dir, metrics
from het_ensembles.cli.arguments import check_int
from het_ensembles.data import cifar100_c, class_subsets
from het_ensembles.evaluation import cache as cache_lib
from het_ensembles.evaluation import datasets as datasets_lib
from het_ensembles.evaluation import mc_samples as mc_samples_lib
from het_ensembles.evaluation import members as members_lib
from het_ensembles.evaluation import ood as ood_lib
from het_ensembles.evaluation import predict, report, scoring
from het_ensembles.evaluation import rescaling as rescaling_lib
from het_ensembles.metrics import joint as joint_metrics


def evaluate(
    members,
    datasets,
    output_dir,
    *,
    ensemble_size=None,
    batch_size=256,
    num_bins=metrics.DEFAULT_NUM_BINS,
    data_dir=None,
    cifar100_c_path=None,
    image_size=None,
    label_field=None,
    method=None,
    ensemble_method=None,
    max_subsets=100,
    ood_datasets=None,
    test_mc_samples=None,
    progress=True,
):
    """Evaluates members and their ensemble; writes metrics.json, leaderboard.md and a plot.

    Args:
      members: a glob pattern, a list of patterns / member directories (see
        `member_dir.find_members`), or a list of `member_dir.Member`.
      datasets: dataset names for `het_ensembles.data.load` (split "test"; `"<name>:<split>"`
        picks another split, e.g. "noisy_digits:test_clean", or "noisy_digits:validation" for
        the part of train the members held out (their config.json `validation_fraction` and
        `validation_seed`, which must agree); `"imagenet2012_corrupted"` means all
        15 x 5 ImageNet-C sets and `"imagenet2012_corrupted/<corruption>"` its 5 severities), or
        a dict `{name: (x, y)}` of in-memory arrays (x [N, ...], y [N] or multi-hot [N, K]).
      output_dir: where predictions/, metrics.json, leaderboard.md and the plot go.
      ensemble_size: if set and smaller than the number of members, also report the mean and std
        over the size-`ensemble_size` sub-ensembles (all of them, or `max_subsets` drawn at
        random with a fixed seed when there are more).
      batch_size: prediction batch size (not part of the cache key: predictions do not depend
        on it).
      num_bins: ECE bins.
      data_dir: TFDS data directory (default: each member's `config.json` `data_dir`).
      cifar100_c_path: the folder of the CIFAR-100-C files, read for `cifar100_corrupted/...`
        sets (not in TFDS: `het_ensembles.data.cifar100_c`; uncertainty-baselines' flag name).
      image_size: image side fed to the models (default: each member's `config.json`
        `image_size`, else the dataset's own).
      label_field: passed to `data.load` (cifar10_n).
      method: the leaderboard row name (default from the members' `head`).
      ensemble_method: the ensemble row's name (default "<method> ensemble (size=N)"), e.g.
        uncertainty-baselines' "[Heteroscedastic Ensemble (size=4)](het_ensemble.py)".
      max_subsets: cap on the number of sub-ensembles.
      ood_datasets: dataset names (as `datasets`; their labels are not used) to detect as
        out of distribution against the first of `datasets` (`evaluation.ood`): AUROC, AUPRC
        and FPR at 95% TPR of every member and the ensemble, under metrics.json's
        `"ood/<name>"`.
      test_mc_samples: a list of sample counts S (or "10,100,1000"): also score every dataset
        with each member's MC heads set to S (paper Appendix D; `evaluation.mc_samples`), under
        each dataset's `"mc_samples"` entry, with a table and `mc_samples.png`. The plain rows
        stay at the members' own S. ValueError if no member has an MC head.
      progress: show tqdm progress bars.

    Returns:
      The contents of metrics.json: `{dataset: {"ensemble": {...}, "member_mean": {...},
      "member_std": {...}, "members": {name: {...}}, ["ensemble_subsets": {...}]}}`, plus an
      `"imagenet2012_corrupted"` summary entry when ImageNet-C sets were evaluated, and an
      `"ood/<name>"` entry per OOD set; with `test_mc_samples`, each dataset's
      `"mc_samples": {"<S>": {"ensemble", "member_mean", "member_std", "members"}}`.

    Raises:
      ValueError: for bad arguments or members (see `member_dir.find_members`), members that
        disagree on the number of classes or on softmax vs multilabel, a member whose model
        cannot be loaded or whose output does not match, a dataset whose classes do not match
        the members', a `validation` split of members that held out none or different ones, or
        inputs with NaN or inf values.
    """
    # Cheap argument checks first: a usage error is reported before any member is loaded.
    check_int("batch_size", batch_size, 1)
    check_int("num_bins", num_bins, 1)
    check_int("max_subsets", max_subsets, 1)
    if ensemble_size is not None:
        check_int("ensemble_size", ensemble_size, 1)
    if test_mc_samples is not None:
        test_mc_samples = mc_samples_lib.parse_sample_counts(test_mc_samples)
    members = _as_members(members)
    num_classes, multilabel = members_lib.check_members(members)
    if ensemble_size is not None and ensemble_size > len(members):
        raise ValueError(
            f"ensemble_size must be <= the number of members ({len(members)}). "
            f"Received: ensemble_size={ensemble_size}"
        )
    eval_datasets = _with_validation(datasets_lib.parse_datasets(datasets), members)
    for dataset in eval_datasets:
        _check_dataset_classes(dataset, num_classes, multilabel, label_field)
    ood_sets = _ood_datasets(ood_datasets, eval_datasets)
    member_dir.check_writable_dir(output_dir)

    predictor = _CachePredictor(
        members,
        models=members_lib.ModelStore(num_classes),
        multilabel=multilabel,
        batch_size=batch_size,
        data_dir=data_dir,
        cifar100_c_path=cifar100_c_path,
        image_size=image_size,
        label_field=label_field,
        progress=progress,
        unlabelled={d.key for d in ood_sets},
    )
    caches = [predictor.cache(output_dir, d) for d in eval_datasets]
    ood_caches = [predictor.cache(output_dir, d) for d in ood_sets]
    if test_mc_samples is not None:  # loads every model: refuses a set without MC heads first
        own = mc_samples_lib.own_sample_counts(predictor.models, members)
    _fill_caches(predictor, caches + ood_caches, members)
    rows, results = _score(
        caches,
        members,
        ensemble_size=ensemble_size,
        max_subsets=max_subsets,
        multilabel=multilabel,
        num_bins=num_bins,
    )
    # Mixup members: `<metric>+rescaling` beside the plain metrics (uncertainty-baselines').
    rescaling_lib.add_results(
        predictor, output_dir, caches, members, results, multilabel=multilabel, num_bins=num_bins
    )
    ood = ood_lib.ood_results(caches[0], ood_caches, members, multilabel=multilabel)
    if test_mc_samples is not None:
        sweep_caches = mc_samples_lib.fill_caches(
            predictor, output_dir, caches, members, own, test_mc_samples
        )
        sweep = mc_samples_lib.results(
            sweep_caches,
            members,
            own,
            subsets=scoring.subsets_of(len(members), ensemble_size, max_subsets),
            ensemble_size=ensemble_size,
            multilabel=multilabel,
            num_bins=num_bins,
        )
        for key, entry in sweep.items():
            for name, count in own.items():  # the S of the plain rows
                results[key]["members"][name]["test_mc_samples"] = count
            results[key][mc_samples_lib.KEY] = entry
    _write_report(
        output_dir,
        results,
        rows,
        members,
        method=method,
        ensemble_method=ensemble_method,
        ensemble_size=ensemble_size,
        ood=ood,
    )
    return {**results, **ood}


def _ood_datasets(ood_datasets, eval_datasets):
    """The parsed OOD sets; ValueError if one is also an in-distribution set."""
    if not ood_datasets:
        return []
    parsed = datasets_lib.parse_datasets(ood_datasets)
    both = {d.key for d in parsed} & {d.key for d in eval_datasets}
    if both:
        raise ValueError(
            f"A dataset cannot be both evaluated and out of distribution. Received: "
            f"{sorted(both)} in datasets and ood_datasets"
        )
    collide = {d.cache_name for d in parsed} & {d.cache_name for d in eval_datasets}
    if collide:
        raise ValueError(f"OOD datasets collide with the datasets' caches: {sorted(collide)}")
    return parsed


def _fill_caches(predictor, caches, members):
    """Predicts what each dataset's cache lacks (the members whose predictions are stale)."""
    stale = {c.dataset.key: c.stale_members(members) for c in caches}
    # Load every model that has work to do now, so a broken member fails before hours of work.
    for member in members:
        if any(member in todo for todo in stale.values()):
            predictor.models.get(member)
    for cache in caches:
        if stale[cache.dataset.key]:
            predictor.fill(cache, stale[cache.dataset.key])


def _score(caches, members, *, ensemble_size, max_subsets, multilabel, num_bins):
    """Scores the cached predictions.

    Returns:
      `(rows, results)`: the scored rows by dataset key (with class-subset keys), and the
      formatted results of `evaluate` (with the corruption summaries).
    """
    subsets = scoring.subsets_of(len(members), ensemble_size, max_subsets)
    rows = {}
    for cache in caches:
        args = (cache, members, subsets, multilabel, num_bins)
        rows[cache.dataset.key] = scoring.compute_rows(*args)
        indices = class_subsets.class_subset(cache.dataset.name)
        if indices is not None:  # also as the set's authors score it, beside the table
            key = scoring.class_subset_key(cache.dataset.key, indices)
            rows[key] = scoring.compute_rows(*args, class_subset=indices)
    results = {key: scoring.format_rows(r, members, ensemble_size) for key, r in rows.items()}
    for cache in caches:  # skip_corrupt sets: how many listed images were skipped
        skipped = datasets_lib.num_skipped(
            cache.dataset, rows[cache.dataset.key].ensemble["num_examples"]
        )
        if skipped is not None:
            results[cache.dataset.key]["ensemble"]["num_skipped"] = skipped
    for summary in scoring.CORRUPTION_SUMMARIES:
        summary_rows = scoring.corruption_rows(rows, members, summary)
        if summary_rows is not None:
            results[summary] = scoring.format_rows(summary_rows, members, ensemble_size)
    return rows, results


def _write_report(
    output_dir, results, rows, members, *, method, ensemble_method, ensemble_size, ood
):
    """Writes metrics.json (with the `ood` entries), leaderboard.md (the OOD table below the
    leaderboard rows and notes) and the reliability diagram to `output_dir`."""
    member_dir.write_json(
        os.path.join(output_dir, "metrics.json"), {**results, **ood}, sort_keys=False
    )
    text = report.leaderboard_text(
        results,
        members,
        method=method or members_lib.default_method(members),
        ensemble_method=ensemble_method,
        ensemble_size=ensemble_size,
        test_devices=predict.device_description(),
    )
    for table in report.appended_tables({**results, **ood}):
        text = text.rstrip("\n") + "\n\n" + "\n".join(table)
    member_dir.write_text(os.path.join(output_dir, report.LEADERBOARD_FILE), text)
    report.write_reliability_diagram(
        os.path.join(output_dir, report.RELIABILITY_DIAGRAM_FILE), rows
    )
    if any(mc_samples_lib.KEY in entry for entry in results.values()):
        mc_samples_lib.write_plot(os.path.join(output_dir, mc_samples_lib.PLOT_FILE), results)


def cached_predictions(output_dir, members, dataset, *, image_size=None, label_field=None):
    """The predictions an earlier `evaluate` cached: `(labels, log_probs [M, N, K])`.

    Every entry is verified (the member's model hash, the labels' and predictions' checksums).

    Args:
      output_dir: the `output_dir` given to `evaluate`.
      members: as for `evaluate`.
      dataset: one dataset name as given to `evaluate` (e.g. "noisy_digits:test_clean").
      image_size, label_field: as given to `evaluate`.

    Raises:
      ValueError: if an entry is missing, outdated or damaged (run `evaluate` first).
    """
    members = _as_members(members)
    parsed = datasets_lib.parse_datasets([dataset])
    if len(parsed) != 1:
        raise ValueError(
            "cached_predictions reads one dataset at a time; this name expands to "
            f"{len(parsed)} sets. Received: dataset={dataset!r}"
        )
    (parsed,) = _with_validation(parsed, members)
    _, multilabel = members_lib.check_members(members)  # the cache key depends on the kind
    predictor = _CachePredictor(
        members, multilabel=multilabel, image_size=image_size, label_field=label_field
    )
    cache = predictor.cache(output_dir, parsed)
    stale = cache.stale_members(members)
    if stale:
        raise ValueError(
            f"No valid cached predictions of {[m.name for m in stale]} on {dataset} in "
            f"{output_dir}; run evaluate first. Received: output_dir={output_dir!r}"
        )
    labels = np.load(cache.labels_path)
    return labels, np.stack([np.asarray(cache.load(m)[0]) for m in members])


def _as_members(members):
    """`Member`s with the names `find_members` gives (unique, the cache files' names), a
    model of M heads as M members `<name>/head<i>` (`members.expand_heads`)."""
    if isinstance(members, (str, os.PathLike)) or not all(
        isinstance(m, member_dir.Member) for m in members
    ):
        return members_lib.expand_heads(member_dir.find_members(members))
    names = member_dir.member_names([m.path for m in members])
    return members_lib.expand_heads(
        [dataclasses.replace(m, name=name) for m, name in zip(members, names)]
    )


def _with_validation(datasets, members):
    """`datasets` with each `validation` split set to the part of train the members held out."""
    if not any(d.split == "validation" and d.arrays is None for d in datasets):
        return datasets
    fraction, seed = members_lib.validation_holdout(members)
    return [
        dataclasses.replace(d, validation_fraction=fraction, validation_seed=seed)
        if d.split == "validation" and d.arrays is None
        else d
        for d in datasets
    ]


def _check_dataset_classes(dataset, num_classes, multilabel, label_field):
    """ValueError if a named dataset's classes do not fit the members (arrays: at prediction)."""
    if dataset.arrays is not None:
        return
    info = dataset.info(label_field)
    if num_classes is not None and info.num_classes != num_classes:
        raise ValueError(
            f"Dataset {dataset.key} has {info.num_classes} classes; the members have "
            f"{num_classes}. Received: dataset={dataset.key!r}"
        )
    if bool(info.multilabel) != multilabel:
        raise ValueError(
            f"Dataset {dataset.key} multilabel={info.multilabel} but the members have "
            f"multilabel={multilabel}. Received: dataset={dataset.key!r}"
        )


def _head_of(member, log_probs):
    """The member's log-probabilities [B, K] in its model's output: head `member.head_index`
    of [B, M, K]; ValueError if the output does not have the member's M heads."""
    heads = member.ensemble_size
    if (log_probs.ndim == 3) != (heads > 1) or (heads > 1 and log_probs.shape[1] != heads):
        expected = "[B, K]" if heads == 1 else f"[B, {heads}, K] (config.json ensemble_size)"
        shape = log_probs.shape
        raise ValueError(f"Member {member.name} must output logits {expected}. Received: {shape=}")
    return log_probs if member.head_index is None else log_probs[:, member.head_index]


class _CachePredictor:
    """Fills prediction caches: one pass over a dataset for the members that need it."""

    def __init__(
        self,
        members,
        *,
        models=None,
        multilabel=False,
        batch_size=256,
        data_dir=None,
        cifar100_c_path=None,
        image_size=None,
        label_field=None,
        progress=False,
        unlabelled=(),
    ):
        """`unlabelled`: keys of datasets whose labels need not fit the members (OOD sets)."""
        self.members = members
        self.unlabelled = set(unlabelled)
        self.models = models
        self.multilabel = multilabel
        self.batch_size = batch_size
        self.data_dir = data_dir
        self.cifar100_c_path = cifar100_c_path
        self.image_size = image_size
        self.label_field = label_field
        self.progress = progress
        self._model_sha256 = {}

    def image_size_of(self, member):
        return self.image_size if self.image_size is not None else member.config.get("image_size")

    def cache(self, output_dir, dataset, *, mc_samples=None, borrowed=None):
        """The `PredictionCache` of `dataset`, keyed for each member (at `mc_samples` test MC
        samples if given; `borrowed` members' entries are another cache's, see `cache`)."""
        keys = {}
        for m in self.members:
            if m.name in (borrowed or {}):
                continue
            if m.model_path not in self._model_sha256:  # once per model, not per head
                self._model_sha256[m.model_path] = cache_lib.file_sha256(m.model_path)
            keys[m.name] = cache_lib.cache_key(
                dataset,
                model_sha256=self._model_sha256[m.model_path],
                image_size=self.image_size_of(m),
                label_field=self.label_field,
                test_mc_samples=mc_samples,
                joint_nll=self._joint_nll_of(dataset),
            )
        return cache_lib.PredictionCache(
            output_dir, dataset, keys, mc_samples=mc_samples, borrowed=borrowed
        )

    def _joint_nll_of(self, dataset):
        """(tau, kappa) of the joint-NLL tables kept for `dataset`: labelled softmax sets that are
        not corrupted (uncertainty-baselines reports `test/joint_nll` on the clean test set only;
        the ENN samples would redo every MC head's sampling on all 75 ImageNet-C sets)."""
        if self.multilabel or dataset.key in self.unlabelled or dataset.is_corrupted:
            return None
        return (joint_metrics.TAU, joint_metrics.KAPPA)

    def fill(self, cache, stale):
        """Predicts `stale` members on `cache.dataset` and stores the results.

        Members that see the same images (same image_size) share one pass over the data. If the
        labels of a pass differ from labels.npy, the dataset changed since the cache was written:
        labels.npy is replaced and every other member is recomputed too.
        """
        labels_sha = cache.labels_sha256()
        todo, relabelled = list(stale), False
        while todo:
            image_size = self.image_size_of(todo[0])
            group = [m for m in todo if self.image_size_of(m) == image_size]
            todo = [m for m in todo if m not in group]
            joint = any("joint_nll" in cache.keys.get(m.name, {}) for m in group)
            labels, outputs = self._predict(cache.dataset, group, image_size, joint=joint)
            if labels_sha is not None and not np.array_equal(labels, np.load(cache.labels_path)):
                if relabelled:
                    raise RuntimeError(
                        f"Two passes over {cache.dataset.key} gave different labels: its "
                        "evaluation pipeline is not deterministic."
                    )
                warnings.warn(
                    f"The labels of {cache.dataset.key} differ from the cached ones: the dataset "
                    "changed, so every member is recomputed on it."
                )
                relabelled, labels_sha = True, None
                todo = [m for m in self.members if m not in group and m.name in cache.keys]
            if labels_sha is None:
                labels_sha = cache.store_labels(labels)
            for member, (log_probs, ms_per_example, table) in zip(group, outputs):
                cache.store(
                    member,
                    log_probs,
                    labels_sha,
                    ms_per_example=ms_per_example,
                    num_params=int(self.models.get(member).count_params()),
                    joint=table,
                )

    def _predict(self, dataset, group, image_size, *, joint=False):
        """One pass over the data for every member of `group`: labels, [(log_probs, ms, joint
        table)], the table `(metrics.joint.PolyadicBlocks result, S)` of the member's ENN
        samples (`evaluation.enn_samples`), or None (not asked for, or no ENN samples)."""
        batches, total = datasets_lib.batches(
            dataset,
            batch_size=self.batch_size,
            image_size=image_size,
            data_dir=self._data_dir(dataset),
            label_field=self.label_field,
        )
        # One runner per model: the heads of a multi-head model share its pass.
        models = list(dict.fromkeys(m.model_path for m in group))
        runners = [
            predict.ModelRunner(
                self.models.get(member),
                multilabel=self.multilabel,
                name=f"Member {member.name}",
                enn_samples=joint,
            )
            for member in (next(m for m in group if m.model_path == p) for p in models)
        ]
        runner_of = [models.index(m.model_path) for m in group]
        description = f"{dataset.key} ({len(group)} member{'s' * (len(group) > 1)})"
        labels, outputs = [], [[] for _ in group]
        tables = [joint_metrics.PolyadicBlocks() if joint else None for _ in group]
        for y, log_probs in predict.predict_batches(
            runners, batches, total=total, description=description, progress=self.progress
        ):
            labels.append(y)
            for member, out, index in zip(group, outputs, runner_of):
                batch_log_probs = _head_of(member, log_probs[index])
                self._check_classes(member, batch_log_probs)
                out.append(batch_log_probs)
            for i, (member, index) in enumerate(zip(group, runner_of)):
                samples = runners[index].label_log_probs
                if tables[i] is not None and samples is None:
                    tables[i] = None  # no ENN samples: no joint NLL
                elif tables[i] is not None:
                    heads = member.head_index
                    tables[i].add(samples if heads is None else samples[:, :, heads])
        labels = np.concatenate(labels)
        if dataset.key not in self.unlabelled:
            self._check_labels(dataset, labels)
        return labels, [
            (
                np.concatenate(out),
                runners[index].ms_per_example(),
                None if table is None else (table.result(), table.num_samples),
            )
            for out, index, table in zip(outputs, runner_of, tables)
        ]

    def _data_dir(self, dataset):
        """Where `dataset`'s files are: the CIFAR-100-C folder, else the TFDS data dir."""
        if cifar100_c.is_name(dataset.name):
            return self.cifar100_c_path
        return self.data_dir or self.members[0].config.get("data_dir")

    def _check_classes(self, member, log_probs):
        if self.models.num_classes is None:  # no config.json, no static output shape
            self.models.num_classes = log_probs.shape[1]
        if log_probs.shape[1] != self.models.num_classes:
            raise ValueError(
                f"Member {member.name} must output logits [B, {self.models.num_classes}]. "
                f"Received: shape={log_probs.shape}"
            )

    def _check_labels(self, dataset, labels):
        k = self.models.num_classes
        if self.multilabel:
            ok = labels.ndim == 2 and labels.shape[1] == k
        else:
            ok = labels.ndim == 1 and (labels.size == 0 or (labels.min() >= 0 and labels.max() < k))
        if not ok:
            raise ValueError(
                f"The labels of {dataset.key} do not fit {k} classes (multilabel="
                f"{self.multilabel}). Received: labels.shape={labels.shape}"
            )
