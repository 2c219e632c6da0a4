"""Stage export: SavedModel, TFLite float32 and int8, their parity on the test split, the model card."""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # run the package in this tree

from malaria_cnn import atomic, card, export, models, params, paths, threshold
from malaria_cnn.checksum import file_sha256
from malaria_cnn.data import load_split_cells
from malaria_cnn.errors import run_main


def main() -> None:
    p = params.load()
    splits = load_split_cells(paths.CELLS_NPZ, paths.SPLITS_CSV, "train", "test")
    model = models.load(paths.MODEL)
    stored = threshold.load_record(paths.THRESHOLD, paths.MODEL)
    cut = float(stored["threshold"])
    test_x = splits["test"]["x"]
    reference = models.parasitized_probability(model, test_x, p.predict.batch_size)

    with atomic.atomic_dir(paths.SAVED_MODEL) as saved:
        export.saved_model(model, saved)
        blobs = {
            "float32": export.tflite(saved),
            "int8": export.tflite(saved, export.representative_crops(splits["train"]["x"], p.export.representative)),
        }
        agree = {name: export.parity(reference, export.LiteModel(blob).parasitized_probability(test_x, p.predict.batch_size), cut)
                 for name, blob in blobs.items()}
    agree["int8"]["passed"] = agree["int8"]["agreement"] >= p.export.min_int8_agreement
    if not agree["int8"]["passed"]:
        print(f"export: warning: the int8 model calls only {agree['int8']['agreement']:.2%} of the test cells as the "
              f"Keras model does, below export.min_int8_agreement ({p.export.min_int8_agreement:.2%}): the model card "
              "marks it not for use (a network whose probabilities crowd around the threshold loses its calls to "
              "int8's 1/256 steps; train longer or use the float32 file)", file=sys.stderr)
    atomic.write_bytes(paths.TFLITE_FLOAT32, blobs["float32"])
    atomic.write_bytes(paths.TFLITE_INT8, blobs["int8"])

    files = {"model.keras": Path(paths.MODEL).stat().st_size,
             "saved_model/": sum(f.stat().st_size for f in Path(paths.SAVED_MODEL).rglob("*") if f.is_file()),
             "model_float32.tflite": len(blobs["float32"]), "model_int8.tflite": len(blobs["int8"])}
    atomic.write_json(paths.EXPORT_METRICS, {  # the SavedModel's size varies by a byte or so from run to run
        "test_cells": len(test_x), "threshold": round(cut, 6),
        **{f"tflite_{name}": d for name, d in agree.items()},
        "size_bytes": {name: size for name, size in files.items() if name != "saved_model/"},
    })
    atomic.write_text(paths.MODEL_CARD, card.model_card(
        p, model.count_params(), models.image_size(model), stored,
        json.loads(Path(paths.METRICS).read_text()), json.loads(Path(paths.SPLIT_SIZES).read_text()),
        file_sha256(paths.RAW_ZIP), files, {f"TFLite {name}": d for name, d in agree.items()}))
    print(f"export: SavedModel, TFLite float32 ({files['model_float32.tflite'] / 1e6:.2f} MB, max probability "
          f"difference {agree['float32']['max_probability_difference']:.2g}) and int8 "
          f"({files['model_int8.tflite'] / 1e6:.2f} MB, {agree['int8']['agreement']:.2%} of {len(test_x)} test cells "
          f"called as the Keras model does) -> models/export/")


if __name__ == "__main__":
    run_main(main)
