"""Keras 3 heteroscedastic output layers (edward2 drop-ins), registered for `keras.saving`.

Every class of edward2's TF `heteroscedastic` module (0.0.2 and GitHub main), same names,
constructor arguments, outputs and `get_weights()` order; README "Migrating from edward2".
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
    "MultiHeadMCSoftmaxDenseFA",
]
