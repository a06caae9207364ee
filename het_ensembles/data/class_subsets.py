"""The 200-class subsets of ImageNet-A and ImageNet-R, and evaluation restricted to them.

ImageNet-A (Hendrycks et al. 2021, "Natural Adversarial Examples") and ImageNet-R (Hendrycks et
al. 2021, "The Many Faces of Robustness") hold images of 200 of the 1000 ImageNet classes; TFDS
labels them with the 1000-class ImageNet index. Their authors evaluate a 1000-way classifier by
keeping the 200 logits of those classes and taking the softmax over them
(`hendrycks/natural-adv-examples` eval.py: `net(data)[:, indices_in_1k]`;
`hendrycks/imagenet-r` eval.py: `net(data)[:, imagenet_r_mask]`); robustness-metrics does the
same with probabilities (`metrics/base.py` `_map_labelset`: gather, divide by the sum) when
asked to (`use_dataset_labelset=True`; its default scores the 1000-way predictions).

`restrict_log_probs` is that renormalisation in log space (a log-softmax over the subset), so
it gives the same numbers from logits or from log-probabilities. No TensorFlow here.

Which protocol the leaderboard uses: uncertainty-baselines' ImageNet-A column comes from
robustness-metrics' `imagenet_variants` report (`reports/imagenet_variants.py`), which asks for
`accuracy`, `ece`, `nll` on `imagenet_a` without `use_dataset_labelset`, i.e. on the full
1000-way predictions (hence its 0.96% accuracy and NLL 7.94 > log 1000 for the Heteroscedastic
row). So a comparable ImageNet-A cell scores the 1000-way log-probabilities against the
1000-class labels; the 200-class restriction here is the datasets' authors' protocol, to be
reported beside it, not in its place.
"""

import numbers

import numpy as np

# robustness_metrics/datasets/tfds.py `_IMAGENET_A_LABELSET`; the same as the keys with a value
# != -1 of `thousand_k_to_200` in hendrycks/natural-adv-examples eval.py (`indices_in_1k`).
IMAGENET_A_INDICES = (
    6, 11, 13, 15, 17, 22, 23, 27, 30, 37, 39, 42, 47, 50, 57, 70, 71, 76, 79,
    89, 90, 94, 96, 97, 99, 105, 107, 108, 110, 113, 124, 125, 130, 132, 143,
    144, 150, 151, 207, 234, 235, 254, 277, 283, 287, 291, 295, 298, 301, 306,
    307, 308, 309, 310, 311, 313, 314, 315, 317, 319, 323, 324, 326, 327, 330,
    334, 335, 336, 347, 361, 363, 372, 378, 386, 397, 400, 401, 402, 404, 407,
    411, 416, 417, 420, 425, 428, 430, 437, 438, 445, 456, 457, 461, 462, 470,
    472, 483, 486, 488, 492, 496, 514, 516, 528, 530, 539, 542, 543, 549, 552,
    557, 561, 562, 569, 572, 573, 575, 579, 589, 606, 607, 609, 614, 626, 627,
    640, 641, 642, 643, 658, 668, 677, 682, 684, 687, 701, 704, 719, 736, 746,
    749, 752, 758, 763, 765, 768, 773, 774, 776, 779, 780, 786, 792, 797, 802,
    803, 804, 813, 815, 820, 823, 831, 833, 835, 839, 845, 847, 850, 859, 862,
    870, 879, 880, 888, 890, 897, 900, 907, 913, 924, 932, 933, 934, 937, 943,
    945, 947, 951, 954, 956, 957, 959, 971, 972, 980, 981, 984, 986, 987, 988,
)  # fmt: skip
# robustness_metrics/datasets/tfds.py `_IMAGENET_R_LABELSET`; the same as
# `imagenet_r_indices` in hendrycks/imagenet-r eval.py (its `imagenet_r_wnids` in ImageNet
# label order).
IMAGENET_R_INDICES = (
    1, 2, 4, 6, 8, 9, 11, 13, 22, 23, 26, 29, 31, 39, 47, 63, 71, 76, 79, 84,
    90, 94, 96, 97, 99, 100, 105, 107, 113, 122, 125, 130, 132, 144, 145, 147,
    148, 150, 151, 155, 160, 161, 162, 163, 171, 172, 178, 187, 195, 199, 203,
    207, 208, 219, 231, 232, 234, 235, 242, 245, 247, 250, 251, 254, 259, 260,
    263, 265, 267, 269, 276, 277, 281, 288, 289, 291, 292, 293, 296, 299, 301,
    308, 309, 310, 311, 314, 315, 319, 323, 327, 330, 334, 335, 337, 338, 340,
    341, 344, 347, 353, 355, 361, 362, 365, 366, 367, 368, 372, 388, 390, 393,
    397, 401, 407, 413, 414, 425, 428, 430, 435, 437, 441, 447, 448, 457, 462,
    463, 469, 470, 471, 472, 476, 483, 487, 515, 546, 555, 558, 570, 579, 583,
    587, 593, 594, 596, 609, 613, 617, 621, 629, 637, 657, 658, 701, 717, 724,
    763, 768, 774, 776, 779, 780, 787, 805, 812, 815, 820, 824, 833, 847, 852,
    866, 875, 883, 889, 895, 907, 928, 931, 932, 933, 934, 936, 937, 943, 945,
    947, 948, 949, 951, 953, 954, 957, 963, 965, 967, 980, 981, 983, 988,
)  # fmt: skip
CLASS_SUBSETS = {"imagenet_a": IMAGENET_A_INDICES, "imagenet_r": IMAGENET_R_INDICES}


