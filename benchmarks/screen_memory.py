"""Benchmark: the peak memory and wall time of `malaria-cnn screen` on one photo, by the photo's size.

Each size is one JPEG (quality 90) upscaled from a labelled photo of ../shared/data/fields/iml_malaria
(a synthetic field when those are not here), screened in a fresh process with the given model; the
peak is the process tree's RSS sampled every 10 ms (measure.py), the time the whole command's
(TensorFlow's start included). The baseline is the 12 MP phone photo measured in the same run: each
size's peak and time are also given as a ratio to it.

    python benchmarks/screen_memory.py --model models/model.keras
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
import time
from pathlib import Path

import cv2

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
FIELDS = ROOT.parent / "shared" / "data" / "fields" / "iml_malaria"

from measure import peak_mb

from malaria_cnn.screening.synthetic_field import make_field

SIZES = {"12 MP": (4000, 3000), "108 MP": (12000, 9000), "200 MP": (16320, 12240)}  # (width, height), 4:3


def source() -> tuple[str, object]:
    """(what it is, BGR pixels) of the photo every size is upscaled from."""
    photos = sorted(FIELDS.glob("*.JPG"))
    if photos:
        return photos[0].name, cv2.imread(str(photos[0]))
    return "synthetic field 0", cv2.cvtColor(make_field(0).rgb, cv2.COLOR_RGB2BGR)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(ROOT / "models" / "model.keras"))
    ap.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES), help="the first is the baseline")
    args = ap.parse_args()
    command = str(Path(sys.executable).with_name("malaria-cnn"))
    name, base = source()
    print(f"model {args.model}; photos upscaled from {name} ({base.shape[1]}x{base.shape[0]})")
    print(f"{'photo':>8} {'pixels':>12} {'JPEG MB':>8} {'cells':>6} {'peak RSS MB':>12} {'peak USS MB':>12} "
          f"{'wall s':>7} {'RSS / base':>11} {'time / base':>12}")
    baseline = None
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for label in args.sizes:
            w, h = SIZES[label]
            photo = tmp / f"photo_{w}x{h}.jpg"
            cv2.imwrite(str(photo), cv2.resize(base, (w, h), interpolation=cv2.INTER_CUBIC),
                        [cv2.IMWRITE_JPEG_QUALITY, 90])
            out = tmp / f"out_{w}x{h}"
            start = time.perf_counter()
            got = peak_mb([command, "screen", str(photo), "--model", str(Path(args.model).resolve()), "--out", str(out),
                           "--max-pixels", str(w * h)], cwd=tmp)
            spent = time.perf_counter() - start
            with open(out / "images.csv", newline="") as fh:
                row = next(csv.DictReader(fh))
            if row["error"]:
                raise SystemExit(f"{label}: {row['error']}")
            baseline = baseline or (got["rss"], spent)
            print(f"{label:>8} {w * h:12,d} {photo.stat().st_size / 2**20:8.1f} {row['cells']:>6} {got['rss']:12.0f} "
                  f"{got['uss']:12.0f} {spent:7.1f} {got['rss'] / baseline[0]:11.2f} {spent / baseline[1]:12.2f}",
                  flush=True)
            photo.unlink()


if __name__ == "__main__":
    main()
