"""Keras 3 heteroscedastic output layers (edward2 drop-ins), registered for `keras.saving`.

Every class of edward2's TF `heteroscedastic` module (0.0.2 and GitHub main), same names,
constructor arguments, outputs and `get_weights()` order (docs/migrating_from_edward2.md), and
edward2's base class name, `MCSoftmaxOutputLayerBase`. Every layer has
`noise_distribution(x)` (the latent logits' distribution, a TFP distribution) and
`covariance(x)` (its covariance, [B, K, K]).
"""

from het_ensembles.layers.base import MIN_SCALE, MCHeteroscedasticBase
from het_ensembles.layers.ensemble_heteroscedastic_outputs import EnsembleHeteroscedasticOutputs
from het_ensembles.layers.exact_sigmoid_dense import ExactSigmoidDense
from het_ensembles.layers.mc_sigmoid_dense_fa import MCSigmoidDenseFA
from het_ensembles.layers.mc_softmax_dense import MCSoftmaxDense
from het_ensembles.layers.mc_softmax_dense_fa import MCSoftmaxDenseFA
from het_ensembles.layers.mc_softmax_dense_fa_custom_layers import MCSoftmaxDenseFACustomLayers
from het_ensembles.layers.mc_softmax_dense_fa_segmentation import MCSoftmaxDenseFASegmentation
from het_ensembles.layers.multi_head_mc_softmax_dense_fa import MultiHeadMCSoftmaxDenseFA

# edward2's name for the base of its MC layers, so `isinstance(layer, MCSoftmaxOutputLayerBase)`
# ports as it is. A subclass implements `noise_params` (loc, diag scale, factors), not edward2's
# `_compute_loc_param` / `_compute_scale_param`.
MCSoftmaxOutputLayerBase = MCHeteroscedasticBase

__all__ = [
    "MIN_SCALE",
    "EnsembleHeteroscedasticOutputs",
    "ExactSigmoidDense",
    "MCHeteroscedasticBase",
    "MCSigmoidDenseFA",
    "MCSoftmaxDense",
    "MCSoftmaxDenseFA",
    "MCSoftmaxDenseFACustomLayers",
    "MCSoftmaxDenseFASegmentation",
    "MCSoftmaxOutputLayerBase",
    "MultiHeadMCSoftmaxDenseFA",
]
