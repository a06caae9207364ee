"""`small_cnn(use_spec_norm=True)`: every conv and the dense layer spectral-normalised."""

import keras
import numpy as np

from het_ensembles import models
from het_ensembles.layers.spectral_normalization import SpectralNormalization
from het_ensembles.layers.spectral_normalization_conv2d import SpectralNormalizationConv2D


def _model(**kwargs):
    return models.build_model(
        "small_cnn", input_shape=(8, 8, 1), num_classes=4, seed=0, filters=(4, 8), **kwargs
    )


def test_spec_norm_wraps_every_conv_and_the_dense_layer(tmp_path):
    plain = _model(hidden_units=16)
    wrapped = _model(hidden_units=16, use_spec_norm=True, spec_norm_bound=0.5)
    kinds = [type(layer) for layer in wrapped.layers]
    assert kinds.count(SpectralNormalizationConv2D) == 2
    assert kinds.count(SpectralNormalization) == 1
    assert not any(issubclass(k, keras.layers.Wrapper) for k in map(type, plain.layers))
    assert wrapped.count_params() > plain.count_params()  # + the power-iteration vectors
    x = np.random.default_rng(0).normal(size=(16, 8, 8, 1)).astype(np.float32)
    y = np.arange(16) % 4
    wrapped.compile(optimizer="sgd", loss=keras.losses.SparseCategoricalCrossentropy(True))
    wrapped.fit(x, y, epochs=2, batch_size=8, verbose=0)
    dense = next(layer for layer in wrapped.layers if type(layer) is SpectralNormalization)
    convs = [layer for layer in wrapped.layers if type(layer) is SpectralNormalizationConv2D]
    assert all(w.norm_multiplier == 0.5 and w.iteration == 1 for w in [dense, *convs])
    # Converged power iteration bounds the kernel the dense layer uses by the norm multiplier.
    for _ in range(100):
        dense.update_weights(training=True)
    kernel = keras.ops.convert_to_numpy(dense.layer.kernel)
    assert np.linalg.norm(kernel, 2) <= 0.5 + 1e-3
    features = keras.Model(wrapped.inputs, dense.output)(x)
    assert np.min(keras.ops.convert_to_numpy(features)) >= 0.0  # the ReLU still applies
    path = str(tmp_path / "m.keras")
    wrapped.save(path)
    reloaded = keras.saving.load_model(path)
    np.testing.assert_allclose(
        reloaded.predict(x, verbose=0), wrapped.predict(x, verbose=0), atol=1e-5
    )
