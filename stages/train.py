"""Stage train@K: fold K's model, trained on the other folds and scored on fold K -> models/folds/K/."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # run the package in this tree

from malaria_cnn.core import atomic, params, paths
from malaria_cnn.core.errors import UserError, run_main
from malaria_cnn.data import split


def main() -> None:
    if len(sys.argv) != 2 or not sys.argv[1].isdigit() or int(sys.argv[1]) >= params.FOLD_SLOTS:
        raise UserError(f"usage: python stages/train.py FOLD (0 to {params.FOLD_SLOTS - 1})")
    k, p = int(sys.argv[1]), params.load()
    dest = Path(paths.FOLDS, str(k))
    if k >= p.cv.folds:  # dvc.yaml has a stage for every fold slot; this one is idle
        with atomic.atomic_dir(dest) as tmp:
            (tmp / "UNUSED").write_text(f"cv.folds is {p.cv.folds}: fold {k} is not used\n")
        print(f"train@{k}: not used (cv.folds={p.cv.folds})")
        return

    from malaria_cnn.training import cross_validation, distribute  # TensorFlow: only for folds in use

    run = distribute.start(p.train)  # before TensorFlow does any other work
    cells, held = split.load_fold(paths.CELLS_NPZ, paths.SPLITS_CSV, k)
    with distribute.scratch_unless_chief(run) as scratch:  # only the chief writes into the project
        with atomic.atomic_dir(Path(scratch, "fold") if scratch else dest) as tmp:
            line = cross_validation.fit_fold(p, k, cells, held, tmp, Path(paths.CHECKPOINTS, f"fold-{k}"), run)
    print(line if run.chief else f"{line}; {run.task} done, the chief saves the model")


if __name__ == "__main__":
    run_main(main)
