"""Benchmark: what scoring each cell by the mean of its 8 views (ranking.py --tta) costs `screen`, in one run.

The same photos are screened by the same model with one view a cell and with eight (its flips and quarter
turns, ranking.dihedral_scorer), alternately, --repeat times after a warm-up; the median seconds of each and
their ratio are printed.

    python benchmarks/tta_cost.py --model /tmp/photos-bench/ranking_size96_42/models/model.keras
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

import photos as bench  # noqa: E402
from ranking import dihedral_scorer  # noqa: E402

from malaria_cnn.screening.screen import screen  # noqa: E402
from malaria_cnn.training import model_io  # noqa: E402


def seconds(model, scorer, names: list[Path]) -> tuple[float, int]:
    """Seconds to screen these photos, and the cells found."""
    start, cells = time.perf_counter(), 0
    for photo in screen(scorer(model, 256), names, model_io.image_size(model), 0.5,
                        stain_mode=model_io.stain_mode(model), progress=False):
        cells += len(photo.p)
    return time.perf_counter() - start, cells


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, required=True, help="a trained model.keras")
    ap.add_argument("--batch", default="iml_malaria_dark", choices=bench.BATCHES)
    ap.add_argument("--photos", type=int, default=12)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    names = sorted((bench.FIELDS / args.batch).glob("*.JPG"))[:args.photos]
    if not names:
        sys.exit(f"tta_cost: no photos in {bench.FIELDS / args.batch}")
    model = model_io.load(args.model)
    _, cells = seconds(model, model_io.scorer, names)  # warm-up: traces the model, reads the photos once
    one, eight = [], []
    for _ in range(args.repeat):
        one.append(seconds(model, model_io.scorer, names)[0])
        eight.append(seconds(model, dihedral_scorer, names)[0])
    a, b = float(np.median(one)), float(np.median(eight))
    print(f"{len(names)} photos, {cells:,} cells: 1 view {a:.1f} s, 8 views {b:.1f} s ({b / a:.2f}x)")


if __name__ == "__main__":
    main()
