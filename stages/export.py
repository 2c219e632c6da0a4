"""Stage export: SavedModel, TFLite float32 and int8 taking raw crops, and their parity (and that of
models/model.keras loaded with plain Keras) on the test split's raw crops against the network fed them
standardised, as `malaria-cnn predict` does."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # run the package in this tree

from malaria_cnn.core import atomic, params, paths
from malaria_cnn.core.errors import run_main
from malaria_cnn.data import split
from malaria_cnn.evaluation import operating_point
from malaria_cnn.release import export
from malaria_cnn.training import model_io


def main() -> None:
    p = params.load()
    splits = split.load_cells(paths.CELLS_NPZ, paths.SPLITS_CSV, "train", "test")
    model = model_io.load(paths.MODEL)
    stored = operating_point.load_record(paths.THRESHOLD, paths.MODEL)
    threshold = float(stored["threshold"])
    size, batch = model_io.image_size(model), p.predict.batch_size
    reference = model_io.parasitized_probability(model, splits["test"]["x"], batch)
    test_x = export.raw_crops(paths.RAW_ZIP, splits["test"]["filename"], size, p.preprocess)
    calibration = export.raw_crops(paths.RAW_ZIP, export.representative_crops(splits["train"]["filename"],
                                                                             p.export.representative), size, p.preprocess)
    with atomic.atomic_dir(paths.SAVED_MODEL) as saved:
        export.saved_model(model, saved)
        blobs = {"float32": export.tflite(saved), "int8": export.tflite(saved, calibration)}
        copies = {"model_keras": export.KerasFile(paths.MODEL), "saved_model": export.SavedModelCopy(saved),
                  **{f"tflite_{name}": export.LiteModel(blob) for name, blob in blobs.items()}}
        agree = {name: export.parity(reference, copy.parasitized_probability(test_x, batch), threshold)
                 for name, copy in copies.items()}
    warning = export.check_int8(agree["tflite_int8"], p.export.min_int8_agreement)
    if warning:
        print(f"export: warning: {warning}", file=sys.stderr)
    atomic.write_bytes(paths.TFLITE_FLOAT32, blobs["float32"])
    atomic.write_bytes(paths.TFLITE_INT8, blobs["int8"])

    files = {"model.keras": Path(paths.MODEL).stat().st_size,
             "saved_model/": sum(f.stat().st_size for f in Path(paths.SAVED_MODEL).rglob("*") if f.is_file()),
             "model_float32.tflite": len(blobs["float32"]), "model_int8.tflite": len(blobs["int8"])}
    atomic.write_json(paths.EXPORT_METRICS, {  # the SavedModel's size varies by a byte or so from run to run
        "test_cells": len(test_x), "threshold": round(threshold, 6), "input": export.INPUT_NOTE, **agree,
        "size_bytes": {name: size for name, size in files.items() if name != "saved_model/"},
        "parameters": model.count_params(), "image_size": model_io.image_size(model),  # for the model card
    })
    print(export.summary(files, agree, len(test_x)))


if __name__ == "__main__":
    run_main(main)
