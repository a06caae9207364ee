"""The members evaluated together: compatible with each other, loaded once, outputs checked.

Finding member directories and reading one is `het_ensembles.member_dir`'s job; this module
checks that members can be ensembled (same number of classes, all softmax or all multilabel)
and loads their models for prediction.
"""

import contextlib
import dataclasses

from het_ensembles import member_dir


def check_members(members):
    """Same K and same kind (softmax / multilabel) for all; returns (K or None, multilabel).

    Raises:
      ValueError: no members, members that disagree, or an unfinished member.
    """
    if not members:
        raise ValueError("No members. Received: members=[]")
    counts = {m.name: m.num_classes for m in members if m.num_classes is not None}
    if len(set(counts.values())) > 1:
        raise ValueError(
            "Members disagree on the number of classes (config.json num_classes). "
            f"Received: {counts}"
        )
    kinds = {m.name: m.multilabel for m in members}
    if len(set(kinds.values())) > 1:
        raise ValueError(
            "Members mix softmax and multilabel (sigmoid) models, which cannot be ensembled. "
            f"Received: multilabel={kinds}"
        )
    for member in members:
        if not member.finished:
            raise ValueError(
                f"Member {member.name} has no {member_dir.MODEL_FILE}: {member.model_path}"
            )
    num_classes = next(iter(counts.values()), None)
    return num_classes, members[0].multilabel


def expand_heads(members):
    """Each member of M > 1 heads (config.json `ensemble_size`) as M members `<name>/head<i>`.

    A MIMO or rank-1 model predicts one distribution per head (logits [B, M, K]); its heads are
    evaluated as an ensemble of M members, so the `ensemble` row is the heads' mean prediction
    and `member_mean` the heads' mean metrics. The heads share the model's directory and file,
    which is loaded and run once (`ModelStore`, the evaluator's prediction pass). Members of
    one head are returned unchanged.
    """
    expanded = []
    for member in members:
        if member.head_index is not None or member.ensemble_size == 1:
            expanded.append(member)
            continue
        expanded.extend(
            dataclasses.replace(member, name=f"{member.name}/head{i}", head_index=i)
            for i in range(member.ensemble_size)
        )
    return expanded


def validation_holdout(members):
    """`(validation_fraction, validation_seed)`: the validation split the members held out.

    A `validation` split exists only relative to a training run (the part of train it held
    out, `data.load(..., validation_fraction=, validation_seed=)`), so it is read from the
    members' config.json and must be the same for all of them.

    Raises:
      ValueError: members that held out no validation split, or different ones.
    """
    holdouts = {
        m.name: (
            float(m.config.get("validation_fraction", 0.0)),
            int(m.config.get("validation_seed", 0)),
        )
        for m in members
    }
    if len(set(holdouts.values())) > 1:
        raise ValueError(
            "The members held out different validation splits (config.json "
            "validation_fraction, validation_seed), so none is common to them. "
            f"Received: {holdouts}"
        )
    fraction, seed = next(iter(holdouts.values()))
    if fraction <= 0:
        raise ValueError(
            "The members held out no validation split (config.json validation_fraction = 0); "
            "train them with --config.validation_fraction=F, 0 < F < 1. "
            f"Received: validation_fraction={fraction}"
        )
    return fraction, seed


def default_method(members):
    """The leaderboard row name from the members' heads ("Heteroscedastic", "Mixed (...)");
    members all trained with mixup add uncertainty-baselines' " with Mixup" ("Heteroscedastic
    with Mixup"), heads of rank-1 models (config.json `model` "*_rank1") " with Rank-1 BNN"
    ("Heteroscedastic with Rank-1 BNN", `het_rank1_bnn.py`'s row)."""
    heads = [m.head or "model" for m in members]
    if len(set(heads)) == 1:
        mixup = all((m.config.get("mixup_alpha") or 0) > 0 for m in members)
        rank1 = all(str(m.config.get("model", "")).endswith("_rank1") for m in members)
        suffix = " with Mixup" if mixup else " with Rank-1 BNN" if rank1 else ""
        return heads[0].capitalize() + suffix
    parts = " + ".join(f"{heads.count(h)} {h}" for h in sorted(set(heads)))
    return f"Mixed ({parts})"


def mc_heads(model):
    """The layers of `model` (nested too) that sample at inference: those with `test_mc_samples`.

    Every Monte Carlo head of `het_ensembles.layers` (`MCHeteroscedasticBase` and HetSNGP) reads
    the attribute when its call is traced; `ExactSigmoidDense`, dense and SNGP heads have none.
    """
    layers = model._flatten_layers(include_self=True, recursive=True)
    return [layer for layer in layers if hasattr(layer, "test_mc_samples")]


def own_mc_samples(model):
    """The test MC samples S the model was saved with (one int), or None without an MC head.

    Raises:
      ValueError: if its heads use different S (one S per member is reported).
    """
    counts = {int(layer.test_mc_samples) for layer in mc_heads(model)}
    if len(counts) > 1:
        raise ValueError(
            "A model whose Monte Carlo heads use different test_mc_samples has no one S. "
            f"Received: {sorted(counts)}"
        )
    return counts.pop() if counts else None


@contextlib.contextmanager
def override_test_mc_samples(models, num_samples):
    """Within the block, every MC head of `models` draws `num_samples` samples at inference.

    The heads' own values come back on exit, also on an error. Only calls traced inside the
    block see the new S: build the prediction functions (`predict.ModelRunner`) there.
    """
    heads = [layer for model in models for layer in mc_heads(model)]
    saved = [layer.test_mc_samples for layer in heads]
    try:
        for layer in heads:
            layer.test_mc_samples = int(num_samples)
        yield
    finally:
        for layer, value in zip(heads, saved):
            layer.test_mc_samples = value


class ModelStore:
    """Loads each member's model once, checking its output against the members' K.

    The heads of one model (`expand_heads`) share its loaded model.

    Args:
      num_classes: the members' K from their config.json, or None if unknown: then the first
        model with a static output shape sets it.
    """

    def __init__(self, num_classes):
        self.num_classes = num_classes
        self._models = {}

    def get(self, member):
        """The loaded Keras model of `member` (ValueError if it cannot be loaded or mismatches)."""
        if member.model_path not in self._models:
            model = member.load_model()
            output_dim = _static_output_dim(member, model)
            if self.num_classes is None:
                self.num_classes = output_dim
            if output_dim is not None and output_dim != self.num_classes:
                raise ValueError(
                    f"Member {member.name} outputs {output_dim} classes; expected "
                    f"{self.num_classes} (config.json num_classes or the other members). "
                    f"Received: {member.model_path}"
                )
            self._models[member.model_path] = model
        return self._models[member.model_path]


def _static_output_dim(member, model):
    try:
        shape = model.output_shape
    except (AttributeError, ValueError):  # subclassed models have no static output shape
        return None
    heads = member.ensemble_size
    if isinstance(shape, tuple) and len(shape) == 2 and isinstance(shape[1], int) and heads == 1:
        return shape[1]
    if isinstance(shape, tuple) and len(shape) == 3 and shape[1] == heads > 1:
        return shape[2] if isinstance(shape[2], int) else None
    expected = "[B, K]" if heads == 1 else f"[B, {heads}, K] (config.json ensemble_size={heads})"
    raise ValueError(
        f"Member {member.name} must output logits {expected}. Received: output_shape={shape}"
    )
