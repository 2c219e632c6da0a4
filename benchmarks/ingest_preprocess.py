"""Benchmark: ingest + preprocess of a zip of crops, against the tutorial's loop, in one run.

The tutorial's way (DigitalSreeni's malaria notebook): one process walks the extracted class
folders, cv2.imread + PIL resize into a Python list, then np.array. Ours: the `zip` source's
ingest (copy, checksum, manifest), or with --folder the `folder` source's on the same extracted
folders the tutorial reads (pack, checksum, manifest), then preprocess (decode on every core into one npz).
Each side runs in its own fresh process, alternately, --repeat times; the median wall time is
reported. Peak memory is measured in one more run of each, since sampling it costs CPU: the
largest summed PSS (proportional set size: pages shared between forked workers counted once)
of the process and its children, sampled every 10 ms. The CPU seconds of each side's process tree
(user + system) tell the work apart from the machine's load: on a shared machine our two workers
wait for cores the tutorial's one process does not need.

    python benchmarks/ingest_preprocess.py                       # the dev zip, image size 64
    python benchmarks/ingest_preprocess.py --folder              # the dev crops as a folder
    python benchmarks/ingest_preprocess.py --large 27558         # also: a 27,558-crop set, preprocess memory
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import textwrap
import time
import zipfile
from pathlib import Path

import psutil
from measure import make_large_zip, peak_mb

ROOT = Path(__file__).resolve().parents[1]
DEV_ZIP = ROOT.parent / "shared" / "data" / "nih_malaria_dev.zip"

OURS = textwrap.dedent("""
    import json, sys, time
    sys.path.insert(0, {src!r})
    from malaria_cnn.data.ingest import ingest
    from malaria_cnn.core.params import DataParams, PreprocessParams
    from malaria_cnn.data.preprocess import preprocess
    work, stage = {work!r}, {stage!r}
    t0 = time.perf_counter()
    if stage in ("both", "ingest"):
        ingest(DataParams(source={source!r}, path={path!r}), work + "/raw.zip", work + "/manifest.csv",
               work + "/rejects.csv")
    t1 = time.perf_counter()
    if stage in ("both", "preprocess"):
        preprocess(work + "/raw.zip", work + "/manifest.csv", work + "/cells.npz", work + "/decode_rejects.csv",
                   PreprocessParams(image_size={size}))
    print(json.dumps({{"ingest": t1 - t0, "preprocess": time.perf_counter() - t1}}))
""")

TUTORIAL = textwrap.dedent("""
    import json, os, time
    import cv2, numpy as np
    from PIL import Image
    t0 = time.perf_counter()
    dataset, label = [], []
    for cls, lab in (("Parasitized", 0), ("Uninfected", 1)):
        folder = os.path.join({folder!r}, cls)
        for name in os.listdir(folder):
            if name.split(".")[-1] == "png":
                image = cv2.imread(os.path.join(folder, name))
                image = Image.fromarray(image, "RGB")
                image = image.resize(({size}, {size}))
                dataset.append(np.array(image))
                label.append(lab)
    x, y = np.array(dataset), np.array(label)
    print(json.dumps({{"total": time.perf_counter() - t0, "n": len(y)}}))
""")


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)  # the finished children and their own children
    return usage.ru_utime + usage.ru_stime


def run_timed(code: str) -> tuple[dict, float]:
    """Run `code` in a fresh Python: (its JSON output with "cpu", the CPU seconds of its process tree, wall
    seconds)."""
    start, cpu = time.perf_counter(), _cpu_seconds()
    out = subprocess.run([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, check=True).stdout
    wall = time.perf_counter() - start
    return {**json.loads(out.strip().splitlines()[-1]), "cpu": _cpu_seconds() - cpu}, wall


def run_peak_mb(code: str) -> float:
    """Run `code` in a fresh Python and return the peak summed PSS of its process tree, in MB."""
    return peak_mb([sys.executable, "-c", code])["pss"]


def median(runs: list[tuple[dict, float]]) -> tuple[dict, float]:
    """The run with the median wall time."""
    return sorted(runs, key=lambda r: r[1])[len(runs) // 2]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--zip", type=Path, default=DEV_ZIP)
    ap.add_argument("--image-size", type=int, default=64)
    ap.add_argument("--large", type=int, default=0, help="also measure ingest and preprocess on this many crops")
    ap.add_argument("--repeat", type=int, default=3, help="timed runs of each side")
    ap.add_argument("--folder", action="store_true", help="ingest the extracted folders (the folder source)")
    ap.add_argument("--src", type=Path, default=ROOT / "src", help="the package to time (another checkout's src)")
    args = ap.parse_args()
    if not args.zip.is_file():
        raise SystemExit(f"{args.zip} not found")

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "extracted"
        with zipfile.ZipFile(args.zip) as zf:
            zf.extractall(folder)  # the tutorial starts from extracted folders; not timed
        tutorial = TUTORIAL.format(folder=str(folder / "cell_images"), size=args.image_size)
        work = Path(tmp) / "ours"
        work.mkdir()
        source, path = ("folder", folder / "cell_images") if args.folder else ("zip", args.zip)
        ours = OURS.format(src=str(args.src), work=str(work), stage="both", source=source, path=str(path),
                           size=args.image_size)
        tut_runs, our_runs = [], []
        for _ in range(args.repeat):  # alternate, so that a noisy neighbour hurts both sides alike
            tut_runs.append(run_timed(tutorial))
            our_runs.append(run_timed(ours))
        (tut, tut_wall), (parts, our_wall) = median(tut_runs), median(our_runs)
        tut_mb, our_mb = run_peak_mb(tutorial), run_peak_mb(ours)
        n = tut["n"]
        print(f"{n:,} crops from {args.zip.name}{' as a folder' if args.folder else ''}, image size {args.image_size}, {psutil.cpu_count()} cores, "
              f"median of {args.repeat} runs")
        print(f"{'':28}{'wall s':>9}{'images/s':>10}{'CPU s':>7}{'peak MB':>9}")
        print(f"{'tutorial loop':28}{tut_wall:9.2f}{n / tut_wall:10.0f}{tut['cpu']:7.2f}{tut_mb:9.0f}")
        print(f"{'ingest + preprocess (ours)':28}{our_wall:9.2f}{n / our_wall:10.0f}{parts['cpu']:7.2f}{our_mb:9.0f}"
              f"   (ingest {parts['ingest']:.2f} s, preprocess {parts['preprocess']:.2f} s)")
        print(f"speed-up {tut_wall / our_wall:.2f}x (CPU time, ours/tutorial: {parts['cpu'] / tut['cpu']:.2f}); "
              f"peak memory ratio ours/tutorial {our_mb / tut_mb:.2f}")

        if args.large:
            big = Path(tmp) / "large.zip"
            make_large_zip(args.zip, big, args.large)
            work = Path(tmp) / "large"
            work.mkdir()
            for stage in ("ingest", "preprocess"):
                code = OURS.format(src=str(ROOT / "src"), work=str(work), stage=stage, source="zip", path=str(big),
                                   size=args.image_size)
                _, wall = run_timed(code)
                print(f"{args.large:,} crops, {stage}: {wall:.1f} s, peak {run_peak_mb(code):.0f} MB")


if __name__ == "__main__":
    main()
