"""Keras 3 heteroscedastic output layers (edward2 drop-ins), registered for `keras.saving`."""

from het_ensembles.layers.base import MIN_SCALE, MCHeteroscedasticBase
from het_ensembles.layers.mc_sigmoid_dense_fa import MCSigmoidDenseFA
from het_ensembles.layers.mc_softmax_dense import MCSoftmaxDense
from het_ensembles.layers.mc_softmax_dense_fa import MCSoftmaxDenseFA

__all__ = [
    "MIN_SCALE",
    "MCHeteroscedasticBase",
    "MCSigmoidDenseFA",
    "MCSoftmaxDense",
    "MCSoftmaxDenseFA",
]
