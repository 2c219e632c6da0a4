from malaria_cnn.screening import report

from conftest import slide_rule

STAIN = "stain unlike the training data: green 3.1x darker than any of the 40 training slides"
RULE = slide_rule()  # counts cells from 0.5, boundary 10%, band 0.3-0.7, at most 25% of cells flagged


def _row(image, slide, cells, parasitized, counted=None, uncertain=0, referred="", error="", flagged=None):
    """An images.csv row (report.IMAGES); the cells counted are flagged too unless said."""
    if error:
        return (image, slide, "", "", "", "", "", "", "", error)
    share = "" if referred else round(parasitized / cells, 6) if cells else ""
    counted = parasitized if counted is None else counted
    return (image, slide, cells, parasitized, share, counted, uncertain, counted if flagged is None else flagged,
            referred, "")


def _slides(rows, rule=RULE):
    return [dict(zip(report.SLIDES, r)) for r in report.slide_rows(rows, rule)]


def test_slides_pool_their_photos_as_clusters_and_skip_failed_ones():
    rows = [_row("a1.jpg", "A", 100, 20), _row("a2.jpg", "A", 300, 60), _row("b.jpg", "B", 50, 0),
            _row("bad.jpg", "A", 0, 0, error="truncated file"), _row("none.jpg", "C", 0, 0)]
    a, b, c = _slides(rows)
    assert (a["slide"], a["images"], a["cells"], a["parasitized"], a["counted"], a["counted_share"]) == \
        ("A", 2, 400, 80, 80, 0.2)
    assert a["answer"] == "infected" and a["parasitemia_ci_lower"] > 0
    assert (b["answer"], b["parasitemia"], b["parasitemia_ci_lower"]) == ("not infected", 0.0, 0.0)
    assert c["cells"] == 0 and (c["answer"], c["reason"]) == ("refer", "no cells")
    # the same cells in photos that disagree (0% and 60%) are worth fewer cells: a wider interval
    split = _slides([_row("a1.jpg", "A", 200, 0), _row("a2.jpg", "A", 200, 80)])[0]
    assert split["counted_share"] == a["counted_share"]
    assert split["parasitemia_ci_upper"] - split["parasitemia_ci_lower"] > \
        a["parasitemia_ci_upper"] - a["parasitemia_ci_lower"]


def test_referred_photos_are_counted_apart_never_in_a_parasitemia():
    rows = [_row("a1.jpg", "A", 100, 2), _row("a2.jpg", "A", 200, 150, referred=STAIN),
            _row("b1.jpg", "B", 80, 80, referred=STAIN), _row("b2.jpg", "B", 90, 90, referred=STAIN)]
    a, b = _slides(rows)
    assert (a["images"], a["cells"], a["counted"], a["images_referred"]) == (1, 100, 2, 1)  # a2's calls in no number
    assert (b["images"], b["cells"], b["counted"], b["parasitemia"], b["images_referred"]) == (0, 0, 0, "", 2)
    assert (b["answer"], b["reason"]) == ("refer", STAIN)  # no number at all, and why
    unruled = _slides(rows, rule=None)[0]  # no slide rule beside the model: the share, no correction
    assert (unruled["counted_share"], unruled["parasitemia"], unruled["answer"]) == (0.02, "", "")


def test_summary_line():
    rows = [_row("a.jpg", "A", 100, 2), _row("b.jpg", "b.jpg", 0, 0, error="not a readable image")]
    assert report.summary(rows, 0.5, "out") == ("screen: 1 photo read, 100 red cells found, 2 called Parasitized "
                                                "(2.00%) at threshold 0.500; 1 photo failed (reasons in "
                                                "out/images.csv) -> out")
    assert report.summary(rows, 0.5, "out", uncertain_objects=1).startswith(
        "screen: 1 photo read, 100 cells found (99 red cells, 1 uncertain object), 2 called")
    rows.append(_row("c.jpg", "C", 50, 50, referred=STAIN))
    assert report.summary(rows, 0.5, "out") == ("screen: 2 photos read, 150 red cells found, 2 called Parasitized "
                                                "(2.00%) at threshold 0.500; 1 photo referred to a microscopist, not "
                                                "counted (stain unlike the training data: reasons in out/images.csv); "
                                                "1 photo failed (reasons in out/images.csv) -> out")
    line = report.summary(rows, 0.5, "out", RULE, report.slide_rows(rows, RULE))
    a = report.pooled([rows[0]], RULE)
    e = a.estimate
    assert (f"2 called Parasitized (2.00%) at threshold 0.500, corrected parasitemia {e.corrected:.2%} "
            f"({e.lower:.2%}-{e.upper:.2%}): {a.answer}; slides: 0 infected, 1 not infected, 1 refer; "
            f"1 photo referred") in line


def test_names_of_annotated_photos_do_not_collide():
    taken: set[str] = set()
    assert [report.unique_name(s, taken) for s in ("P1", "p1", "P1", "P2")] == ["P1", "p1-2", "P1-3", "P2"]
