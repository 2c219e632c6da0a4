"""Benchmark: `malaria-cnn screen` on the 60 labelled smear photos of ../shared/data/fields/iml_malaria.

Accuracy: red-cell detection precision, recall and F1 against the labelled boxes (rules of
`screening/truth.py`), parasitized-cell recall and precision end to end (a parasitized cell the
segmentation missed counts as missed), per-photo parasitemia absolute error (benchmarks/stain.py measures the
stain side on both shared batches). The same figures for a naive baseline: Otsu on the green channel
and one box per outer contour.

Speed, each against a baseline timed in the same run: photos/s of the whole command at 1280x960
(decode, segment, cut, classify, write every output; TensorFlow already loaded) against segmentation
alone (decode + segment) and against the naive baseline; seconds for one 5312x2988 photo (a real
photo upscaled 4.15x and cropped, as JPEG), whole screen against segmentation alone.

    python benchmarks/screen.py --model models/model.keras
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
FIELDS = ROOT.parent / "shared" / "data" / "fields" / "iml_malaria"

from malaria_cnn.data import images, stain  # noqa: E402
from malaria_cnn.evaluation import operating_point  # noqa: E402
from malaria_cnn.screening import segment, truth  # noqa: E402
from malaria_cnn.screening.field import field_mask  # noqa: E402
from malaria_cnn.screening.run import run  # noqa: E402
from malaria_cnn.screening.screen import screen  # noqa: E402
from malaria_cnn.training import model_io  # noqa: E402


def naive_boxes(rgb: np.ndarray) -> np.ndarray:
    """Otsu on 255 - green, one box per outer contour, specks below a third of the median area dropped."""
    inv = 255 - rgb[..., 1]
    _, mask = cv2.threshold(inv, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    areas = np.array([cv2.contourArea(c) for c in contours])
    keep = [c for c, a in zip(contours, areas) if len(areas) and a >= np.median(areas) / 3]
    return np.array([cv2.boundingRect(c) for c in keep], int).reshape(-1, 4)


def label_coverage(rgb: np.ndarray, labelled: list[truth.Box]) -> float:
    """The share of a photo's cell pixels (Otsu's foreground, no segmentation) inside a labelled box:
    a measure, independent of the detections, of how completely the photo's cells were boxed."""
    f = field_mask(rgb)
    cells = segment.foreground(segment.stain_channel(rgb, f), f, hole_area=4000) > 0
    covered = np.zeros(cells.shape, bool)
    for b in labelled:
        covered[int(b.y):int(b.y + b.h), int(b.x):int(b.x + b.w)] = True
    return float((cells & covered).sum() / max(cells.sum(), 1))


def accuracy(score, files, boxes, size, threshold, mode, span) -> tuple[dict, dict]:
    scores = {}
    for photo in screen(score, files, size, threshold, stain_mode=mode, stain_range=span, progress=False):
        if photo.referred:
            continue
        called = np.array([label == "Parasitized" for label in photo.labels], bool)
        scores[photo.file_name] = truth.score_photo(photo.boxes, called, boxes[photo.file_name])
    return truth.summarise(scores), scores


