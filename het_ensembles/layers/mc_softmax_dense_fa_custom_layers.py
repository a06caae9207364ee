"""`MCSoftmaxDenseFACustomLayers`: the FA softmax head with user-supplied mu, d and V layers."""

import keras

from het_ensembles.layers.base import MCHeteroscedasticBase, check_int


@keras.saving.register_keras_serializable(package="het_ensembles")
class MCSoftmaxDenseFACustomLayers(MCHeteroscedasticBase):
    """`MCSoftmaxDenseFA` whose loc, diagonal and factor layers are given by the caller.

    edward2's layer of the same name: `u = mu(x) + V(x) eps_R + d(x) * eps_K` with
    `mu = loc_layer(x)` [B, K], `d = diag_layer(x) + 1e-3` [B, K] (the layer must output
    non-negative values; nothing is applied on top) and `V = reshape(scale_layer(x), [K, R])`.
    Any Keras layers (or models) with those output shapes work; they are serialized with the
    layer. `get_weights()` lists scale_layer's, then loc_layer's, then diag_layer's, as edward2.

    Args:
      num_classes: number of classes K >= 2.
      num_factors: rank R of the low-rank part, 0 <= R <= K.
      scale_layer: maps [B, D] to [B, K * R].
      loc_layer: maps [B, D] to [B, K].
      diag_layer: maps [B, D] to non-negative [B, K].
      parameter_efficient: must be False: edward2's PE branch reads layers this class never
        has (it fails there with an AttributeError); use MCSoftmaxDenseFA for PE.
      Other arguments: see `MCHeteroscedasticBase` (edward2 main's argument order).

    Raises:
      ValueError: if `parameter_efficient` or a layer argument is not a Keras layer.
    """

    def __init__(
        self,
        num_classes,
        num_factors,
        scale_layer,
        loc_layer,
        diag_layer,
        temperature=1.0,
        parameter_efficient=False,
        train_mc_samples=1000,
        test_mc_samples=1000,
        compute_pred_variance=False,
        share_samples_across_batch=False,
        logits_only=False,
        eps=1e-7,
        return_unaveraged_logits=False,
        dtype=None,
        name="MCSoftmaxDenseFACustomLayers",
        **kwargs,
    ):
        check_int("num_classes", num_classes, 2)
        if kwargs.get("latent_dim") is not None:
            raise ValueError(
                "latent_dim (HET-XL) needs the logit layer's kernel; use MCSoftmaxDenseFA. "
                f"Received: latent_dim={kwargs['latent_dim']}"
            )
        if parameter_efficient:
            raise ValueError(
                "MCSoftmaxDenseFACustomLayers supports only parameter_efficient=False (the "
                "custom scale_layer is the full V(x)). Received: parameter_efficient=True"
            )
        given = {"scale": scale_layer, "loc": loc_layer, "diag": diag_layer}
        for role, layer in given.items():
            if isinstance(layer, dict):  # from get_config()
                given[role] = layer = keras.saving.deserialize_keras_object(layer)
            if not isinstance(layer, keras.layers.Layer):
                raise ValueError(
                    f"{role}_layer must be a Keras 3 layer. Received: {role}_layer={layer!r}"
                )
        # Read by `_dense` while the base class creates the sublayers (before Keras tracking).
        object.__setattr__(self, "_given_layers", given)
        super().__init__(
            num_classes,
            num_factors,
            temperature,
            False,
            train_mc_samples,
            test_mc_samples,
            compute_pred_variance,
            share_samples_across_batch,
            logits_only,
            eps,
            dtype,
            None,
            None,
            name,
            return_unaveraged_logits=return_unaveraged_logits,
            **kwargs,
        )
        self.num_classes = int(num_classes)

    def sublayer_order(self):
        return ("scale", "loc", "diag")

    def _dense(self, role):
        return self._given_layers[role]

    def build(self, input_shape):
        probe = keras.ops.zeros((1, self.feature_shape(input_shape)[-1]))
        for role in self.sublayer_order():
            layer = getattr(self, f"{role}_layer")
            if not layer.built:
                layer(probe)  # builds any layer or model, whatever its build() needs
        super().build(input_shape)

    def get_config(self):
        config = super().get_config()
        for key in ("kernel_regularizer", "bias_regularizer"):
            config.pop(key)
        config.update(
            num_classes=self.num_classes,
            num_factors=self.num_factors,
            parameter_efficient=False,
            **{
                f"{role}_layer": keras.saving.serialize_keras_object(getattr(self, f"{role}_layer"))
                for role in self.sublayer_order()
            },
        )
        return config
