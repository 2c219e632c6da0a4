"""Labelled photos and several sources in DVC: `dvc exp run -S data.sources=[...]` end to end, every figure
per source, no slide in two splits, and an edited box file reruns ingest."""

import csv
import json

import pytest

from malaria_cnn.data.images import encode_png
from malaria_cnn.screening.synthetic_field import coco, make_field

from temp_repo import GIT, STAGES, make, ran, sh

pytestmark = pytest.mark.e2e


def test_exp_run_with_photos_beside_crops_reports_each_source(tmp_path):
    photos = tmp_path / "smears"
    photos.mkdir()
    fields = {f"field_{seed}.png": make_field(seed, cells=30) for seed in range(4)}
    for name, f in fields.items():
        (photos / name).write_bytes(encode_png(f.rgb))
    (photos / "boxes.json").write_text(json.dumps(coco(fields)))
    repo = tmp_path / "project"
    repo.mkdir()
    make(repo)
    sources = (f"data.sources=[{{source: synthetic}}, {{source: photos, path: {photos}, "
               f"boxes: {photos / 'boxes.json'}, name: ours}}]")
    out = sh(["dvc", "exp", "run", "-S", sources], repo)
    assert ran(out) == STAGES
    assert "ingest sources synthetic (48), ours (" in out
    with open(repo / "data/split/splits.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    where: dict[str, set] = {}
    for row in rows:
        where.setdefault(row["slide"], set()).add(row["split"])
    assert all(len(s) == 1 for s in where.values())  # no slide in two splits
    assert {s.split("/")[0] for s in where} == {"synthetic", "ours"}
    metrics = json.loads((repo / "metrics/metrics.json").read_text())
    parts = metrics["by_source"]
    assert set(parts) <= {"synthetic", "ours"} and sum(p["cells"] for p in parts.values()) == metrics["cells"]
    assert "  source " in out
    own = json.loads((repo / "models/threshold.json").read_text())["by_source"]
    assert set(own) == {"synthetic", "ours"} and all(o["rule"] == "f1" for o in own.values())
    rules = json.loads((repo / "models/slide_rule.json").read_text()).get("by_source", {})
    assert set(rules) == {name for name, o in own.items() if o["threshold"] is not None}
    assert "  source ours: threshold " in out or "  source ours: none of its own" in out

    sh([*GIT, "add", "-A"], repo)
    sh([*GIT, "commit", "-qm", "the experiment"], repo)
    assert ran(sh(["dvc", "repro"], repo)) == []  # a second repro does nothing
    doc = coco(fields)
    doc["annotations"] = doc["annotations"][1:]  # one box fewer
    (photos / "boxes.json").write_text(json.dumps(doc))
    assert ran(sh(["dvc", "repro", "ingest"], repo)) == ["ingest"]
