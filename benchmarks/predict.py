"""Benchmark: prediction on CPU, Keras against the exported SavedModel and TFLite float32 and int8, in one run.

Throughput: `malaria_cnn.release.predict.predict` over every crop of the NIH dev zip (read from the
zip, decoded and resized on a thread per core, scored in batches of 256), as `malaria-cnn
predict` does, images per second. Latency: one crop at a time, already decoded, milliseconds
(median and 95th percentile over --single calls after a warm-up); Keras is called as a traced
`tf.function`, the way a service would, not through `model.predict`, whose set-up per call
would dominate. The network is the default `compact` preset at 64x64 (--size) with freshly initialised
weights (speed does not depend on the weights); the shipped model is the ensemble of
--members such networks (`cv.folds` of the default params), exported to TFLite float32 and
int8 (calibrated on 200 dev crops). `Keras xN cmd` is the ensemble as `malaria-cnn predict` and
`evaluate` call it: a traced call per 64 crops, decoding in batches of 64 (its latency is the
traced ensemble's, the row above). The exported copies take raw crops (decoded and resized, the stain
standardised inside their graph: `raw` rows; `model.keras` is the file model_io.save writes, loaded with
plain Keras, which carries the standardisation too); `std` is a TFLite float32 copy of the network alone fed
crops standardised in numpy, as the copies took them before. The throughput passes take turns (a pass of
each model per round, --repeat rounds, the median kept). Ratios are against one Keras network, measured in
the same run.

    python benchmarks/predict.py
    python benchmarks/predict.py --size 96    # the pipeline's default input since 96 px ranks parasites better
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
DEV_ZIP = ROOT.parent / "shared" / "data" / "nih_malaria_dev.zip"

from malaria_cnn.core.params import CvParams, ModelParams  # noqa: E402
from malaria_cnn.data import images, stain  # noqa: E402
from malaria_cnn.release import export, predict  # noqa: E402
from malaria_cnn.training import ensemble, model_io, networks  # noqa: E402
from malaria_cnn.training.runtime import keras, tf  # noqa: E402

BATCH = 256


def throughputs(scorers: dict, repeat: int, size: int) -> dict[str, tuple[float, int]]:
    """{name: (median images/s of predict() over the dev zip, crops)} for scorers {name: (score, batch, stain
    mode)}: crops standardised in numpy (mode od) or raw (none). The passes take turns, a pass of each scorer
    per round, so a machine whose load changes during the run slows them alike."""
    times: dict[str, list[float]] = {name: [] for name in scorers}
    n = 0
    for _ in range(repeat):
        for name, (score, batch, stain_mode) in scorers.items():
            start = time.perf_counter()
            n = len(predict.predict(score, [DEV_ZIP], size, 0.5, batch, progress=False, stain_mode=stain_mode))
            times[name].append(time.perf_counter() - start)
    return {name: (n / float(np.median(t)), n) for name, t in times.items()}


def latency(call, crops: np.ndarray) -> tuple[float, float]:
    """(median, 95th percentile) milliseconds for one crop."""
    for crop in crops[:20]:
        call(crop[None])
    spent = []
    for crop in crops:
        start = time.perf_counter()
        call(crop[None])
        spent.append((time.perf_counter() - start) * 1000)
    return float(np.median(spent)), float(np.percentile(spent, 95))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="throughput rounds, a pass of each model per round")
    parser.add_argument("--single", type=int, default=300, help="single-crop calls per model")
    parser.add_argument("--members", type=int, default=CvParams().folds, help="networks in the shipped ensemble")
    parser.add_argument("--size", type=int, default=64, help="the networks' input (96: the pipeline's default now)")
    args = parser.parse_args()
    size = args.size
    if not DEV_ZIP.is_file():
        sys.exit(f"the NIH dev crops are not here ({DEV_ZIP})")
    keras.utils.set_random_seed(0)
    single = networks.build(ModelParams(), size)
    model = ensemble.average([single] + [networks.build(ModelParams(), size) for _ in range(args.members - 1)])
    with zipfile.ZipFile(DEV_ZIP) as zf:
        names = [n for n in zf.namelist() if n.endswith(".png")]
        crops = np.stack([images.load_cell(zf.read(n), size, stain_mode="none")
                          for n in names[:: len(names) // max(args.single, 200)]])
    m = args.members
    scorers = {"Keras": (lambda x: model_io.parasitized_probability(single, x, BATCH), BATCH, "od"),
               f"Keras x{m}": (lambda x: model_io.parasitized_probability(model, x, BATCH), BATCH, "od"),
               # as `malaria-cnn predict` and `evaluate` score: one traced call per 64 crops (cli.BATCH)
               f"Keras x{m} cmd": (model_io.scorer(model, 64), 64, "od")}
    standardised = np.stack([stain.standardised(c)[0] for c in crops])[: args.single]
    single_calls = {name: (tf.function(lambda x, net=net: net(x, training=False), reduce_retracing=True), standardised)
                    for name, net in (("Keras", single), (f"Keras x{m}", model))}
    network_alone = ensemble.average([networks.build(ModelParams(), size, "none") for _ in range(m)])
    with tempfile.TemporaryDirectory() as tmp:
        model_io.save(model, Path(tmp) / "model.keras")
        export.saved_model(network_alone, Path(tmp) / "alone")
        export.saved_model(model, Path(tmp) / "saved")
        copies = {f"TFLite x{m} f32 std": export.LiteModel(export.tflite(Path(tmp) / "alone")),
                  f"TFLite x{m} f32 raw": export.LiteModel(export.tflite(Path(tmp) / "saved")),
                  f"TFLite x{m} int8 raw": export.LiteModel(export.tflite(Path(tmp) / "saved", crops[:200])),
                  f"SavedModel x{m} raw": export.SavedModelCopy(Path(tmp) / "saved"),
                  f"model.keras x{m} raw": export.KerasFile(Path(tmp) / "model.keras")}
        for name, copy in copies.items():
            raw = name.endswith("raw")
            scorers[name] = (lambda x, copy=copy: copy.parasitized_probability(x, BATCH), BATCH, "none" if raw else "od")
            one = copy.probabilities if isinstance(copy, export.LiteModel) else \
                tf.function(lambda x, copy=copy: copy.model(x, training=False), reduce_retracing=True) \
                if isinstance(copy, export.KerasFile) else lambda x, copy=copy: copy.parasitized_probability(x, 1)
            single_calls[name] = (one, crops[: args.single] if raw else standardised)
        rates = throughputs(scorers, args.repeat, size)
        latencies = {name: latency(call, x) for name, (call, x) in single_calls.items()}
    results = {name: (rates[name], latencies[name if name in latencies else f"Keras x{m}"]) for name in scorers}
    (base_rate, n), (base_ms, _) = results["Keras"]
    print(f"{n:,} crops of {DEV_ZIP.name}, {size}x{size}, batches of {BATCH}; single crops: {args.single}")
    print(f"{'model':22s} {'images/s':>9s} {'x Keras':>8s} {'median ms':>10s} {'p95 ms':>7s} {'x Keras':>8s}")
    for name, ((rate, _), (med, p95)) in results.items():
        print(f"{name:22s} {rate:9,.0f} {rate / base_rate:8.2f} {med:10.2f} {p95:7.2f} {base_ms / med:8.2f}")


if __name__ == "__main__":
    main()
