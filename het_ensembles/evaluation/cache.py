"""The prediction cache: each member's log-probabilities per dataset, computed once.

Layout: `<output_dir>/predictions/<dataset>/` holds `labels.npy` and, per
member, `<member>.npy` (float32 [N, K] log-probabilities; a model of M heads has one entry per
head, `<member>/head<i>.npy`) with a `<member>.json` sidecar holding
the SHA-256 of the member's `model.keras`, of the labels and of the predictions, and what the
predictions depend on (dataset name and split, image size, label field; not the batch size:
inference noise is fixed by the layer seed, not by a position in the batch). An entry is reused
only while all of these match, so a retrained member is recomputed, a damaged file too (with a
warning), and an interrupted evaluation resumes.

Labelled softmax datasets also hold `<member>.joint.npy`: the member's joint-NLL table (float32
[N // kappa, C], `het_ensembles.metrics.joint.block_log_likelihoods` of its ENN samples,
`evaluation.enn_samples`), computed in the same prediction pass; the key then holds
`joint_nll: {tau, kappa}` and the sidecar `joint_nll_table` (its checksum and the number of ENN
samples S; null for a member without ENN samples).

A sweep over the number of test Monte Carlo samples S (`evaluate(..., test_mc_samples=[...])`)
keeps each S apart: `<output_dir>/predictions/mc_samples=<S>/<dataset>/`, the same layout, with S
in every key (dataset directories never hold "=", so the names cannot collide). Members without
an MC head predict the same at every S: their entries there are borrowed from the plain cache.
"""

import hashlib
import json
import os
import time
import warnings

import numpy as np

from het_ensembles import member_dir

PREDICTIONS_DIR = "predictions"
LABELS_FILE = "labels.npy"
CACHE_FORMAT = 1  # bump when the sidecar or the cached arrays change meaning


def cache_key(
    dataset, *, model_sha256, image_size, label_field, test_mc_samples=None, joint_nll=None
):
    """What a member's cached predictions on `dataset` depend on (JSON-able).

    `test_mc_samples`: the S its MC heads were set to (None: the model's own, as saved).
    `joint_nll`: (tau, kappa) of the joint-NLL table kept beside the predictions (None: none).
    """
    if dataset.arrays is not None:
        source = {"arrays_sha256": dataset.arrays_sha256()}
    else:
        source = {
            "name": dataset.name,
            "split": dataset.split,
            "image_size": image_size,
            "label_field": label_field,
        }
        if dataset.validation_fraction:  # which part of train is the validation split
            source["validation"] = [dataset.validation_fraction, dataset.validation_seed]
    key = {"format": CACHE_FORMAT, "model_sha256": model_sha256, "dataset": source}
    if test_mc_samples is not None:
        key["test_mc_samples"] = int(test_mc_samples)
    if joint_nll is not None:
        key["joint_nll"] = {"tau": int(joint_nll[0]), "kappa": int(joint_nll[1])}
    return key


def mc_samples_dir(num_samples):
    """The directory under `predictions/` of a sweep's entries at `num_samples` samples."""
    return f"mc_samples={int(num_samples)}"


def save_npy(path, array):
    member_dir.atomic_write(path, lambda f: np.save(f, array))


