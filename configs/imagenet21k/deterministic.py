r"""Deterministic (sigmoid) ResNet-152 on ImageNet-21k: Collier et al. (CVPR 2021), Table 3.

Table 3 treats ImageNet-21k (21,843 classes, about 14M images, several labels per image in
the paper's multi-label version) as a multi-label problem: per-class sigmoid outputs trained
with binary cross-entropy, scored by global average precision (gAP) and NLL, which the
evaluator reports for multi-label members. What each field is and where it comes from:

- Data: your ImageNet-21k export as TFRecord shards (`tfrecord:DIR`, docs/data.md) with label
  lists (`multilabel=true`, K = `num_classes=21843`). ImageNet-21k has no official test split;
  the paper holds out 4% of the images for test and 4% for validation: `test_fraction=0.04`
  carves the test split out of all N images, and `validation_fraction` is then a fraction of
  the 0.96 N that remain, so 4% of N is `0.04 / 0.96` (= 1/24 = 0.0417) of them.
- Model: `resnet152` (ResNet v1.5, het_ensembles/models/resnet.py), 90 epochs (the paper),
  a Dense sigmoid head (`multilabel=True` with `head='deterministic'`).
- Optimisation: not stated by the paper for Table 3; uncertainty-baselines'
  `baselines/imagenet/deterministic.py` SGD recipe at its flag defaults, as
  `../imagenet/deterministic.py`: per-core batch 128, SGD + Nesterov momentum 0.9, learning
  rate 0.1 per 256, 5 warm-up epochs, x0.1 at epochs 30, 60 and 80, L2 1e-4, bfloat16, a
  checkpoint every 25 epochs. (uncertainty-baselines' own ImageNet-21k ResNet-152 recipe,
  `baselines/jft/experiments/bit/imagenet21k_bit_resnet152.py`, is BiT's: Adam, batch 1024,
  linear decay, head bias -10; the trainer has no Adam, so it is not used here.)

The published Table 3 figures for this row could not be confirmed from memory here; compare
with the paper itself.

  het-ensembles train --config=configs/imagenet21k/deterministic.py \
    --config.dataset='tfrecord:/data/in21k?test_fraction=0.04&num_classes=21843&multilabel=true' \
    --config.seed=0 --output_dir=runs/table3/hom/0
"""

import os

from het_ensembles import training

# Replace /path/to/imagenet21k with the directory of your train-* shards.
DATASET = "tfrecord:/path/to/imagenet21k?test_fraction=0.04&num_classes=21843&multilabel=true"
TEST_FRACTION = 0.04  # of all images (the dataset's test_fraction)
VALIDATION_OF_ALL = 0.04  # of all images; validation_fraction counts the 0.96 that remain


def get_config():
    path = os.path.join(os.path.dirname(__file__), "..", "imagenet", "deterministic.py")
    config = training.load_config(path)  # uncertainty-baselines' ImageNet SGD recipe
    config.dataset = DATASET
    config.validation_fraction = VALIDATION_OF_ALL / (1 - TEST_FRACTION)  # 1/24
    config.model = "resnet152"  # Table 3
    config.train_epochs = 90  # Table 3
    config.multilabel = True  # sigmoid outputs, binary cross-entropy
    return config
