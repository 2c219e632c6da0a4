"""Benchmark: stain standardisation of model-sized crops, the numpy path (data/stain.py, as preprocess,
predict, evaluate, screen and serve run it, a crop at a time) against the graph path
(training/stain_graph.py) run by TensorFlow and by LiteRT in batches of 256, in one run.

Every dev crop, decoded and resized beforehand (decoding is not timed); one thread each (LiteRT
num_threads=1, TensorFlow's intra- and inter-op pools of 1), crops per second; the paths take turns,
--repeat rounds, the median kept. Ratios are against the numpy path.

    python benchmarks/standardise.py
"""

from __future__ import annotations

import argparse
import sys
import time
import zipfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
DEV_ZIP = ROOT.parent / "shared" / "data" / "nih_malaria_dev.zip"

from malaria_cnn.data import images, stain  # noqa: E402
from malaria_cnn.release import export  # noqa: E402
from malaria_cnn.training import stain_graph  # noqa: E402
from malaria_cnn.training.runtime import tf  # noqa: E402

SIZE, BATCH = 64, 256


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    if not DEV_ZIP.is_file():
        sys.exit(f"the NIH dev crops are not here ({DEV_ZIP})")
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    with zipfile.ZipFile(DEV_ZIP) as zf:
        raw = np.stack([images.load_cell(zf.read(n), SIZE, stain_mode="none")
                        for n in zf.namelist() if n.endswith(".png")])
    graph = tf.function(stain_graph.standardised, input_signature=[tf.TensorSpec([None, SIZE, SIZE, 3], tf.uint8)])
    lite = export.LiteModel(tf.lite.TFLiteConverter.from_concrete_functions([graph.get_concrete_function()],
                                                                            graph).convert(), threads=1)
    paths = {"numpy, a crop at a time": lambda x: [stain.standardised(c) for c in x],
             "TensorFlow graph, batches": lambda x: graph(x).numpy(),
             "LiteRT, batches": lambda x: lite.probabilities(x)}
    times: dict[str, list[float]] = {name: [] for name in paths}
    for _ in range(args.repeat):
        for name, run in paths.items():
            start = time.perf_counter()
            for i in range(0, len(raw), BATCH):
                run(raw[i:i + BATCH])
            times[name].append(time.perf_counter() - start)
    base = len(raw) / np.median(times["numpy, a crop at a time"])
    print(f"{len(raw):,} dev crops, {SIZE}x{SIZE}, one thread, median of {args.repeat} rounds")
    print(f"{'path':28s} {'crops/s':>9s} {'x numpy':>8s}")
    for name, t in times.items():
        rate = len(raw) / np.median(t)
        print(f"{name:28s} {rate:9,.0f} {rate / base:8.2f}")


if __name__ == "__main__":
    main()
