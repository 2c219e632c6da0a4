"""Benchmark: the peak memory of `malaria-cnn evaluate` as the labelled set grows, in one run.

The command streams: it keeps each cell's probability, label and slide, never the crops, so its
peak should not grow with the number of crops. The model is the default shipped one: the ensemble
of `cv.folds` compact networks at 64x64, freshly initialised (memory does not depend on the
weights). The labelled sets: the first 1,000 crops of the NIH dev zip, the whole zip (8,511), and
27,558 distinct crops (as many as NIH's whole set: each dev crop and its 90-degree rotations).
The baseline, measured in the same run: a Python that imports TensorFlow and loads the same model,
the floor any command scoring with it starts from. Each in a fresh process, summed over its tree.

    python benchmarks/evaluate_memory.py
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from measure import dev_zip_args, make_large_zip, peak_mb  # noqa: E402

from malaria_cnn.core.params import CvParams, ModelParams, ThresholdParams  # noqa: E402
from malaria_cnn.evaluation import operating_point, patients  # noqa: E402
from malaria_cnn.training import ensemble, model_io, networks  # noqa: E402

FLOOR = "import sys; sys.path.insert(0, {src!r}); from malaria_cnn.training import model_io; model_io.load({model!r})"


def shipped_model(folder: Path) -> Path:
    """The default ensemble, untrained, with the threshold and slide rule files the command needs."""
    members = [networks.build(ModelParams(), image_size=64) for _ in range(CvParams().folds)]
    path = folder / "model.keras"
    model_io.save(ensemble.average(members), path)
    operating_point.save(folder / "threshold.json", 0.5, ThresholdParams(), path, chosen_on={})
    patients.save(folder / "slide_rule.json", patients.SlideRule("cells", 1), "benchmark", path)
    return path


def first_crops(src: Path, dest: Path, n: int) -> None:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dest, "w", zipfile.ZIP_STORED) as zout:
        for info in [i for i in zin.infolist() if i.filename.endswith(".png")][:n]:
            zout.writestr(info.filename, zin.read(info))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    args = dev_zip_args(ap, "the largest set")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model = shipped_model(tmp)
        sets = {"1,000": tmp / "small.zip", "8,511 (dev zip)": args.zip, f"{args.large:,}": tmp / "large.zip"}
        first_crops(args.zip, sets["1,000"], 1000)
        make_large_zip(args.zip, sets[f"{args.large:,}"], args.large)
        command = str(Path(sys.executable).with_name("malaria-cnn"))
        floor = peak_mb([sys.executable, "-c", FLOOR.format(src=str(ROOT / "src"), model=str(model))], cwd=tmp)
        print(f"{'':34}{'peak RSS MB':>12}{'peak USS MB':>12}{'RSS / floor':>12}")
        print(f"{'floor: TensorFlow + the model':34}{floor['rss']:12.0f}{floor['uss']:12.0f}{1:12.2f}")
        for label, path in sets.items():
            out = tmp / "report"
            got = peak_mb([command, "evaluate", str(path), "--model", str(model), "--out", str(out)], cwd=tmp)
            print(f"{'evaluate, ' + label + ' crops':34}{got['rss']:12.0f}{got['uss']:12.0f}"
                  f"{got['rss'] / floor['rss']:12.2f}", flush=True)


if __name__ == "__main__":
    main()
