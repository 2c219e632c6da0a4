"""Benchmark: ingest + preprocess of a zip of crops, against the tutorial's loop, in one run.

The tutorial's way (DigitalSreeni's malaria notebook): one process walks the extracted class
folders, cv2.imread + PIL resize into a Python list, then np.array. Ours: the `zip` source's
ingest (copy, checksum, manifest) then preprocess (decode on every core into one npz).
Each side runs in its own process; peak memory is the largest summed RSS of that process and
its children, sampled every 10 ms.

    python benchmarks/ingest_preprocess.py                       # the dev zip, image size 64
    python benchmarks/ingest_preprocess.py --large 27558         # also: a 27,558-crop set, preprocess memory
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import zipfile
from pathlib import Path

import cv2
import numpy as np
import psutil

ROOT = Path(__file__).resolve().parents[1]
DEV_ZIP = ROOT.parent / "shared" / "data" / "nih_malaria_dev.zip"

OURS = textwrap.dedent("""
    import json, sys, time
    sys.path.insert(0, {src!r})
    from malaria_cnn.ingest import ingest
    from malaria_cnn.params import DataParams, PreprocessParams
    from malaria_cnn.preprocess import preprocess
    work, stage = {work!r}, {stage!r}
    t0 = time.perf_counter()
    if stage in ("both", "ingest"):
        ingest(DataParams(source="zip", path={zip!r}), work + "/raw.zip", work + "/manifest.csv", work + "/rejects.csv")
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


def run_measured(code: str) -> tuple[dict, float, float]:
    """Run `code` in a fresh Python: (its JSON output, wall seconds, peak MB of its process tree)."""
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    peak, done = 0, threading.Event()

    def sample():
        nonlocal peak
        parent = psutil.Process(proc.pid)
        while not done.is_set():
            try:
                procs = [parent, *parent.children(recursive=True)]
                peak = max(peak, sum(p.memory_info().rss for p in procs if p.is_running()))
            except psutil.Error:
                pass
            time.sleep(0.01)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, _ = proc.communicate()
    wall = time.perf_counter() - start
    done.set()
    sampler.join()
    if proc.returncode:
        raise SystemExit(f"benchmark child failed with exit code {proc.returncode}")
    return json.loads(out.strip().splitlines()[-1]), wall, peak / 2**20


def make_large_zip(src: Path, dest: Path, n: int) -> None:
    """n distinct crops from the dev zip: each crop and its 90-degree rotations, re-encoded as PNG."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dest, "w", zipfile.ZIP_STORED) as zout:
        names = [i.filename for i in zin.infolist() if i.filename.endswith(".png")]
        written = 0
        for k in range(4):
            for name in names:
                if written == n:
                    return
                data = zin.read(name)
                if k:
                    img = np.rot90(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED), k)
                    data = cv2.imencode(".png", np.ascontiguousarray(img))[1].tobytes()
                stem = name[:-4] + (f"_rot{k * 90}" if k else "")
                zout.writestr(stem + ".png", data)
                written += 1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--zip", type=Path, default=DEV_ZIP)
    ap.add_argument("--image-size", type=int, default=64)
    ap.add_argument("--large", type=int, default=0, help="also measure preprocess on this many crops")
    args = ap.parse_args()
    if not args.zip.is_file():
        raise SystemExit(f"{args.zip} not found")

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "extracted"
        with zipfile.ZipFile(args.zip) as zf:
            zf.extractall(folder)  # the tutorial starts from extracted folders; not timed
        tut, tut_wall, tut_mb = run_measured(TUTORIAL.format(folder=str(folder / "cell_images"), size=args.image_size))
        work = Path(tmp) / "ours"
        work.mkdir()
        ours, our_wall, our_mb = run_measured(OURS.format(src=str(ROOT / "src"), work=str(work), stage="both",
                                                          zip=str(args.zip), size=args.image_size))
        n = tut["n"]
        print(f"{n:,} crops from {args.zip.name}, image size {args.image_size}, {psutil.cpu_count()} cores")
        print(f"{'':28}{'wall s':>9}{'images/s':>10}{'peak MB':>9}")
        print(f"{'tutorial loop':28}{tut_wall:9.2f}{n / tut_wall:10.0f}{tut_mb:9.0f}")
        print(f"{'ingest + preprocess (ours)':28}{our_wall:9.2f}{n / our_wall:10.0f}{our_mb:9.0f}"
              f"   (ingest {ours['ingest']:.2f} s, preprocess {ours['preprocess']:.2f} s)")
        print(f"speed-up {tut_wall / our_wall:.2f}x; peak memory ratio ours/tutorial {our_mb / tut_mb:.2f}")

        if args.large:
            big = Path(tmp) / "large.zip"
            make_large_zip(args.zip, big, args.large)
            work = Path(tmp) / "large"
            work.mkdir()
            _, ing_wall, ing_mb = run_measured(OURS.format(src=str(ROOT / "src"), work=str(work), stage="ingest",
                                                           zip=str(big), size=args.image_size))
            _, pre_wall, pre_mb = run_measured(OURS.format(src=str(ROOT / "src"), work=str(work), stage="preprocess",
                                                           zip=str(big), size=args.image_size))
            print(f"{args.large:,} crops: ingest {ing_wall:.1f} s (peak {ing_mb:.0f} MB), "
                  f"preprocess {pre_wall:.1f} s (peak {pre_mb:.0f} MB)")


if __name__ == "__main__":
    main()
