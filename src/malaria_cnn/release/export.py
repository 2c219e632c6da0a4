"""Export a trained model for serving and for small devices, and check that the copies agree.

- SavedModel, for TF Serving: `serving_default` takes RGB uint8 crops and returns the two
  probabilities, exactly as the Keras model does (scaling is inside).
- TFLite float32, and TFLite int8 (post-training full-integer quantisation, its value ranges
  calibrated on crops of the train split). Both keep the uint8 input and the float32 output.
The copies are scored on the test split against the Keras model: the share of cells each calls
as the Keras model does at the stored threshold, and the largest probability difference.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from malaria_cnn.core.labels import POSITIVE
from malaria_cnn.training.runtime import keras, native_stderr_filtered, tf


def saved_model(model: keras.Model, dest: str | Path) -> None:
    model.export(str(dest), format="tf_saved_model", verbose=False)


def tflite(saved_model_dir: str | Path, representative: np.ndarray | None = None) -> bytes:
    """The SavedModel as TFLite: float32, or int8 calibrated on `representative` crops when given."""
    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model_dir))
    if representative is not None:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.representative_dataset = lambda: ([crop[None]] for crop in representative)
    with native_stderr_filtered():
        return converter.convert()


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
    f32, int8 = parity_by_copy["float32"], parity_by_copy["int8"]
    return (f"export: SavedModel, TFLite float32 ({files['model_float32.tflite'] / 1e6:.2f} MB, max probability "
            f"difference {f32['max_probability_difference']:.2g}) and int8 ({files['model_int8.tflite'] / 1e6:.2f} MB, "
            f"{int8['agreement']:.2%} of {cells} test cells called as the Keras model does) -> models/export/")
