"""Grad-CAM: where in a crop the network found the evidence for its call.

For the class the network called, the gradient of that class's logit against the last
convolutional feature maps, averaged over space, weighs each map; the weighted sum, rectified
and scaled to its maximum, is the heat map (Selvaraju et al., 2017). The logits are recomputed
from the softmax layer's input, so saturated probabilities do not flatten the gradient.
"""

from __future__ import annotations

import cv2
import numpy as np

from malaria_cnn.core.labels import POSITIVE, call
from malaria_cnn.evaluation import gallery
from malaria_cnn.training import ensemble
from malaria_cnn.training.runtime import keras, tf

OUTCOMES = ("TP", "FP", "FN", "TN")
HEAT_SHARE = 0.45  # how much of an overlay pixel is heat map


def last_feature_layer(model: keras.Model) -> keras.layers.Layer:
    """The last layer whose output still has a spatial grid (batch, height, width, channels)."""
    for layer in reversed(model.layers):
        shape = getattr(layer, "output", None) is not None and layer.output.shape
        if shape and len(shape) == 4 and not isinstance(layer, keras.layers.InputLayer):
            return layer
    raise ValueError(f"model {model.name} has no layer with a spatial output")


def heatmaps(model: keras.Model, x: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """(n, h, w) heat maps in [0, 1] at the input's size, for crops x and the class to explain in each.

    For an ensemble, the mean of its members' maps, scaled again to a peak of 1.
    """
    maps = np.mean([_network_heatmaps(member, x, classes) for member in ensemble.members(model)], axis=0)
    peak = maps.max(axis=(1, 2), keepdims=True)
    return np.divide(maps, peak, out=np.zeros_like(maps), where=peak > 0)


def _network_heatmaps(model: keras.Model, x: np.ndarray, classes: np.ndarray) -> np.ndarray:
    head = model.get_layer("probabilities")
    probe = keras.Model(model.inputs, [last_feature_layer(model).output, head.input])
    kernel, bias = head.kernel, head.bias
    with tf.GradientTape() as tape:
        features, pooled = probe(tf.convert_to_tensor(x), training=False)
        # float32 throughout, also for a network trained in mixed precision
        logits = tf.matmul(tf.cast(pooled, "float32"), tf.cast(kernel, "float32")) + tf.cast(bias, "float32")
        score = tf.reduce_sum(tf.gather(logits, classes, axis=1, batch_dims=1))
    grads = np.asarray(tape.gradient(score, features), dtype=np.float32)
    maps = np.maximum(np.einsum("nhwc,nc->nhw", np.asarray(features, dtype=np.float32), grads.mean(axis=(1, 2))), 0)
    peak = maps.max(axis=(1, 2), keepdims=True)
    maps = np.divide(maps, peak, out=np.zeros_like(maps), where=peak > 0)
    size = x.shape[1]
    return np.stack([cv2.resize(m, (size, size), interpolation=cv2.INTER_LINEAR) for m in maps])


def overlay(rgb: np.ndarray, heat: np.ndarray) -> np.ndarray:
    """The crop with its heat map laid over it in the jet colour map (red: strongest evidence)."""
    colour = cv2.cvtColor(cv2.applyColorMap(np.uint8(np.round(heat * 255)), cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)
    return np.uint8(np.round((1 - HEAT_SHARE) * rgb + HEAT_SHARE * colour))


def outcome_of(y: np.ndarray, called: np.ndarray) -> np.ndarray:
    positive = np.asarray(y) == POSITIVE
    return np.where(positive, np.where(called, "TP", "FN"), np.where(called, "FP", "TN"))


def examples(y: np.ndarray, prob: np.ndarray, threshold: float, per_outcome: int) -> dict[str, list[int]]:
    """Per outcome, the indices of its `per_outcome` most confident cells (farthest from the threshold)."""
    outcome = outcome_of(y, prob >= threshold)
    distance = np.abs(prob - threshold)
    out = {}
    for name in OUTCOMES:
        idx = np.flatnonzero(outcome == name)
        out[name] = [int(i) for i in idx[np.argsort(-distance[idx], kind="stable")][:per_outcome]]
    return out


def gradcam_sheet(model: keras.Model, x: np.ndarray, y: np.ndarray, prob: np.ndarray, slides: np.ndarray,
          threshold: float, per_outcome: int) -> np.ndarray:
    """One row per outcome (TP, FP, FN, TN): each example cell beside its Grad-CAM overlay."""
    picked = examples(y, prob, threshold, per_outcome)
    order = [i for name in OUTCOMES for i in picked[name]]
    called = np.where(prob[order] >= threshold, POSITIVE, 1 - POSITIVE) if order else np.zeros(0, int)
    maps = heatmaps(model, x[order], called) if order else np.zeros((0,) + x.shape[1:3])
    heat = dict(zip(order, maps))
    rows = []
    for name in OUTCOMES:
        tiles = []
        for i in picked[name]:
            tiles.append((x[i], f"p={prob[i]:.3f}", f"slide {slides[i]}"))
            tiles.append((overlay(x[i], heat[i]), "Grad-CAM", f"for {call(prob[i], threshold)}"))
        rows.append((name, tiles))
    title = (f"Grad-CAM at threshold {threshold:.3f}: where the network found the evidence for its call "
             f"(red: strongest)")
    return gallery.contact_sheet(title, rows, columns=max(2, 2 * per_outcome))
