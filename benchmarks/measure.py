"""What several benchmarks share: a child process's peak memory, and a large set of distinct real crops."""

from __future__ import annotations

import argparse
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import cv2
import numpy as np
import psutil

DEV_ZIP = Path(__file__).resolve().parents[2] / "shared" / "data" / "nih_malaria_dev.zip"


def dev_zip_args(ap: argparse.ArgumentParser, large: str) -> argparse.Namespace:
    """Parse the arguments with --zip (the NIH dev crops) and --large (how many crops in `large`); exit
    with one line when the zip is not there."""
    ap.add_argument("--zip", type=Path, default=DEV_ZIP)
    ap.add_argument("--large", type=int, default=27558, help=f"crops in {large}")
    args = ap.parse_args()
    if not args.zip.is_file():
        sys.exit(f"error: {args.zip} not found (the NIH dev crops; see ../shared/data/README.md)")
    return args


def peak_mb(argv: list[str], cwd: str | Path | None = None) -> dict[str, float]:
    """Run `argv`; return the peak of its process tree's summed memory, in MB, sampled every 10 ms:
    `pss` (pages shared between the tree's processes counted once), `rss` (what top shows) and `uss`
    (pages no other process has: its own allocations, not the libraries' code)."""
    proc = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.DEVNULL)
    peak, done = {"pss": 0, "rss": 0, "uss": 0}, threading.Event()

    def sample():
        parent = psutil.Process(proc.pid)
        while not done.is_set():
            try:
                infos = [p.memory_full_info() for p in (parent, *parent.children(recursive=True)) if p.is_running()]
                for key in peak:
                    peak[key] = max(peak[key], sum(getattr(i, key) for i in infos))
            except psutil.Error:
                pass
            time.sleep(0.01)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    proc.wait()
    done.set()
    sampler.join()
    if proc.returncode not in (0, 1):  # 1: some files were rejected, which the commands report and go on
        raise SystemExit(f"benchmark child {argv[:3]} failed with exit code {proc.returncode}")
    return {key: value / 2**20 for key, value in peak.items()}


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
