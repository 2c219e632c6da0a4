"""Stain standardisation as TensorFlow ops: `data/stain.py`'s per-cell optical-density standardisation, step
for step and from the same constants, inside a graph that the SavedModel and TFLite files carry.

A batch of model-sized crops (RGB uint8, n x s x s x 3, a cell on black) goes in; each comes out as
`stain.standardised` makes it: background (darker than stain.BLACK in every channel) and the rim a pixel
from it found by a 3x3 erosion, the median per channel of the core's pixels (the lower and upper middle
values averaged, from a histogram), every channel's OD scaled to the reference and clamped to MAX_SCALE
either way, applied as a 256-level table, then the background and rim filled with the reference pixel. A
crop with no cell pixel passes unchanged. Only float32 and int32 ops that TFLite has as builtins are used
(max pool, segment sum, cumsum, arg max, gather, select), so a phone runs it without TensorFlow. It computes in float32 where the numpy version uses float64; on the dev crops the two
give the same pixels (tests/release/test_stain_graph.py).
"""

from __future__ import annotations

import numpy as np

from malaria_cnn.data import stain
from malaria_cnn.training.runtime import tf

LEVELS = 256
_REFERENCE_OD = -np.log(stain.REFERENCE_RGB / 255).astype(np.float32)
_REFERENCE_RGB = stain.REFERENCE_RGB.astype(np.uint8).astype(np.float32)


def cell_masks(rgb: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """(inside, core) float 0/1 masks (n, s, s, 1) of crops as float: the non-black pixels, and those a pixel
    clear of black (a 3x3 erosion, pixels beyond the edge ignored as OpenCV does), as stain.cell_pixels;
    the core is the inside for a cell with no pixel clear of black."""
    inside = tf.cast(tf.reduce_max(rgb, axis=-1, keepdims=True) >= stain.BLACK, tf.float32)
    core = -tf.nn.max_pool2d(-inside, 3, 1, "SAME")
    has_core = tf.reduce_max(core, axis=[1, 2, 3], keepdims=True)
    return inside, core * has_core + inside * (1 - has_core)


def median_levels(levels: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """(n, 3) median level of each channel's masked pixels (levels int32, n x s x s x 3), as stain._median."""
    n = tf.shape(levels)[0]
    bins = (tf.range(n)[:, None, None, None] * 3 + tf.range(3)) * LEVELS + levels
    weight = mask * tf.ones([1, 1, 1, 3])
    counts = tf.math.unsorted_segment_sum(tf.reshape(weight, [-1]), tf.reshape(bins, [-1]), n * 3 * LEVELS)
    cum = tf.cumsum(tf.reshape(counts, [n, 3, LEVELS]), axis=-1)
    total = cum[:, :, -1:]
    lower = tf.argmax(tf.cast(cum >= tf.floor((total + 1) / 2), tf.float32), axis=-1, output_type=tf.int32)
    upper = tf.argmax(tf.cast(cum >= tf.floor(total / 2) + 1, tf.float32), axis=-1, output_type=tf.int32)
    return tf.cast(lower + upper, tf.float32) / 2


def _od(levels: tf.Tensor, core: tf.Tensor) -> tf.Tensor:
    return -tf.math.log(tf.clip_by_value(median_levels(levels, core), 1, 254) / 255)


def density(rgb) -> tf.Tensor:
    """(n, 3) the cells' median optical density per channel, as stain.density (NaN for a crop without a cell)."""
    x = tf.cast(rgb, tf.float32)
    inside, core = cell_masks(x)
    od = _od(tf.cast(rgb, tf.int32), core)
    return tf.where(tf.reduce_max(inside, axis=[1, 2]) > 0, od, np.nan)


def standardised(rgb) -> tf.Tensor:
    """Raw crops (uint8, n x s x s x 3) to the model's input: stain.standardised in mode `od`, in a graph."""
    x, levels = tf.cast(rgb, tf.float32), tf.cast(rgb, tf.int32)
    inside, core = cell_masks(x)
    has_cell = tf.reduce_max(inside, axis=[1, 2]) > 0  # (n, 1)
    scale = tf.clip_by_value(_REFERENCE_OD / tf.maximum(_od(levels, core), 1e-6), 1 / stain.MAX_SCALE,
                             stain.MAX_SCALE)
    scale = tf.where(has_cell, scale, 1.0)  # a crop without a cell passes unchanged: the identity table, no fill
    keep = tf.maximum(core, 1 - tf.cast(has_cell, tf.float32)[:, :, None, None]) > 0
    grey = tf.range(1, LEVELS, dtype=tf.float32) / 255  # level 0 (black) stays 0, no other drops to black
    table = tf.maximum(tf.round(255 * tf.exp(scale[:, :, None] * tf.math.log(grey))), 1)
    table = tf.concat([tf.zeros_like(table[:, :, :1]), table], axis=-1)  # (n, 3, 256): I' = 255 (I / 255) ** scale
    offsets = (tf.range(tf.shape(x)[0])[:, None, None, None] * 3 + tf.range(3)) * LEVELS
    out = tf.gather(tf.reshape(table, [-1]), offsets + levels)
    return tf.cast(tf.where(keep, out, _REFERENCE_RGB), tf.uint8)  # the background and the rim: no outline to read
