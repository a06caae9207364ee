"""`HeteroscedasticSNGPLayer`: a heteroscedastic softmax head whose loc is an SNGP (HetSNGP).

Fortuin et al., "Deep Classifiers with Label Noise Modeling and Distance Awareness" (TMLR 2022);
edward2's `edward2/tensorflow/layers/hetsngp.py` (GitHub main, commit ee025600), trained by
uncertainty-baselines' `baselines/{cifar,imagenet}/hetsngp.py`. The latent logits are

    u = mu_GP(x) + V(x) eps_R + d(x) * eps_K        (training)
    u = mu_GP(x) + V(x) eps_R + d'(x) * eps_K,  d' = sqrt(het_var_weight d^2
        + sngp_var_weight var_GP(x))              (inference)

with mu_GP the MAP logits of a `RandomFeatureGaussianProcess` and var_GP(x) its predictive
variance (the diagonal of its [B, B] covariance, shared by all classes). The Monte Carlo
estimate of E[softmax(u / tau)] is the one of every heteroscedastic layer (`MCHeteroscedasticBase`).
"""

import keras
import tensorflow as tf

from het_ensembles.layers.base import MIN_SCALE, MCHeteroscedasticBase, check_int
from het_ensembles.layers.random_feature_gaussian_process import RandomFeatureGaussianProcess

# edward2 HeteroscedasticSNGPLayer arguments handed to its RandomFeatureGaussianProcess.
GP_ARGUMENTS = {
    "num_inducing": 1024,
    "gp_kernel_type": "gaussian",
    "gp_kernel_scale": 1.0,
    "gp_output_bias": 0.0,
    "normalize_input": False,
    "gp_kernel_scale_trainable": False,
    "gp_output_bias_trainable": False,
    "gp_cov_momentum": -1.0,
    "gp_cov_ridge_penalty": 1.0,
    "scale_random_features": True,
    "use_custom_random_features": True,
    "custom_random_features_initializer": None,
    "custom_random_features_activation": None,
    "l2_regularization": 1e-6,
    "gp_cov_likelihood": "gaussian",
    "return_gp_cov": True,
    "return_random_features": False,
}


