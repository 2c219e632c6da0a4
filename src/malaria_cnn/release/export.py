"""Export a trained model for serving and for small devices, and check that the copies agree.

Each copy takes raw crops: RGB uint8 cells on black, resized to the model's size by area averaging
(images.resize), as NIH's crops and `screen`'s cuts are. The stain standardisation that `predict` runs
in numpy (data/stain.py) runs inside the copy's graph (training/stain_graph.py, the ops that
`models/model.keras` carries too), then the network.
- SavedModel, for TF Serving: `serving_default` takes `rgb_uint8` and returns `probabilities`.
- TFLite float32, and TFLite int8 (post-training quantisation of the network, its value ranges
  calibrated on raw crops of the train split; the standardisation stays in float32). Both keep
  the uint8 input and the float32 output.
The copies, and `models/model.keras` loaded with plain Keras, are fed the test split's raw crops and
compared with the network fed the same crops standardised as `predict` does: the share of cells each
calls alike at the stored threshold, and the largest probability difference.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from malaria_cnn.core.labels import POSITIVE
from malaria_cnn.core.params import PreprocessParams
from malaria_cnn.data import archive, images
from malaria_cnn.training import model_io, stain_graph
from malaria_cnn.training.runtime import keras, native_stderr_filtered, tf

INPUT = "rgb_uint8"  # the copies' input: raw crops
OUTPUT = "probabilities"  # (n, 2): P(Uninfected), P(Parasitized)
INPUT_NOTE = "raw crops: RGB uint8 on black, resized by area averaging; the stain standardised in the graph"
STAIN_SCOPE = "stain"  # the standardisation's ops, kept in float32 in the int8 file


def raw_crop_function(model: keras.Model):
    """Raw crops (uint8, n x s x s x 3) to the model's probabilities, the stain standardised in the graph
    when the model's crops are (its input layer records the mode)."""
    standardise = stain_graph.standardised if model_io.stain_mode(model) == "od" else tf.identity

    def probabilities(x):
        with tf.name_scope(STAIN_SCOPE):
            x = standardise(x)
        return {OUTPUT: model(x, training=False)}

    return probabilities


def saved_model(model: keras.Model, dest: str | Path) -> None:
    """A SavedModel whose `serving_default` takes raw crops (`rgb_uint8`) and returns `probabilities`."""
    size = model_io.image_size(model)
    archive_ = keras.export.ExportArchive()
    archive_.track(model)
    archive_.add_endpoint("serving_default", raw_crop_function(model),
                          input_signature=[tf.TensorSpec([None, size, size, 3], tf.uint8, name=INPUT)])
    with native_stderr_filtered():
        archive_.write_out(str(dest), verbose=False)


def raw_crops(zip_path: str | Path, files, size: int, cfg: PreprocessParams = PreprocessParams()) -> np.ndarray:
    """The archive's crops named by `files`, decoded and resized as preprocess does, stain left as it is."""
    with archive.open_zip(zip_path) as zf:
        return np.stack([images.read_cell(zf.read(str(f)), size, cfg.min_side, cfg.max_pixels, "none")[0]
                         for f in files]).reshape(-1, size, size, 3)


class KerasFile:
    """A saved model file itself, loaded with plain Keras (safe mode, nothing of this package), as a notebook
    would: raw crops in."""

    def __init__(self, path: str | Path):
        self.model = keras.models.load_model(str(path))

    def parasitized_probability(self, x: np.ndarray, batch_size: int) -> np.ndarray:
        return model_io.parasitized_probability(self.model, x, batch_size)


class SavedModelCopy:
    """The exported SavedModel, loaded with TensorFlow alone, as TF Serving would."""

    def __init__(self, path: str | Path):
        self.serve = tf.saved_model.load(str(path)).signatures["serving_default"]

    def parasitized_probability(self, x: np.ndarray, batch_size: int) -> np.ndarray:
        return np.concatenate([self.serve(**{INPUT: tf.constant(x[i:i + batch_size])})[OUTPUT].numpy()[:, POSITIVE]
                               for i in range(0, len(x), batch_size)] or [np.zeros(0, np.float32)])


