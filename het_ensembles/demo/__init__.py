"""The main job: `het-ensembles demo`, the paper's result pattern in minutes on a CPU.

Where it sits: it runs the whole flow (data -> models -> **the** trainer -> member directories ->
**the** evaluator -> covariance analysis -> report) on the embedded `noisy_digits` set, with the
same code paths an ImageNet user runs:

1. trains 4 deterministic ("Hom") and 4 heteroscedastic ("Het") members, seeds 0..3, with
   `het_ensembles.training.train_and_evaluate` and the configs `configs/noisy_digits/*.py`
   (a finished member is reused when the demo is run again; a killed one resumes);
2. evaluates each group with `het_ensembles.evaluation.evaluate` on the noisy test labels and on
   the clean ones (`noisy_digits:test_clean`): members, member mean and the 4x ensemble;
3. prints the paper's Table 7 shape (Hom, Hom ens4, Het, Het ens4 x accuracy / NLL / ECE);
4. averages the Het members' predicted noise correlations (`het_ensembles.analysis`, the paper's
   Table 4) and lists the top class pairs next to the planted ones;
5. writes `leaderboard.md`, `metrics.json`, `reliability_diagram.png` and
   `correlation_heatmap.png` to `--output_dir`, and says what the numbers show.

`--quick` trains few epochs with fewer Monte Carlo samples (a smoke run of the same pipeline);
`--synthetic` adds one Hom and one Het member on the `synthetic` set and compares their NLL with
the Bayes-optimal one.

Modules: `members` (configs, training with progress), `results` (evaluation, Table 7, covariance,
targets), `synthetic`, `outputs` (plots and files), `main` (`run_demo`, the command line).
"""

from het_ensembles.demo.main import cli_main, run_demo
from het_ensembles.demo.results import (
    check_targets,
    format_table7,
    summary_lines,
    table7,
)
from het_ensembles.demo.synthetic import gap_closed

__all__ = [
    "check_targets",
    "cli_main",
    "format_table7",
    "gap_closed",
    "run_demo",
    "summary_lines",
    "table7",
]
