"""Stage train: network presets, tf.data batches, the resumable training loop, devices, saving models."""
