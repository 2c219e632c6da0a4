"""Stage threshold: choose the cell threshold and the slide rule on the val split -> models/threshold.json,
models/slide_rule.json."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # run the package in this tree

from malaria_cnn.core import params, paths
from malaria_cnn.core.errors import run_main
from malaria_cnn.data import split
from malaria_cnn.evaluation import operating_point, patients
from malaria_cnn.training import model_io


def main() -> None:
    p = params.load()
    val = split.load_cells(paths.CELLS_NPZ, paths.SPLITS_CSV, "val")["val"]
    prob = model_io.parasitized_probability(model_io.load(paths.MODEL), val["x"], p.predict.batch_size)
    chosen = operating_point.choose(val["y"], prob, p.threshold)
    on_val = operating_point.on_split(val["y"], prob, val["slide"], chosen)
    operating_point.save(paths.THRESHOLD, chosen, p.threshold, paths.MODEL, on_val)
    rule, how = patients.choose_rule(val["y"], prob, val["slide"], chosen)
    patients.save(paths.SLIDE_RULE, rule, how, paths.MODEL)
    sens, spec = (f"{v:.3f}" if v is not None else "n/a" for v in (on_val["sensitivity"], on_val["specificity"]))
    print(f"threshold: {chosen:.4f} by rule {p.threshold.rule} on {on_val['cells']} val cells from "
          f"{on_val['slides']} slides (val sensitivity {sens}, specificity {spec}) -> {paths.THRESHOLD}; "
          f"a slide is called infected with {rule.describe()} ({how}) -> {paths.SLIDE_RULE}")


if __name__ == "__main__":
    run_main(main)
