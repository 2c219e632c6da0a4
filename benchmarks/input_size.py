"""Benchmark: what a larger model input costs a whole `dvc repro`, against today's size in the same run.

Each arm is a fresh clone with `preprocess.image_size` set and every other param as committed, reproduced as a
user runs it (benchmarks/photos.py's `pipeline`), one after the other on the same machine. Data: the
built-in synthetic set, and with --zip the dev zip (8,511 NIH crops, 49 slides).

    python benchmarks/input_size.py --work /tmp/input-size [--zip] [--sizes 64 96]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

import photos as bench  # noqa: E402
from measure import DEV_ZIP  # noqa: E402
from malaria_cnn.core import params  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, required=True, help="a folder for the clones")
    ap.add_argument("--sizes", nargs="+", type=int, default=[64, 96])
    ap.add_argument("--zip", action="store_true", help="the dev zip, not the built-in synthetic set")
    args = ap.parse_args()
    if args.zip and not DEV_ZIP.is_file():
        sys.exit(f"input_size: {DEV_ZIP} is missing (the dev zip of NIH crops)")
    data = {"source": "zip", "path": str(DEV_ZIP)} if args.zip else {}
    folds = params.load(ROOT / "params.yaml").cv.folds
    args.work.mkdir(parents=True, exist_ok=True)
    minutes = {}
    for size in args.sizes:
        _, m = bench.pipeline(args.work, f"{'zip' if args.zip else 'synthetic'}_{size}", data, folds=folds,
                              more={"preprocess": {"image_size": size}})
        minutes[size] = sum(m.values())
    base = minutes[args.sizes[0]]
    for size, m in minutes.items():
        print(f"image_size {size}: dvc repro {m:.1f} min ({m / base:.2f}x size {args.sizes[0]})")


if __name__ == "__main__":
    main()
