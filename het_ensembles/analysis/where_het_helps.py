"""Where the heteroscedastic head helps: the paper's Figure 2 and Table 5.

Collier et al. (CVPR 2021, section 6) look at the test examples that a heteroscedastic (Het)
model gets right and a deterministic (Hom) one gets wrong, and ask whether Het's predicted
covariance Sigma(x) couples the true class with the class Hom confused it with. Figure 2 is the
histogram of the rank of that covariance; Table 5 lists the examples where it is largest, with
their images and the two class names. It sits after the member directory in the flow
(data -> model -> trainer -> member dir -> **analysis**), beside `covariance` (Table 4).

The definition implemented here, for an example with true class y, Het's top-1 = y and Hom's
top-1 = h != y:

- **Covariance.** `C = Sigma(x)` of the Het member's head (`head.covariance(features)`); for
  softmax heads the covariance of the centred logits, `P Sigma(x) P` with `P = I - 11^T / K`,
  as `covariance.center_covariance` explains (the common-mode part of Sigma(x) is not identified
  by a softmax likelihood and would add the same amount to every entry). The quantity is
  `C[y, h]`; its correlation `C[y, h] / sqrt(C[y, y] C[h, h])` is reported beside it.
- **Rank** (`rank_within="row"`, the default): 1 + the number of off-diagonal entries of the
  true class's row, `|C[y, j]|` for j != y, strictly larger than `|C[y, h]|`; rank 1 = the
  largest, ranks run 1..K-1 (1..999 on ImageNet). Ties share the better rank. The paper's text,
  as we read it, ranks the covariance of the true and the predicted class among the true
  class's covariances with the other classes: the row is the set of classes the label's noise
  could be coupled with, so a low rank says "of all the classes Het couples the true class to,
  Hom's mistake is among the first". The other reading, the rank among all K (K - 1) / 2
  off-diagonal entries of C (`rank_within="pairs"`), is available; with a uniform ranking the
  expected rank is (max_rank + 1) / 2 in either case, which the outputs report as chance.
- **Table 5** lists the top-N examples by `|C[y, h]|` (ties: earlier example first). A swap of
  labels y <-> h shows up as a negative centred covariance, a shared ambiguity as a positive one.

The dataset is streamed once in batches through the one prediction path
(`evaluation.predict`) for both members; Sigma(x) is computed only for the selected examples,
in chunks of at most `_COVARIANCE_BYTES` of float64 matrices, so memory does not grow with N or
with the batch size (K = 1000 gives chunks of 8 examples).

Command line: `het-ensembles covariance --member HET_DIR --baseline_member HOM_DIR
[--dataset D] [--split S] [--top_n 16] [--rank_within row|pairs]` writes `where_het_helps.json`,
`rank_histogram.png` and, for image sets, `top_examples.png` to `--output_dir` (default
`<HET_DIR>/covariance`).
"""

import os

import numpy as np

from het_ensembles.analysis import covariance as covariance_lib
from het_ensembles.analysis import where_het_helps_outputs as outputs
from het_ensembles.member_dir import member_names, read_member

RANK_WITHIN = ("row", "pairs")
_COVARIANCE_BYTES = 64 * 2**20  # float64 Sigma(x) matrices handled at once (K=1000: 8)


def max_rank(num_classes, within="row"):
    """The largest possible rank: K - 1 (row) or K (K - 1) / 2 (pairs)."""
    _check_within(within)
    return num_classes - 1 if within == "row" else num_classes * (num_classes - 1) // 2


