r"""Deterministic WRN-28-10 on CIFAR-10/100 (uncertainty-baselines' `cifar/deterministic.py`).

A thin script over `het_ensembles.training.cli_main` (absl flags with a config file): it only
adds its default config, `configs/cifar/deterministic.py`. One run trains one ensemble member;
train several with different seeds and evaluate them with `het-ensembles evaluate`.

  python baselines/cifar/deterministic.py --config.seed=3 --output_dir=runs/cifar/det/3

Any other config (`--config=configs/...`) and field (`--config.<field>=<value>`) works as
with `het-ensembles train`. Re-running a killed command resumes from its last checkpoint.
"""

import os
import sys

from het_ensembles import training

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIG = os.path.join(REPO, "configs", "cifar", "deterministic.py")


def main(argv):
    return training.cli_main(argv[1:], config_file=CONFIG)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
