"""Benchmark: the exported copies on raw crops against `malaria-cnn predict`, and the model file fed as its
client code says, on labelled NIH crops, in one run.

For each zip of crops (NIH's layout, Parasitized/ and Uninfected/; with --side, each crop first resampled to
that side, as another camera would cut it, so that the model's size is not an integer factor away):
`predict`'s probabilities (the Keras model on crops prepared by `release.predict.load`, standardised in
numpy), then each copy exported from the same model
(SavedModel, TFLite float32 and int8, int8 calibrated on --calibration raw crops of the first zip) fed the
raw crops, resized as a client is told to (area averaging) and, for the float32 file, bilinear or nearest
instead: the
share of crops called as `predict` calls them at the stored threshold, the largest probability difference,
accuracy and ROC AUC (Parasitized positive). `model.keras client` is release/clients.py's code for the model
file (plain `keras.models.load_model`, raw crops in) run in a process without this package, on the file as
the final stage writes it now: the model re-saved by model_io.save into a scratch folder (a file written
before the standardisation joined the file is the network alone, and re-saving puts it in front).

    python benchmarks/exports.py --model-dir models ../shared/data/nih_malaria_dev.zip holdout.zip [--side 100]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from malaria_cnn.core.labels import CLASS_NAMES, POSITIVE  # noqa: E402
from malaria_cnn.data import images  # noqa: E402
from malaria_cnn.data.inputs import Item  # noqa: E402
from malaria_cnn.evaluation import metrics, operating_point  # noqa: E402
from malaria_cnn.release import clients, export, predict  # noqa: E402
from malaria_cnn.training import model_io  # noqa: E402


def crops(zip_path: Path, size: int, side: int) -> dict:
    """Labels, PNG bytes, raw crops (resized by area averaging, bilinear, nearest) and `predict`'s input (crops
    standardised in numpy) of a zip's crops; first resampled to side x side (area) when side is not 0."""
    with zipfile.ZipFile(zip_path) as zf:
        names = sorted(n for n in zf.namelist() if n.lower().endswith(".png"))
        data = [zf.read(n) for n in names]
    if side:
        data = [images.encode_png(cv2.resize(images.decode_rgb(d), (side, side), interpolation=cv2.INTER_AREA))
                for d in data]
    decoded = [images.decode_rgb(d) for d in data]
    out = {"data": data, "positive": np.array([f"/{CLASS_NAMES[POSITIVE]}/" in n for n in names]),
           "predict": np.stack([predict.load(Item(n, d), size)[0] for n, d in zip(names, data)]),
           "area": np.stack([predict.load(Item(n, d), size, stain_mode="none")[0] for n, d in zip(names, data)])}
    for name, interpolation in (("bilinear", cv2.INTER_LINEAR), ("nearest", cv2.INTER_NEAREST)):
        out[name] = np.stack([cv2.resize(rgb, (size, size), interpolation=interpolation) for rgb in decoded])
    return out


def keras_client(model_path: Path, set_: dict, scratch: Path) -> np.ndarray:
    """P(Parasitized) from release/clients.py's model.keras code, in a process without this package."""
    folder = scratch / "crops"
    folder.mkdir(exist_ok=True)
    files = []
    for i, d in enumerate(set_["data"]):
        files.append(folder / f"{i:06d}.png")
        files[-1].write_bytes(d)
    script = scratch / "client.py"
    script.write_text("import sys; sys.modules['malaria_cnn'] = None\n" + clients.KERAS, encoding="utf-8")
    out = subprocess.run([sys.executable, str(script), str(model_path), *map(str, files)], capture_output=True,
                         text=True, check=True).stdout
    return np.array([float(line.rsplit(",", 1)[1]) for line in out.splitlines()])


def scores(p: np.ndarray, reference: np.ndarray, positive: np.ndarray, threshold: float) -> str:
    agree = np.mean((p >= threshold) == (reference >= threshold))
    accuracy = np.mean((p >= threshold) == positive)
    auc = float(metrics.roc_auc(np.ones((1, len(p))), positive, p)[0])
    return f"{agree:9.4%} {np.abs(p - reference).max():9.5f} {accuracy:8.4f} {auc:7.4f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("zips", nargs="+", type=Path)
    parser.add_argument("--model-dir", type=Path, default=ROOT / "models")
    parser.add_argument("--calibration", type=int, default=200)
    parser.add_argument("--side", type=int, default=0, help="resample each crop to this side first (0: as it is)")
    args = parser.parse_args()
    model_path = args.model_dir / "model.keras"
    model = model_io.load(model_path)
    threshold = float(operating_point.load_record(args.model_dir / "threshold.json", model_path)["threshold"])
    size = model_io.image_size(model)
    sets = {z.name: crops(z, size, args.side) for z in args.zips}
    scorer = model_io.scorer(model, 64)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        shipped = tmp / "model.keras"
        model_io.save(model, shipped)
        export.saved_model(model, tmp / "saved")
        first = next(iter(sets.values()))["area"]
        copies = {"SavedModel": export.SavedModelCopy(tmp / "saved"),
                  "TFLite float32": export.LiteModel(export.tflite(tmp / "saved")),
                  "TFLite int8": export.LiteModel(export.tflite(tmp / "saved",
                                                                export.representative_crops(first, args.calibration)))}
        for name, s in sets.items():
            reference = scorer(s["predict"])
            print(f"\n{name}: {len(reference):,} crops{f' resampled to {args.side} px' if args.side else ''}, "
                  f"model {size}x{size}, threshold {threshold:.4f}")
            print(f"{'fed':34s} {'calls ==':>9s} {'max |dp|':>9s} {'accuracy':>8s} {'ROC AUC':>7s}")
            print(f"{'predict (numpy standardisation)':34s} {scores(reference, reference, s['positive'], threshold)}")
            for copy_name, copy in copies.items():
                print(f"{copy_name + ', raw, area':34s} "
                      f"{scores(copy.parasitized_probability(s['area'], 256), reference, s['positive'], threshold)}")
            for resizing in ("bilinear", "nearest"):
                lite = copies["TFLite float32"].parasitized_probability(s[resizing], 256)
                print(f"{'TFLite float32, raw, ' + resizing:34s} {scores(lite, reference, s['positive'], threshold)}")
            scratch = tmp / name
            scratch.mkdir()
            print(f"{'model.keras client, raw':34s} "
                  f"{scores(keras_client(shipped, s, scratch), reference, s['positive'], threshold)}")


if __name__ == "__main__":
    main()
