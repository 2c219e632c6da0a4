"""Benchmark: `malaria-cnn serve` against the `screen` command, on N synthetic 1280x960 smear photos.

Throughput, against a baseline timed in the same run on the same photos and model: photos/s of the
`screen` command's path in process (screening/run.py: decode, segment, cut, classify, write every
output; TensorFlow already loaded), against photos/s through a running `malaria-cnn serve` (a
subprocess on 127.0.0.1, the same model, warmed up by one photo): the photos uploaded to a new slide as
the New slide page sends them (one file per request, 3 requests at once), timed from the first upload's
start to the last photo's "done" (the server's own timestamp). --repeat rounds, each the command then
the server (the server idles while the command runs); the ratio is the median of the rounds' ratios.
Beside it, each round's CPU time a photo: the command's (this process) against the server's (its
process, uploads and polls included), which other jobs on a shared machine sway less than the rates.

Latency: from a single photo's upload reply to its "done", median over --latency uploads to an idle
server; the same for the first photo of the throughput run (the others still uploading) and for the
very first photo after the server started (TensorFlow's first call included), for information.

The goals: the server's throughput at least 0.9x the command's (>= 2 photos/s at 1280x960 on 2 cores) and
a photo's result within 3 s of its upload finishing. With --slide-photos N, first a synthetic slide of N
photos (benchmarks/serve_slide.py): one poll, an answer's round trip while photos are screened, the export.

    python benchmarks/serve.py --photos 24
    python benchmarks/serve.py --photos 12 --slide-photos 2000 --only-slide
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from malaria_cnn.data.cpus import available_cores
from malaria_cnn.screening.synthetic_field import make_field


def _load(path: Path):
    """A module from its file (this script is itself named serve.py, so `import serve.server` would find it)."""
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    spec.loader.exec_module(module)
    return module


served = _load(ROOT / "tests" / "serve" / "server.py")  # the real server as a user runs it, and JSON helpers
large_slide = _load(ROOT / "benchmarks" / "serve_slide.py").large_slide

UPLOADS_AT_ONCE = 3  # the New slide page's MAX_PARALLEL (serve/static/new_slide.js)
BATCH = 64  # the serve and screen commands' default --batch-size


def synthetic_photos(n: int, folder: Path) -> list[Path]:
    """n JPEG photos of 1280x960, about 120 red cells of about 72 px each (as the 60 IML photos: median
    119 labelled cells of 77 px): 6 synthetic fields, each in 4 orientations."""
    folder.mkdir(parents=True, exist_ok=True)
    fields = [make_field(seed, 1280, 960, cells=120, diameter=72).rgb for seed in range(min(6, n))]
    paths = []
    for i in range(n):
        rgb = fields[i % len(fields)]
        turn = (i // len(fields)) % 4
        rgb = rgb if turn == 0 else cv2.flip(rgb, turn - 2)
        path = folder / f"field_{i:03d}.jpg"
        cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 92])
        paths.append(path)
    return paths


def tiny_model(where: Path) -> Path:
    """An untrained compact network (24x24) saved as the pipeline saves one, as tests/conftest.py's model_dir."""
    from malaria_cnn.core.params import CompactNetParams, ModelParams, ThresholdParams
    from malaria_cnn.evaluation import operating_point
    from malaria_cnn.training import model_io, networks

    where.mkdir(parents=True, exist_ok=True)
    model = networks.build(ModelParams(preset="compact", compact=CompactNetParams(widths=(8, 16))), image_size=24)
    model_io.save(model, where / "model.keras")
    operating_point.save(where / "threshold.json", 0.5, ThresholdParams(), where / "model.keras", {})
    return where / "model.keras"


