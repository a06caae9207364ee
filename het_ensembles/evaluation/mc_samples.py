"""Metrics and cost against the number of test Monte Carlo samples S (paper Appendix D).

Collier et al. (CVPR 2021), Appendix D, show how a heteroscedastic model's metrics and its
inference time change with the number of MC samples S drawn at test time.
`evaluate(..., test_mc_samples=[10, 100, 1000])` (`het-ensembles evaluate --test_mc_samples
10,100,1000`) sets every MC head of each member to S (`members.override_test_mc_samples`),
predicts through the one prediction path into a cache per S (`cache.mc_samples_dir`) and scores
each S like the plain evaluation. Members without an MC head predict the same at every S: they
are predicted once (their plain entry is borrowed) and their member rows say
`"test_mc_samples": null`.

metrics.json, per dataset: `"mc_samples": {"<S>": {"ensemble", "member_mean", "member_std",
"members", ["ensemble_subsets"]}}`, each row with its `ms_per_example` (`predict`'s field: the
ensemble's is the members' sum). The dataset's plain rows stay those of the members' own S (the
S they were trained and saved with, as the trainer's test pass and the leaderboard report
them); their member rows then carry that S as `test_mc_samples`. A table goes into the console
summary and leaderboard.md, a plot into `mc_samples.png`.
"""

import numpy as np
from matplotlib import figure
from matplotlib.backends import backend_agg

from het_ensembles import member_dir
from het_ensembles.evaluation import members as members_lib
from het_ensembles.evaluation import scoring

KEY = "mc_samples"  # the per-dataset entry of metrics.json
PLOT_FILE = "mc_samples.png"


def parse_sample_counts(value):
    """The distinct sample counts S, ascending, of "10,100" or an iterable of ints.

    Raises:
      ValueError: naming `test_mc_samples`, for an empty list or a count that is not an
        integer >= 1.
    """
    items = value.split(",") if isinstance(value, str) else list(value)
    counts = []
    for item in items:
        try:
            count = int(item.strip()) if isinstance(item, str) else item
        except ValueError:
            count = None
        if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 1:
            raise ValueError(
                "test_mc_samples must be integers >= 1 (a comma-separated list on the command "
                f"line, e.g. 10,100,1000). Received: test_mc_samples={value!r}"
            )
        counts.append(int(count))
    if not counts:
        raise ValueError(f"test_mc_samples is empty. Received: test_mc_samples={value!r}")
    return sorted(set(counts))


def own_sample_counts(models, members):
    """`{member name: its own S, or None without an MC head}`, loading each model.

    Raises:
      ValueError: if no member has an MC head (nothing would change with S).
    """
    own = {m.name: members_lib.own_mc_samples(models.get(m)) for m in members}
    if all(count is None for count in own.values()):
        raise ValueError(
            "test_mc_samples sweeps Monte Carlo heads, and no member has one (no layer with "
            f"test_mc_samples): their predictions do not depend on S. Received: members="
            f"{[m.name for m in members]}"
        )
    return own


def fill_caches(predictor, output_dir, plain_caches, members, own, sample_counts):
    """Predicts what each S's caches lack, with every MC head set to S for the pass.

    Args:
      predictor: the evaluator's cache predictor (its `cache` and `fill`).
      output_dir: the evaluation's output directory.
      plain_caches: the filled caches at the members' own S, one per dataset.
      members: the `member_dir.Member`s.
      own: `own_sample_counts`.
      sample_counts: the S values.

    Returns:
      `{S: [cache per dataset]}`, filled.
    """
    sampled = [m for m in members if own[m.name] is not None]
    caches = {}
    for count in sample_counts:
        caches[count] = [
            predictor.cache(
                output_dir,
                plain.dataset,
                mc_samples=count,
                borrowed={m.name: plain for m in members if own[m.name] is None},
            )
            for plain in plain_caches
        ]
        stale = [(c, c.stale_members(members)) for c in caches[count]]
        if not any(todo for _, todo in stale):
            continue  # all cached: no model is touched
        models = [predictor.models.get(m) for m in sampled]
        with members_lib.override_test_mc_samples(models, count):
            for cache, todo in stale:
                if todo:
                    predictor.fill(cache, todo)
    return caches


