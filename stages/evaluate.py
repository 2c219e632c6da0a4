"""Stage evaluate: score the test split -> metrics/metrics.json, plots/confusion.csv, plots/roc.csv."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # run the package in this tree

from malaria_cnn import atomic, evaluate, models, params, paths
from malaria_cnn.data import load_splits
from malaria_cnn.errors import run_main


def main() -> None:
    cfg = params.load().evaluate
    x, y = load_splits(paths.CELLS_NPZ, paths.SPLITS_CSV, "test")["test"]
    prob = models.parasitized_probability(models.load(paths.MODEL), x, cfg.batch_size)
    metrics = evaluate.scores(y, prob, cfg.threshold)
    atomic.write_json(paths.METRICS, metrics)
    atomic.write_csv(paths.CONFUSION, ["actual", "predicted"], evaluate.confusion_rows(y, prob, cfg.threshold))
    atomic.write_csv(paths.ROC, ["fpr", "tpr", "threshold"], evaluate.roc_rows(y, prob))
    print(evaluate.summary(metrics))


if __name__ == "__main__":
    run_main(main)
