"""Stage train: fit the network on the train split -> models/model.keras + plots/history.csv."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # run the package in this tree

from malaria_cnn import atomic, models, params, paths
from malaria_cnn.data import load_splits
from malaria_cnn.errors import run_main
from malaria_cnn.train import history_rows, train


def main() -> None:
    p = params.load()
    splits = load_splits(paths.CELLS_NPZ, paths.SPLITS_CSV, "train", "val")
    model, history = train(p, splits["train"], splits["val"])
    models.save(model, paths.MODEL)
    atomic.write_csv(paths.HISTORY, *history_rows(history))
    print(f"train: {p.model.preset} network, {model.count_params():,} parameters, {p.epochs} epochs -> {paths.MODEL}")


if __name__ == "__main__":
    run_main(main)
