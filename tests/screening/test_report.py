import pytest

from malaria_cnn.screening import report


def test_wilson_interval():
    lo, hi = report.wilson(0, 10)
    assert lo == 0 and hi == pytest.approx(0.2775, abs=1e-4)
    lo, hi = report.wilson(5, 100)
    assert (lo, hi) == (pytest.approx(0.02154, abs=1e-4), pytest.approx(0.11175, abs=1e-4))
    lo, hi = report.wilson(50, 50)
    assert hi == pytest.approx(1) and lo == pytest.approx(0.9287, abs=1e-4)


STAIN = "stain unlike the training data: green 3.1x darker than any of the 40 training slides"


def test_slides_pool_their_photos_and_skip_failed_ones():
    rows = [("a1.jpg", "A", 100, 2, 0.02, "", ""), ("a2.jpg", "A", 300, 6, 0.02, "", ""),
            ("b.jpg", "B", 50, 0, 0.0, "", ""), ("bad.jpg", "A", "", "", "", "", "truncated file"),
            ("none.jpg", "C", 0, 0, "", "", "")]
    slides = report.slide_rows(rows)
    assert [s[:5] for s in slides] == [("A", 2, 400, 8, 0.02), ("B", 1, 50, 0, 0.0), ("C", 1, 0, 0, "")]
    lo, hi = report.wilson(8, 400)
    assert slides[0][5:7] == (round(lo, 6), round(hi, 6)) and slides[2][5:7] == ("", "")
    assert all(s[7:] == (0, "") for s in slides)


def test_referred_photos_are_counted_apart_never_in_a_parasitemia():
    rows = [("a1.jpg", "A", 100, 2, 0.02, "", ""), ("a2.jpg", "A", 200, 150, "", STAIN, ""),
            ("b1.jpg", "B", 80, 80, "", STAIN, ""), ("b2.jpg", "B", 90, 90, "", STAIN, "")]
    a, b = report.slide_rows(rows)
    assert a[:5] == ("A", 1, 100, 2, 0.02) and a[7:] == (1, "")  # a2's 150 calls are in no parasitemia
    assert b[:7] == ("B", 0, 0, 0, "", "", "") and b[7:] == (2, STAIN)  # no number at all, and why


def test_summary_line():
    rows = [("a.jpg", "A", 100, 2, 0.02, "", ""), ("b.jpg", "b.jpg", "", "", "", "", "not a readable image")]
    assert report.summary(rows, 0.5, "out") == ("screen: 1 photos read, 100 red cells found, 2 called Parasitized "
                                                "(2.00%) at threshold 0.500; 1 photo failed (reasons in "
                                                "out/images.csv) -> out")
    rows.append(("c.jpg", "C", 50, 50, "", STAIN, ""))
    assert report.summary(rows, 0.5, "out") == ("screen: 2 photos read, 150 red cells found, 2 called Parasitized "
                                                "(2.00%) at threshold 0.500; 1 photo referred to a microscopist, not "
                                                "counted (stain unlike the training data: reasons in out/images.csv); "
                                                "1 photo failed (reasons in out/images.csv) -> out")


def test_names_of_annotated_photos_do_not_collide():
    taken: set[str] = set()
    assert [report.unique_name(s, taken) for s in ("P1", "p1", "P1", "P2")] == ["P1", "p1-2", "P1-3", "P2"]