def results(caches, members, own, *, subsets, ensemble_size, multilabel, num_bins):
    """`{dataset key: {"<S>": formatted rows}}` of the filled caches of `fill_caches`."""
    out = {}
    for count, per_dataset in caches.items():
        for cache in per_dataset:
            rows = scoring.compute_rows(cache, members, subsets, multilabel, num_bins)
            entry = scoring.format_rows(rows, members, ensemble_size)
            for member in members:  # after format_rows: not averaged over members
                sampled = own[member.name] is not None
                entry["members"][member.name]["test_mc_samples"] = count if sampled else None
            out.setdefault(cache.dataset.key, {})[str(count)] = entry
    return out


def table_lines(metrics):
    """Markdown lines of every dataset's sweep (none without one): NLL, accuracy (multi-label:
    gAP), ECE and ms per example at each S, members' mean +- std and the ensemble."""
    lines = []
    for key, entry in metrics.items():
        sweep = entry.get(KEY) if isinstance(entry, dict) else None
        if not sweep:
            continue
        top1 = _top1(sweep)
        if not lines:
            lines += [
                f"| dataset | S | row | NLL | {top1} | ECE | ms / example |",
                "|---|---:|---|---:|---:|---:|---:|",
            ]
        for count, rows in sweep.items():
            mean, std, ens = rows["member_mean"], rows["member_std"], rows["ensemble"]
            lines.append(
                f"| {key} | {count} | members (mean ± std) | {mean['nll']:.4f} ± "
                f"{std['nll']:.4f} | {mean[top1]:.4f} ± {std[top1]:.4f} | {mean['ece']:.4f} ± "
                f"{std['ece']:.4f} | {_ms(mean.get('ms_per_example'))} |"
            )
            lines.append(
                f"| {key} | {count} | ensemble | {ens['nll']:.4f} | {ens[top1]:.4f} | "
                f"{ens['ece']:.4f} | {_ms(ens.get('ms_per_example'))} |"
            )
    if not lines:
        return []
    plain = next(e for e in metrics.values() if isinstance(e, dict) and e.get(KEY))
    own = {name: row.get("test_mc_samples") for name, row in plain["members"].items()}
    fixed = sorted(name for name, count in own.items() if count is None)
    notes = [
        "Test MC samples S (paper Appendix D): each member's MC heads set to S; the plain rows "
        "above are at the members' own S ("
        + ", ".join(f"{name}: {count}" for name, count in own.items() if count is not None)
        + "). ms / example: the members' mean; the ensemble's is their sum."
    ]
    if fixed:
        notes.append(
            f"Members without an MC head ({', '.join(fixed)}): predicted once, the same rows at "
            "every S."
        )
    return ["Test Monte Carlo samples", "", *lines, "", *notes]


def write_plot(path, metrics):
    """NLL, accuracy (gAP), ECE and ms per example against S (log axis), a colour per dataset:
    the members' mean +- std (dashed, error bars) and the ensemble (solid)."""
    sweeps = {
        k: e[KEY] for k, e in metrics.items() if isinstance(e, dict) and e.get(KEY) is not None
    }
    top1 = _top1(next(iter(sweeps.values())))
    panels = (("nll", "NLL"), (top1, top1), ("ece", "ECE"), ("ms_per_example", "ms / example"))
    fig = figure.Figure(figsize=(16, 4))
    backend_agg.FigureCanvasAgg(fig)
    for index, (metric, label) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), index + 1)
        for colour, (key, sweep) in enumerate(sweeps.items()):
            counts = [int(c) for c in sweep]
            mean = [sweep[c]["member_mean"].get(metric, np.nan) for c in sweep]
            std = [sweep[c]["member_std"].get(metric, 0.0) for c in sweep]
            ensemble = [sweep[c]["ensemble"].get(metric) for c in sweep]
            ax.errorbar(
                counts,
                mean,
                yerr=std,
                fmt="o--",
                color=f"C{colour}",
                capsize=3,
                label=f"{key} members (mean ± std)",
            )
            if None not in ensemble:
                ax.plot(counts, ensemble, "s-", color=f"C{colour}", label=f"{key} ensemble")
        ax.set(xscale="log", xlabel="test MC samples S", ylabel=label, title=label)
        if metric == "ms_per_example":
            ax.set_yscale("log")
    fig.axes[0].legend(fontsize=7)
    fig.tight_layout()
    member_dir.atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=100))


def _top1(sweep):
    return "gap" if "gap" in next(iter(sweep.values()))["ensemble"] else "accuracy"


def _ms(value):
    return "-" if value is None else f"{value:.3f}"
