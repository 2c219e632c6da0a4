"""Stage oof: the fold models' out-of-fold predictions in one table, and the label audit -> data/oof/, data/audit/."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # run the package in this tree

from malaria_cnn.core import atomic, params, paths
from malaria_cnn.core.errors import run_main
from malaria_cnn.data import cells_npz, images, split
from malaria_cnn.evaluation import audit, oof


def main() -> None:
    p = params.load()
    arrays = cells_npz.load(paths.CELLS_NPZ, keys=("x", "filename"))
    _, fold = split.read(paths.SPLITS_CSV, arrays["filename"])
    held = fold != split.NOT_HELD_OUT
    scored = oof.gather([Path(paths.FOLDS, str(k), "oof.csv") for k in range(p.cv.folds)],
                        arrays["filename"][held], fold[held])
    oof.write(paths.OOF, scored)

    flagged = audit.label_issues(scored["y"], scored["prob"])
    table = audit.rows(scored, flagged)
    atomic.write_csv(paths.LABEL_ISSUES, audit.COLUMNS, table)
    index = {f: i for i, f in enumerate(arrays["filename"])}
    crops = arrays["x"][[index[r[1]] for r in table[:p.audit.sheet]]]
    atomic.write_bytes(paths.LABEL_ISSUES_SHEET, images.encode_png(
        audit.sheet(crops, table[:p.audit.sheet], len(flagged), len(scored["y"]))))
    print(f"oof: {len(scored['y'])} out-of-fold cells from {len(set(scored['slide']))} slides in {p.cv.folds} "
          f"fold(s) -> {paths.OOF}; label audit: {len(flagged)} crops flagged -> {paths.LABEL_ISSUES}")


if __name__ == "__main__":
    run_main(main)