class Command:
    """The `screen` command's path in this process: its own model loading, TensorFlow warmed up first."""

    def __init__(self, model: Path, out: Path):
        from malaria_cnn.release.options import scorer

        self.m = scorer(argparse.Namespace(model=str(model), threshold=None, threshold_file=None, batch_size=BATCH))
        self.m.score(np.zeros((2, self.m.size, self.m.size, 3), np.uint8))  # TensorFlow's first call: not timed
        self.out, self.runs = out, 0

    def run(self, photos: list[Path]) -> float:
        """Seconds of screening/run.py on the photos, every output written (as `malaria-cnn screen`)."""
        from malaria_cnn.screening.run import run

        m, self.runs = self.m, self.runs + 1
        start, self.cpu = time.perf_counter(), time.process_time()
        with contextlib.redirect_stdout(io.StringIO()):
            run(m.score, photos, self.out / f"run{self.runs}", m.size, m.threshold, stain_mode=m.stain_mode,
                stain_range=m.stain_range, progress=False, rule=m.rule)
        self.cpu = time.process_time() - self.cpu  # this process's CPU seconds, every thread
        return time.perf_counter() - start

    def screen_alone(self, photos: list[Path]) -> float:
        """Seconds of screen() alone (decode, segment, cut, classify; no output written)."""
        from malaria_cnn.screening.screen import screen

        m = self.m
        start = time.perf_counter()
        for photo in screen(m.score, photos, m.size, m.threshold, stain_mode=m.stain_mode, stain_range=m.stain_range,
                            progress=False):
            del photo
        return time.perf_counter() - start


def cpu_seconds(pid: int) -> float:
    """A process's CPU time so far (user and system, every thread), s."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def send(client, slide_id: int, path: Path) -> tuple[int, float]:
    """Upload one photo; its id and the time (unix s) its reply arrived."""
    photos = served.ok_json(served.upload(client, slide_id, {path.name: path.read_bytes()}))["photos"]
    assert len(photos) == 1 and photos[0]["state"] != "failed", photos
    return photos[0]["id"], time.time()


def wait_done(server, slide_id: int) -> dict[int, dict]:
    """The slide's photos by id once none is queued or screening, every one asserted done. Polled every
    0.5 s as the New slide page polls (each poll costs the server a slide summary); the times reported are
    the server's own "done" stamps, not the poll's."""
    deadline = time.monotonic() + 600
    while True:
        slide = server.get(f"api/slides/{slide_id}")
        if not slide["photos_queued"]:
            break
        server.check_alive()
        assert time.monotonic() < deadline, server.tail()
        time.sleep(0.5)
    bad = [(p["name"], p["state"], p["error"]) for p in slide["photos"] if p["state"] != "done"]
    assert not bad, bad
    return {p["id"]: p for p in slide["photos"]}


def single(server, name: str, path: Path) -> float:
    """Seconds from one photo's upload reply to its "done", on a slide of its own."""
    slide_id = server.create_slide(name)
    photo_id, replied = send(server.client, slide_id, path)
    return wait_done(server, slide_id)[photo_id]["done"] - replied


