"""Benchmark: `malaria-cnn screen` on the labelled smear photos of ../shared/data/fields, both batches.

Segmentation, no model needed, per batch (pale `iml_malaria`, dark `iml_malaria_dark`), these rules against
the earlier ones (no stained holes filled, ten flood levels, no uncertain objects), both run here: the
labelled cells found per type (each parasite stage, plain red cells; found: a found cell's centre in the
box, `screening/missed.py`) and why each missed one was lost; red-cell detection precision, recall and F1
on all photos and on those whose boxes cover at least 85% of their cell pixels; segmentation time per
photo, the two rule sets timed alternately, photo by photo.

With a model (`--model`, when it exists), on each batch: red-cell detection precision, recall and F1
against the labelled boxes (rules of `screening/truth.py`), parasitized-cell recall and precision end to end (a parasitized cell the
segmentation missed counts as missed), per-photo parasitemia absolute error (benchmarks/stain.py measures the
stain side on both shared batches). The same figures for a naive baseline: Otsu on the green channel
and one box per outer contour.

Speed, each against a baseline timed in the same run: photos/s of the whole command at 1280x960
(decode, segment, cut, classify, write every output; TensorFlow already loaded) against segmentation
alone (decode + segment) and against the naive baseline; seconds for one 5312x2988 photo (a real
photo upscaled 4.15x and cropped, as JPEG), whole screen against segmentation alone.

    python benchmarks/screen.py --model models/model.keras
    python benchmarks/screen.py --segmentation-only
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
FIELDS = ROOT.parent / "shared" / "data" / "fields"
BATCHES = ("iml_malaria", "iml_malaria_dark")

from malaria_cnn.data import images, stain  # noqa: E402
from malaria_cnn.evaluation import operating_point  # noqa: E402
from malaria_cnn.screening import missed, regions, segment, truth  # noqa: E402
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


@contextlib.contextmanager
def earlier_rules():
    """The segmentation as it was before stained holes were filled, with ten flood levels and no uncertain
    objects (every region the rules dropped was left out)."""
    saved = segment.PALE_HOLE, segment.FLOOD_STEPS, regions.UNCERTAIN_AREA
    segment.PALE_HOLE, segment.FLOOD_STEPS, regions.UNCERTAIN_AREA = 0.0, 10, 0.0
    try:
        yield
    finally:
        segment.PALE_HOLE, segment.FLOOD_STEPS, regions.UNCERTAIN_AREA = saved


RULES = {"earlier rules": earlier_rules, "these rules": contextlib.nullcontext}


def segmented(photos: dict[str, np.ndarray], boxes: dict, coverage: dict[str, float]) -> dict:
    """Per rule set: the labelled cells found per type (missed.summarise), detection on all photos and on those
    whose boxes cover >= 85% of their cell pixels, and the cells found that are uncertain objects."""
    out = {}
    for name, rules in RULES.items():
        tallies, scores, uncertain = {}, {}, 0
        with rules():
            for f, rgb in photos.items():
                seg = segment.segment(rgb)
                tallies[f] = missed.tally(seg.boxes, seg.dropped, seg.dropped_why, boxes[f])
                scores[f] = truth.score_photo(seg.boxes, np.zeros(len(seg.boxes), bool), boxes[f])
                uncertain += seg.kinds.count(regions.UNCERTAIN)
        well = {f: v for f, v in scores.items() if coverage[f] >= 0.85}
        out[name] = {"found": missed.summarise(tallies, boxes), "all": truth.summarise(scores),
                     "covered": truth.summarise(well), "uncertain": uncertain}
    return out


def print_segmented(batch: str, result: dict, t: dict[str, float], n: int) -> None:
    print(f"\n{batch}: {n} photos, segmentation alone (no model)")
    names = list(result)
    types = list(result[names[-1]]["found"]["by_type"])
    print(f"  {'found / labelled':24s} " + " ".join(f"{k:>16s}" for k in names))
    for kind in types:
        cells = []
        for name in names:
            c = result[name]["found"]["by_type"][kind]
            cells.append(f"{c['found']:,}/{c['labelled']:,} {c['share']:.1%}")
        print(f"  {kind:24s} " + " ".join(f"{c:>16s}" for c in cells))
    for name in names:
        r = result[name]
        d, w, par = r["all"]["detection"], r["covered"]["detection"], r["found"]["parasitized"]
        print(f"  {name}: parasitized found {par['found']}/{par['labelled']} ({par['share']:.1%}); detection P "
              f"{d['precision']:.3f} R {d['recall']:.3f} F1 {d['f1']:.3f} ({r['all']['found']:,} found, "
              f"{r['uncertain']:,} uncertain objects); on the {r['covered']['photos']} photos whose boxes cover "
              f">= 85% of their cells: P {w['precision']:.3f} R {w['recall']:.3f} F1 {w['f1']:.3f}; "
              f"{1000 * t[name] / n:.0f} ms a photo")
        print("\n".join("    " + line.strip() for line in missed.lines(r["found"]) if "missed" in line))
    print(f"  segmentation time, these rules / the earlier ones: {t[names[-1]] / t[names[0]]:.2f}x")


def segmentation(repeat: int) -> None:
    """The segmentation section, for each batch."""
    for batch in BATCHES:
        folder = FIELDS / batch
        boxes = truth.load(folder / "annotations.json")
        photos = {f.name: images.decode_rgb(f.read_bytes()) for f in sorted(folder.glob("*.JPG"))}
        coverage = {f: label_coverage(rgb, boxes[f]) for f, rgb in photos.items()}
        result = segmented(photos, boxes, coverage)
        spent = {name: np.zeros(repeat) for name in RULES}
        for k in range(repeat):  # photo by photo, one rule set then the other, so both see the same load
            for rgb in photos.values():
                for name, rules in RULES.items():
                    with rules():
                        spent[name][k] += timed(lambda: segment.segment(rgb), 1)
        print_segmented(batch, result, {k: float(np.median(v)) for k, v in spent.items()}, len(photos))


def accuracy(score, files, boxes, size, threshold, mode, span) -> tuple[dict, dict]:
    scores = {}
    for photo in screen(score, files, size, threshold, stain_mode=mode, stain_range=span, progress=False):
        if photo.referred:
            continue
        called = np.array([label == "Parasitized" for label in photo.labels], bool)
        scores[photo.file_name] = truth.score_photo(photo.boxes, called, boxes[photo.file_name])
    return truth.summarise(scores), scores


def model_accuracy(score, folder: Path, size: int, threshold: float, mode: str, span) -> None:
    """Detection, parasitized-cell recall and precision end to end, and parasitemia error on one batch's photos,
    with each rule set, and the naive baseline's detection."""
    files = sorted(folder.glob("*.JPG"))
    boxes = truth.load(folder / "annotations.json")
    results = {}
    for name, rules in RULES.items():
        with rules():
            results[name], _ = accuracy(score, files, boxes, size, threshold, mode, span)
    naive = {}
    for f in files:
        found = naive_boxes(images.decode_rgb(f.read_bytes()))
        naive[f.name] = truth.score_photo(found, np.zeros(len(found), bool), boxes[f.name])
    results["naive Otsu + contours"] = truth.summarise(naive)
    print(f"\n{folder.name}, {len(files)} photos, screened\n{'':24s} {'found':>6s} {'labelled':>8s} {'P':>6s} "
          f"{'R':>6s} {'F1':>6s} {'par. R':>7s} {'par. P':>7s} {'MAE pts':>8s} {'called':>7s} {'referred':>8s}")
    for name, s in results.items():
        d, p = s["detection"], s["parasitized"]
        par = (f"{p['recall']:7.3f} {p['precision'] or 0:7.3f} {100 * s['parasitemia_abs_error']['mean']:8.2f} "
               f"{s['parasitized_called']:7,d} {len(files) - s['photos']:8d}" if "naive" not in name else "")
        print(f"{name:24s} {s['found']:6,d} {s['labelled']:8,d} {d['precision']:6.3f} {d['recall']:6.3f} "
              f"{d['f1']:6.3f} {par}")
    print(f"  parasitized boxes: {results['these rules']['parasitized_labelled']}")


