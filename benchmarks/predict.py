"""Benchmark: prediction on CPU, Keras against the exported SavedModel and TFLite float32 and int8, in one run.

Throughput: `malaria_cnn.release.predict.predict` over every crop of the NIH dev zip (read from the
zip, decoded and resized on a thread per core, scored in batches of 256), as `malaria-cnn
predict` does, images per second. Latency: one crop at a time, already decoded, milliseconds
(median and 95th percentile over --single calls after a warm-up); Keras is called as a traced
`tf.function`, the way a service would, not through `model.predict`, whose set-up per call
would dominate. The network is the default `compact` preset at 64x64 with freshly initialised
weights (speed does not depend on the weights); the shipped model is the ensemble of
--members such networks (`cv.folds` of the default params), exported to TFLite float32 and
int8 (calibrated on 200 dev crops). `Keras xN cmd` is the ensemble as `malaria-cnn predict` and
`evaluate` call it: a traced call per 64 crops, decoding in batches of 64 (its latency is the
traced ensemble's, the row above). The exported copies take raw crops (decoded and resized, the stain
standardised inside their graph: `raw` rows); `std` is a TFLite float32 copy of the network alone fed
crops standardised in numpy, as the copies took them before. Ratios are against one Keras network,
measured in the same run.

    python benchmarks/predict.py
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

SIZE = 64
BATCH = 256


def throughput(score, repeat: int, batch: int = BATCH, stain_mode: str = "od") -> tuple[float, int]:
    """Median images/s of predict() over the dev zip (crops standardised in numpy, or raw with mode none), and
    the number of crops."""
    times, n = [], 0
    for _ in range(repeat):
        start = time.perf_counter()
        rows = predict.predict(score, [DEV_ZIP], SIZE, 0.5, batch, progress=False, stain_mode=stain_mode)
        times.append(time.perf_counter() - start)
        n = len(rows)
    return n / float(np.median(times)), n


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
    parser.add_argument("--repeat", type=int, default=3, help="throughput runs per model (median)")
    parser.add_argument("--single", type=int, default=300, help="single-crop calls per model")
    parser.add_argument("--members", type=int, default=CvParams().folds, help="networks in the shipped ensemble")
    args = parser.parse_args()
    if not DEV_ZIP.is_file():
        sys.exit(f"the NIH dev crops are not here ({DEV_ZIP})")
    keras.utils.set_random_seed(0)
    single = networks.build(ModelParams(), SIZE)
    model = ensemble.average([single] + [networks.build(ModelParams(), SIZE) for _ in range(args.members - 1)])
    with zipfile.ZipFile(DEV_ZIP) as zf:
        names = [n for n in zf.namelist() if n.endswith(".png")]
        crops = np.stack([images.load_cell(zf.read(n), SIZE, stain_mode="none")
                          for n in names[:: len(names) // max(args.single, 200)]])
    # Keras first: once the TFLite converter has run, TensorFlow logs a harmless op-attribute
    # error for every tf.data pipeline that model.predict builds.
    results = {}
    for name, net in (("Keras", single), (f"Keras x{args.members}", model)):
        call = tf.function(lambda x, net=net: net(x, training=False), reduce_retracing=True)
        results[name] = (throughput(lambda x, net=net: model_io.parasitized_probability(net, x, BATCH), args.repeat),
                         latency(call, crops[: args.single]))
    # as `malaria-cnn predict` and `evaluate` score: one traced call per 64 crops (cli.BATCH)
    results[f"Keras x{args.members} cmd"] = (throughput(model_io.scorer(model, 64), args.repeat, batch=64),
                                             results[f"Keras x{args.members}"][1])
    network_alone = ensemble.average([networks.build(ModelParams(), SIZE, "none") for _ in range(args.members)])
    with tempfile.TemporaryDirectory() as tmp:
        export.saved_model(network_alone, Path(tmp) / "alone")
        export.saved_model(model, Path(tmp) / "saved")
        std = export.LiteModel(export.tflite(Path(tmp) / "alone"))
        standardised = np.stack([stain.standardised(c)[0] for c in crops])
        results[f"TFLite x{args.members} f32 std"] = (
            throughput(lambda x: std.parasitized_probability(x, BATCH), args.repeat),
            latency(std.probabilities, standardised[: args.single]))
        copies = {f"TFLite x{args.members} f32 raw": export.LiteModel(export.tflite(Path(tmp) / "saved")),
                  f"TFLite x{args.members} int8 raw": export.LiteModel(export.tflite(Path(tmp) / "saved", crops[:200])),
                  f"SavedModel x{args.members} raw": export.SavedModelCopy(Path(tmp) / "saved")}
        for name, copy in copies.items():
            one = copy.probabilities if isinstance(copy, export.LiteModel) else \
                lambda x, copy=copy: copy.parasitized_probability(x, 1)
            results[name] = (throughput(lambda x, copy=copy: copy.parasitized_probability(x, BATCH), args.repeat,
                                        stain_mode="none"), latency(one, crops[: args.single]))
    (base_rate, n), (base_ms, _) = results["Keras"]
    print(f"{n:,} crops of {DEV_ZIP.name}, {SIZE}x{SIZE}, batches of {BATCH}; single crops: {args.single}")
    print(f"{'model':22s} {'images/s':>9s} {'x Keras':>8s} {'median ms':>10s} {'p95 ms':>7s} {'x Keras':>8s}")
    for name, ((rate, _), (med, p95)) in results.items():
        print(f"{name:22s} {rate:9,.0f} {rate / base_rate:8.2f} {med:10.2f} {p95:7.2f} {base_ms / med:8.2f}")


if __name__ == "__main__":
    main()