def covariance_ranks(covariance, true_classes, other_classes, *, within="row"):
    """The covariance of (true, other) class in each matrix, and its rank by absolute value.

    Args:
      covariance: array [N, K, K] of symmetric matrices (already centred if wanted).
      true_classes: int array [N], the true class y of each example.
      other_classes: int array [N], the other class h (Hom's prediction), h != y.
      within: "row": rank among |C[y, j]|, j != y (1..K-1); "pairs": among all off-diagonal
        |C[i, j]|, i < j (1..K(K-1)/2). See the module docstring.

    Returns:
      (values float64 [N] = C[y, h], ranks int64 [N]; rank 1 = the largest |C|, ties share
      the better rank).

    Raises:
      ValueError: on shapes that do not match, classes out of range, y == h, or a bad `within`.
    """
    _check_within(within)
    covariance = np.asarray(covariance, dtype=np.float64)
    y, h = np.asarray(true_classes), np.asarray(other_classes)
    if covariance.ndim != 3 or covariance.shape[1] != covariance.shape[2]:
        raise ValueError(
            f"`covariance` must have shape [N, K, K]. Received: shape={covariance.shape}"
        )
    n, k = covariance.shape[:2]
    for name, classes in (("true_classes", y), ("other_classes", h)):
        if classes.shape != (n,) or (n and (classes.min() < 0 or classes.max() >= k)):
            raise ValueError(
                f"`{name}` must be {n} class indices in [0, {k}). Received: shape="
                f"{classes.shape}, values {np.unique(classes)[:10].tolist()}"
            )
    if np.any(y == h):
        raise ValueError(
            "The other class must differ from the true class. Received: equal at indices "
            f"{np.flatnonzero(y == h)[:10].tolist()}"
        )
    # Symmetric by definition; P Sigma P in floating point is not quite, and C[y, h] must
    # compare equal to its twin C[h, y] in the pairs ranking.
    covariance = (covariance + np.swapaxes(covariance, 1, 2)) / 2
    rows = np.arange(n)
    values = covariance[rows, y, h]
    magnitude = np.abs(covariance)
    if within == "row":
        candidates = magnitude[rows, y]  # [N, K]
        candidates[rows, y] = -np.inf  # the variance C[y, y] is not a candidate
    else:
        upper_rows, upper_cols = np.triu_indices(k, 1)
        candidates = magnitude[:, upper_rows, upper_cols]  # [N, K (K - 1) / 2]
    ranks = 1 + np.sum(candidates > np.abs(values)[:, None], axis=1)
    return values, ranks.astype(np.int64)


def het_right_hom_wrong(labels, het_classes, hom_classes):
    """Boolean mask [N]: Het's top-1 is the label and Hom's is not."""
    labels = np.asarray(labels)
    return (np.asarray(het_classes) == labels) & (np.asarray(hom_classes) != labels)


def rank_histogram(ranks):
    """{rank: count} of the ranks that occur, in increasing rank (Figure 2's data)."""
    values, counts = np.unique(np.asarray(ranks, dtype=np.int64), return_counts=True)
    return {int(v): int(c) for v, c in zip(values, counts)}


def rank_summary(ranks, largest_rank):
    """Mean / median rank, fraction at rank 1, and what a uniform ranking would give."""
    ranks = np.asarray(ranks, dtype=np.float64)
    summary = {
        "chance_mean_rank": (largest_rank + 1) / 2,
        "chance_fraction_rank_1": 1.0 / largest_rank if largest_rank else None,
    }
    if not len(ranks):
        return {"mean_rank": None, "median_rank": None, "fraction_rank_1": None, **summary}
    return {
        "mean_rank": float(ranks.mean()),
        "median_rank": float(np.median(ranks)),
        "fraction_rank_1": float(np.mean(ranks == 1)),
        **summary,
    }


class TopExamples:
    """The running top-N examples by |covariance| (ties: smaller index first), with their inputs.

    Args:
      top_n: how many to keep (>= 1).
    """

    def __init__(self, top_n):
        if not isinstance(top_n, int) or top_n < 1:
            raise ValueError(f"`top_n` must be an integer >= 1. Received: top_n={top_n!r}")
        self.top_n = top_n
        self.fields = None  # name -> array [<= top_n]
        self.inputs = None  # [<= top_n, ...]

    def add(self, inputs, **fields):
        """Adds candidates: `inputs` [M, ...] and per-example arrays [M] (`index`,
        `covariance` required)."""
        if self.fields is not None:
            fields = {k: np.concatenate([self.fields[k], np.asarray(v)]) for k, v in fields.items()}
            inputs = np.concatenate([self.inputs, inputs])
        order = np.lexsort((fields["index"], -np.abs(fields["covariance"])))[: self.top_n]
        self.fields = {k: np.asarray(v)[order] for k, v in fields.items()}
        self.inputs = np.asarray(inputs)[order]


