"""Benchmark: stain standardisation of model-sized crops, the numpy path (data/stain.py, as preprocess,
predict, evaluate, screen and serve run it, a crop at a time) against the graph path
(training/stain_graph.py) run by TensorFlow and by LiteRT in batches of 256, in one run.

Every dev crop, decoded and resized beforehand (decoding is not timed); one thread each (LiteRT
num_threads=1, TensorFlow's intra- and inter-op pools of 1), crops per second; the paths take turns,
--repeat rounds, the median kept. Ratios are against the numpy path.

Then training: a step of the default network (batch 64, compiled as training compiles it) fed crops
standardised beforehand, as preprocess stores them, against the same network behind the graph
standardisation (stain_graph.wrap, as model.keras carries it) fed raw crops: what standardising inside
the training graph would cost each step.

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

from malaria_cnn.core.params import Params  # noqa: E402
from malaria_cnn.data import images, stain  # noqa: E402
from malaria_cnn.release import export  # noqa: E402
from malaria_cnn.training import networks, stain_graph  # noqa: E402
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
    training_steps(raw, args.repeat)


def training_steps(raw: np.ndarray, repeat: int, steps: int = 20) -> None:
    """Crops per second of training steps on standardised crops and, standardised in the graph, on raw ones."""
    network = networks.build(Params().model, SIZE)
    networks.compile_model(network, Params().train)
    wrapped = stain_graph.wrap(network)
    networks.compile_model(wrapped, Params().train)
    x_raw = raw[:64]
    x_std = np.stack([stain.standardised(c)[0] for c in x_raw])
    y = np.eye(2, dtype=np.float32)[np.arange(64) % 2]
    sides = {"network, crops standardised before": (network, x_std),
             "standardisation in the graph, raw": (wrapped, x_raw)}
    times: dict[str, list[float]] = {name: [] for name in sides}
    for model, x in sides.values():
        model.train_on_batch(x, y)  # traced here, not timed
    for _ in range(repeat):
        for name, (model, x) in sides.items():
            start = time.perf_counter()
            for _ in range(steps):
                model.train_on_batch(x, y)
            times[name].append(time.perf_counter() - start)
    base = 64 * steps / np.median(times["network, crops standardised before"])
    print(f"\ntraining steps, batch 64, median of {repeat} rounds of {steps}")
    for name, t in times.items():
        rate = 64 * steps / np.median(t)
        print(f"{name:38s} {rate:9,.0f} crops/s {rate / base:6.2f}")


if __name__ == "__main__":
    main()
