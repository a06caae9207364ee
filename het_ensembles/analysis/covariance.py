"""Covariance analysis of a heteroscedastic member: which classes does its label noise couple?

The paper's Table 4 analysis (Collier et al. 2021, section 6): for every input of a dataset take
the predicted covariance Sigma(x) of the latent logits, turn it into a correlation matrix, average
over the dataset, and list the class pairs with the largest off-diagonal entries. It sits after
the member directory in the flow (data -> model -> trainer -> member dir -> **analysis**).

Two details the paper's table leaves open, decided here from the model's algebra:

- **Centring.** A softmax is unchanged when the same number is added to every logit, so the part
  of Sigma(x) along the all-ones direction is not identified by the likelihood: a trained model
  carries an arbitrary amount of such common-mode noise, which adds the same positive
  correlation to every pair and hides the structure. For softmax heads the analysis therefore
  uses the covariance of the centred logits u - mean_k(u), i.e. P Sigma(x) P with
  P = I - 11^T / K (`center=True`, the default for softmax heads; sigmoid heads are not shift
  invariant and are analysed as they are).
- **Sign.** A swap of labels a <-> b shows up as a *negative* correlation of u_a and u_b (the
  noise moves one up and the other down); a shared "a-or-b rather than the rest" ambiguity as a
  positive one. Pairs are ranked by |correlation| by default (`rank_by="abs"`) and printed with
  their sign; `rank_by="positive"` ranks by the signed value.

Features are the head's input: `keras.Model(model.inputs, model.get_layer("head").input)`, and
Sigma(x) comes from `model.get_layer("head").covariance(features)` ([B, K, K]).

Command line: `het-ensembles covariance --member runs/demo/het/0 [--dataset noisy_digits]
[--split test] [--top_k 5]` prints the table and writes `correlation.npy`, `covariance_pairs.json`
and `correlation.png` to `--output_dir` (default `<member>/covariance`). With
`--baseline_member HOM_DIR` it runs `where_het_helps` instead (the paper's Figure 2 and Table 5).
"""

import argparse
import importlib
import os
import sys

import numpy as np

from het_ensembles.member_dir import atomic_write, read_member, write_json

RANK_BY = ("abs", "positive", "negative")


def feature_model(model):
    """The model up to the head: inputs -> the head's input features.

    Args:
      model: a functional `keras.Model` with a layer named "head" (`models.build_model`).

    Returns:
      A `keras.Model` sharing `model`'s layers and weights.

    Raises:
      ValueError: if `model` has no layer named "head".
    """
    import keras

    names = [layer.name for layer in model.layers]
    if "head" not in names:
        raise ValueError(
            f"The model has no layer named 'head' (build it with het_ensembles.models.build_model)."
            f" Received: layers={names}"
        )
    inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs
    return keras.Model(inputs, model.get_layer("head").input)


