import numpy as np
import pytest

from malaria_cnn.training.batch_norm import BatchNorm, as_keras
from malaria_cnn.training.runtime import keras, tf


def _pair(shape, seed=0):
    rng = np.random.default_rng(seed)
    x = tf.constant(rng.normal(2, 3, shape).astype(np.float32))
    gamma, beta = (rng.normal(m, 0.2, shape[-1]).astype(np.float32) for m in (1, 0))
    ours, theirs = BatchNorm(momentum=0.9), keras.layers.BatchNormalization(momentum=0.9)
    for layer in (ours, theirs):
        layer.build(x.shape)
        layer.gamma.assign(gamma)
        layer.beta.assign(beta)
    return x, ours, theirs, tf.constant(rng.normal(0, 1, shape).astype(np.float32))


def _train_step(layer, x, upstream):
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x, training=True)
        loss = tf.reduce_sum(y * upstream)
    grads = tape.gradient(loss, [x, layer.gamma, layer.beta])
    return [y, *grads, layer.moving_mean, layer.moving_variance, layer(x, training=False)]


@pytest.mark.parametrize("shape", [(8, 5, 5, 6), (3, 1, 1, 4), (16, 6)])
def test_trains_and_infers_as_keras_batch_normalization(shape):
    """Outputs, gradients, moving statistics and inference agree with Keras's layer up to float rounding
    (4-D inputs take the fused kernel, others Keras's own code)."""
    x, ours, theirs, upstream = _pair(shape)
    for a, b in zip(_train_step(ours, x, upstream), _train_step(theirs, x, upstream)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=2e-5, atol=2e-5)


def test_a_model_with_it_saves_and_loads_in_safe_mode(tmp_path):
    inputs = keras.Input((4, 4, 2))
    model = keras.Model(inputs, BatchNorm(momentum=0.5)(inputs))
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras", safe_mode=True)
    assert isinstance(loaded.layers[-1], BatchNorm) and loaded.layers[-1].momentum == 0.5


def test_as_keras_names_keras_batch_normalization_with_the_same_arguments():
    inputs = keras.Input((4, 4, 2))
    model = keras.Model(inputs, BatchNorm(momentum=0.5, epsilon=1e-4, axis=-1)(inputs))
    copy = keras.Model.from_config(as_keras(model.get_config()))
    layer = copy.layers[-1]
    assert type(layer) is keras.layers.BatchNormalization
    assert (layer.momentum, layer.epsilon, layer.axis) == (0.5, 1e-4, -1)
