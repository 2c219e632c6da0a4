"""Benchmark: how fast `dvc repro` is when nothing changed, and when a crop in a folder source was touched.

The `listing` stage runs on every `dvc repro` (it lists the names, sizes and modification times behind
`data.path`, so that an edit in a folder reruns ingest). This measures what that costs against the
baseline, measured in the same run: the same pipeline on the built-in synthetic set, whose listing is
one line. Each repository is a copy of the project with the end-to-end tests' tiny training params
(training does not run in the timed part), brought up to date once, then timed: the median of
--repeat no-op runs, then one run after a crop's modification time changed (ingest reruns, finds the
same crops and leaves preprocess and everything after it alone). Folders: the NIH dev crops extracted
(8,511 files) and 27,558 distinct crops (each dev crop and its 90-degree rotations).

    python benchmarks/noop_repro.py
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "e2e")]  # temp_repo and the conftest it reads

from measure import dev_zip_args, make_large_zip  # noqa: E402

from temp_repo import make, ran  # noqa: E402  (the end-to-end tests' copy of the project)


def repro(repo: Path) -> tuple[float, str]:
    start = time.perf_counter()
    result = subprocess.run([str(Path(sys.executable).with_name("dvc")), "repro"], cwd=repo, capture_output=True,
                            text=True, env={**os.environ, "DVC_NO_ANALYTICS": "1"})
    if result.returncode:
        sys.exit(f"dvc repro failed in {repo}:\n{result.stdout}\n{result.stderr}")
    return time.perf_counter() - start, result.stdout + result.stderr


def measure(repo: Path, repeat: int, folder: Path | None) -> dict:
    repro(repo)  # brings it up to date: not timed
    noop = []
    for _ in range(repeat):
        seconds, out = repro(repo)
        assert ran(out) == [], ran(out)
        noop.append(seconds)
    got = {"noop": statistics.median(noop)}
    if folder:
        crop = next(p for p in sorted(folder.rglob("*.png")))
        os.utime(crop, ns=(crop.stat().st_atime_ns, crop.stat().st_mtime_ns + 1_000_000_000))
        got["touched"], out = repro(repo)
        got["ran"] = ran(out)
    return got


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=5, help="no-op runs timed for each")
    args = dev_zip_args(ap, "the larger folder")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        with zipfile.ZipFile(args.zip) as zf:
            zf.extractall(tmp / "dev")
        make_large_zip(args.zip, tmp / "large.zip", args.large)
        with zipfile.ZipFile(tmp / "large.zip") as zf:
            zf.extractall(tmp / "large")
        cases = {"synthetic (the baseline)": None, "dev crops folder": tmp / "dev",
                 f"{args.large:,}-crop folder": tmp / "large"}
        base = None
        print(f"{'':30}{'files':>8}{'no-op s':>9}{'x base':>8}{'touched s':>11}  stages run after the touch")
        for label, folder in cases.items():
            data = {"source": "folder", "path": str(folder)} if folder else {"source": "synthetic"}
            repo = make(tmp / f"repo-{len(label)}", {"data": data})
            got = measure(repo, args.repeat, folder)
            base = base or got["noop"]
            files = sum(1 for _ in folder.rglob("*.png")) if folder else 0
            touched = f"{got['touched']:11.2f}  {', '.join(got['ran']) or 'none'}" if folder else ""
            print(f"{label:30}{files:8,}{got['noop']:9.2f}{got['noop'] / base:8.2f}{touched}", flush=True)


if __name__ == "__main__":
    main()
