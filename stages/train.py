"""Stage train: fit the network on the train split -> models/model.keras + dvclive/ (per-epoch metrics)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # run the package in this tree

from malaria_cnn.core import params, paths
from malaria_cnn.core.errors import run_main
from malaria_cnn.data import split
from malaria_cnn.training import distribute, model_io
from malaria_cnn.training.train import train


def main() -> None:
    p = params.load()
    run = distribute.start(p.train)  # before TensorFlow does any other work
    splits = split.load_xy(paths.CELLS_NPZ, paths.SPLITS_CSV, "train", "val")
    with distribute.scratch_unless_chief(run) as scratch:  # only the chief writes into the project
        model_path = Path(scratch, "model.keras") if scratch else paths.MODEL
        model, history = train(p, splits["train"], splits["val"], checkpoints=paths.CHECKPOINTS,
                               live_dir=Path(scratch, paths.LIVE) if scratch else paths.LIVE, run=run)
        model_io.save(model, model_path)
    epochs = len(history.get("loss", []))
    done = paths.MODEL if run.chief else f"{run.task} done, the chief saves the model"
    print(f"train: {p.model.preset} network, {model.count_params():,} parameters, {epochs} epochs "
          f"(best val loss {min(history['val_loss']):.4f}) -> {done}")


if __name__ == "__main__":
    run_main(main)
