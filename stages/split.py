"""Stage split: test split and cross-validation folds, stratified and grouped by slide -> data/split/."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # run the package in this tree

from malaria_cnn.core import atomic, params, paths
from malaria_cnn.core.errors import run_main
from malaria_cnn.data import cells_npz, split


def main() -> None:
    p = params.load()
    cfg = p.split
    arrays = cells_npz.load(paths.CELLS_NPZ, keys=("y", "slide", "filename", "source"))
    groups = arrays["slide"] if cfg.group_by == "slide" else arrays["filename"]
    if cfg.group_by == "none":
        print("warning: split.group_by is none: cells of one slide may land in several splits, "
              "so test results are not patient-level", file=sys.stderr)
    sources = arrays["source"]
    assigned = split.assign(arrays["y"], groups, cfg.test_size, cfg.val_size, cfg.seed, sources=sources)
    if p.cv.folds > 1:
        assigned[assigned == "val"] = "train"  # the folds take the val split's place
    fold = split.assign_folds(arrays["y"], groups, assigned, p.cv.folds, cfg.seed, sources)
    split.check_no_leakage(groups, assigned)
    split.check_folds(groups, assigned, fold)
    split.write(paths.SPLITS_CSV, arrays["filename"], arrays["y"], arrays["slide"], assigned, fold)
    sizes = split.sizes(arrays["y"], arrays["slide"], assigned, sources)
    sizes["folds"] = split.fold_sizes(arrays["y"], arrays["slide"], fold, p.cv.folds)
    atomic.write_json(paths.SPLIT_SIZES, sizes)
    print(split.summary(sizes))


if __name__ == "__main__":
    run_main(main)