def tflite(saved_model_dir: str | Path, representative: np.ndarray | None = None) -> bytes:
    """The SavedModel as TFLite: float32, or int8 calibrated on `representative` raw crops when given (ops
    without an int8 kernel, the standardisation's, stay in float32)."""
    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model_dir))
    with native_stderr_filtered():
        float32 = converter.convert()
        if representative is None:
            return float32
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8, tf.lite.OpsSet.TFLITE_BUILTINS]
        converter.representative_dataset = lambda: ([crop[None]] for crop in representative)
        stain_ops = [t["name"] for t in LiteModel(float32).interpreter.get_tensor_details()
                     if t["name"].startswith(STAIN_SCOPE + "/")]
        options = tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=stain_ops)
        with warnings.catch_warnings():  # the debugger runs TensorFlow's own interpreter, deprecated for LiteRT's
            warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated")
            return tf.lite.experimental.QuantizationDebugger(
                converter=converter, debug_dataset=converter.representative_dataset,
                debug_options=options).get_nondebug_quantized_model()


def representative_crops(x: np.ndarray, n: int) -> np.ndarray:
    """`n` crops spread evenly over `x` (the train split, in its stored order)."""
    return x[np.linspace(0, len(x) - 1, num=min(n, len(x))).round().astype(int)]


class LiteModel:
    """A TFLite model run with LiteRT, the interpreter phones and small boards use."""

    def __init__(self, model: bytes | str | Path, threads: int | None = None):
        from ai_edge_litert.interpreter import Interpreter

        content = model if isinstance(model, bytes) else Path(model).read_bytes()
        with native_stderr_filtered():
            self.interpreter = Interpreter(model_content=content, num_threads=threads)
            self.interpreter.allocate_tensors()
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]
        self.batch = 0

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        """(n, 2) class probabilities for one batch of uint8 crops."""
        if len(x) != self.batch:
            self.interpreter.resize_tensor_input(self.input["index"], [len(x), *x.shape[1:]])
            self.interpreter.allocate_tensors()
            self.batch = len(x)
        self.interpreter.set_tensor(self.input["index"], x)
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self.output["index"]).copy()

    def parasitized_probability(self, x: np.ndarray, batch_size: int) -> np.ndarray:
        return np.concatenate([self.probabilities(x[i:i + batch_size])[:, POSITIVE]
                               for i in range(0, len(x), batch_size)] or [np.zeros(0, np.float32)])


def parity(reference: np.ndarray, other: np.ndarray, threshold: float) -> dict:
    """How far another copy's P(Parasitized) is from the Keras model's, and how often it calls the same."""
    return {
        "agreement": round(float(np.mean((reference >= threshold) == (other >= threshold))), 6),
        "max_probability_difference": round(float(np.max(np.abs(reference - other))), 6),
    }


def check_int8(parity_int8: dict, minimum: float) -> str | None:
    """Record in `parity_int8` whether the int8 copy agrees often enough; the reason when it does not."""
    parity_int8["passed"] = parity_int8["agreement"] >= minimum
    if parity_int8["passed"]:
        return None
    return (f"the int8 model calls only {parity_int8['agreement']:.2%} of the test cells as the Keras model does, "
            f"below export.min_int8_agreement ({minimum:.2%}): the model card marks it not for use (a network "
            "whose probabilities crowd around the threshold loses its calls to int8's 1/256 steps; train longer "
            "or use the float32 file)")


def summary(files: dict[str, int], parity_by_copy: dict[str, dict], cells: int) -> str:
    f32, int8 = parity_by_copy["tflite_float32"], parity_by_copy["tflite_int8"]
    return (f"export: SavedModel, TFLite float32 ({files['model_float32.tflite'] / 1e6:.2f} MB, max probability "
            f"difference {f32['max_probability_difference']:.2g}) and int8 ({files['model_int8.tflite'] / 1e6:.2f} MB, "
            f"{int8['agreement']:.2%} of {cells} test cells called as the Keras model does) -> models/export/")
