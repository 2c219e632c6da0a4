"""One offline HTML page of an evaluation: the metrics table, then the plots DVC draws for the pipeline,
filled into the same template (report/page.html, Vega inlined) by DVC's own renderer (dvc_render)."""

from __future__ import annotations

import csv
import html
from pathlib import Path

from dvc_render.html import HTML
from dvc_render.image import ImageRenderer
from dvc_render.vega import VegaRenderer

from malaria_cnn.core import atomic
from malaria_cnn.core.params import EvaluateParams
from malaria_cnn.evaluation import evaluate, false_calls, metrics, reviewed
from malaria_cnn.evaluation.outputs import Outputs

TEMPLATE = Path(__file__).resolve().parents[3] / "report" / "page.html"  # the project's, as .dvc/config sets it
# (file attribute, DVC template, x, y fields, title): the plots dvc.yaml declares for the evaluate stage
PLOTS = [
    ("confusion", "confusion", "predicted", ["actual"], "Confusion matrix, cell counts"),
    ("confusion", "confusion_normalized", "predicted", ["actual"], "Confusion matrix, share of each actual class"),
    ("roc", "simple", "fpr", ["tpr"], "ROC curve"),
    ("pr", "simple", "recall", ["precision"], "Precision-recall curve (Parasitized is positive)"),
    ("calibration", "linear", "mean_probability", ["fraction_parasitized", "perfect"], "Calibration curve"),
    ("per_slide", "bar_horizontal", "accuracy", ["slide"], "Accuracy per slide (patient)"),
    ("per_slide", "bar_horizontal", "false_call_rate", ["slide"],
     "False-call rate per slide (uninfected cells called Parasitized)"),
]


def _rows(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _vega(rows: list[dict], name: str, template: str, x: str, ys: list[str], title: str) -> VegaRenderer:
    points = [{**r, "rev": "this set", "filename": name, "field": y, "dvc_y": r[y]} for y in ys for r in rows]
    y = ys[0] if len(ys) == 1 else "dvc_y"
    labels = {"y_label": " / ".join(ys)} if len(ys) > 1 else {}
    return VegaRenderer(points, title, template=template, x=x, y=y, title=title, **labels)


def metrics_table(m: dict, cfg: EvaluateParams) -> str:
    """The metrics beside their intervals as an HTML table, with the warning when they are unreliable."""
    names = list(metrics.NAMES) + [n for n in ("slide_sensitivity", "slide_specificity", "slide_refer_rate") if n in m]
    rows = "".join(f"<tr><td>{html.escape(evaluate.fmt(m, n))}</td></tr>" for n in names)
    note = evaluate.unreliable_note(m, cfg)
    warn = f'<p class="unreliable"><strong>Warning: {html.escape(note)}.</strong></p>' if note else ""
    rule = (f"<p>Each slide (patient) is answered {html.escape(m['slide_rule'])}: slide sensitivity and specificity "
            f"count the slides answered, the refer rate all of them (slides.csv gives each answer and why).</p>"
            if "slide_rule" in m else "")
    if "reviewed_recall" in m:
        rule += f"<p>Each slide's flagged cells reviewed, the labels answering: {html.escape(reviewed.describe(m))}.</p>"
    if "false_call_rate_slides" in m:
        rule += f"<p>Uninfected cells called parasitized, per slide: {html.escape(false_calls.describe(m))}.</p>"
    if m.get("slides_stain_referred"):
        rule += (f'<p class="unreliable"><strong>{m["slides_stain_referred"]} slide(s) with a stain unlike the '
                 "training data: referred to a microscopist (slides.csv says why).</strong></p>")
    return (f'<div id="metrics"><h2>Metrics ({round(cfg.confidence * 100)}% intervals over slides)</h2>{warn}'
            f"<p>{m['cells']:,} cells from {m['slides']} slides at threshold {m['threshold']:.3f}.</p>{rule}"
            f"<table>{rows}</table></div>")


def answers_table(rows: list[dict]) -> str:
    """Each slide's answer as an HTML table: truth, answer, corrected parasitemia with its interval, why."""
    def pct(row, key):
        return f"{float(row[key]):.2%}" if row.get(key) not in (None, "") else ""

    body = "".join(
        f"<tr><td>{html.escape(r['slide'])}</td><td>{'infected' if r.get('infected') == '1' else 'not infected'}</td>"
        f"<td><strong>{html.escape(r['answer'])}</strong></td><td>{pct(r, 'parasitemia')}</td>"
        f"<td>{'-'.join(filter(None, (pct(r, 'parasitemia_ci_lower'), pct(r, 'parasitemia_ci_upper'))))}</td>"
        f"<td>{html.escape(r['reason'])}</td></tr>"
        for r in rows)
    return ('<div id="slides"><h2>Each slide\'s answer</h2><table><tr><th>slide</th><th>truth</th><th>answer</th>'
            f"<th>corrected parasitemia</th><th>interval</th><th>why</th></tr>{body}</table></div>")


def write(folder: str | Path, m: dict, cfg: EvaluateParams, what: str, template: Path = TEMPLATE) -> Path:
    """Write folder/index.html from the outputs already in `folder`; return its path."""
    out = Outputs.under(folder)
    if not template.is_file():
        raise FileNotFoundError(f"{template} not found: the page needs the project's report/page.html")
    document = HTML(template.read_text(encoding="utf-8"))
    document.with_element(f"<h2>{html.escape(what)}</h2>").with_element(metrics_table(m, cfg))
    slides = _rows(out.per_slide)
    if slides and "answer" in slides[0]:
        document.with_element(answers_table(slides))
    for attr, kind, x, ys, title in PLOTS:
        rows = _rows(getattr(out, attr))
        if rows:
            document.with_element(_vega(rows, getattr(out, attr).name, kind, x, ys, title).generate_html())
    for image in (out.gallery, out.gradcam, out.false_calls):
        document.with_element(ImageRenderer([{"src": image.name, "rev": "this set"}], image.name).generate_html())
    dest = Path(folder) / "index.html"
    atomic.write_text(dest, document.embed())
    return dest
