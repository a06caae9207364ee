"""`MCSoftmaxDenseFASegmentation`: the FA softmax head applied to every pixel of [B, H, W, C]."""

import keras
import tensorflow as tf

from het_ensembles.layers.mc_softmax_dense_fa import MCSoftmaxDenseFA

# Batch size assumed for the default chunk when the static batch size is unknown (per image
# there are H * W "examples", so the default for flat inputs would make chunks far too large).
_ASSUMED_IMAGES = 8


@keras.saving.register_keras_serializable(package="het_ensembles")
class MCSoftmaxDenseFASegmentation(MCSoftmaxDenseFA):
    """`MCSoftmaxDenseFA` for dense prediction: inputs [B, H, W, C], outputs [B, H, W, K].

    edward2 (GitHub main)'s layer of the same name: every pixel has its own latent logits
    `u = mu(x) + V(x) eps_R + d(x) * eps_K` (Dense layers over the channel axis) with noise
    independent across pixels. Same arguments and `get_weights()` order as edward2's.

    Differences: edward2 drops `dtype`, `kernel_regularizer` and `bias_regularizer` (it passes
    None to its parent); they are honoured here. With `share_samples_across_batch=True` (and
    at inference, as for every layer here) one set of noise draws is shared by all pixels of
    all images, where edward2 shares across images only; each pixel's predictive is the same.

    Returns (from `call`):
      logits [B, H, W, K] if `logits_only`, else `(logits, log_probs, probs, variance)`;
      `return_unaveraged_logits` adds per-sample logits [B, S, H, W, K] (edward2's layout).
    """

    def __init__(
        self,
        num_classes,
        num_factors,
        temperature=1.0,
        parameter_efficient=False,
        train_mc_samples=1000,
        test_mc_samples=1000,
        compute_pred_variance=False,
        share_samples_across_batch=False,
        logits_only=False,
        eps=1e-7,
        dtype=None,
        kernel_regularizer=None,
        bias_regularizer=None,
        name="MCSoftmaxDenseFASegmentation",
        **kwargs,
    ):
        super().__init__(
            num_classes,
            num_factors,
            temperature,
            parameter_efficient,
            train_mc_samples,
            test_mc_samples,
            compute_pred_variance,
            share_samples_across_batch,
            logits_only,
            eps,
            dtype,
            kernel_regularizer,
            bias_regularizer,
            name=name,
            **kwargs,
        )

    def feature_shape(self, input_shape):
        if len(input_shape) != 4 or input_shape[-1] is None:
            raise ValueError(
                f"{type(self).__name__} expects inputs of rank 4 [batch, height, width, "
                f"channels] with known channels. Received: input_shape={tuple(input_shape)}"
            )
        return (None, input_shape[-1])

    def call(self, inputs, training=None, seed=None):
        x = self._check_inputs(inputs)
        if len(x.shape) != 4:
            self.feature_shape(x.shape)  # raises, naming the expected rank
        grid = tf.shape(x)[:3]  # [B, H, W]

        def unflatten(t, samples=False):
            if not samples:  # [B * H * W, K] -> [B, H, W, K]
                return tf.reshape(t, tf.concat([grid, tf.shape(t)[-1:]], 0))
            # [B * H * W, S, K] -> [B, H, W, S, K] -> [B, S, H, W, K]
            t = tf.reshape(t, tf.concat([grid, tf.shape(t)[-2:]], 0))
            return tf.transpose(t, [0, 3, 1, 2, 4])

        return self.predict_from_params(
            *self.noise_params(x),
            training=training,
            seed=seed,
            unflatten=unflatten,
            chunk_batch=(x.shape[0] or _ASSUMED_IMAGES) * (x.shape[1] or 1) * (x.shape[2] or 1),
        )

    def noise_params(self, inputs):
        """(loc, diag_scale, factors) of every pixel: [B * H * W, K], ..., [B * H * W, K, R]."""
        if len(inputs.shape) == 4:
            inputs = tf.reshape(inputs, [-1, inputs.shape[-1]])
        return super().noise_params(inputs)

    def output_shape_of(self, input_shape, samples=False):
        grid = tuple(input_shape[:3])
        if samples:
            return (grid[0], None, *grid[1:], self.num_classes)
        return (*grid, self.num_classes)
