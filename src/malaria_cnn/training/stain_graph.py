"""Stain standardisation as Keras ops: `data/stain.py`'s per-cell optical-density standardisation, step for
step and from the same constants, as nodes of a graph. `models/model.keras` carries them in front of its
network (`wrap`, called by model_io.save), and the SavedModel and TFLite files run the same function before
the same network (release/export.py): every file takes raw crops.

A batch of model-sized crops (RGB uint8, n x s x s x 3, a cell on black) goes in; each comes out as
`stain.standardised` makes it: background (darker than stain.BLACK in every channel) and the rim a pixel
from it found by a 3x3 erosion, the median per channel of the core's pixels (the lower and upper middle
values averaged, found bit by bit over the grey levels), then each pixel's level read from the table
numpy uses for that median (stain.median_tables: OD scaled to the reference, clamped to MAX_SCALE either
way), then the background and rim filled with the reference pixel. A crop with no cell pixel passes
unchanged. Since the medians are exact and the tables are numpy's own, the two paths give the same pixels
(tests/training/test_stain_graph.py).

Only `keras.ops` calls are used: in a Functional model Keras saves each as a node of its config (the
tables, 384 KB, as a constant) and `keras.models.load_model` rebuilds it in safe mode, with no custom
object and no Lambda layer, so the file needs neither this package nor numpy's code. On TensorFlow they
are ops that TFLite has as builtins (compare, sum, min, max pool, select, gather), so a phone runs them too.
"""

from __future__ import annotations

import numpy as np

from malaria_cnn.data import stain
from malaria_cnn.training.runtime import keras

ops = keras.ops
LEVELS = 256
WRAPPER = "raw_crops"  # the name of a model that standardises raw crops before its network
_REFERENCE_RGB = stain.REFERENCE_RGB.astype(np.uint8).astype(np.float32)
_ROWS = stain.median_tables().shape[1]  # per channel: twice the median 0...510, then 511 for no cell
_IDENTITY_ROW = _ROWS - 1
_CHANNEL_ROWS = np.arange(3, dtype=np.float32) * _ROWS
_TABLES = stain.median_tables().reshape(-1)  # channel, row, level
_BITS = (128, 64, 32, 16, 8, 4, 2, 1)


def cell_masks(x):
    """(inside, core) float 0/1 masks (n, s, s, 1) of crops as float: the non-black pixels, and those a pixel
    clear of black (a 3x3 erosion, pixels beyond the edge ignored as OpenCV does), as stain.cell_pixels;
    the core is the inside for a cell with no pixel clear of black."""
    inside = ops.cast(ops.greater_equal(ops.max(x, axis=-1, keepdims=True), stain.BLACK), "float32")
    core = ops.negative(ops.max_pool(ops.negative(inside), 3, 1, "same"))
    has_core = ops.max(core, axis=(1, 2, 3), keepdims=True)
    return inside, core * has_core + inside * (1 - has_core)


def _kth_level(levels, k):
    """(n, 3, 1) the k-th smallest of each row of `levels` (n, 3, p), k (n, 1, 1) counted from 1: the highest
    level with fewer than k values below it, set bit by bit from the top."""
    found = ops.zeros_like(k)
    for bit in _BITS:
        trial = found + bit
        below = ops.sum(ops.cast(ops.less(levels, trial), "float32"), axis=-1, keepdims=True)
        found = ops.where(ops.less(below, k), trial, found)
    return found


def median_levels(levels, count):
    """(n, 3, 1) the median of each row of `levels` (n, 3, p) among its `count` (n, 1, 1) values below LEVELS
    (the others are LEVELS), as stain._median_halves halved: the middle value, or the mean of the middle two."""
    lower = _kth_level(levels, ops.floor((count + 1) / 2))
    at_most = ops.sum(ops.cast(ops.less_equal(levels, lower), "float32"), axis=-1, keepdims=True)
    above = ops.min(ops.where(ops.greater(levels, lower), levels, float(LEVELS)), axis=-1, keepdims=True)
    return (lower + ops.where(ops.greater_equal(at_most, ops.floor(count / 2) + 1), lower, above)) / 2


def _median_halves(x, core):
    """(n, 1, 1, 3) twice the median level per channel of each crop's core pixels (a whole number)."""
    pixels = x.shape[1] * x.shape[2]
    levels = ops.where(ops.greater(core, 0), x, float(LEVELS))
    levels = ops.transpose(ops.reshape(levels, (-1, pixels, 3)), (0, 2, 1))  # a channel's pixels contiguous
    count = ops.reshape(ops.sum(core, axis=(1, 2, 3)), (-1, 1, 1))
    return ops.reshape(2 * median_levels(levels, count), (-1, 1, 1, 3))


def density(rgb):
    """(n, 3) the cells' median optical density per channel, as stain.density (NaN for a crop without a cell)."""
    x = ops.cast(rgb, "float32")
    inside, core = cell_masks(x)
    median = ops.reshape(_median_halves(x, core), (-1, 3)) / 2
    od = ops.negative(ops.log(ops.clip(median, 1, 254) / 255))
    return ops.where(ops.greater(ops.max(inside, axis=(1, 2)), 0), od, np.nan)


def standardised(rgb):
    """Raw crops (uint8, n x s x s x 3) to the network's input: stain.standardised in mode `od`, as graph ops.
    Each pixel's new level is read from stain.median_tables by its channel, its cell's median and its level:
    numpy's float64 arithmetic, done once, so the two paths cannot round a level apart."""
    x = ops.cast(rgb, "float32")
    inside, core = cell_masks(x)
    has_cell = ops.max(inside, axis=(1, 2, 3), keepdims=True)
    row = ops.where(ops.greater(has_cell, 0), _median_halves(x, core), float(_IDENTITY_ROW))
    out = ops.cast(ops.take(_TABLES, ops.cast((row + _CHANNEL_ROWS) * LEVELS + x, "int32")), "float32")
    keep = ops.greater(ops.maximum(core, 1 - has_cell), 0)
    return ops.cast(ops.where(keep, out, _REFERENCE_RGB), "uint8")  # the background and the rim: no outline


def wrap(network: keras.Model) -> keras.Model:
    """A model of raw crops (its input `rgb_uint8`): the standardisation, then `network`, which takes
    standardised crops (its input `rgb_uint8_stain_od`)."""
    size = int(network.inputs[0].shape[1])
    raw = keras.Input((size, size, 3), dtype="uint8", name=stain.input_name("none"))
    return keras.Model(raw, network(standardised(raw)), name=WRAPPER)


def network_of(model: keras.Model) -> keras.Model:
    """The network inside a model of raw crops made by `wrap`; any other model as it is."""
    nested = [layer for layer in model.layers if isinstance(layer, keras.Model)]
    if (model.name == WRAPPER and len(nested) == 1 and stain.mode_of_input(model.inputs[0].name) == "none"
            and stain.mode_of_input(nested[0].inputs[0].name) != "none"):
        return nested[0]
    return model
