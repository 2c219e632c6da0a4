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
    split.write(tmp_path / "s.csv", files, np.array([0, 1]), np.array(["a", "b"]), np.array(["train", "test"]))
    assert (tmp_path / "s.csv").read_text().splitlines()[1] == "x.png,Uninfected,a,train"
    assert split.read(tmp_path / "s.csv", files).tolist() == ["train", "test"]
    with pytest.raises(UserError, match="does not match the preprocessed cells"):
        split.read(tmp_path / "s.csv", np.array(["y.png", "x.png"]))


def test_sizes_counts_classes_and_slides():
    sizes = split.sizes(np.array([0, 1, 1, 0]), np.array(["a", "a", "b", "c"]), np.array(["train", "train", "val", "test"]))
    assert sizes["train"] == {"Uninfected": 1, "Parasitized": 1, "slides": 1}
    assert sizes["val"] == {"Uninfected": 0, "Parasitized": 1, "slides": 1}
    assert split.summary(sizes) == "split: train 2 cells from 1 slides; val 1 cells from 1 slides; test 1 cells from 1 slides"


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
