from malaria_cnn.data.duplicates import dedupe


def test_duplicates_are_kept_once_and_conflicts_left_out():
    keys = ["a", "b", "a", "c", "c", "d"]
    labels = ["Parasitized", "Uninfected", "Parasitized", "Parasitized", "Uninfected", "Uninfected"]
    names = ["p1", "u1", "p1-copy", "p2", "u2", "u3"]
    keep, rejects = dedupe(keys, labels, names)
    assert keep == [True, True, False, False, False, True]
    reasons = dict(rejects)
    assert reasons["p1-copy"] == "duplicate of p1"
    assert reasons["p2"].startswith("label conflict: the same image is filed as Parasitized and as Uninfected (u2)")
    assert reasons["u2"].startswith("label conflict: the same image is filed as Uninfected and as Parasitized (p2)")
    assert len(rejects) == 3
