"""Saving a model so its bytes depend only on its contents, and loading one safely.

A network trained on standardised crops is saved behind the graph standardisation (stain_graph.wrap), so
that the file alone, loaded with plain `keras.models.load_model`, takes raw crops; loading returns the
network, which the commands feed crops standardised in numpy (the same pixels: stain_graph's tests).
"""

from __future__ import annotations

import json
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from malaria_cnn.core.atomic import atomic_path
from malaria_cnn.core.errors import UserError
from malaria_cnn.core.labels import CLASS_NAMES, POSITIVE
from malaria_cnn.data import stain
from malaria_cnn.training import batch_norm  # also registers BatchNorm, which older saved models name
from malaria_cnn.training import stain_graph
from malaria_cnn.training.runtime import keras, native_stderr_filtered, tf


def save(model: keras.Model, dest: str | Path) -> None:
    """Save as a .keras archive of raw crops (a network of standardised crops behind stain_graph.wrap) whose
    bytes change only when the weights or the config do.

    Keras stamps the save time into the archive (metadata.json and the entry dates), and memory
    addresses and the process's count of earlier op nodes (their names) into config.json: all are
    fixed here, so retraining to the same weights gives the same file and the same DVC hash.
    """
    network = inference_copy(stain_graph.network_of(model))
    shipped = stain_graph.wrap(network) if stain_mode(network) != "none" else network
    with tempfile.TemporaryDirectory() as scratch, atomic_path(dest) as tmp:
        raw = Path(scratch) / "model.keras"
        shipped.save(raw)
        with zipfile.ZipFile(raw) as src, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as out:
            for item in src.infolist():
                data = src.read(item)
                if item.filename == "metadata.json":
                    meta = json.loads(data)
                    meta.pop("date_saved", None)
                    data = json.dumps(meta, sort_keys=True).encode()
                elif item.filename == "config.json":
                    data = json.dumps(_renumber_shared_objects(_rename_op_nodes(json.loads(data)))).encode()
                entry = zipfile.ZipInfo(item.filename, date_time=(1980, 1, 1, 0, 0, 0))
                out.writestr(entry, data, compress_type=zipfile.ZIP_DEFLATED)


def inference_copy(model: keras.Model) -> keras.Model:
    """The network alone, rebuilt from its config with the trained weights: no optimizer, no compile state,
    and Keras's BatchNormalization for the fused BatchNorm it trained with (batch_norm.as_keras), so the
    saved file loads with plain `keras.models.load_model`, without this package.

    A model resumed from a checkpoint is one Keras loaded, and Keras saves it differently from the
    model it built in the same process (a new model's layers share one dtype policy, written as
    `shared_object_id`s that a loaded one lacks; the optimizer's state is written too): rebuilt this
    way, an uninterrupted and a resumed run with the same weights save the same bytes.
    """
    copy = model.__class__.from_config(batch_norm.as_keras(model.get_config()))
    copy.set_weights(model.get_weights())
    return copy


def _renumber_shared_objects(config):
    """Replace the memory addresses Keras writes as `shared_object_id` by 1, 2, 3... in order of appearance."""
    ids: dict[int, int] = {}

    def walk(node):
        if isinstance(node, dict):
            return {
                k: ids.setdefault(v, len(ids) + 1) if k == "shared_object_id" else walk(v) for k, v in node.items()
            }
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    return walk(config)


def _rename_op_nodes(config: dict) -> dict:
    """Name the model's op nodes (keras.ops calls, named by Keras after how many came before them in the
    process) op_1, op_2... in order, and the references to them."""
    layers = config["config"]["layers"]
    ops = [layer["name"] for layer in layers if layer.get("module", "").startswith("keras.src.ops")]
    names = {name: f"op_{i}" for i, name in enumerate(ops, 1)}

    def walk(node):
        if isinstance(node, dict):
            if "keras_history" in node:
                history = node["keras_history"]
                return {**node, "keras_history": [names.get(history[0], history[0]), *history[1:]]}
            return {k: walk(v) for k, v in node.items()}
        return [walk(v) for v in node] if isinstance(node, list) else node

    for layer in layers:
        if layer["name"] in names:
            layer["name"] = layer["config"]["name"] = names[layer["name"]]
        layer["inbound_nodes"] = walk(layer["inbound_nodes"])
    return config


def load(path: str | Path, missing: str = "run the train stage first (dvc repro)") -> keras.Model:
    """Load a saved model in Keras's safe mode (no code from the file runs), with one clear error if
    it is missing (ending in `missing`, what to do), not a Keras model, or a Keras model of another kind
    than this project's. A model of raw crops gives its network, which takes crops as its input layer's
    name says (`stain_mode`)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path} not found: {missing}")
    try:
        model = keras.models.load_model(path, safe_mode=True, compile=False)
    except Exception as exc:  # Keras raises many kinds for a file that is not one of its models
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UserError(f"{path} is not a readable Keras model ({reason})") from None
    network = stain_graph.network_of(model)
    check(network, path)
    return network


def check(model: keras.Model, path: str | Path) -> None:
    """Raise unless the model takes square RGB uint8 crops and outputs this project's two probabilities."""
    shape = tuple(model.inputs[0].shape) if model.inputs else ()
    dtype = str(model.inputs[0].dtype) if model.inputs else ""
    head = [layer for layer in model.layers if layer.name == "probabilities"]
    ours = (len(shape) == 4 and shape[1] == shape[2] and shape[1] and shape[3] == 3 and "uint8" in dtype
            and head and tuple(model.outputs[0].shape)[-1] == len(CLASS_NAMES))
    if not ours:
        raise UserError(f"{path} is a Keras model but not a malaria-cnn one: it should take RGB uint8 crops "
                        f"(None, s, s, 3) and end in a 'probabilities' layer of {len(CLASS_NAMES)}; "
                        f"it takes {shape} {dtype}")


def stain_mode(model: keras.Model) -> str:
    """The stain mode the model's crops are prepared with (recorded in its input layer's name)."""
    return stain.mode_of_input(model.inputs[0].name)


def image_size(model: keras.Model) -> int:
    """The side of the square crops the model takes."""
    return int(model.inputs[0].shape[1])


def parasitized_probability(model: keras.Model, x, batch_size: int):
    """P(Parasitized) for each crop in x (RGB uint8, n x s x s x 3)."""
    with native_stderr_filtered():
        return model.predict(x, batch_size=batch_size, verbose=0)[:, POSITIVE]


def scorer(model: keras.Model, batch_size: int):
    """A function giving P(Parasitized) for crops (RGB uint8, n x s x s x 3), `batch_size` at a time, for
    the commands' many calls (a batch of crops, a photo's cells): one traced call of the model instead of
    `model.predict`, whose set-up costs about 0.3 s a call on a CPU."""
    forward = tf.function(lambda x: model(x, training=False), reduce_retracing=True,
                          autograph=False)

    def score(x):
        if not len(x):
            return np.zeros(0, np.float32)
        return np.concatenate([forward(x[i:i + batch_size]).numpy()[:, POSITIVE] for i in range(0, len(x), batch_size)])

    return score
