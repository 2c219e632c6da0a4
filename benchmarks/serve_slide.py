"""Benchmark part: `malaria-cnn serve` on a synthetic slide of thousands of photos (run by benchmarks/serve.py
--slide-photos N): one poll of the slide, an answer's round trip while photos of another slide are screened,
and the export with the server's peak memory, against the export of a slide a tenth its size in the same
workspace (an export at bounded memory adds about as much to the server's peak for either). The baseline
of the poll, in the same run: the slide's summary computed from every cell, as the server did before it
kept each photo's figures."""

from __future__ import annotations

import argparse
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from malaria_cnn.screening.synthetic_field import make_field


def synthetic_slide(workspace: Path, model: Path, photos: int, cells: int = 120, seed: int = 0,
                    name: str = "synthetic") -> int:
    """A workspace holding one slide of `photos` screened photos of `cells` cells each (random scores, 2% called
    parasitized, each with a real PNG crop of a 72-px cell), written straight into its store as the worker
    would (no figures per photo: the server computes them once when it starts); the slide's id."""
    from malaria_cnn.core.atomic import file_sha256
    from malaria_cnn.screening import crops
    from malaria_cnn.serve.store import Store

    rng = np.random.default_rng(seed)
    field = make_field(seed, 1280, 960, cells=cells, diameter=72).rgb
    pngs = [crops.to_png(np.ascontiguousarray(field[y:y + 72, x:x + 72])) for y in range(0, 900, 90)
            for x in range(0, 1200, 100)]
    store = Store(workspace / "serve.sqlite3")
    store.set_meta("model", {"path": str(model), "sha256": file_sha256(model)})
    slide_id = store.add_slide(name)
    for i in range(photos):
        photo_id = store.add_photo(slide_id, f"field_{i:04d}.jpg")
        store.queue_photo(photo_id, f"{photo_id}.jpg")
        store.claim(1)
        p = rng.beta(0.3, 3, cells)
        rows = [{"n": n + 1, "x": int(10 * n % 1200), "y": int(7 * n % 900), "w": 72, "h": 72, "p": float(p[n]),
                 "label": "Parasitized" if p[n] > np.quantile(p, 0.98) else "Uninfected", "outline": [[0, 0], [71, 71]],
                 "crop": pngs[n % len(pngs)], "input": pngs[n % len(pngs)]} for n in range(cells)]
        store.save_result(photo_id, "done", "", "", (1280, 960), 1.0, rows, file_sha256(model))
    store.close()
    return slide_id


