"""Benchmark: three changes to a fold's time, each against its baseline measured in the same run.

- step: one training step of the compact network (batch 64 of 64x64 crops), its BatchNorm layers
  trained with TensorFlow's fused kernel (this project's BatchNorm) vs Keras's BatchNormalization;
- first epoch: a fit's first epoch (5 steps, with its tracing), the optimizer's and metrics' variables
  built before fit (networks.build_training_state: one trace) vs built while tracing (two traces);
- exit: how long a process that imported TensorFlow takes to end, through run_main (gc.freeze
  first) vs a plain exit.

The two sides alternate within each round; each line gives the medians over the rounds and their ratio.

    python benchmarks/training_speed.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

SRC = Path(__file__).resolve().parents[1] / "src"
sys.path.insert(0, str(SRC))

from malaria_cnn.core.params import Params  # noqa: E402
from malaria_cnn.training import batches, networks  # noqa: E402
from malaria_cnn.training.runtime import keras  # noqa: E402

EXIT_CHILD = """
import sys, time
sys.path.insert(0, {src!r})
from malaria_cnn.core.errors import run_main
from malaria_cnn.training.runtime import tf
if sys.argv[1] == "run_main":
    run_main(lambda: print(time.time(), flush=True))
else:
    print(time.time(), flush=True)
"""


def _model(keras_bn: bool, build_state: bool) -> keras.Model:
    saved = networks.BatchNorm, networks.build_training_state
    if keras_bn:
        networks.BatchNorm = keras.layers.BatchNormalization
    if not build_state:
        networks.build_training_state = lambda model: None
    try:
        model = networks.build(Params().model, image_size=64)
        networks.compile_model(model, Params().train)
    finally:
        networks.BatchNorm, networks.build_training_state = saved
    return model


def step_ms(keras_bn: bool, x: np.ndarray, y: np.ndarray, steps: int = 30) -> float:
    model = _model(keras_bn, build_state=True)
    model.train_on_batch(x, y)  # traced here, not timed
    start = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(x, y)
    return (time.perf_counter() - start) / steps * 1000


def first_epoch_s(build_state: bool, x: np.ndarray, labels: np.ndarray) -> float:
    model = _model(keras_bn=False, build_state=build_state)
    data = batches.dataset(x, labels, 64)
    start = time.perf_counter()
    model.fit(data, epochs=1, verbose=0, shuffle=False)
    return time.perf_counter() - start


def exit_s(how: str) -> float:
    out = subprocess.run([sys.executable, "-c", EXIT_CHILD.format(src=str(SRC)), how], capture_output=True, text=True,
                         check=True).stdout
    return time.time() - float(out.split()[-1])


def line(name: str, unit: str, baseline: list[float], new: list[float], what: tuple[str, str]) -> None:
    b, n = statistics.median(baseline), statistics.median(new)
    print(f"{name:12s} {what[0]}: {b:7.3f} {unit}   {what[1]}: {n:7.3f} {unit}   ratio {n / b:.2f}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (320, 64, 64, 3), dtype=np.uint8)
    labels = (np.arange(len(x)) % 2).astype(np.uint8)
    onehot = np.eye(2, dtype=np.float32)[labels[:64]]
    results: dict[str, list[float]] = {k: [] for k in ("keras_bn", "fused_bn", "two_traces", "one_trace",
                                                      "plain_exit", "run_main")}
    for r in range(args.rounds):
        results["keras_bn"].append(step_ms(True, x[:64], onehot))
        results["fused_bn"].append(step_ms(False, x[:64], onehot))
        results["two_traces"].append(first_epoch_s(False, x, labels))
        results["one_trace"].append(first_epoch_s(True, x, labels))
        results["plain_exit"].append(exit_s("plain"))
        results["run_main"].append(exit_s("run_main"))
        print(f"round {r + 1}/{args.rounds}: " + ", ".join(f"{k} {v[-1]:.3f}" for k, v in results.items()), flush=True)
    print(f"\nmedians over {args.rounds} rounds")
    line("step", "ms", results["keras_bn"], results["fused_bn"], ("Keras BatchNormalization", "fused BatchNorm"))
    line("first epoch", "s", results["two_traces"], results["one_trace"], ("built while tracing", "built before fit"))
    line("exit", "s", results["plain_exit"], results["run_main"], ("plain exit", "run_main (gc.freeze)"))


if __name__ == "__main__":
    main()
