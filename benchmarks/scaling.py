"""Benchmark: training speed on this machine's CPU under mixed precision and under `mirrored`,
against float32 on one device measured in the same run.

Each variant trains the default compact network through the project's `train()` for a few
epochs in a fresh process (the CPU split and the dtype policy are set when TensorFlow starts);
the variants take turns, `--rounds` times, and the median seconds per epoch (the first epoch,
which traces the graph, left out) count. The crops are random uint8 noise of the set's size:
speed does not depend on what the pixels show.

    python benchmarks/scaling.py                 # 3 rounds, 3,000 training crops of 64 x 64
    python benchmarks/scaling.py --rounds 5 --cells 6000 --size 96
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

VARIANTS = {  # name: (train params, environment)
    "float32, one device": ({"distribute": "none", "mixed_precision": False}, {}),
    "mixed bfloat16, one device": ({"distribute": "none", "mixed_precision": True}, {}),
    "float32, mirrored over 2 CPU devices": ({"distribute": "mirrored", "mixed_precision": False},
                                             {"MALARIA_CNN_CPU_DEVICES": "2"}),
}

CHILD = """
import json, sys, time
sys.path.insert(0, {src!r})
import numpy as np
from malaria_cnn.core import params
from malaria_cnn.training.runtime import keras
from malaria_cnn.training.train import train

cfg = json.loads(sys.argv[1])
seconds = []

class Timer(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        seconds.append(time.perf_counter() - self.start)

rng = np.random.default_rng(0)
n, size = cfg["cells"], cfg["size"]
x = rng.integers(0, 256, (n + n // 6, size, size, 3), dtype=np.uint8)
y = (np.arange(len(x)) % 2).astype(np.uint8)
p = params.from_dict({{"epochs": cfg["epochs"], "train": {{**cfg["train"], "early_stopping": 0, "reduce_lr": 0}}}})
model, history = train(p, (x[:n], y[:n]), (x[n:], y[n:]), callbacks=[Timer()])
print(json.dumps({{"seconds": seconds, "loss": history["loss"][-1]}}))
"""


def run(variant: str, cells: int, size: int, epochs: int) -> dict:
    train_params, extra_env = VARIANTS[variant]
    cfg = {"cells": cells, "size": size, "epochs": epochs, "train": train_params}
    out = subprocess.run([sys.executable, "-c", CHILD.format(src=str(ROOT / "src")), json.dumps(cfg)],
                         env={**os.environ, **extra_env}, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--cells", type=int, default=3000)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=4)
    args = ap.parse_args()
    per_epoch: dict[str, list[float]] = {v: [] for v in VARIANTS}
    loss: dict[str, list[float]] = {v: [] for v in VARIANTS}
    start = time.perf_counter()
    for r in range(args.rounds):
        for variant in VARIANTS:
            result = run(variant, args.cells, args.size, args.epochs)
            per_epoch[variant] += result["seconds"][1:]
            loss[variant].append(result["loss"])
            print(f"round {r + 1} {variant}: {', '.join(f'{s:.2f}' for s in result['seconds'])} s/epoch",
                  file=sys.stderr)
    baseline = statistics.median(per_epoch[next(iter(VARIANTS))])
    print(f"{args.cells} crops of {args.size} x {args.size}, compact network, batch 64, {os.cpu_count()} cores, "
          f"{args.rounds} rounds ({time.perf_counter() - start:.0f} s)")
    print("| variant | s/epoch (median) | images/s | time vs float32, one device | last epoch's loss |")
    print("|---|---|---|---|---|")
    for variant, seconds in per_epoch.items():
        s, last_loss = statistics.median(seconds), statistics.median(loss[variant])
        print(f"| {variant} | {s:.2f} | {args.cells / s:,.0f} | {s / baseline:.2f}x | {last_loss:.4f} |")


if __name__ == "__main__":
    main()
