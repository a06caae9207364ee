"""Keras 3 heteroscedastic output layers (edward2 drop-ins), registered for `keras.saving`.

Every class of edward2's TF `heteroscedastic` module (0.0.2 and GitHub main), same names,
constructor arguments, outputs and `get_weights()` order (docs/migrating_from_edward2.md), and
edward2's base class name, `MCSoftmaxOutputLayerBase`. Every layer has
`noise_distribution(x)` (the latent logits' distribution, a TFP distribution) and
`covariance(x)` (its covariance, [B, K, K]).

SNGP (Liu et al. 2020) in Keras 3, edward2's names: `SpectralNormalization` and
`SpectralNormalizationConv2D` for the backbone, `RandomFeatureGaussianProcess` (with
`LaplaceRandomFeatureCovariance`, `RandomFourierFeatures`, `OrthogonalRandomFeatures`) as the
output layer, `mean_field_logits` at inference, and `HeteroscedasticSNGPLayer` (HetSNGP).

Rank-1 BNN layers (Dusenberry et al. 2020), edward2's `DenseRank1` and `Conv2DRank1`
(`rank1.py`), for the rank-1 heteroscedastic ResNet-50.
"""

from het_ensembles.layers.base import MIN_SCALE, MCHeteroscedasticBase
from het_ensembles.layers.ensemble_heteroscedastic_outputs import EnsembleHeteroscedasticOutputs
from het_ensembles.layers.exact_sigmoid_dense import ExactSigmoidDense
from het_ensembles.layers.heteroscedastic_sngp_layer import HeteroscedasticSNGPLayer
from het_ensembles.layers.laplace_random_feature_covariance import LaplaceRandomFeatureCovariance
from het_ensembles.layers.mc_sigmoid_dense_fa import MCSigmoidDenseFA
from het_ensembles.layers.mc_softmax_dense import MCSoftmaxDense
from het_ensembles.layers.mc_softmax_dense_fa import MCSoftmaxDenseFA
from het_ensembles.layers.mc_softmax_dense_fa_custom_layers import MCSoftmaxDenseFACustomLayers
from het_ensembles.layers.mc_softmax_dense_fa_segmentation import MCSoftmaxDenseFASegmentation
from het_ensembles.layers.mean_field import MEAN_FIELD_FACTOR, mean_field_logits
from het_ensembles.layers.multi_head_mc_softmax_dense_fa import MultiHeadMCSoftmaxDenseFA
from het_ensembles.layers.orthogonal_random_features import OrthogonalRandomFeatures
from het_ensembles.layers.random_feature_gaussian_process import RandomFeatureGaussianProcess
from het_ensembles.layers.random_fourier_features import RandomFourierFeatures
from het_ensembles.layers.rank1 import Conv2DRank1, DenseRank1
from het_ensembles.layers.spectral_normalization import SpectralNormalization
from het_ensembles.layers.spectral_normalization_conv2d import SpectralNormalizationConv2D

# edward2's name for the base of its MC layers, so `isinstance(layer, MCSoftmaxOutputLayerBase)`
# ports as it is. A subclass implements `noise_params` (loc, diag scale, factors), not edward2's
# `_compute_loc_param` / `_compute_scale_param`.
MCSoftmaxOutputLayerBase = MCHeteroscedasticBase

__all__ = [
    "MEAN_FIELD_FACTOR",
    "MIN_SCALE",
    "Conv2DRank1",
    "DenseRank1",
    "EnsembleHeteroscedasticOutputs",
    "ExactSigmoidDense",
    "HeteroscedasticSNGPLayer",
    "LaplaceRandomFeatureCovariance",
    "MCHeteroscedasticBase",
    "MCSigmoidDenseFA",
    "MCSoftmaxDense",
    "MCSoftmaxDenseFA",
    "MCSoftmaxDenseFACustomLayers",
    "MCSoftmaxDenseFASegmentation",
    "MCSoftmaxOutputLayerBase",
    "MultiHeadMCSoftmaxDenseFA",
    "OrthogonalRandomFeatures",
    "RandomFeatureGaussianProcess",
    "RandomFourierFeatures",
    "SpectralNormalization",
    "SpectralNormalizationConv2D",
    "mean_field_logits",
]
