"""Stage evaluate: score the test split at the stored threshold and slide rule -> metrics/, plots/."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # run the package in this tree

from malaria_cnn.core import params, paths
from malaria_cnn.core.errors import run_main
from malaria_cnn.data import split, stain
from malaria_cnn.evaluation import evaluate, operating_point, outputs, patients
from malaria_cnn.training import model_io


def main() -> None:
    p = params.load()
    test = split.load_cells(paths.CELLS_NPZ, paths.SPLITS_CSV, "test")["test"]
    model = model_io.load(paths.MODEL)
    stored = operating_point.load_record(paths.THRESHOLD, paths.MODEL)
    threshold = operating_point.pick(stored, paths.THRESHOLD)
    rule, rules = patients.load_all(paths.SLIDE_RULE, paths.MODEL)
    points = {name: (o["threshold"], rules[name]) for name, o in stored.get("by_source", {}).items()
              if o["threshold"] is not None}  # each source's own threshold and slide rule
    span = stain.StainRange.load(paths.STAIN_RANGE, paths.MODEL)
    prob = model_io.parasitized_probability(model, test["x"], p.predict.batch_size)
    m = outputs.write(outputs.Outputs.pipeline(), test["y"], prob, test["slide"], threshold, rule, p.evaluate,
                      test["x"], model, test["density"], span, test["source"], points)
    print(evaluate.summary(m, p.evaluate))


if __name__ == "__main__":
    run_main(main)
