"""`CovarianceReset`: zero the SNGP layers' posterior precision at the start of every epoch.

uncertainty-baselines' SNGP and HetSNGP scripts (`baselines/{cifar,imagenet}/{sngp,hetsngp}.py`)
call `reset_covariance_matrix()` at step 0 of each epoch when `gp_cov_discount_factor < 0`, so
the precision is the exact sum over the last epoch's features (the weights the model ends with).
Where it sits: a callback of the trainer's `model.fit`; a no-op for models without a GP layer.
"""

import keras


def covariance_layers(model):
    """The layers of `model` (nested too) whose precision is an exact sum to reset per epoch."""
    found = []
    for layer in model._flatten_layers(include_self=False, recursive=True):
        gp = getattr(layer, "sngp_layer", layer)  # HeteroscedasticSNGPLayer holds its GP
        if hasattr(layer, "reset_covariance_matrix") and gp.gp_cov_momentum < 0:
            found.append(layer)
    return found


class CovarianceReset(keras.callbacks.Callback):
    """Calls `reset_covariance_matrix()` of every exact-precision GP layer at each epoch start."""

    def on_epoch_begin(self, epoch, logs=None):
        for layer in covariance_layers(self.model):
            layer.reset_covariance_matrix()
