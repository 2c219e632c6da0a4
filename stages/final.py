"""Stage final: the model shipped and tested, the fold models' ensemble or a refit -> models/model.keras; the
span of its training slides' stains -> models/stain_range.json."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # run the package in this tree

from malaria_cnn.core import params, paths
from malaria_cnn.core.errors import run_main
from malaria_cnn.data import cells_npz, split, stain
from malaria_cnn.evaluation import audit
from malaria_cnn.training import cross_validation, distribute, model_io


def main() -> None:
    p = params.load()
    fold_dirs = [Path(paths.FOLDS, str(k)) for k in range(p.cv.folds)]
    if p.cv.final == "ensemble":
        model = cross_validation.ensemble_of(fold_dirs)
        model_io.save(model, paths.MODEL)
        line = f"final: the mean of {len(fold_dirs)} fold model(s), {model.count_params():,} parameters -> {paths.MODEL}"
    else:
        run = distribute.start(p.train)
        cells = split.load_cells(paths.CELLS_NPZ, paths.SPLITS_CSV, "train", *(["val"] if p.cv.folds == 1 else []))
        excluded = audit.read_flagged(paths.LABEL_ISSUES) if p.train.exclude_label_issues else set()
        with distribute.scratch_unless_chief(run) as scratch:  # only the chief writes into the project
            model, line = cross_validation.refit(p, fold_dirs, list(cells.values()), excluded, run)
            model_io.save(model, Path(scratch, "model.keras") if scratch else paths.MODEL)
        line += f" -> {paths.MODEL}"
        if scratch:
            print(line)
            return
    # the non-test cells' stains: their densities and slides only, not their pixels
    cells = cells_npz.load(paths.CELLS_NPZ, ("filename", "slide", "density"))
    trained = split.read(paths.SPLITS_CSV, cells["filename"])[0] != "test"
    span = stain.StainRange.of_slides(cells["density"][trained], cells["slide"][trained], p.preprocess.stain)
    span.save(paths.STAIN_RANGE, paths.MODEL)
    print(f"{line}; the stain of its {span.slides} training slides -> {paths.STAIN_RANGE}")

if __name__ == "__main__":
    run_main(main)
