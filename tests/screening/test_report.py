import pytest

from malaria_cnn.screening import report


def test_wilson_interval():
    lo, hi = report.wilson(0, 10)
    assert lo == 0 and hi == pytest.approx(0.2775, abs=1e-4)
    lo, hi = report.wilson(5, 100)
    assert (lo, hi) == (pytest.approx(0.02154, abs=1e-4), pytest.approx(0.11175, abs=1e-4))
    lo, hi = report.wilson(50, 50)
    assert hi == pytest.approx(1) and lo == pytest.approx(0.9287, abs=1e-4)


def test_slides_pool_their_photos_and_skip_failed_ones():
    rows = [("a1.jpg", "A", 100, 2, 0.02, ""), ("a2.jpg", "A", 300, 6, 0.02, ""), ("b.jpg", "B", 50, 0, 0.0, ""),
            ("bad.jpg", "A", "", "", "", "truncated file"), ("none.jpg", "C", 0, 0, "", "")]
    slides = report.slide_rows(rows)
    assert [s[:5] for s in slides] == [("A", 2, 400, 8, 0.02), ("B", 1, 50, 0, 0.0), ("C", 1, 0, 0, "")]
    lo, hi = report.wilson(8, 400)
    assert slides[0][5:] == (round(lo, 6), round(hi, 6)) and slides[2][5:] == ("", "")


def test_summary_line():
    rows = [("a.jpg", "A", 100, 2, 0.02, ""), ("b.jpg", "b.jpg", "", "", "", "not a readable image")]
    assert report.summary(rows, 0.5, "out") == ("screen: 1 photos read, 100 red cells found, 2 called Parasitized "
                                                "(2.00%) at threshold 0.500; 1 photo failed (reasons in "
                                                "out/images.csv) -> out")


def test_names_of_annotated_photos_do_not_collide():
    taken: set[str] = set()
    assert [report.unique_name(s, taken) for s in ("P1", "p1", "P1", "P2")] == ["P1", "p1-2", "P1-3", "P2"]