def timed(fn, repeat: int) -> float:
    spent = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        spent.append(time.perf_counter() - start)
    return float(np.median(spent))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=str(ROOT / "models" / "model.keras"))
    parser.add_argument("--threshold-file", help="default: threshold.json beside the model")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs of each speed figure (median)")
    args = parser.parse_args()
    if not FIELDS.is_dir():
        sys.exit(f"the labelled photos are not here ({FIELDS})")
    files = sorted(FIELDS.glob("*.JPG"))
    boxes = truth.load(FIELDS / "annotations.json")
    model = model_io.load(args.model)
    threshold = operating_point.load(args.threshold_file or Path(args.model).with_name("threshold.json"), args.model)
    size = model_io.image_size(model)

    score = model_io.scorer(model, 256)
    score(np.zeros((2, size, size, 3), np.uint8))  # TensorFlow's first call is not the command's work
    print(f"{len(files)} photos of {FIELDS.name}; model {args.model} (threshold {threshold:.3f})")

    range_file = Path(args.model).with_name("stain_range.json")
    span = stain.StainRange.load(range_file, args.model) if range_file.is_file() else None
    results, per_photo = {}, {}
    results["as is"], per_photo["as is"] = accuracy(score, files, boxes, size, threshold,
                                                    model_io.stain_mode(model), span)
    naive = {}
    for f in files:
        found = naive_boxes(images.decode_rgb(f.read_bytes()))
        naive[f.name] = truth.score_photo(found, np.zeros(len(found), bool), boxes[f.name])
    results["naive Otsu + contours"] = truth.summarise(naive)
    print(f"{'':24s} {'found':>6s} {'labelled':>8s} {'P':>6s} {'R':>6s} {'F1':>6s} {'par. R':>7s} {'par. P':>7s} "
          f"{'MAE pts':>8s}")
    for name, s in results.items():
        d, p = s["detection"], s["parasitized"]
        par = (f"{p['recall']:7.3f} {p['precision'] or 0:7.3f} {100 * s['parasitemia_abs_error']['mean']:8.2f}"
               if "naive" not in name else f"{'':>7s} {'':>7s} {'':>8s}")
        print(f"{name:24s} {s['found']:6,d} {s['labelled']:8,d} {d['precision']:6.3f} {d['recall']:6.3f} "
              f"{d['f1']:6.3f} {par}")
    print(f"  parasitized boxes: {results['as is']['parasitized_labelled']}; called parasitized: "
          f"{results['as is']['parasitized_called']:,}; photos referred: {len(files) - results['as is']['photos']}")

    coverage = {f.name: label_coverage(images.decode_rgb(f.read_bytes()), boxes[f.name]) for f in files}
    for least in (0.8, 0.85, 0.9):
        chosen = {n: s for n, s in per_photo["as is"].items() if coverage[n] >= least}
        d = truth.summarise(chosen)["detection"]
        print(f"  photos whose boxes cover >= {least:.0%} of their cell pixels: {len(chosen)}; detection P "
              f"{d['precision']:.3f} R {d['recall']:.3f} F1 {d['f1']:.3f}")

    with tempfile.TemporaryDirectory() as tmp:
        def whole():
            with contextlib.redirect_stdout(io.StringIO()):
                run(score, files, Path(tmp) / "out", size, threshold, stain_mode=model_io.stain_mode(model),
                    progress=False)

        t_whole = timed(whole, args.repeat)
        t_seg = timed(lambda: [segment.segment(images.decode_rgb(f.read_bytes())) for f in files], args.repeat)
        t_naive = timed(lambda: [naive_boxes(images.decode_rgb(f.read_bytes())) for f in files], args.repeat)
        n = len(files)
        print(f"1280x960, {n} photos: whole screen {n / t_whole:.2f} photos/s; segmentation alone (one thread) "
              f"{n / t_seg:.2f} photos/s (whole / segmentation time {t_whole / t_seg:.2f}x); naive baseline "
              f"{n / t_naive:.2f} photos/s ({t_whole / t_naive:.1f}x its time)")

        photo = cv2.imread(str(files[0]))
        big = cv2.resize(photo, None, fx=5312 / 1280, fy=5312 / 1280, interpolation=cv2.INTER_CUBIC)[:2988]
        big_path = Path(tmp) / "big.jpg"
        cv2.imwrite(str(big_path), big, [cv2.IMWRITE_JPEG_QUALITY, 90])

        def whole_big():
            with contextlib.redirect_stdout(io.StringIO()):
                run(score, [big_path], Path(tmp) / "big", size, threshold, stain_mode=model_io.stain_mode(model),
                    progress=False)

        t_big = timed(whole_big, args.repeat)
        t_big_seg = timed(lambda: segment.segment(images.decode_rgb(big_path.read_bytes(), max_pixels=64_000_000)),
                          args.repeat)
        cells = len(segment.segment(images.decode_rgb(big_path.read_bytes(), max_pixels=64_000_000)).boxes)
        print(f"5312x2988 ({big_path.stat().st_size / 1e6:.1f} MB JPEG, {cells} cells): whole screen {t_big:.2f} s; "
              f"decode + segmentation {t_big_seg:.2f} s (whole / that {t_big / t_big_seg:.2f}x)")


if __name__ == "__main__":
    main()