def timed(fn, repeat: int) -> float:
    spent = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        spent.append(time.perf_counter() - start)
    return float(np.median(spent))


def speed(score, files: list[Path], size: int, threshold: float, mode: str, repeat: int) -> None:
    """The whole command's speed on the photos and on one 5312x2988 photo, against segmentation alone."""
    with tempfile.TemporaryDirectory() as tmp:
        def whole():
            with contextlib.redirect_stdout(io.StringIO()):
                run(score, files, Path(tmp) / "out", size, threshold, stain_mode=mode,
                    progress=False)

        t_whole = timed(whole, repeat)
        t_seg = timed(lambda: [segment.segment(images.decode_rgb(f.read_bytes())) for f in files], repeat)
        t_naive = timed(lambda: [naive_boxes(images.decode_rgb(f.read_bytes())) for f in files], repeat)
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
                run(score, [big_path], Path(tmp) / "big", size, threshold, stain_mode=mode,
                    progress=False)

        t_big = timed(whole_big, repeat)
        t_big_seg = timed(lambda: segment.segment(images.decode_rgb(big_path.read_bytes(), max_pixels=64_000_000)),
                          repeat)
        cells = len(segment.segment(images.decode_rgb(big_path.read_bytes(), max_pixels=64_000_000)).boxes)
        print(f"5312x2988 ({big_path.stat().st_size / 1e6:.1f} MB JPEG, {cells} cells): whole screen {t_big:.2f} s; "
              f"decode + segmentation {t_big_seg:.2f} s (whole / that {t_big / t_big_seg:.2f}x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=str(ROOT / "models" / "model.keras"))
    parser.add_argument("--threshold-file", help="default: threshold.json beside the model")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs of each speed figure (median)")
    parser.add_argument("--segmentation-only", action="store_true", help="the segmentation section alone")
    args = parser.parse_args()
    if not all((FIELDS / b / "annotations.json").is_file() for b in BATCHES):
        sys.exit(f"the labelled photos are not here ({FIELDS})")
    segmentation(args.repeat)
    if not args.segmentation_only and not Path(args.model).is_file():
        print(f"\nno model at {args.model}: the model's sections left out")
    if args.segmentation_only or not Path(args.model).is_file():
        return
    model = model_io.load(args.model)
    threshold = operating_point.load(args.threshold_file or Path(args.model).with_name("threshold.json"), args.model)
    size = model_io.image_size(model)
    score = model_io.scorer(model, 256)
    score(np.zeros((2, size, size, 3), np.uint8))  # TensorFlow's first call is not the command's work
    range_file = Path(args.model).with_name("stain_range.json")
    span = stain.StainRange.load(range_file, args.model) if range_file.is_file() else None
    print(f"\nmodel {args.model} (threshold {threshold:.3f})")
    for batch in BATCHES:
        model_accuracy(score, FIELDS / batch, size, threshold, model_io.stain_mode(model), span)
    speed(score, sorted((FIELDS / BATCHES[0]).glob("*.JPG")), size, threshold, model_io.stain_mode(model), args.repeat)


if __name__ == "__main__":
    main()
