import numpy as np
import pytest

from malaria_cnn.core.errors import UserError
from malaria_cnn.data import split


def _cells(n_slides=20, seed=0):
    rng = np.random.default_rng(seed)
    sizes = rng.integers(10, 80, n_slides)
    groups = np.repeat([f"s{i}" for i in range(n_slides)], sizes)
    infected_share = rng.uniform(0, 1, n_slides)
    labels = (rng.uniform(0, 1, len(groups)) < np.repeat(infected_share, sizes)).astype(np.uint8)
    return labels, groups


def test_no_slide_in_two_splits_and_sizes_near_the_fractions():
    labels, groups = _cells()
    splits = split.assign(labels, groups, test_size=0.2, val_size=0.1, seed=1)
    split.check_no_leakage(groups, splits)
    for s in split.SPLITS:
        assert len(set(groups[splits == s]) & set(groups[splits != s])) == 0
    n = len(labels)
    for cls in (0, 1):
        total = np.sum(labels == cls)
        assert abs(np.sum((splits == "test") & (labels == cls)) - 0.2 * total) <= 0.05 * total
    assert abs(np.sum(splits == "val") - 0.1 * 0.8 * n) <= 0.05 * n
    for s in split.SPLITS:
        assert set(labels[splits == s]) == {0, 1}  # both classes everywhere


def test_same_seed_same_split_other_seed_other_split():
    labels, groups = _cells()
    a = split.assign(labels, groups, 0.2, 0.1, seed=1)
    assert np.array_equal(a, split.assign(labels, groups, 0.2, 0.1, seed=1))
    assert not np.array_equal(a, split.assign(labels, groups, 0.2, 0.1, seed=2))


def test_ungrouped_split_is_stratified_by_cell():
    labels, _ = _cells()
    cells = np.array([f"c{i}" for i in range(len(labels))])
    splits = split.assign(labels, cells, 0.25, 0.2, seed=0)
    for cls in (0, 1):
        total = np.sum(labels == cls)
        assert abs(np.sum((splits == "test") & (labels == cls)) - 0.25 * total) <= 1


def test_too_few_slides_is_a_clear_error():
    with pytest.raises(UserError, match="needs at least 3 slides, found 2"):
        split.assign(np.array([0, 1, 0, 1]), np.array(["a", "a", "b", "b"]), 0.2, 0.1, 0)


def test_leak_check_catches_a_shared_slide():
    groups = np.array(["a", "a", "b", "c"])
    with pytest.raises(UserError, match="slides in both test and train: a"):
        split.check_no_leakage(groups, np.array(["train", "test", "val", "test"]))


def test_table_round_trip_and_mismatch(tmp_path):
    files = np.array(["x.png", "y.png"])
    split.write(tmp_path / "s.csv", files, np.array([0, 1]), np.array(["a", "b"]), np.array(["train", "test"]),
                np.array([3, -1]))
    assert (tmp_path / "s.csv").read_text().splitlines()[1] == "x.png,Uninfected,a,train,3"
    names, folds = split.read(tmp_path / "s.csv", files)
    assert names.tolist() == ["train", "test"] and folds.tolist() == [3, -1]
    with pytest.raises(UserError, match="does not match the preprocessed cells"):
        split.read(tmp_path / "s.csv", np.array(["y.png", "x.png"]))


def test_sizes_counts_classes_and_slides():
    sizes = split.sizes(np.array([0, 1, 1, 0]), np.array(["a", "a", "b", "c"]), np.array(["train", "train", "val", "test"]))
    assert sizes["train"] == {"Uninfected": 1, "Parasitized": 1, "slides": 1}
    assert sizes["val"] == {"Uninfected": 0, "Parasitized": 1, "slides": 1}
    assert split.summary(sizes) == "split: train 2 cells from 1 slides; val 1 cells from 1 slides; test 1 cells from 1 slides"


def _with_folds(k, n_slides=30, seed=0):
    labels, groups = _cells(n_slides, seed)
    splits = split.assign(labels, groups, 0.2, 0.1, seed=1)
    splits[splits == "val"] = "train"
    return labels, groups, splits, split.assign_folds(labels, groups, splits, k, seed=1)


