"""BatchNormalization that trains with TensorFlow's fused kernel: the networks' normalization layer.

Keras 3 computes a batch's moments and their gradients with a dozen small ops per layer, which on a CPU
took half of the compact network's training step. TensorFlow's FusedBatchNormV3 does each direction in
one op. The variables, the moving-average update (with the biased batch variance, as Keras) and
inference are Keras's own, so a model's weights mean the same with either layer. A saved model names
Keras's layer instead (as_keras), so it loads where this package is not installed; a saved model trained
again (train.init_from) gets this layer back (as_ours).
"""

from __future__ import annotations

from malaria_cnn.training.runtime import keras, tf


@keras.saving.register_keras_serializable(package="malaria_cnn")
class BatchNorm(keras.layers.BatchNormalization):
    """keras.layers.BatchNormalization, trained with the fused kernel on 4-D channels-last inputs."""

    def call(self, inputs, training=None, mask=None):
        fused = (training and self.trainable and mask is None and not self.renorm and self.center and self.scale
                 and len(inputs.shape) == 4 and self.axis in (-1, 3))
        if not fused:
            return super().call(inputs, training=training, mask=mask)
        x = tf.cast(inputs, "float32")  # as Keras: the statistics in float32 whatever the compute dtype
        y, mean, unbiased = tf.compat.v1.nn.fused_batch_norm(
            x, tf.cast(self.gamma, "float32"), tf.cast(self.beta, "float32"), epsilon=self.epsilon, is_training=True)
        n = tf.cast(tf.reduce_prod(tf.shape(x)[:-1]), "float32")
        variance = tf.where(n > 1, unbiased * (n - 1) / n, 0.0)  # the kernel returns the unbiased variance
        self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
        self.moving_variance.assign(self.moving_variance * self.momentum + variance * (1.0 - self.momentum))
        return tf.cast(y, self.compute_dtype)


def as_keras(config):
    """A model's config (as `get_config` gives it, nested models included) with each BatchNorm written as
    keras.layers.BatchNormalization: the same arguments, weights and predictions."""
    ours = keras.saving.get_registered_name(BatchNorm)

    def walk(node):
        if isinstance(node, dict):
            if node.get("registered_name") == ours:
                node = {**node, "module": "keras.layers", "class_name": "BatchNormalization", "registered_name": None}
            return {k: walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    return walk(config)


def as_ours(config, momentum: float | None = None):
    """The inverse of as_keras, for a saved model trained again (train.init_from): each BatchNormalization of a
    model's config written as BatchNorm, with the same arguments and weights but `momentum` if given."""
    ours = keras.saving.get_registered_name(BatchNorm)

    def walk(node):
        if isinstance(node, dict):
            if node.get("class_name") in ("BatchNormalization", "BatchNorm") and isinstance(node.get("config"), dict):
                node = {**node, "module": BatchNorm.__module__, "class_name": "BatchNorm", "registered_name": ours}
                if momentum is not None:
                    node["config"] = {**node["config"], "momentum": momentum}
            return {k: walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    return walk(config)
