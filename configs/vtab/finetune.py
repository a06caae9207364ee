r"""Fine-tune a pre-trained member on one VTAB-1k task (Collier et al. 2021 Table 6).

The task follows the file name after a colon; the pre-trained member and the seed are fields.
A new deterministic (softmax) head; the backbone weights come from the member; BiT-HyperRule's
schedule and preprocessing (500 steps of batch 512, SGD momentum 0.9, lr 0.003, no weight
decay). Every value and its source: `het_ensembles.training.vtab` (`vtab_config`, `TASKS`).

  het-ensembles train --config=configs/vtab/finetune.py:dtd \
    --config.init_from_member=runs/imagenet/het/0 --config.seed=0 \
    --config.validation_fraction=0.0 --output_dir=runs/vtab/het/dtd/0

`--config.validation_fraction=0.0` is VTAB's final run (train800val200, test accuracy);
leave it at 0.2 for train800 / val200 (the validation split is evaluated every 50 steps).
"""

from het_ensembles.training import vtab


def get_config(task="caltech101"):
    return vtab.vtab_config(task)
