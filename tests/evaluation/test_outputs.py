"""What an evaluation writes; with several data sources, every figure per source as well."""

import json

import numpy as np

from malaria_cnn.core.params import EvaluateParams
from malaria_cnn.evaluation import evaluate, outputs
from malaria_cnn.training import model_io

from conftest import slide_rule


def test_every_figure_is_given_per_source_as_well_as_overall(tmp_path, model_dir):
    rng = np.random.default_rng(0)
    slides = np.array([f"{s}/{k}" for s in ("nih", "pale") for k in range(6) for _ in range(20)])
    sources = np.array([s.split("/")[0] for s in slides])
    y = (rng.uniform(size=len(slides)) < 0.3).astype(np.uint8)
    prob = np.clip(y * 0.6 + rng.uniform(0, 0.5, len(y)), 0, 1)
    prob[sources == "pale"] = rng.uniform(0, 1, np.sum(sources == "pale"))  # the model knows nothing of pale
    x = rng.integers(0, 256, (len(y), 24, 24, 3), dtype=np.uint8)
    model = model_io.load(model_dir / "model.keras")
    cfg = EvaluateParams(bootstrap=100, gallery=2, gradcam=1, min_slides=2)
    m = outputs.write(outputs.Outputs.under(tmp_path), y, prob, slides, 0.5, slide_rule(), cfg, x, model,
                      sources=sources)
    assert json.loads((tmp_path / "metrics.json").read_text()) == m
    parts = m["by_source"]
    assert set(parts) == {"nih", "pale"}
    assert sum(p["cells"] for p in parts.values()) == m["cells"] and all(p["slides"] == 6 for p in parts.values())
    for name, part in parts.items():
        mine = sources == name
        alone = evaluate.report(y[mine], prob[mine], slides[mine], 0.5, cfg)
        for key in ("sensitivity", "specificity", "roc_auc", "false_call_rate_max"):
            assert part[key] == alone[key], (name, key)  # the source's own figure, not a share of the whole
        assert part["slides_infected"] + part["slides_uninfected"] == 6
    assert parts["nih"]["roc_auc"] > parts["pale"]["roc_auc"]
    line = evaluate.summary(m, cfg)
    assert "\n  source nih: 120 cells from 6 slides" in line and "\n  source pale:" in line
    assert "own_point" not in parts["pale"]


def test_a_source_is_also_scored_at_its_own_threshold_and_slide_rule(tmp_path, model_dir):
    import dataclasses

    rng = np.random.default_rng(1)
    slides = np.array([f"{s}/{k}" for s in ("nih", "pale") for k in range(4) for _ in range(50)])
    sources = np.array([s.split("/")[0] for s in slides])
    y = (rng.uniform(size=len(slides)) < np.where(sources == "pale", 0.05, 0.5)).astype(np.uint8)
    prob = np.clip(y * 0.3 + rng.uniform(0, 0.6, len(y)), 0, 1)
    x = rng.integers(0, 256, (len(y), 24, 24, 3), dtype=np.uint8)
    model = model_io.load(model_dir / "model.keras")
    cfg = EvaluateParams(bootstrap=100, gallery=2, gradcam=1, min_slides=2)
    pale_rule = dataclasses.replace(slide_rule(), count_threshold=0.55)
    m = outputs.write(outputs.Outputs.under(tmp_path), y, prob, slides, 0.5, slide_rule(), cfg, x, model,
                      sources=sources, points={"pale": (0.55, pale_rule)})
    own, pale = m["by_source"]["pale"]["own_point"], sources == "pale"
    called, positive = prob[pale] >= 0.55, y[pale] == 1
    assert own["threshold"] == 0.55 and own["called"] == called.sum() and own["labelled_parasitized"] == positive.sum()
    assert own["precision"] == round((called & positive).sum() / called.sum(), 6)
    assert own["sensitivity"] == round((called & positive).sum() / positive.sum(), 6)
    assert own["slides_infected"] + own["slides_uninfected"] == 4
    assert m["by_source"]["pale"]["sensitivity"] != own["sensitivity"]  # the pooled threshold's figure stays
    assert "own_point" not in m["by_source"]["nih"]
    assert "\n    at its own threshold 0.550: sensitivity" in evaluate.summary(m, cfg)
    single = outputs.write(outputs.Outputs.under(tmp_path / "one"), y, prob, slides, 0.5, slide_rule(), cfg, x, model,
                           sources=np.full(len(y), "nih"))
    assert "by_source" not in single