def covariance_to_correlation(covariance):
    """Correlation matrices from covariance matrices.

    Args:
      covariance: array [..., K, K], symmetric positive semi-definite.

    Returns:
      float64 array [..., K, K], corr_ij = cov_ij / sqrt(cov_ii cov_jj) (0 where a variance is 0),
      with ones on the diagonal.
    """
    covariance = np.asarray(covariance, dtype=np.float64)
    std = np.sqrt(np.clip(np.diagonal(covariance, axis1=-2, axis2=-1), 0.0, None))  # [..., K]
    denom = std[..., :, None] * std[..., None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        corr = np.where(denom > 0, covariance / denom, 0.0)
    k = covariance.shape[-1]
    corr[..., np.arange(k), np.arange(k)] = 1.0
    return np.clip(corr, -1.0, 1.0)


def center_covariance(covariance):
    """P Sigma P with P = I - 11^T / K: the covariance of the centred logits u - mean_k(u).

    Args:
      covariance: array [..., K, K].

    Returns:
      float64 array [..., K, K].
    """
    covariance = np.asarray(covariance, dtype=np.float64)
    row_mean = covariance.mean(axis=-1, keepdims=True)
    col_mean = covariance.mean(axis=-2, keepdims=True)
    return covariance - row_mean - col_mean + covariance.mean(axis=(-2, -1), keepdims=True)


def is_softmax_head(head):
    """Whether a head layer is a softmax one (everything but the sigmoid MCSigmoidDense*)."""
    return "Sigmoid" not in type(head).__name__


def covariance_head(model):
    """The model's layer "head", checked to have a `covariance(features)` method.

    Raises:
      ValueError: if the model has no layer "head" or its head has no `covariance` method.
    """
    head = model.get_layer("head") if "head" in [la.name for la in model.layers] else None
    if head is None or not hasattr(head, "covariance"):
        kind = "no layer named 'head'" if head is None else f"head {type(head).__name__}"
        raise ValueError(
            "The covariance analysis needs a heteroscedastic head (a layer from "
            f"het_ensembles.layers with a `covariance` method). Received: a model with {kind}"
        )
    return head


def mean_correlation(model, inputs, *, batch_size=256, max_examples=None, center=None):
    """Average over a dataset of the correlation matrix of the predicted Sigma(x).

    Args:
      model: a `keras.Model` whose layer "head" has a `covariance(features)` method (a
        heteroscedastic layer from `het_ensembles.layers`).
      inputs: a `tf.data.Dataset` of `(x, y)` or `x` batches, or a numpy array x [N, ...].
      batch_size: batch size used when `inputs` is an array (> 0).
      max_examples: stop after this many examples (None: all).
      center: use the centred covariance P Sigma(x) P (see the module docstring); None: True
        for softmax heads, False for sigmoid heads.

    Returns:
      (mean correlation [K, K] float64, number of examples averaged).

    Raises:
      ValueError: if the head has no `covariance` method, `batch_size` < 1 or no examples.
    """
    head = covariance_head(model)
    if batch_size < 1:
        raise ValueError(f"`batch_size` must be >= 1. Received: batch_size={batch_size}")
    if max_examples is not None and max_examples < 1:
        raise ValueError(
            f"`max_examples` must be >= 1 or None. Received: max_examples={max_examples}"
        )
    if center is None:
        center = is_softmax_head(head)
    features_of = feature_model(model)
    total, count = None, 0
    for x in _batches(inputs, batch_size):
        if max_examples is not None:
            x = x[: max_examples - count]
        covariance = np.asarray(head.covariance(features_of(x, training=False)))  # [B, K, K]
        if center:
            covariance = center_covariance(covariance)
        batch_sum = covariance_to_correlation(covariance).sum(axis=0)
        total = batch_sum if total is None else total + batch_sum
        count += len(covariance)
        if max_examples is not None and count >= max_examples:
            break
    if not count:
        raise ValueError("No examples to average over. Received: an empty dataset")
    return total / count, count


def _batches(inputs, batch_size):
    if isinstance(inputs, np.ndarray):
        for start in range(0, len(inputs), batch_size):
            yield inputs[start : start + batch_size]
        return
    for batch in inputs:
        yield batch[0] if isinstance(batch, (tuple, list)) else batch


def top_pairs(correlation, *, top_k=5, class_names=None, rank_by="abs"):
    """The top-k off-diagonal class pairs of a correlation matrix.

    Args:
      correlation: [K, K] symmetric matrix.
      top_k: number of pairs (>= 1; at most K (K - 1) / 2 are returned).
      class_names: optional K names.
      rank_by: "abs" (largest |correlation|), "positive" (largest value) or "negative"
        (most negative value).

    Returns:
      List of dicts `{"rank", "classes": (i, j) with i < j, "names": (name_i, name_j),
      "correlation"}`, best first; ties broken by class index.

    Raises:
      ValueError: on a non-square matrix, a bad `top_k`, `rank_by` or `class_names`.
    """
    correlation = np.asarray(correlation, dtype=np.float64)
    if correlation.ndim != 2 or correlation.shape[0] != correlation.shape[1]:
        raise ValueError(
            f"`correlation` must be a square [K, K] matrix. Received: shape={correlation.shape}"
        )
    if rank_by not in RANK_BY:
        raise ValueError(f"Unknown ranking. Received: rank_by={rank_by!r}; allowed: {RANK_BY}")
    if not isinstance(top_k, int) or top_k < 1:
        raise ValueError(f"`top_k` must be an integer >= 1. Received: top_k={top_k!r}")
    k = correlation.shape[0]
    names = tuple(str(c) for c in range(k)) if class_names is None else tuple(class_names)
    if len(names) != k:
        raise ValueError(
            f"Expected {k} class_names for a {k}x{k} matrix. Received: {len(names)} names"
        )
    rows, cols = np.triu_indices(k, 1)
    values = correlation[rows, cols]
    key = {"abs": -np.abs(values), "positive": -values, "negative": values}[rank_by]
    order = np.lexsort((cols, rows, key))[:top_k]
    return [
        {
            "rank": rank + 1,
            "classes": (int(rows[i]), int(cols[i])),
            "names": (names[rows[i]], names[cols[i]]),
            "correlation": float(values[i]),
        }
        for rank, i in enumerate(order)
    ]


def planted_pairs_of(dataset):
    """The planted noisy class pairs of an embedded set (`noisy_digits`, its `noisy_digits:<spec>`
    variants, `synthetic`), else None."""
    if dataset.startswith("noisy_digits:"):
        from het_ensembles.data import noisy_digits

        pairs = noisy_digits.NoiseSpec.parse(dataset.partition(":")[2]).pairs
        return tuple(tuple(sorted(p)) for p in pairs)
    if dataset not in ("noisy_digits", "synthetic"):
        return None
    module = importlib.import_module(f"het_ensembles.data.{dataset}")
    return tuple(tuple(sorted(p)) for p in module.planted_pairs)


def format_pairs(pairs, *, planted=None):
    """A plain-text table of `top_pairs` output, marking planted pairs when they are known."""
    header = f"{'rank':>4}  {'classes':<9} {'names':<24} {'corr':>7}"
    if planted is not None:
        header += "  planted"
    lines = [header]
    for pair in pairs:
        line = (
            f"{pair['rank']:>4}  {pair['classes']!s:<9} "
            f"{' <-> '.join(pair['names'])[:24]:<24} {pair['correlation']:>+7.3f}"
        )
        if planted is not None:
            line += "  " + ("yes" if tuple(sorted(pair["classes"])) in planted else "no")
        lines.append(line)
    return "\n".join(lines)


def plot_correlation(correlation, path, *, class_names=None, highlight_pairs=(), title=None):
    """Writes a heatmap PNG of a mean correlation matrix (atomically: temp file + rename).

    Args:
      correlation: [K, K] matrix; the diagonal (always 1) is left blank.
      path: output .png path; its directory is created.
      class_names: optional K tick labels (shown when K <= 40).
      highlight_pairs: (i, j) pairs to outline, e.g. the planted pairs.
      title: optional title.
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    correlation = np.array(correlation, dtype=np.float64)
    k = len(correlation)
    np.fill_diagonal(correlation, np.nan)
    limit = max(float(np.nanmax(np.abs(correlation))) if k > 1 else 1.0, 1e-3)
    fig, ax = plt.subplots(figsize=(6.0, 5.0), dpi=110)
    image = ax.imshow(correlation, cmap="RdBu_r", vmin=-limit, vmax=limit)
    fig.colorbar(image, ax=ax, label="mean correlation of Sigma(x)")
    if k <= 40:
        ticks = class_names if class_names is not None else [str(c) for c in range(k)]
        ax.set_xticks(range(k), ticks, rotation=90 if k > 12 else 0)
        ax.set_yticks(range(k), ticks)
    for i, j in highlight_pairs:
        for r, c in ((i, j), (j, i)):
            ax.add_patch(
                plt.Rectangle((c - 0.5, r - 0.5), 1, 1, fill=False, edgecolor="black", lw=1.5)
            )
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    atomic_write(path, lambda f: fig.savefig(f, format="png"))
    plt.close(fig)


def analyze_member(
    member_dir,
    *,
    dataset=None,
    split="test",
    top_k=5,
    rank_by="abs",
    batch_size=64,
    max_examples=None,
    center=None,
    output_dir=None,
):
    """Mean correlation, top pairs and a heatmap for one member; writes them to `output_dir`.

    Args:
      member_dir: a finished member directory with a heteroscedastic head.
      dataset: dataset name for `het_ensembles.data.load` (default: the member's config).
      split: split whose inputs are averaged over (labels are not used).
      top_k: number of pairs to list.
      rank_by: see `top_pairs`.
      batch_size: inputs per batch (Sigma(x) is [B, K, K]: keep it small for large K).
      max_examples: average over at most this many examples.
      center: see `mean_correlation` (None: centred for softmax heads).
      output_dir: where to write `correlation.npy`, `covariance_pairs.json` and
        `correlation.png`; default `<member_dir>/covariance`; "" writes nothing.

    Returns:
      dict with "dataset", "split", "num_examples", "correlation" ([K, K] array), "pairs"
      (`top_pairs` output), "planted_pairs" (or None) and "class_names".
    """
    from het_ensembles import data

    member = read_member(member_dir)
    model, config = member.load_model(), member.config
    dataset = dataset or config.get("dataset")
    if not dataset:
        raise ValueError(
            "No dataset given and the member's config.json names none. Received: dataset=None"
        )
    image_size = config.get("image_size") if dataset == config.get("dataset") else None
    info = data.get_info(dataset, image_size=image_size)
    inputs = data.load(
        dataset, split, batch_size=batch_size, is_training=False, image_size=image_size
    )
    if center is None:
        center = is_softmax_head(model.get_layer("head"))
    correlation, count = mean_correlation(model, inputs, max_examples=max_examples, center=center)
    pairs = top_pairs(correlation, top_k=top_k, class_names=info.class_names, rank_by=rank_by)
    result = {
        "dataset": dataset,
        "split": split,
        "num_examples": count,
        "correlation": correlation,
        "pairs": pairs,
        "planted_pairs": planted_pairs_of(dataset),
        "class_names": info.class_names,
        "rank_by": rank_by,
        "centered": bool(center),
    }
    output_dir = os.path.join(member_dir, "covariance") if output_dir is None else output_dir
    if output_dir:
        write_outputs(
            result, output_dir, title=f"{os.path.basename(member_dir)}: {dataset}/{split}"
        )
    return result


def write_outputs(result, output_dir, *, title=None):
    """Writes `correlation.npy`, `covariance_pairs.json` and `correlation.png` of a result."""
    atomic_write(
        os.path.join(output_dir, "correlation.npy"), lambda f: np.save(f, result["correlation"])
    )
    summary = {key: value for key, value in result.items() if key != "correlation"}
    write_json(os.path.join(output_dir, "covariance_pairs.json"), summary)
    plot_correlation(
        result["correlation"],
        os.path.join(output_dir, "correlation.png"),
        class_names=result["class_names"],
        highlight_pairs=result["planted_pairs"] or (),
        title=title,
    )


def _parser():
    from het_ensembles.analysis import where_het_helps  # imports this module

    parser = argparse.ArgumentParser(
        prog="het-ensembles covariance",
        description="Top correlated class pairs of a heteroscedastic member's Sigma(x) "
        "(Collier et al. 2021, Table 4).",
    )
    parser.add_argument("--member", required=True, help="a finished member directory")
    parser.add_argument("--dataset", default=None, help="default: the member's config dataset")
    parser.add_argument("--split", default="test")
    parser.add_argument("--top_k", type=int, default=5)
    parser.add_argument("--rank_by", choices=RANK_BY, default="abs")
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--max_examples", type=int, default=None)
    parser.add_argument(
        "--no_center",
        action="store_true",
        help="analyse Sigma(x) as is, without removing the common-mode (all-logits) noise",
    )
    parser.add_argument("--output_dir", default=None, help="default: <member>/covariance")
    parser.add_argument(
        "--baseline_member",
        default=None,
        help="a deterministic member trained on the same data: instead of the pairs, analyse "
        "where --member is right and it is wrong (the paper's Figure 2 and Table 5)",
    )
    parser.add_argument(
        "--top_n", type=int, default=16, help="with --baseline_member: examples in Table 5"
    )
    parser.add_argument(
        "--rank_within",
        choices=where_het_helps.RANK_WITHIN,
        default="row",
        help="with --baseline_member: rank |Cov(true, baseline's class)| in the true class's "
        "row of Sigma(x) (1..K-1) or among all class pairs",
    )
    parser.add_argument("--no_progress", action="store_true", help="no progress bar")
    return parser


def cli_main(argv):
    """`het-ensembles covariance --member DIR [...]`; returns the exit status."""
    args = _parser().parse_args(argv)
    for name in ("top_k", "top_n", "batch_size", "max_examples"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            print(f"error: --{name} must be >= 1. Received: {getattr(args, name)}", file=sys.stderr)
            return 2
    if args.baseline_member:
        from het_ensembles.analysis import where_het_helps

        try:
            return where_het_helps.cli_run(args)
        except ValueError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
    try:
        result = analyze_member(
            args.member,
            dataset=args.dataset,
            split=args.split,
            top_k=args.top_k,
            rank_by=args.rank_by,
            batch_size=args.batch_size,
            max_examples=args.max_examples,
            center=False if args.no_center else None,
            output_dir=args.output_dir,
        )
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    kind = "centred Sigma(x)" if result["centered"] else "Sigma(x)"
    print(
        f"Mean correlation of {kind} over {result['dataset']}/{result['split']} "
        f"({result['num_examples']} examples); top {args.top_k} pairs by {args.rank_by}:"
    )
    print(format_pairs(result["pairs"], planted=result["planted_pairs"]))
    output_dir = (
        os.path.join(args.member, "covariance") if args.output_dir is None else args.output_dir
    )
    if output_dir:
        print(f"Wrote correlation.npy, covariance_pairs.json, correlation.png to {output_dir}")
    return 0
