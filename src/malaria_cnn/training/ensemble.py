"""One Keras model that averages several models' probabilities: the fold models, shipped as one.

It takes the same uint8 crops and ends in a layer named "probabilities", so loading (safe mode),
predicting, exporting and Grad-CAM treat it as any model of this project.
"""

from __future__ import annotations

from malaria_cnn.training.runtime import keras


def average(models: list[keras.Model]) -> keras.Model:
    """A model whose output is the mean of `models`' outputs (each renamed member_<i> inside it)."""
    if len(models) == 1:
        return models[0]
    inputs = keras.Input(models[0].inputs[0].shape[1:], dtype="uint8", name=models[0].inputs[0].name)
    outputs = [keras.Model(m.inputs, m.outputs[0], name=f"member_{i}")(inputs) for i, m in enumerate(models)]
    return keras.Model(inputs, keras.layers.Average(name="probabilities")(outputs), name="ensemble")


def members(model: keras.Model) -> list[keras.Model]:
    """The networks an ensemble averages, those of the ensembles in it too (fold models fine-tuned from an
    ensemble, finetune.py); [model] for a single network."""
    nested = [layer for layer in model.layers if isinstance(layer, keras.Model)]
    return [network for member in nested for network in members(member)] if nested else [model]
