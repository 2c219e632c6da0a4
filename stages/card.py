"""Stage card: the model card from what the other stages wrote -> models/export/MODEL_CARD.md.

Its own stage, so that a change to the evaluation (evaluate.bootstrap, say) rewrites the card and
nothing of the export.
"""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # run the package in this tree

from malaria_cnn.core import atomic, params, paths
from malaria_cnn.core.errors import run_main
from malaria_cnn.data import manifest
from malaria_cnn.release import card


def _json(path: str) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def main() -> None:
    p = params.load()
    exported = _json(paths.EXPORT_METRICS)
    files = exported["size_bytes"]  # not the SavedModel's: its bytes vary from export to export
    no_slide = sum(r.slide == r.file for r in manifest.read(paths.MANIFEST))  # ingest's own group for unnamed files
    parity = {**({"model.keras": exported["model_keras"]} if "model_keras" in exported else {}),
              "SavedModel": exported["saved_model"],
              **{f"TFLite {name}": exported[f"tflite_{name}"] for name in ("float32", "int8")}}
    atomic.write_text(paths.MODEL_CARD, card.model_card(
        p, exported["parameters"], exported["image_size"], _json(paths.THRESHOLD), _json(paths.METRICS),
        _json(paths.SPLIT_SIZES), atomic.file_sha256(paths.RAW_ZIP), files, parity, no_slide))
    print(f"card: -> {paths.MODEL_CARD}")


if __name__ == "__main__":
    run_main(main)