class PredictionCache:
    """`<output_dir>/predictions/<dataset>/`: labels.npy, <member>.npy and <member>.json.

    Args:
      output_dir: the evaluation's output directory.
      dataset: the `datasets.EvalDataset`.
      keys: member name -> what its entry depends on (format, model hash, dataset).
      mc_samples: for a sweep's entries at S test MC samples (`mc_samples_dir`); None: the
        members' own S.
      borrowed: member name -> the `PredictionCache` that holds its entry instead (members
        without an MC head in a sweep); those members are never stale here.
      variant: a directory under `predictions/` for predictions of changed models (with "=",
        which dataset directories never hold), e.g. mixup's rescaled models
        (`evaluation.rescaling`); None: the members' own models.
    """

    def __init__(self, output_dir, dataset, keys, *, mc_samples=None, borrowed=None, variant=None):
        self.dataset = dataset
        parts = [] if mc_samples is None else [mc_samples_dir(mc_samples)]
        if variant is not None:
            parts.append(variant)
        self.directory = os.path.join(output_dir, PREDICTIONS_DIR, *parts, dataset.cache_name)
        self.keys = keys
        self.mc_samples = mc_samples
        self.borrowed = dict(borrowed or {})
        self.labels_path = os.path.join(self.directory, LABELS_FILE)

    def predictions_path(self, member):
        return os.path.join(self.directory, f"{member.name}.npy")

    def sidecar_path(self, member):
        return os.path.join(self.directory, f"{member.name}.json")

    def joint_path(self, member):
        return os.path.join(self.directory, f"{member.name}.joint.npy")

    def labels_sha256(self):
        """SHA-256 of labels.npy, or None if it is missing or unreadable (then warns)."""
        if not os.path.exists(self.labels_path):
            return None
        try:
            np.load(self.labels_path, mmap_mode="r")
        except (OSError, ValueError, EOFError) as e:
            warnings.warn(f"Ignoring a damaged cache file {self.labels_path} ({e}); recomputing.")
            return None
        return file_sha256(self.labels_path)

    def stale_members(self, members):
        """The members whose cached predictions are missing, outdated or damaged."""
        labels_sha = self.labels_sha256()
        return [
            m for m in members if m.name not in self.borrowed and not self._is_fresh(m, labels_sha)
        ]

    def _is_fresh(self, member, labels_sha):
        path, sidecar_path = self.predictions_path(member), self.sidecar_path(member)
        if labels_sha is None or not os.path.exists(sidecar_path):
            return False
        try:
            with open(sidecar_path) as f:
                sidecar = json.load(f)
            expected = {**self.keys[member.name], "labels_sha256": labels_sha}
            if any(sidecar.get(k) != v for k, v in expected.items()):
                return False  # the member or the data changed: recompute quietly
            if file_sha256(path) != sidecar["predictions_sha256"]:
                raise ValueError("checksum mismatch")
            log_probs = np.load(path, mmap_mode="r")
            if log_probs.dtype != np.float32 or list(log_probs.shape) != sidecar["shape"]:
                raise ValueError(f"unexpected array {log_probs.dtype} {log_probs.shape}")
            table = sidecar.get("joint_nll_table") if "joint_nll" in expected else None
            if table is not None and file_sha256(self.joint_path(member)) != table["sha256"]:
                raise ValueError("joint-NLL table checksum mismatch")
            return True
        except (OSError, ValueError, EOFError, KeyError, TypeError) as e:
            warnings.warn(
                f"Ignoring a damaged cache entry for member {member.name} on "
                f"{self.dataset.key} ({path}: {e}); recomputing."
            )
            return False

    def store_labels(self, labels):
        os.makedirs(self.directory, exist_ok=True)
        save_npy(self.labels_path, labels)
        return file_sha256(self.labels_path)

    def store(self, member, log_probs, labels_sha, *, ms_per_example, num_params, joint=None):
        """Writes <member>.npy (and <member>.joint.npy), then its sidecar (whose presence
        vouches for the arrays). `joint`: `(table [N // kappa, C], S)` of the member's ENN
        samples, or None (none); kept where the key asks for a joint-NLL table.

        Head i of a multi-head member is named `<member>/head<i>`: its files sit in a
        `<member>/` folder (`head<i>.npy`, `head<i>.json`).
        """
        path = self.predictions_path(member)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        save_npy(path, log_probs.astype(np.float32))
        extra = {}
        if "joint_nll" in self.keys[member.name]:
            extra["joint_nll_table"] = None
            if joint is not None:
                save_npy(self.joint_path(member), np.asarray(joint[0], np.float32))
                extra["joint_nll_table"] = {
                    "sha256": file_sha256(self.joint_path(member)),
                    "num_samples": int(joint[1]),
                }
        sidecar = {
            **self.keys[member.name],
            "member_path": member.path,
            "labels_sha256": labels_sha,
            "predictions_sha256": file_sha256(path),
            "shape": list(log_probs.shape),
            "ms_per_example": ms_per_example,
            "num_params": num_params,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            **extra,
        }
        member_dir.write_json(self.sidecar_path(member), sidecar)

    def load(self, member):
        """(log_probs memory-mapped [N, K], sidecar dict)."""
        if member.name in self.borrowed:
            return self.borrowed[member.name].load(member)
        with open(self.sidecar_path(member)) as f:
            sidecar = json.load(f)
        return np.load(self.predictions_path(member), mmap_mode="r"), sidecar

    def load_joint(self, member):
        """(joint-NLL table [N // kappa, C] float32, S ENN samples), or None without one."""
        if member.name in self.borrowed:
            return self.borrowed[member.name].load_joint(member)
        table = self.load(member)[1].get("joint_nll_table")
        if table is None:
            return None
        return np.load(self.joint_path(member)), table["num_samples"]


def file_sha256(path):
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
