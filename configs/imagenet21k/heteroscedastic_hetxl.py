r"""HET-XL ResNet-50 for a huge label space: ImageNet-21k (K = 21,843), Collier et al., ICLR 2023.

A project variant, not an uncertainty-baselines recipe: the ImageNet heteroscedastic recipe
(`../imagenet/heteroscedastic.py`: ResNet-50 v1.5, SGD, R = 15 factors, 5000 MC samples shared
across the batch in training and at test) with the HET-XL head, `latent_dim = 2048` (the
ResNet-50 pre-logit width): the noise is added to the 2048-d pre-logits and every sample goes
through the logit layer, so the covariance layers hold D * D * R = 63M parameters instead of
D * K * R = 671M for the standard FA head (`het-ensembles bench --classes 21843`, docs/benchmarks.md). The temperature is learned in [0.3, 3.0] (edward2 main's `tune_temperature`).
The nearest published recipe is uncertainty-baselines'
`baselines/jft/experiments/bit/imagenet21k_bit_resnet50x2_heteroscedastic.py` (JAX, its sweep sets
`latent_het=True`), which differs: BiT ResNet-50x2, Adam, 50 parameter-efficient factors, 1000 MC
samples, temperature bounds [0.05, 5.0], 7 epochs in the sweep. Data: the same multi-label
ImageNet-21k TFRecords as the Table 3 configs (`deterministic.py`'s `DATASET`: 4% test carved
out, K = 21,843, label lists), so the head is the sigmoid form, `MCSigmoidDenseFA` with
`multilabel=True`.

  het-ensembles train --config=configs/imagenet21k/heteroscedastic_hetxl.py \
    --config.dataset='tfrecord:/data/in21k?test_fraction=0.04&num_classes=21843&multilabel=true' \
    --config.seed=3 --output_dir=runs/i21k/hetxl/3
"""

import os

from het_ensembles import training

PRE_LOGIT_DIM = 2048  # ResNet-50's global-pooled features: the D of HET-XL


def get_config():
    path = os.path.join(os.path.dirname(__file__), "..", "imagenet", "heteroscedastic.py")
    config = training.load_config(path)
    config.dataset = training.load_config(
        os.path.join(os.path.dirname(__file__), "deterministic.py")
    ).dataset  # Table 3's ImageNet-21k TFRecords (placeholder path)
    config.head_class = "MCSigmoidDenseFA"  # multi-label data: per-class sigmoid outputs
    config.multilabel = True
    config.latent_dim = PRE_LOGIT_DIM
    config.tune_temperature = True
    config.share_samples_across_batch = True
    return config
