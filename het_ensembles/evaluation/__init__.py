"""The deep-ensemble evaluator: member directories in, metrics.json / leaderboard.md / plot out.

Where it sits: data -> models -> training -> member directories -> **evaluation** -> report.
One concern a module, in the order an evaluation runs:

- `members`: members that can be ensembled together, their models loaded once;
- `datasets`: dataset names or arrays -> checked batches (non-finite inputs are refused);
- `predict`: the one prediction path (model + batches -> log-probs, timed one way), which the
  trainer's test pass uses too;
- `cache`: `<output_dir>/predictions/<dataset>/<member>.npy`, verified by checksums;
- `scoring`: member, mean, std, ensemble and sub-ensemble metrics, the ImageNet-C summary;
- `report`: leaderboard.md, the console summary, reliability diagrams;
- `ood`, `mc_samples`: out-of-distribution detection, and metrics and cost against the number of
  test Monte Carlo samples S (paper Appendix D);
- `evaluator`: `evaluate(members, datasets, output_dir, ...)`, which runs them in turn;
- `cli`: `het-ensembles evaluate`.

From Python: `evaluate(members, datasets, output_dir, ...)`; from the shell:
`het-ensembles evaluate --members 'runs/het/*' --dataset imagenet2012 --corruptions all
--output_dir runs/eval/het`.
"""

from het_ensembles.evaluation.cli import cli_main
from het_ensembles.evaluation.datasets import corrupted_datasets
from het_ensembles.evaluation.evaluator import cached_predictions, evaluate
from het_ensembles.evaluation.scoring import ALEXNET_ERRORS, CORRUPTED, CORRUPTIONS, SEVERITIES
from het_ensembles.member_dir import Member, find_members

__all__ = [
    "ALEXNET_ERRORS",
    "CORRUPTED",
    "CORRUPTIONS",
    "SEVERITIES",
    "Member",
    "cached_predictions",
    "cli_main",
    "corrupted_datasets",
    "evaluate",
    "find_members",
]