def through_server(server, photos: list[Path], name: str) -> tuple[float, float, float, int]:
    """Every photo uploaded to a new slide as the New slide page sends them (one per request, 3 at once):
    seconds from the first upload's start to the last photo done, seconds the uploads took, and the
    first photo's seconds from its upload reply to its done (the other photos still coming); the slide's id."""
    slide_id = server.create_slide(name)
    clients = [server.new_client() for _ in range(UPLOADS_AT_ONCE)]
    t0 = time.time()
    with ThreadPoolExecutor(UPLOADS_AT_ONCE) as pool:
        sent = list(pool.map(lambda ip: send(clients[ip[0] % UPLOADS_AT_ONCE], slide_id, ip[1]), enumerate(photos)))
    uploaded = time.time() - t0
    for c in clients:
        c.close()
    done = wait_done(server, slide_id)
    first_id, first_reply = min(sent)
    return max(p["done"] for p in done.values()) - t0, uploaded, done[first_id]["done"] - first_reply, slide_id


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--photos", type=int, default=24, help="synthetic 1280x960 photos (default 24)")
    parser.add_argument("--model", default=str(ROOT / "models" / "model.keras"),
                        help="default models/model.keras; a tiny untrained model when that is missing")
    parser.add_argument("--repeat", type=int, default=3,
                        help="rounds, each timing the command then the server on the same photos (median)")
    parser.add_argument("--latency", type=int, default=5, help="single-photo uploads for the latency (median)")
    parser.add_argument("--slide-photos", type=int, default=0,
                        help="also time a poll, answers and the export on a synthetic slide of this many photos")
    parser.add_argument("--only-slide", action="store_true", help="only the synthetic slide's timings")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model = Path(args.model)
        if not model.is_file():
            print(f"{model} not found: a tiny untrained model instead (24x24 compact network)")
            model = tiny_model(tmp / "tiny")
        photos = synthetic_photos(args.photos, tmp / "photos")
        n = len(photos)
        print(f"{n} synthetic photos of 1280x960 (JPEG, about 120 cells of about 72 px each); model {model}; "
              f"{available_cores()} cores; load average {os.getloadavg()[0]:.1f} at the start")
        if args.slide_photos:
            large_slide(tmp, model, args.slide_photos, photos, served, send, BATCH)
            if args.only_slide:
                return
        command = Command(model, tmp / "screened")
        started = time.perf_counter()
        # the server idles (its worker wakes once a second) while the command is timed, and the other way round
        with served.start(tmp / "ws", model.parent, extra_args=["--batch-size", str(BATCH)], timeout=180) as server:
            up = time.perf_counter() - started
            cold = single(server, "warm-up", photos[0])  # the first photo after the start: TensorFlow's first call
            rounds = []
            for r in range(args.repeat):
                t_run = command.run(photos)
                t_alone = command.screen_alone(photos)
                cpu = cpu_seconds(server.proc.pid)
                t_srv, t_up, first, slide_id = through_server(server, photos, f"throughput {r}")
                cpu = cpu_seconds(server.proc.pid) - cpu
                rounds.append((t_run, t_alone, t_srv, t_up, first, command.cpu / cpu))
                print(f"  round {r + 1}: screen command {n / t_run:.2f} photos/s, screen() alone {n / t_alone:.2f}, "
                      f"server {n / t_srv:.2f} (uploads {t_up:.1f} s): server / command {t_run / t_srv:.2f}x; CPU a "
                      f"photo: command {1000 * command.cpu / n:.0f} ms, server {1000 * cpu / n:.0f} ms (uploads and "
                      f"polls included): command / server {command.cpu / cpu:.2f}", flush=True)
            latencies = [single(server, f"latency {i}", photos[(i + 1) % n]) for i in range(args.latency)]
            polls = []
            for _ in range(5):  # what one poll of the New slide page (every 0.5 s) costs at this slide's size
                start = time.perf_counter()
                slide = server.get(f"api/slides/{slide_id}")  # the last throughput round's slide
                polls.append(time.perf_counter() - start)
            poll = (statistics.median(polls), slide["photos_total"], slide["cells_total"])
            errors, log = server.internal_errors(), server.log()
        assert not errors and "Traceback" not in log, log[-3000:]

    t_run, t_alone, t_srv, t_up, first, cpu_ratio = (statistics.median(x) for x in zip(*rounds))
    rate, baseline, lat = n / t_srv, n / t_run, statistics.median(latencies)
    ratio = statistics.median(r[0] / r[2] for r in rounds)  # each round's server against the same round's command
    print(f"screen command (in process, every output written): {baseline:.2f} photos/s ({t_run:.1f} s); "
          f"screen() alone, nothing written: {n / t_alone:.2f} photos/s")
    print(f"server (malaria-cnn serve; {UPLOADS_AT_ONCE} uploads at once, one photo each, from the first upload to the "
          f"last photo done): {rate:.2f} photos/s ({t_srv:.1f} s, the uploads {t_up:.1f} s); "
          f"server / screen command {ratio:.2f}x (the median of the rounds' ratios); CPU time a photo, command / "
          f"server: {cpu_ratio:.2f} (the median; less swayed than the rates by other jobs on the machine)")
    print(f"latency, upload reply -> done: median {lat:.2f} s over {len(latencies)} single photos to an idle server "
          f"(min {min(latencies):.2f}, max {max(latencies):.2f}); first photo of a throughput round {first:.2f} s; "
          f"first photo after the server started {cold:.2f} s (server up in {up:.1f} s)")
    print(f"one GET /api/slides/{{id}} (the page polls it every 0.5 s) of a slide of {poll[1]} photos, {poll[2]:,} cells: "
          f"{1000 * poll[0]:.0f} ms")
    print(f"goals: server throughput at least 0.9x the command's and >= 2 photos/s: "
          f"{'met' if ratio >= 0.9 and rate >= 2 else 'NOT met'}; "
          f"a photo done within 3 s of its upload: {'met' if max(lat, first) <= 3 else 'NOT met'}")


if __name__ == "__main__":
    main()