@keras.saving.register_keras_serializable(package="het_ensembles")
class HeteroscedasticSNGPLayer(MCHeteroscedasticBase):
    """MC softmax head with a factor-analysis covariance and an SNGP loc (edward2's layer).

    Args (edward2 main's, with its defaults: note `logits_only=True` and `num_factors=10`):
      num_classes: number of classes K >= 3.
      num_factors: rank R of the low-rank part, 1 <= R <= K.
      temperature, train_mc_samples, test_mc_samples, compute_pred_variance,
      share_samples_across_batch, logits_only, eps, dtype, kernel_regularizer,
      bias_regularizer: as `MCSoftmaxDenseFA` (the regularizers apply to the V(x) and d(x)
        layers, not to the GP).
      num_inducing ... return_random_features: the `RandomFeatureGaussianProcess` arguments
        (`GP_ARGUMENTS` lists them with edward2's HetSNGP defaults). `return_gp_cov` must stay
        True and `return_random_features` False: the layer needs exactly (logits, covmat)
        from the GP (edward2 fails to unpack anything else).
      sngp_var_weight: weight of the GP variance in the inference-time diagonal.
      het_var_weight: weight of the heteroscedastic d(x)^2 in it.
      name: edward2's default "MCSoftmaxSNGP"; the GP sublayer is "SNGP_layer".
      kernel_initializer: (keyword) the GP output weights' initialiser (edward2 passes its
        `**kwargs` to the GP's output Dense; uncertainty-baselines' ResNet-50 sets
        RandomNormal(0.01) there).
      Other keyword arguments: `MCHeteroscedasticBase`'s (`tune_temperature`, `seed`, ...).

    Returns (from `call`): as `MCSoftmaxDenseFA`: the logits (log of the MC-mean
      probabilities) if `logits_only`, else `(logits, log_probs, probs, predictive_variance)`.

    Raises:
      ValueError: for num_classes < 3, num_factors outside [1, K], `return_gp_cov=False`,
        `return_random_features=True`, `parameter_efficient` or `latent_dim`, and the GP's own
        argument checks.
    """

    def __init__(
        self,
        num_classes,
        num_factors=10,
        temperature=1.0,
        train_mc_samples=1000,
        test_mc_samples=1000,
        compute_pred_variance=False,
        share_samples_across_batch=False,
        logits_only=True,
        eps=1e-7,
        dtype=None,
        kernel_regularizer=None,
        bias_regularizer=None,
        num_inducing=1024,
        gp_kernel_type="gaussian",
        gp_kernel_scale=1.0,
        gp_output_bias=0.0,
        normalize_input=False,
        gp_kernel_scale_trainable=False,
        gp_output_bias_trainable=False,
        gp_cov_momentum=-1.0,
        gp_cov_ridge_penalty=1.0,
        scale_random_features=True,
        use_custom_random_features=True,
        custom_random_features_initializer=None,
        custom_random_features_activation=None,
        l2_regularization=1e-6,
        gp_cov_likelihood="gaussian",
        return_gp_cov=True,
        return_random_features=False,
        sngp_var_weight=1.0,
        het_var_weight=1.0,
        name="MCSoftmaxSNGP",
        *,
        kernel_initializer=None,
        **kwargs,
    ):
        check_int("num_classes", num_classes, 3)  # edward2: assert num_classes > 2
        if kernel_initializer is not None:
            kernel_initializer = keras.initializers.get(kernel_initializer)
        check_int("num_factors", num_factors, 1, num_classes)
        if not return_gp_cov or return_random_features:
            raise ValueError(
                "HeteroscedasticSNGPLayer needs (logits, covmat) from its GP. Received: "
                f"return_gp_cov={return_gp_cov}, return_random_features={return_random_features}"
            )
        for key in ("parameter_efficient", "latent_dim"):
            if kwargs.get(key):
                raise ValueError(
                    f"HeteroscedasticSNGPLayer has a full V(x) and K-dim noise (edward2's). "
                    f"Received: {key}={kwargs[key]!r}"
                )
            kwargs.pop(key, None)
        for weight_name, weight in (
            ("sngp_var_weight", sngp_var_weight),
            ("het_var_weight", het_var_weight),
        ):
            if isinstance(weight, bool) or not isinstance(weight, (int, float)) or weight < 0:
                raise ValueError(f"{weight_name} must be a float >= 0. Received: {weight!r}")
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
            kernel_regularizer,
            bias_regularizer,
            name,
            **kwargs,
        )
        self.num_classes = int(num_classes)
        self.sngp_var_weight = float(sngp_var_weight)
        self.het_var_weight = float(het_var_weight)
        given = dict(locals())
        self.gp_arguments = {key: given[key] for key in GP_ARGUMENTS}
        self.kernel_initializer = kernel_initializer
        gp_kwargs = {} if kernel_initializer is None else {"kernel_initializer": kernel_initializer}
        self.sngp_layer = RandomFeatureGaussianProcess(
            units=self.num_classes,
            dtype=self.dtype_policy,
            name="SNGP_layer",
            seed=(self.seed * 7 + 5) % 2**31,
            **self.gp_arguments,
            **gp_kwargs,
        )

    def sublayer_order(self):
        # edward2 also creates a loc Dense that HetSNGP never calls (so it holds no weights).
        return ("scale", "diag")

    def build(self, input_shape):
        super().build(input_shape)
        if not self.sngp_layer.built:
            self.sngp_layer.build(self.feature_shape(input_shape))

    def noise_params(self, inputs, training=None):
        """(loc [B, K], diag_scale [B, K], factors [B, K, R]); loc and var from the GP.

        Training updates the GP's precision; inference adds its variance to the diagonal.
        """
        loc, covmat = self.sngp_layer(inputs, training=training)  # [B, K], [B, B]
        diag_scale = self.diag_layer(inputs) + MIN_SCALE  # [B, K]
        factors = tf.reshape(self.scale_layer(inputs), [-1, self.num_outputs, self.num_factors])
        if not training:
            sngp_var = tf.linalg.diag_part(covmat)[:, None]  # [B, 1], shared by all classes
            diag_scale = tf.sqrt(
                self.het_var_weight * tf.square(diag_scale) + self.sngp_var_weight * sngp_var
            )
        return loc, diag_scale, factors

    def call(self, inputs, training=None, seed=None):
        x = self._check_inputs(inputs)
        params = self.noise_params(x, training=training)
        return self.predict_from_params(*params, training=training, seed=seed)

    def reset_covariance_matrix(self):
        """Zeroes the GP's precision matrix (edward2's; the recipes call it every epoch)."""
        self.sngp_layer.reset_covariance_matrix()

    def get_config(self):
        config = super().get_config()
        config.update(
            num_classes=self.num_classes,
            num_factors=self.num_factors,
            sngp_var_weight=self.sngp_var_weight,
            het_var_weight=self.het_var_weight,
            kernel_initializer=keras.saving.serialize_keras_object(self.kernel_initializer),
            **{
                key: value
                for key, value in self.sngp_layer.get_config().items()
                if key in GP_ARGUMENTS
            },
        )
        for key in ("latent_dim",):
            config.pop(key, None)
        return config
