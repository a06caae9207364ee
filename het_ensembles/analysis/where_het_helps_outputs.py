"""The outputs of the where-Het-helps analysis (`where_het_helps`): Figure 2, Table 5, console.

`write_outputs` writes `RESULT_FILE` (the JSON summary), `HISTOGRAM_FILE` (the rank histogram,
the paper's Figure 2) and, for image sets, `TOP_EXAMPLES_FILE` (the top examples with their true
and Hom-predicted class names, Table 5's form), each atomically through `member_dir`;
`format_report` is the console summary `het-ensembles covariance --baseline_member` prints.
"""

import math
import os
import textwrap

import numpy as np

from het_ensembles.member_dir import atomic_write, write_json

RESULT_FILE = "where_het_helps.json"
HISTOGRAM_FILE = "rank_histogram.png"
TOP_EXAMPLES_FILE = "top_examples.png"
_HISTOGRAM_BINS = 50  # the histogram's bars when max_rank is larger


def plot_rank_histogram(histogram, largest_rank, path, *, title=None):
    """Writes Figure 2's form: counts of the rank (1 = largest |covariance|), atomically.

    Args:
      histogram: {rank: count} (keys int or str).
      largest_rank: the largest possible rank; one bar per rank up to `_HISTOGRAM_BINS`, else
        that many equal-width bins.
      path: output .png path.
      title: optional title.
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    ranks = np.array([int(r) for r in histogram], dtype=np.int64)
    counts = np.array([int(c) for c in histogram.values()], dtype=np.int64)
    bins = min(max(largest_rank, 1), _HISTOGRAM_BINS)
    edges = np.linspace(0.5, largest_rank + 0.5, bins + 1)
    heights, _ = np.histogram(ranks, bins=edges, weights=counts)
    fig, ax = plt.subplots(figsize=(6.0, 3.6), dpi=110)
    ax.bar(edges[:-1], heights, width=np.diff(edges), align="edge", color="tab:blue", ec="white")
    total = int(counts.sum())
    if total:  # a uniform ranking: the same count per rank
        ax.axhline(total / bins, color="gray", ls="--", lw=1, label="uniform ranks (chance)")
        ax.legend(fontsize=8)
    ax.set_xlabel("rank of |Cov(true class, Hom's class)| in Het's Sigma(x) (1 = largest)")
    ax.set_ylabel("examples (Het right, Hom wrong)")
    ax.set_xlim(0.5, largest_rank + 0.5)
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    atomic_write(path, lambda f: fig.savefig(f, format="png"))
    plt.close(fig)


def plot_top_examples(images, examples, path, *, columns=8):
    """Writes Table 5's form: each image with its true and Hom-predicted class, atomically.

    Args:
      images: array [N, H, W, C] (C = 1 or 3), any range: each is rescaled to [0, 1].
      examples: N dicts with "true_name", "hom_name", "covariance", "rank".
      path: output .png path.
      columns: images per row.
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    n = len(images)
    columns = max(1, min(columns, n))
    rows = max(1, math.ceil(n / columns))
    fig, axes = plt.subplots(
        rows, columns, figsize=(1.8 * columns, 2.3 * rows), dpi=110, squeeze=False
    )
    for ax in axes.flat:
        ax.axis("off")
    for ax, image, example in zip(axes.flat, images, examples):
        image = np.asarray(image, dtype=np.float64)
        low, high = image.min(), image.max()
        image = (image - low) / (high - low) if high > low else np.zeros_like(image)
        if image.shape[-1] == 1:
            ax.imshow(image[..., 0], cmap="gray", vmin=0, vmax=1)
        else:
            ax.imshow(image[..., :3])
        true_name = textwrap.shorten(str(example["true_name"]), 18, placeholder="..")
        hom_name = textwrap.shorten(str(example["hom_name"]), 18, placeholder="..")
        ax.set_title(
            f"true: {true_name}\nHom: {hom_name}\ncov {example['covariance']:+.3g}, "
            f"rank {example['rank']}",
            fontsize=7,
        )
    fig.tight_layout()
    atomic_write(path, lambda f: fig.savefig(f, format="png"))
    plt.close(fig)


def write_outputs(out, top_inputs, output_dir):
    """Writes `RESULT_FILE`, `HISTOGRAM_FILE` and, for image inputs, `TOP_EXAMPLES_FILE`.

    Returns:
      The names of the files written.
    """
    title = f"{out['dataset']}/{out['split']}: {out['num_het_right_hom_wrong']} examples"
    plot_rank_histogram(
        out["histogram"], out["max_rank"], os.path.join(output_dir, HISTOGRAM_FILE), title=title
    )
    is_image = top_inputs is not None and np.ndim(top_inputs) == 4
    written = [RESULT_FILE, HISTOGRAM_FILE]
    if is_image and len(top_inputs):
        plot_top_examples(
            top_inputs, out["top_examples"], os.path.join(output_dir, TOP_EXAMPLES_FILE)
        )
        written.append(TOP_EXAMPLES_FILE)
    write_json(os.path.join(output_dir, RESULT_FILE), {**out, "files": written}, sort_keys=False)
    return written


def format_report(out, *, rows=5):
    """The console summary: counts, the rank distribution and the first Table 5 rows."""
    ranks = out["rank_summary"]
    kind = "centred Sigma(x)" if out["centered"] else "Sigma(x)"
    where = "the true class's row" if out["rank_within"] == "row" else "all class pairs"
    counts = (
        f"{out['dataset']}/{out['split']}: {out['num_examples']} examples; Het right "
        f"{out['num_het_correct']}, Hom right {out['num_hom_correct']}; Het right and Hom "
        f"wrong: {out['num_het_right_hom_wrong']}"
    )
    lines = [counts]
    if ranks["mean_rank"] is not None:
        lines.append(
            f"Rank of |Cov(true, Hom's class)| in {where} of Het's {kind} (1 = largest of "
            f"{out['max_rank']}): rank 1 for {ranks['fraction_rank_1']:.0%}, median "
            f"{ranks['median_rank']:g}, mean {ranks['mean_rank']:.2f} (uniform ranks: "
            f"{ranks['chance_fraction_rank_1']:.0%}, mean {ranks['chance_mean_rank']:.1f})"
        )
    if out["num_in_planted_pairs"] is not None:
        lines.append(
            f"In a planted noisy pair (true, Hom's class): {out['num_in_planted_pairs']} of "
            f"{out['num_het_right_hom_wrong']}"
        )
    lines.append(f"{'index':>7}  {'true':<14} {'Hom':<14} {'cov':>8} {'corr':>7} {'rank':>5}")
    for example in out["top_examples"][:rows]:
        lines.append(
            f"{example['index']:>7}  {example['true_name'][:14]:<14} "
            f"{example['hom_name'][:14]:<14} {example['covariance']:>+8.3g} "
            f"{example['correlation']:>+7.3f} {example['rank']:>5}"
        )
    return "\n".join(lines)