def class_subset(name):
    """The sorted class indices a dataset's labels can take, or None when it uses all classes."""
    return CLASS_SUBSETS.get(name)


def restrict_log_probs(log_probs, indices):
    """Keeps the columns `indices` of `log_probs` and renormalises over them.

    `log p_sub[n, j] = log p[n, indices[j]] - logsumexp_i log p[n, indices[i]]`, i.e. a
    log-softmax over the kept columns: the probabilities divided by their sum over the subset
    (robustness-metrics), or equally the softmax of the kept logits (Hendrycks' eval.py).

    Args:
      log_probs: [N, K] log-probabilities or logits (any per-row constant cancels).
      indices: the kept classes, integers in [0, K), no repeats (e.g. `IMAGENET_A_INDICES`).

    Returns:
      float64 [N, len(indices)] normalised log-probabilities.

    Raises:
      ValueError: for a `log_probs` that is not 2-D, or bad `indices`.
    """
    log_probs = np.asarray(log_probs, dtype=np.float64)
    if log_probs.ndim != 2:
        raise ValueError(
            f"log_probs must be [N, K]. Received: log_probs with shape {log_probs.shape}"
        )
    indices = _check_indices(indices, log_probs.shape[1])
    kept = log_probs[:, indices]  # [N, M]
    peak = np.max(kept, axis=1, keepdims=True)
    peak = np.where(np.isfinite(peak), peak, 0.0)
    return kept - (peak + np.log(np.sum(np.exp(kept - peak), axis=1, keepdims=True)))


def subset_labels(labels, indices):
    """Maps K-class labels to their position in `indices` (the subset's own 0..M-1 labels).

    Args:
      labels: [N] integer labels, each one of `indices`.
      indices: the subset's classes (sorted or not; position j is subset label j).

    Returns:
      int64 [N].

    Raises:
      ValueError: if a label is not in `indices`.
    """
    indices = _check_indices(indices, None)
    labels = np.asarray(labels)
    position = {c: j for j, c in enumerate(indices)}
    outside = sorted({int(y) for y in labels.ravel()} - set(position))
    if outside:
        raise ValueError(
            f"labels outside the class subset. Received: labels {outside[:10]} not in indices"
        )
    return np.array([position[int(y)] for y in labels.ravel()], np.int64).reshape(labels.shape)


def _check_indices(indices, num_classes):
    values = list(indices)
    if (
        not values
        or not all(isinstance(i, numbers.Integral) and not isinstance(i, bool) for i in values)
        or len(set(values)) != len(values)
        or min(values) < 0
        or (num_classes is not None and max(values) >= num_classes)
    ):
        bound = "K" if num_classes is None else num_classes
        raise ValueError(
            f"indices must be distinct integers in [0, {bound}). Received: indices={values[:10]}"
            + ("..." if len(values) > 10 else "")
        )
    return np.asarray(values, np.int64)