@pytest.mark.parametrize("k", [2, 3, 5])
def test_folds_cover_every_non_test_cell_once_and_no_slide_twice(k):
    labels, groups, splits, folds = _with_folds(k)
    split.check_folds(groups, splits, folds)
    assert set(folds[splits == "test"]) == {split.NOT_HELD_OUT}  # free of test slides
    assert set(folds[splits != "test"]) == set(range(k))  # every non-test cell in exactly one fold
    for f in range(k):
        assert not set(groups[folds == f]) & set(groups[(folds != f)])  # slide-disjoint
        train, held = split.fold_members(folds, splits, f)
        assert not (train & held).any() and not (train & (splits == "test")).any()
        assert (train | held).sum() == (splits != "test").sum()
    shares = [labels[folds == f].mean() for f in range(k)]
    assert max(shares) - min(shares) < 0.25  # stratified: each fold near the overall share of parasitized cells


def test_one_fold_is_the_val_split():
    labels, groups = _cells()
    splits = split.assign(labels, groups, 0.2, 0.1, seed=1)
    folds = split.assign_folds(labels, groups, splits, 1, seed=1)
    assert np.array_equal(folds == 0, splits == "val") and set(folds[splits != "val"]) == {split.NOT_HELD_OUT}


def test_fold_checks_catch_a_shared_slide_and_a_test_cell():
    groups, splits = np.array(["a", "a", "b", "c"]), np.array(["train", "train", "train", "test"])
    with pytest.raises(UserError, match="slide a is in folds 0 and 1"):
        split.check_folds(groups, splits, np.array([0, 1, 1, -1]))
    with pytest.raises(UserError, match="a test cell was put in a cross-validation fold"):
        split.check_folds(groups, splits, np.array([0, 0, 1, 1]))


def test_more_folds_than_slides_is_a_clear_error():
    labels, groups = _cells(6)
    splits = split.assign(labels, groups, 0.2, 0.1, seed=1)
    with pytest.raises(UserError, match="cv.folds is 9 but only"):
        split.assign_folds(labels, groups, splits, 9, seed=1)


def test_every_split_gets_healthy_slides_when_there_are_enough():
    """Slide-level specificity needs slides without a parasitized cell in val and test too."""
    rng = np.random.default_rng(5)
    groups = np.repeat(np.arange(30), 20)
    healthy = rng.permutation(30)[:6]
    labels = np.where(np.isin(groups, healthy), 0, rng.integers(0, 2, len(groups)))
    for seed in range(5):
        splits = split.assign(labels, groups, 0.2, 0.15, seed)
        for name in split.SPLITS:
            assert set(groups[splits == name]) & set(healthy), (seed, name)


def test_with_several_sources_every_split_and_fold_gets_each_source_and_no_slide_is_shared():
    rng = np.random.default_rng(5)
    groups = np.array([f"{s}/{g}" for s, n in (("nih", 40), ("pale", 12), ("dark", 12)) for g in range(n)
                       for _ in range(30)])
    sources = np.array([g.split("/")[0] for g in groups])
    labels = (rng.uniform(size=len(groups)) < np.where(sources == "nih", 0.5, 0.05)).astype(int)
    for seed in range(6):  # without `sources`, seeds 1, 2 and 5 give a small source 8% of the test split
        splits = split.assign(labels, groups, 0.2, 0.1, seed=seed, sources=sources)
        splits[splits == "val"] = "train"
        folds = split.assign_folds(labels, groups, splits, 5, seed=seed, sources=sources)
        split.check_no_leakage(groups, splits)
        split.check_folds(groups, splits, folds)
        for source in ("nih", "pale", "dark"):
            mine = sources == source
            share = np.mean(splits[mine] == "test")
            assert 0.1 <= share <= 0.3, (seed, source, share)  # about test_size of each source, not only of all
            assert all(np.any(mine & (folds == k)) for k in range(5)), source
    sizes = split.sizes(labels, groups, splits, sources)
    assert sum(sizes["test"]["sources"].values()) == np.sum(splits == "test")
