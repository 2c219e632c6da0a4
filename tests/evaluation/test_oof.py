"""Out-of-fold predictions: every held-out cell exactly once, from the fold that held it out."""

import numpy as np
import pytest

from malaria_cnn.core.errors import UserError
from malaria_cnn.evaluation import oof


def _fold_file(path, rows):
    path.write_text("file,label,slide,fold,p_parasitized\n" + "".join(f"{r}\n" for r in rows))
    return path


def test_gather_orders_and_checks_the_folds_rows(tmp_path):
    a = _fold_file(tmp_path / "0.csv", ["c.png,Parasitized,s2,0,0.9", "a.png,Uninfected,s1,0,0.2"])
    b = _fold_file(tmp_path / "1.csv", ["b.png,Parasitized,s3,1,0.7"])
    scored = oof.gather([a, b], np.array(["a.png", "b.png", "c.png"]), np.array([0, 1, 0]))
    assert scored["file"].tolist() == ["a.png", "b.png", "c.png"]
    assert scored["y"].tolist() == [0, 1, 1] and scored["fold"].tolist() == [0, 1, 0]
    assert scored["prob"].tolist() == [0.2, 0.7, 0.9]
    oof.write(tmp_path / "all.csv", scored)
    back = oof.read(tmp_path / "all.csv")
    assert all(np.array_equal(back[k], scored[k]) for k in scored)


def test_a_missing_twice_scored_or_misassigned_cell_is_refused(tmp_path):
    a = _fold_file(tmp_path / "0.csv", ["a.png,Uninfected,s1,0,0.2"])
    b = _fold_file(tmp_path / "1.csv", ["b.png,Parasitized,s3,1,0.7"])
    files = np.array(["a.png", "b.png"])
    with pytest.raises(UserError, match="do not match"):
        oof.gather([a], files, np.array([0, 1]))  # b.png never scored
    with pytest.raises(UserError, match="do not match"):
        oof.gather([a, b], files, np.array([0, 0]))  # scored by the wrong fold
    twice = _fold_file(tmp_path / "2.csv", ["a.png,Uninfected,s1,1,0.3"])
    with pytest.raises(UserError, match="a.png is scored by folds 0 and 1"):
        oof.gather([a, b, twice], files, np.array([0, 1]))
