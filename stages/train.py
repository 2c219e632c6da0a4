"""Stage train: fit the network on the train split -> models/model.keras + dvclive/ (per-epoch metrics)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # run the package in this tree

from malaria_cnn import models, params, paths
from malaria_cnn.data import load_splits
from malaria_cnn.errors import run_main
from malaria_cnn.train import train


def main() -> None:
    p = params.load()
    splits = load_splits(paths.CELLS_NPZ, paths.SPLITS_CSV, "train", "val")
    model, history = train(p, splits["train"], splits["val"], checkpoints=paths.CHECKPOINTS, live_dir=paths.LIVE)
    models.save(model, paths.MODEL)
    epochs = len(history.get("loss", []))
    print(f"train: {p.model.preset} network, {model.count_params():,} parameters, {epochs} epochs "
          f"(best val loss {min(history['val_loss']):.4f}) -> {paths.MODEL}")


if __name__ == "__main__":
    run_main(main)
