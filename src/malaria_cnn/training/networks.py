"""Network presets built from params: the tutorial's network (seed) and a compact one; their optimizer."""

from __future__ import annotations

from collections.abc import Callable

from malaria_cnn.core.labels import CLASS_NAMES, POSITIVE
from malaria_cnn.core.params import ModelParams, TrainParams
from malaria_cnn.data import stain
from malaria_cnn.training.batch_norm import BatchNorm
from malaria_cnn.training.runtime import keras

layers = keras.layers


def seed_network(cfg: ModelParams, inputs: keras.KerasTensor) -> keras.KerasTensor:
    """The tutorial's network, layer for layer, with its bugs fixed.

    [Conv 3x3 -> MaxPool 2 -> BatchNorm -> Dropout] x 2 -> Flatten -> [Dense -> BatchNorm -> Dropout]
    per entry of dense_units -> Dense(2, softmax). At 64x64 with the defaults: 4,340,130 parameters.
    """
    c = cfg.seed
    x = inputs
    for _ in range(2):
        x = layers.Conv2D(c.filters, 3, padding="same", activation="relu")(x)
        x = layers.MaxPooling2D(2)(x)
        x = BatchNorm(momentum=cfg.bn_momentum)(x)
        x = layers.Dropout(c.conv_dropout)(x)
    x = layers.Flatten()(x)
    for units in c.dense_units:
        x = layers.Dense(units, activation="relu")(x)
        x = BatchNorm(momentum=cfg.bn_momentum)(x)
        x = layers.Dropout(c.dense_dropout)(x)
    return x


def compact_network(cfg: ModelParams, inputs: keras.KerasTensor) -> keras.KerasTensor:
    """A small network: a stride-2 conv stem, then per further width a max-pool and two separable
    convolutions, each with BatchNorm and ReLU; global average pooling and dropout before the head.

    With the default widths (24, 48, 96, 192): 80,930 parameters, and on a 2-core CPU less than
    half the seed network's time per epoch at 64x64.
    """
    c = cfg.compact

    def norm_relu(x):
        return layers.ReLU()(BatchNorm(momentum=cfg.bn_momentum)(x))

    x = norm_relu(layers.Conv2D(c.widths[0], 3, strides=2, padding="same", use_bias=False)(inputs))
    for width in c.widths[1:]:
        x = layers.MaxPooling2D(2)(x)
        for _ in range(2):
            x = norm_relu(layers.SeparableConv2D(width, 3, padding="same", use_bias=False)(x))
    x = layers.GlobalAveragePooling2D()(x)
    return layers.Dropout(c.dropout)(x)


PRESETS: dict[str, Callable[[ModelParams, keras.KerasTensor], keras.KerasTensor]] = {
    "seed": seed_network,
    "compact": compact_network,
}


def build(cfg: ModelParams, image_size: int, stain_mode: str = stain.DEFAULT_MODE) -> keras.Model:
    """The network for RGB uint8 crops of image_size x image_size; outputs (P(Uninfected), P(Parasitized)).

    Scaling to [0, 1] is the model's first layer, so whatever feeds it raw crops (training,
    evaluation, prediction) gets the same transform. The input layer's name records the stain mode
    the crops were prepared with (stain.input_name), which the commands read back to prepare theirs.
    """
    inputs = keras.Input((image_size, image_size, 3), dtype="uint8", name=stain.input_name(stain_mode))
    x = layers.Rescaling(1 / 255)(inputs)
    x = PRESETS[cfg.preset](cfg, x)
    outputs = layers.Dense(len(CLASS_NAMES), activation="softmax", name="probabilities", dtype=head_dtype())(x)
    return keras.Model(inputs, outputs, name=cfg.preset)


def head_dtype() -> str | None:
    """The dtype policy of the "probabilities" layer: float32 under mixed precision (a float16 softmax rounds
    small probabilities to 0 or 1), else None (the global policy, as every other layer)."""
    return "float32" if keras.mixed_precision.global_policy().name.startswith("mixed") else None


OPTIMIZERS = {
    "adam": keras.optimizers.Adam,
    "adamw": keras.optimizers.AdamW,
    "sgd": keras.optimizers.SGD,
    "rmsprop": keras.optimizers.RMSprop,
}


@keras.saving.register_keras_serializable(package="malaria_cnn")
class ParasitizedAUC(keras.metrics.AUC):
    """ROC AUC of P(Parasitized) against the Parasitized label: the one the evaluation and the plots name.

    keras.metrics.AUC on the two softmax columns would pool both (a micro-average), which is another number.
    """

    def update_state(self, y_true, y_pred, sample_weight=None):
        return super().update_state(y_true[:, POSITIVE], y_pred[:, POSITIVE], sample_weight)


def compile_model(model: keras.Model, cfg: TrainParams) -> None:
    """Adam (or another optimizer from params) on categorical cross-entropy, reporting accuracy and ROC AUC."""
    model.compile(
        optimizer=OPTIMIZERS[cfg.optimizer](learning_rate=cfg.learning_rate),
        loss=(keras.losses.CategoricalCrossentropy(label_smoothing=cfg.label_smoothing) if cfg.label_smoothing
              else "categorical_crossentropy"),
        metrics=["accuracy", ParasitizedAUC(num_thresholds=1000, name="auc")],
    )
    build_training_state(model)


def build_training_state(model: keras.Model) -> None:
    """Create the optimizer's, loss's and metrics' variables now, from the model's input and output specs.

    Keras otherwise creates them while tracing the first training step, and TensorFlow then traces a
    function that created variables a second time: about 3 s more per fit on a CPU. (Keras does this
    itself under a tf.distribute strategy; the values are the same either way.)
    """
    build = getattr(model, "_symbolic_build", None)  # Keras's own, private: without it, training is only slower
    if build:
        build(data_batch=(keras.KerasTensor(model.input.shape, model.input.dtype),
                          keras.KerasTensor(model.output.shape, "float32")))
