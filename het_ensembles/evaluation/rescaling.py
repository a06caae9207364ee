"""`<metric>+rescaling` of mixup-trained members in `evaluate`, beside their plain metrics.

uncertainty-baselines' `baselines/imagenet/heteroscedastic.py` (and `deterministic.py`) report
the test metrics of a mixup-trained model twice: plain, and "with rescaling" (Carratino et al.,
"On Mixup Regularization", 2020, Eq. 15: `training.mixup.rescaled_model`, from the statistics
the member saved in `mixup_rescaling_stats.npz`). The evaluator does the same for every member
whose config.json has `mixup_alpha > 0`: it predicts with the rescaled model into its own cache
(`predictions/rescaling=mixup/<dataset>/`, keyed also by the statistics file's SHA-256) and
adds to each dataset's rows, for `training.mixup.RESCALED_METRICS`:

- each mixup member's row: `nll+rescaling`, `accuracy+rescaling`, ... (its rescaled predictions);
- the `ensemble`, `member_mean` and `member_std` rows, when every member is a mixup member: the
  ensemble of the rescaled members (each member rescaled with its own statistics, then their
  probabilities averaged, as the plain ensemble averages the plain ones) and the mean / std of
  the members' rescaled metrics. uncertainty-baselines has no mixup ensemble script
  (`het_ensemble.py` has no mixup flags), so this ensemble rule is ours.

The leaderboard row keeps the plain metrics. Class-subset rows (ImageNet-A / -R), corruption
summaries, OOD and MC-sample sweeps are left plain.
"""

import copy
import os

from het_ensembles import member_dir
from het_ensembles.evaluation import cache as cache_lib
from het_ensembles.evaluation import scoring
from het_ensembles.training import mixup

VARIANT = "rescaling=mixup"  # the cache directory under predictions/
SUMMARY_ROWS = ("ensemble", "member_mean", "member_std")


def mixup_members(members):
    """The members trained with mixup (config.json `mixup_alpha > 0`).

    Raises:
      ValueError: naming the file, for a mixup member without its statistics file.
    """
    found = [m for m in members if (m.config.get("mixup_alpha") or 0) > 0]
    for member in found:
        path = _stats_path(member)
        if not os.path.isfile(path):
            raise ValueError(
                f"Member {member.name} was trained with mixup (mixup_alpha="
                f"{member.config['mixup_alpha']}) but has no {member_dir.MIXUP_RESCALING_STATS_FILE}"
                f" (its +rescaling predictions need it). Received: {path}"
            )
    return found


class RescaledModels:
    """`members.ModelStore` of the rescaled models (`training.mixup.rescaled_model`)."""

    def __init__(self, models):
        self._models = models
        self._rescaled = {}

    @property
    def num_classes(self):
        return self._models.num_classes

    @num_classes.setter
    def num_classes(self, value):
        self._models.num_classes = value

    def get(self, member):
        if member.name not in self._rescaled:
            model = self._models.get(member)
            stats = mixup.read_statistics(
                _stats_path(member),
                input_shape=tuple(model.inputs[0].shape[1:]),
                num_classes=self._models.num_classes,
            )
            self._rescaled[member.name] = mixup.rescaled_model(model, stats)
        return self._rescaled[member.name]


def add_results(predictor, output_dir, caches, members, results, *, multilabel, num_bins):
    """Predicts the rescaled members (what their cache lacks) and adds `+rescaling` metrics.

    Args:
      predictor: the evaluator's cache predictor (its `image_size_of`, `label_field`, `models`
        and `fill`).
      output_dir: the evaluation's output directory.
      caches: the plain caches, one per dataset.
      members: all the `member_dir.Member`s evaluated.
      results: `evaluate`'s formatted results, updated in place.
      multilabel, num_bins: as for the plain rows.
    """
    rescaled_members = mixup_members(members)
    if not rescaled_members:
        return
    rescaled = copy.copy(predictor)
    rescaled.models = RescaledModels(predictor.models)
    everyone = len(rescaled_members) == len(members)
    hashes = {  # each member's model and statistics files, hashed once for all datasets
        m.name: (cache_lib.file_sha256(m.model_path), cache_lib.file_sha256(_stats_path(m)))
        for m in rescaled_members
    }
    for plain in caches:
        if plain.dataset.is_corrupted:  # as the script: +rescaling on the clean test set only
            continue
        cache = _cache(predictor, output_dir, plain.dataset, rescaled_members, hashes)
        stale = cache.stale_members(rescaled_members)
        if stale:
            rescaled.fill(cache, stale)
        rows = scoring.format_rows(
            scoring.compute_rows(cache, rescaled_members, [], multilabel, num_bins),
            rescaled_members,
            None,
        )
        entry = results[plain.dataset.key]
        for member in rescaled_members:
            entry["members"][member.name].update(_suffixed(rows["members"][member.name]))
        if everyone:
            for name in SUMMARY_ROWS:
                entry[name].update(_suffixed(rows[name]))


def _cache(predictor, output_dir, dataset, members, hashes):
    """The `PredictionCache` of the rescaled members on `dataset`, keyed by `hashes`: member
    name -> SHA-256 of its model and of its statistics file."""
    keys = {}
    for member in members:
        model_sha256, stats_sha256 = hashes[member.name]
        key = cache_lib.cache_key(
            dataset,
            model_sha256=model_sha256,
            image_size=predictor.image_size_of(member),
            label_field=predictor.label_field,
        )
        key["mixup_rescaling_sha256"] = stats_sha256
        keys[member.name] = key
    return cache_lib.PredictionCache(output_dir, dataset, keys, variant=VARIANT)


def _suffixed(row):
    return {
        name + mixup.RESCALING_SUFFIX: row[name] for name in mixup.RESCALED_METRICS if name in row
    }


def _stats_path(member):
    return os.path.join(member.path, member_dir.MIXUP_RESCALING_STATS_FILE)