def where_het_helps(
    het_model,
    hom_model,
    batches,
    *,
    total=None,
    center=None,
    within="row",
    top_n=16,
    max_examples=None,
    progress=False,
):
    """Streams `(x, y)` batches through both models; ranks Het's covariance where Het alone is right.

    Args:
      het_model: a `keras.Model` whose layer "head" has a `covariance(features)` method.
      hom_model: the baseline model (usually deterministic), same inputs and K.
      batches: an iterable of numpy `(x [B, ...], y int [B])` batches.
      total: the number of batches, for the progress bar.
      center: use the centred covariance P Sigma P; None: True for softmax heads.
      within: "row" or "pairs" (see `covariance_ranks`).
      top_n: number of Table 5 examples kept (with their inputs).
      max_examples: stop after this many examples (None: all).
      progress: show a progress bar.

    Returns:
      dict: "num_examples", "num_het_correct", "num_hom_correct", "num_het_right_hom_wrong",
      "selected" (per selected example, arrays "index", "true_class", "hom_class",
      "covariance", "correlation", "rank"), "top" (a `TopExamples`), "centered", "within",
      "max_rank", "num_classes".

    Raises:
      ValueError: a head without `covariance`, models whose K differ, bad arguments.
    """
    from het_ensembles.evaluation import predict

    head = covariance_lib.covariance_head(het_model)
    _check_within(within)
    if max_examples is not None and max_examples < 1:
        raise ValueError(
            f"`max_examples` must be >= 1 or None. Received: max_examples={max_examples}"
        )
    if center is None:
        center = covariance_lib.is_softmax_head(head)
    features_of = covariance_lib.feature_model(het_model)
    top = TopExamples(top_n)
    runners = [
        predict.ModelRunner(het_model, name="het"),
        predict.ModelRunner(hom_model, name="hom"),
    ]
    current = {}  # the inputs of the batch predict_batches is on (it yields labels, not inputs)

    def remembered():
        count = 0
        for x, y in batches:
            if max_examples is not None:
                x, y = x[: max_examples - count], y[: max_examples - count]
            current["x"] = x
            yield x, y
            count += len(x)
            if max_examples is not None and count >= max_examples:
                return

    counts = {"num_examples": 0, "num_het_correct": 0, "num_hom_correct": 0}
    selected = {k: [] for k in ("index", "true_class", "hom_class", "covariance", "correlation")}
    selected["rank"] = []
    num_classes = None
    for labels, (het_log_probs, hom_log_probs) in predict.predict_batches(
        runners, remembered(), total=total, description="where Het helps", progress=progress
    ):
        if het_log_probs.shape != hom_log_probs.shape:
            raise ValueError(
                "The two members must predict the same classes. Received: Het outputs "
                f"{het_log_probs.shape[1]} classes, Hom {hom_log_probs.shape[1]}"
            )
        num_classes = het_log_probs.shape[1]
        labels = np.asarray(labels).astype(np.int64)
        het_classes, hom_classes = het_log_probs.argmax(1), hom_log_probs.argmax(1)
        mask = het_right_hom_wrong(labels, het_classes, hom_classes)
        offset = counts["num_examples"]
        counts["num_examples"] += len(labels)
        counts["num_het_correct"] += int(np.sum(het_classes == labels))
        counts["num_hom_correct"] += int(np.sum(hom_classes == labels))
        if not mask.any():
            continue
        x = np.asarray(current["x"])[mask]
        y, h = labels[mask], hom_classes[mask]
        chunk = max(1, _COVARIANCE_BYTES // (8 * num_classes**2))
        for start in range(0, len(x), chunk):
            part = slice(start, start + chunk)
            sigma = np.asarray(head.covariance(features_of(x[part], training=False)), np.float64)
            if center:
                sigma = covariance_lib.center_covariance(sigma)
            values, ranks = covariance_ranks(sigma, y[part], h[part], within=within)
            rows = np.arange(len(sigma))
            variances = sigma[rows, y[part], y[part]] * sigma[rows, h[part], h[part]]
            with np.errstate(divide="ignore", invalid="ignore"):
                correlation = np.where(variances > 0, values / np.sqrt(variances), 0.0)
            index = offset + np.flatnonzero(mask)[part]
            fields = {
                "index": index,
                "true_class": y[part],
                "hom_class": h[part],
                "covariance": values,
                "correlation": correlation,
                "rank": ranks,
            }
            for name, value in fields.items():
                selected[name].append(np.asarray(value))
            top.add(x[part], **fields)
    if not counts["num_examples"]:
        raise ValueError("No examples to analyse. Received: an empty dataset")
    selected = {k: np.concatenate(v) if v else np.zeros(0) for k, v in selected.items()}
    return {
        **counts,
        "num_het_right_hom_wrong": len(selected["index"]),
        "selected": selected,
        "top": top,
        "centered": bool(center),
        "within": within,
        "num_classes": int(num_classes),
        "max_rank": max_rank(int(num_classes), within),
    }


def check_pair(het, hom):
    """Checks that a Het member and its baseline were trained on the same data, with the same K.

    Args:
      het, hom: `member_dir.Member`s.

    Raises:
      ValueError: naming both members and what differs (K, softmax / multilabel, dataset,
        image_size), or an unfinished member; multilabel members are refused (top-1 is
        undefined for them).
    """
    from het_ensembles.evaluation import members

    members.check_members([het, hom])
    if het.multilabel:
        raise ValueError(
            "The analysis compares top-1 predictions, which multilabel (sigmoid) members do not "
            f"make. Received: member={het.name} and baseline_member={hom.name}, multilabel"
        )
    differ = {
        field: (het.config.get(field), hom.config.get(field))
        for field in ("dataset", "image_size")
        if het.config.get(field) != hom.config.get(field)
    }
    if differ:
        detail = "; ".join(f"{f}: {a!r} vs {b!r}" for f, (a, b) in differ.items())
        raise ValueError(
            f"The members must be trained on the same data. Received: member={het.name} and "
            f"baseline_member={hom.name} differ in config.json ({detail})"
        )


def analyze_members(
    het_dir,
    hom_dir,
    *,
    dataset=None,
    split="test",
    top_n=16,
    within="row",
    batch_size=64,
    max_examples=None,
    center=None,
    output_dir=None,
    progress=True,
):
    """Figure 2 and Table 5 for a Het member and its Hom baseline; writes them to `output_dir`.

    Args:
      het_dir: a finished member directory with a heteroscedastic head.
      hom_dir: a finished baseline member directory, trained on the same data.
      dataset: dataset name (default: the members' config dataset).
      split: the split whose labels decide right and wrong ("test", "test_clean", ...).
      top_n: number of Table 5 examples.
      within: see `covariance_ranks`.
      batch_size: examples per prediction batch.
      max_examples: analyse at most this many examples.
      center: see `where_het_helps` (None: centred for softmax heads).
      output_dir: where to write `where_het_helps_outputs`' files (the top examples' image
        grid for image sets only); default `<het_dir>/covariance`; "" writes nothing.
      progress: show a progress bar.

    Returns:
      The JSON summary (see `summary`) with "files" (those written), plus "selected" (the
      per-example arrays) and "output_dir".
    """
    from het_ensembles.evaluation import datasets, members

    paths = [os.path.abspath(het_dir), os.path.abspath(hom_dir)]
    if paths[0] == paths[1]:
        raise ValueError(
            f"The baseline must be another member. Received: member=baseline_member={het_dir!r}"
        )
    read = []
    for argument, path, name in zip(("member", "baseline_member"), paths, member_names(paths)):
        try:
            read.append(read_member(path, name=name))
        except ValueError as error:
            raise ValueError(f"--{argument}: {error}") from error
    het, hom = read
    check_pair(het, hom)
    config = het.config
    dataset = dataset or config.get("dataset")
    if not dataset:
        raise ValueError(
            "No dataset given and the members' config.json names none. Received: dataset=None"
        )
    image_size = config.get("image_size") if dataset == config.get("dataset") else None
    holdout = members.validation_holdout([het, hom]) if split == "validation" else (0.0, 0)
    source = datasets.EvalDataset(
        dataset if split == "test" else f"{dataset}:{split}",
        dataset,
        split,
        validation_fraction=holdout[0],
        validation_seed=holdout[1],
    )
    info = source.info()
    if info.multilabel:
        raise ValueError(f"Dataset {dataset} is multilabel. Received: dataset={dataset!r}")
    batches, total = datasets.batches(source, batch_size=batch_size, image_size=image_size)
    result = where_het_helps(
        het.load_model(),
        hom.load_model(),
        batches,
        total=total,
        center=center,
        within=within,
        top_n=top_n,
        max_examples=max_examples,
        progress=progress,
    )
    names = info.class_names or tuple(str(c) for c in range(result["num_classes"]))
    out = summary(
        result,
        class_names=names,
        planted_pairs=covariance_lib.planted_pairs_of(dataset),
        dataset=dataset,
        split=split,
        members={"member": het.path, "baseline_member": hom.path},
    )
    output_dir = os.path.join(het.path, "covariance") if output_dir is None else output_dir
    if output_dir:
        out["files"] = outputs.write_outputs(out, result["top"].inputs, output_dir)
    return {**out, "selected": result["selected"], "output_dir": output_dir}


def summary(result, *, class_names, planted_pairs=None, dataset=None, split=None, members=None):
    """The JSON-ready summary of a `where_het_helps` result.

    Returns:
      dict with the counts, "histogram" ({rank: count}), "rank_summary", "top_examples" (index,
      true / Hom class and names, covariance, correlation, rank, planted), "planted_pairs" and
      "num_in_planted_pairs" (None when the dataset plants none), and how Sigma(x) was read.
    """
    selected = result["selected"]
    planted = {tuple(sorted(p)) for p in planted_pairs} if planted_pairs else None

    def is_planted(a, b):
        return None if planted is None else (min(a, b), max(a, b)) in planted

    top = result["top"].fields or {k: [] for k in selected}
    top_examples = [
        {
            "index": int(top["index"][i]),
            "true_class": int(top["true_class"][i]),
            "true_name": class_names[int(top["true_class"][i])],
            "hom_class": int(top["hom_class"][i]),
            "hom_name": class_names[int(top["hom_class"][i])],
            "covariance": float(top["covariance"][i]),
            "correlation": float(top["correlation"][i]),
            "rank": int(top["rank"][i]),
            "planted": is_planted(int(top["true_class"][i]), int(top["hom_class"][i])),
        }
        for i in range(len(top["index"]))
    ]
    pairs = zip(selected["true_class"].astype(int), selected["hom_class"].astype(int))
    return {
        "dataset": dataset,
        "split": split,
        **(members or {}),
        **{k: result[k] for k in ("num_examples", "num_het_correct", "num_hom_correct")},
        "num_het_right_hom_wrong": result["num_het_right_hom_wrong"],
        "centered": result["centered"],
        "rank_within": result["within"],
        "num_classes": result["num_classes"],
        "max_rank": result["max_rank"],
        "histogram": {str(k): v for k, v in rank_histogram(selected["rank"]).items()},
        "rank_summary": rank_summary(selected["rank"], result["max_rank"]),
        "top_examples": top_examples,
        "planted_pairs": None if planted is None else sorted(planted),
        "num_in_planted_pairs": None if planted is None else sum(is_planted(*p) for p in pairs),
    }


def cli_run(args):
    """`het-ensembles covariance --member HET --baseline_member HOM [...]` (parsed by
    `covariance`); returns the exit status."""
    out = analyze_members(
        args.member,
        args.baseline_member,
        dataset=args.dataset,
        split=args.split,
        top_n=args.top_n,
        within=args.rank_within,
        batch_size=args.batch_size,
        max_examples=args.max_examples,
        center=False if args.no_center else None,
        output_dir=args.output_dir,
        progress=not args.no_progress,
    )
    print(outputs.format_report(out))
    if out["output_dir"]:
        print(f"Wrote {', '.join(out['files'])} to {out['output_dir']}")
    return 0


def _check_within(within):
    if within not in RANK_WITHIN:
        raise ValueError(f"Unknown ranking. Received: within={within!r}; allowed: {RANK_WITHIN}")
