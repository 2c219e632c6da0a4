"""tf.data pipelines that feed a split's uint8 crops to the network, and training-time augmentation."""

from __future__ import annotations

import numpy as np

from malaria_cnn.core.labels import CLASS_NAMES
from malaria_cnn.training.runtime import tf


def dataset(x: np.ndarray, y: np.ndarray, batch_size: int) -> tf.data.Dataset:
    """Batches of (uint8 images, one-hot labels) in order: for validation and evaluation."""
    ds = tf.data.Dataset.from_tensor_slices((x, tf.one_hot(y, len(CLASS_NAMES))))
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def steps_per_epoch(n: int, batch_size: int) -> int:
    return -(-n // batch_size)


def train_batches(x: np.ndarray, y: np.ndarray, batch_size: int, seed: int, first_epoch: int, epochs: int,
                  augment: bool, stain: str = "gain") -> tf.data.Dataset:
    """Training batches for epochs first_epoch .. epochs-1, steps_per_epoch() of them per epoch.

    Each epoch's order and each batch's augmentation are fixed by (seed, epoch, batch), not by
    how many epochs this process has run: a run resumed at epoch k sees exactly the batches an
    uninterrupted run would.
    """
    orders = np.stack([np.random.default_rng([seed, e]).permutation(len(x)) for e in range(first_epoch, epochs)])
    images, labels = tf.constant(x), tf.one_hot(y, len(CLASS_NAMES))
    steps = steps_per_epoch(len(x), batch_size)

    def epoch_batches(order, epoch):
        return tf.data.Dataset.from_tensor_slices(order).batch(batch_size).enumerate().map(
            lambda step, idx: (idx, tf.stack([tf.cast(seed, tf.int64), epoch * steps + step])))

    def gather(idx, batch_seed):
        batch = tf.gather(images, idx)
        return (augment_batch(batch, batch_seed, stain) if augment else batch), tf.gather(labels, idx)

    epochs_ds = tf.data.Dataset.from_tensor_slices((orders, np.arange(first_epoch, epochs, dtype=np.int64)))
    return epochs_ds.flat_map(epoch_batches).map(gather, num_parallel_calls=tf.data.AUTOTUNE,
                                                 deterministic=True).prefetch(tf.data.AUTOTUNE)


# Ruifrok and Johnston's stain vectors (as scikit-image's rgb2hed): optical density = stains @ _RGB_FROM_HED
_RGB_FROM_HED = np.array([[0.65, 0.70, 0.29], [0.07, 0.99, 0.11], [0.27, 0.57, 0.78]], np.float32)
_HED_FROM_RGB = np.linalg.inv(_RGB_FROM_HED).astype(np.float32)


def hed_jitter(x: tf.Tensor, seed: tf.Tensor, sigma: float = 0.05) -> tf.Tensor:
    """Stain-colour jitter in stain space (Tellez et al. 2018): each stain's optical density scaled by
    U(1 - sigma, 1 + sigma) and shifted by U(-sigma, sigma). x is float RGB in [0, 1]; black stays black."""
    n = tf.shape(x)[0]
    s = tf.random.experimental.stateless_split(seed, 2)
    alpha = tf.random.stateless_uniform([n, 1, 1, 3], s[0], 1 - sigma, 1 + sigma)
    beta = tf.random.stateless_uniform([n, 1, 1, 3], s[1], -sigma, sigma)
    density = -tf.math.log(tf.maximum(x, 1e-6))
    stains = tf.einsum("nhwc,cd->nhwd", density, _HED_FROM_RGB) * alpha + beta
    rgb = tf.clip_by_value(tf.exp(-tf.einsum("nhwd,dc->nhwc", stains, _RGB_FROM_HED)), 0.0, 1.0)
    return tf.where(tf.reduce_max(x, axis=-1, keepdims=True) > 0, rgb, 0.0)


def augment_batch(images: tf.Tensor, seed: tf.Tensor, stain: str = "gain") -> tf.Tensor:
    """Each image drawn independently: one of the 8 symmetries of a square (flips and 90-degree
    turns), brightness, contrast and stain colour (`gain`: a gain per RGB channel; `hed`: jitter in
    stain space, see hed_jitter); black background stays black.

    Stateless: the same images and seed give the same output. Only training batches pass here.
    """
    n = tf.shape(images)[0]
    s = tf.random.experimental.stateless_split(seed, 4)
    turned = tf.transpose(images, [0, 2, 1, 3])
    symmetries = tf.stack([images, tf.reverse(images, [1]), tf.reverse(images, [2]), tf.reverse(images, [1, 2]),
                           turned, tf.reverse(turned, [1]), tf.reverse(turned, [2]), tf.reverse(turned, [1, 2])], axis=1)
    pick = tf.random.stateless_uniform([n], s[0], 0, 8, dtype=tf.int32)
    x = tf.cast(tf.gather(symmetries, pick, axis=1, batch_dims=1), tf.float32) / 255.0
    # contrast: x * (c + (1 - c) * x) keeps 0 and 1 in place and steepens (c < 1) or flattens (c > 1) the rest
    c = tf.random.stateless_uniform([n, 1, 1, 1], s[1], 0.8, 1.2)
    x = x * (c + (1.0 - c) * x)
    brightness = tf.random.stateless_uniform([n, 1, 1, 1], s[2], 0.85, 1.15)
    if stain == "hed":
        x = hed_jitter(tf.clip_by_value(x * brightness, 0.0, 1.0), s[3])
    else:
        x = tf.clip_by_value(x * brightness * tf.random.stateless_uniform([n, 1, 1, 3], s[3], 0.92, 1.08), 0.0, 1.0)
    return tf.cast(tf.round(x * 255.0), tf.uint8)