def rss_mb(pid: int, field: str = "VmHWM") -> float:
    """The process's peak resident memory (VmHWM) or its resident memory now (VmRSS), MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def export_peak(server, slide_id: int) -> tuple[float, float, float, float]:
    """Export a slide: seconds, the zip's MB, the server's resident MB before and its peak during the
    export (the peak is reset first: Linux's clear_refs)."""
    Path(f"/proc/{server.proc.pid}/clear_refs").write_text("5")
    before = rss_mb(server.proc.pid, "VmRSS")
    start = time.perf_counter()
    response = server.client.post(f"/api/export?slide={slide_id}")
    seconds = time.perf_counter() - start
    assert response.status_code == 200, response.text[:300]
    return seconds, len(response.content) / (1 << 20), before, rss_mb(server.proc.pid)


def answer_all(server, slide_id: int, value: str = "uninfected") -> int:
    """Every flagged cell of the slide answered (the slide complete: its rest exported too); how many."""
    review = server.get(f"api/slides/{slide_id}/review")["cells"]
    for cell in review:
        if cell["answer"] is None:
            server.answer(cell["id"], value)
    return len(review)


def large_slide(tmp: Path, model: Path, n_photos: int, photos: list[Path], served, send, batch: int) -> None:
    """One poll, an answer's round trip (while photos of another slide are screened) and the export, on a
    synthetic slide of `n_photos` photos; the baseline, in this run: the slide's summary from every cell, as
    the server computed it before it kept each photo's figures."""
    from malaria_cnn.release.options import scorer
    from malaria_cnn.serve import summary
    from malaria_cnn.serve.store import Store

    ws = tmp / "large-ws"
    t0 = time.perf_counter()
    small = max(n_photos // 10, 1)
    slide_id = synthetic_slide(ws, model, n_photos)
    small_id = synthetic_slide(ws, model, small, seed=1, name="synthetic small")
    print(f"large slide: {n_photos} photos of 120 cells (and {small} in another) written in "
          f"{time.perf_counter() - t0:.0f} s", flush=True)
    with served.start(ws, model.parent, extra_args=["--batch-size", str(batch)], timeout=600) as server:
        polls = []
        for _ in range(20):
            start = time.perf_counter()
            slide = server.get(f"api/slides/{slide_id}")
            polls.append(time.perf_counter() - start)
        start = time.perf_counter()
        review = server.get(f"api/slides/{slide_id}/review")["cells"]
        t_review = time.perf_counter() - start
        other = server.create_slide("screened meanwhile")
        with ThreadPoolExecutor(1) as pool:
            uploading = pool.submit(lambda: [send(server.new_client(), other, p) for p in photos])
            times = []
            for i, cell in enumerate(review[:60]):
                start = time.perf_counter()
                server.answer(cell["id"], ("parasitized", "uninfected", "not_cell")[i % 3])
                times.append(time.perf_counter() - start)
                time.sleep(0.1)
            screening = server.get(f"api/slides/{other}")["photos_queued"]
            uploading.result()
        answered_polls = []
        for _ in range(10):
            start = time.perf_counter()
            server.get(f"api/slides/{slide_id}")
            answered_polls.append(time.perf_counter() - start)
        answer_all(server, slide_id)
        answer_all(server, small_id)
        exports = [export_peak(server, i) for i in (small_id, slide_id)]
    store = Store(ws / "serve.sqlite3")  # the baseline: every cell of the slide read and summed, in this process
    m = scorer(argparse.Namespace(model=str(model), threshold=None, threshold_file=None, batch_size=batch))
    rule, row = summary.Rule(m.threshold, m.rule), store.slide(slide_id)
    whole = []
    for _ in range(5):
        start = time.perf_counter()
        summary.slide(row, [{**p, "counts": None} for p in store.photos(slide_id)], store.cells(slide_id=slide_id), rule)
        whole.append(time.perf_counter() - start)
    crops_mb = sum(len(store.cell_image(c, "crop")) for c in range(1, 2001)) / 2000 * slide["cells_total"] / (1 << 20)
    store.close()
    poll, baseline = statistics.median(polls), statistics.median(whole)
    print(f"one GET /api/slides/{{id}} of a slide of {slide['photos_total']:,} photos, {slide['cells_total']:,} "
          f"cells: median {1000 * poll:.0f} ms over {len(polls)} (max {1000 * max(polls):.0f}); after "
          f"{len(times)} answers {1000 * statistics.median(answered_polls):.0f} ms; the summary from every cell, "
          f"in process, without HTTP (the baseline): {1000 * baseline:.0f} ms: {baseline / poll:.1f}x faster (goal: "
          f"at most 100 ms: {'met' if poll <= 0.1 else 'NOT met'})")
    print(f"an answer's round trip (PUT, its cell and the slide's summary back) while {len(photos)} photos of another "
          f"slide are uploaded and screened ({screening} still queued at the last answer): median "
          f"{1000 * statistics.median(times):.0f} ms, max {1000 * max(times):.0f} over {len(times)} (goal: at most "
          f"50 ms: {'met' if statistics.median(times) <= 0.05 else 'NOT met'})")
    print(f"the review's cells (GET /api/slides/{{id}}/review, {len(review):,} flagged): {1000 * t_review:.0f} ms")
    print_exports(exports, (small, n_photos), crops_mb)


def print_exports(exports: list[tuple], sizes: tuple[int, int], crops_mb: float) -> None:
    """The exports' lines (export_peak's figures of the smaller slide, then the larger)."""
    for n, (seconds, size, before, peak) in zip(sizes, exports):
        print(f"the export of the {n}-photo slide, complete (every flagged cell answered, the rest accepted): "
              f"{seconds:.1f} s, {size:,.0f} MB; the server's resident memory {before:,.0f} MB before it, its peak "
              f"during it {peak:,.0f} MB (+{peak - before:,.0f} MB)")
    grown = (exports[1][3] - exports[1][2]) - (exports[0][3] - exports[0][2])
    print(f"the export's peak grew by {grown:+,.0f} MB from the {sizes[0]}-photo slide to the {sizes[1]}-photo one, "
          f"against {crops_mb:,.0f} MB of crops that an export holding them at once would add (goal: bounded "
          f"memory, about flat: {'met' if grown < 50 else 'NOT met'})")
