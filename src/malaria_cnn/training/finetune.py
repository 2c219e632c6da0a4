"""Fine-tuning (train.init_from): every model the pipeline trains starts from a trained model, not model.preset's.

Each fold's model (train@k) and cv.final refit's model start from a copy of the model at train.init_from, e.g.
one trained on NIH's crops, and train for train.finetune.epochs at train.finetune.learning_rate, with the
optimizer, schedule, early stopping, class weights and augmentation train.* sets, as from scratch.

Kept from the model: its layers, input and head, and all its weights (BatchNorm's moving statistics
included); an ensemble is copied whole, its networks trained together through their mean. Not kept: its
optimizer and training state (a fresh optimizer is compiled from train.*), its BatchNorm momentum
(model.bn_momentum) and its dtype policy (this run's, train.mixed_precision). Its BatchNorm layers train as
the networks' do from scratch, with the fused kernel, their statistics updated: they move from the old
crops' towards the new lab's, which is much of what adapting to another lab's stain and microscope asks
(frozen statistics would keep normalising the new crops as the old ones).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from malaria_cnn.core import atomic
from malaria_cnn.core.errors import UserError
from malaria_cnn.core.params import ModelParams, Params, TrainParams
from malaria_cnn.training import batch_norm, model_io, networks
from malaria_cnn.training.runtime import keras

WHAT = "it should name a trained model.keras, from the project's root or absolute"


def effective(p: Params) -> Params:
    """p as training reads it: with train.init_from set, train.finetune's epochs and learning rate in place of
    epochs and train.learning_rate; without it, p."""
    if not p.train.init_from:
        return p
    ft = p.train.finetune
    return dataclasses.replace(p, epochs=ft.epochs, train=dataclasses.replace(p.train, learning_rate=ft.learning_rate))


def with_epochs(p: Params, epochs: int) -> Params:
    """p training for `epochs` (the refit's count): train.finetune.epochs when fine-tuning, else epochs."""
    if not p.train.init_from:
        return dataclasses.replace(p, epochs=epochs)
    ft = dataclasses.replace(p.train.finetune, epochs=epochs)
    return dataclasses.replace(p, train=dataclasses.replace(p.train, finetune=ft))


def origin(cfg: TrainParams) -> dict | None:
    """The model training starts from, for the record: {"path": train.init_from, "sha256": its file's}; None
    when training from scratch."""
    if not cfg.init_from:
        return None
    path = Path(cfg.init_from)
    if not path.is_file():
        raise UserError(f"train.init_from: {path} not found: {WHAT}")
    return {"path": cfg.init_from, "sha256": atomic.file_sha256(path)}


def describe(start: dict | None) -> str:
    """A summary line's words for where training started ("" from scratch)."""
    return f"fine-tuned from {start['path']} (sha256 {start['sha256'][:12]}), " if start else ""


def load(p: Params, image_size: int) -> keras.Model:
    """train.init_from's model, loaded as every model is (model_io.load: safe mode, a malaria-cnn network or
    ensemble with its two probabilities) and checked against the crops it will train on: their side and stain
    mode. One line, no traceback, if anything is off."""
    try:
        model = model_io.load(p.train.init_from, missing=WHAT)
    except UserError as exc:
        raise UserError(f"train.init_from: {exc}") from None
    side, mode = model_io.image_size(model), model_io.stain_mode(model)
    if side != image_size:
        raise UserError(f"train.init_from: {p.train.init_from} takes {side}x{side} crops, the crops are "
                        f"{image_size}x{image_size} (preprocess.image_size): set -S preprocess.image_size={side}")
    if mode != p.preprocess.stain:
        raise UserError(f"train.init_from: {p.train.init_from} was trained on crops prepared with preprocess.stain "
                        f"{mode}, these are prepared with {p.preprocess.stain}: set -S preprocess.stain={mode}")
    return model


def trainable_copy(model: keras.Model, cfg: ModelParams) -> keras.Model:
    """A copy of `model` to train (build it in the run's strategy scope): its layers and weights, with BatchNorm
    as the networks train it (batch_norm.BatchNorm, model.bn_momentum) and every layer in this run's dtype policy
    (the head as networks.build makes it)."""
    config = _this_precision(batch_norm.as_ours(model.get_config(), momentum=cfg.bn_momentum))
    copy = model.__class__.from_config(config)
    copy.set_weights(model.get_weights())
    return copy


def _this_precision(config):
    """A model's config with each layer's dtype policy the global one, "probabilities" layers networks.head_dtype()'s."""
    policy = keras.mixed_precision.global_policy().name

    def walk(node):
        if isinstance(node, list):
            return [walk(v) for v in node]
        if not isinstance(node, dict):
            return node
        node = {k: walk(v) for k, v in node.items()}
        layer = node.get("config")
        dtype = layer.get("dtype") if isinstance(layer, dict) else None
        if isinstance(dtype, dict) and dtype.get("class_name") == "DTypePolicy":
            name = (networks.head_dtype() if layer.get("name") == "probabilities" else None) or policy
            node["config"] = {**layer, "dtype": {**dtype, "config": {**dtype["config"], "name": name}}}
        return node

    return walk(config)
