"""The model card: a Markdown page that travels with the exported models and says what they are."""

from __future__ import annotations

from dataclasses import asdict

from malaria_cnn.core.params import Params, source_name
from malaria_cnn.data.split import SPLITS
from malaria_cnn.evaluation import metrics as metric_names
from malaria_cnn.evaluation import reviewed
from malaria_cnn.release import clients

_LABELS = {"accuracy": "Accuracy", "balanced_accuracy": "Balanced accuracy", "sensitivity": "Sensitivity",
           "specificity": "Specificity", "ppv": "PPV", "npv": "NPV", "f1": "F1", "mcc": "MCC",
           "roc_auc": "ROC AUC", "pr_auc": "PR AUC", "brier": "Brier score", "ece": "Expected calibration error"}


def _mb(n: int) -> str:
    return f"{n / 1e6:.2f} MB"


def _value(v) -> str:
    return "n/a" if v is None else f"{v:.3f}"


def _chosen_on(chosen: dict) -> str:
    folds = chosen.get("folds", 1)
    return f"the out-of-fold predictions of {folds} fold models" if folds > 1 else "the validation split"


def _fold_by_fold(report: dict | None) -> str:
    if not report:
        return ""
    return (f"\n  Fold by fold, at the threshold the other folds chose: sensitivity {_value(report['sensitivity_mean'])} "
            f"+- {_value(report['sensitivity_sd'])} (lowest {_value(report['sensitivity_min'])}), specificity "
            f"{_value(report['specificity_mean'])} +- {_value(report['specificity_sd'])} "
            f"(lowest {_value(report['specificity_min'])}).")


def _preparation(mode: str, image_size: int) -> str:
    """What each file takes, by the model's stain mode."""
    size = f"RGB uint8, {image_size} x {image_size} pixels, a cell on black, resized with area averaging"
    if mode == "none":
        return f"- Input of every file: crops, {size}, values 0-255 (scaling is inside the model)."
    return (f"- Input of every file (`model.keras`, `saved_model/`, both `.tflite` files): raw crops, {size}\n"
            "  (OpenCV's INTER_AREA when shrinking). Each standardises the cell's stain itself, in its graph, before\n"
            "  the network: each channel's optical density scaled so the cell's median pixel is a reference NIH cell's.")


def _clients() -> str:
    return "\n\n".join(f"`{name}`:\n\n```python\n{code}```" for name, code in clients.CLIENTS.items())


def _network(p: Params, folds: int) -> str:
    start = f", fine-tuned from `{p.train.init_from}`" if p.train.init_from else ""
    if folds < 2:
        return f"one `{p.model.preset}` network{start}"
    if p.cv.final == "ensemble":
        return f"the mean of {folds} `{p.model.preset}` networks, one per cross-validation fold{start}"
    return f"one `{p.model.preset}` network refitted on all non-test slides{start}"


def _sources(p: Params) -> tuple[str, bool]:
    """(the data's source or sources, in words; whether all of it is the built-in synthetic set)."""
    blocks = p.data.sources or (p.data,)
    words = "; ".join((f"`{source_name(b)}`: " if p.data.sources else "") + b.source + (f" ({b.path})" if b.path else "")
                      for b in blocks)
    return words, all(b.source == "synthetic" for b in blocks)


def _by_source(test: dict) -> str:
    """The test figures of each data source, when there were several."""
    parts = test.get("by_source")
    if not parts:
        return ""
    rows = "\n".join(f"| {name} | {m['cells']:,} | {m['slides']} | {_value(m['sensitivity'])} | "
                     f"{_value(m['specificity'])} | {_value(m['ppv'])} |" for name, m in parts.items())
    text = ("\n\nEach data source's test cells apart (a source that fails is not averaged away):\n\n"
            "| source | cells | slides | sensitivity | specificity | PPV |\n|---|---|---|---|---|---|\n" + rows)
    own = {name: m["own_point"] for name, m in parts.items() if m.get("own_point")}
    if own:
        text += ("\n\nEach source also has a threshold and slide rule of its own, chosen on its out-of-fold cells "
                 "alone (`malaria-cnn screen --source NAME`); on its test cells:\n\n"
                 "| source | threshold | sensitivity | specificity | PPV | called / labelled parasitized |\n"
                 "|---|---|---|---|---|---|\n" +
                 "\n".join(f"| {name} | {o['threshold']:.3f} | {_value(o['sensitivity'])} | {_value(o['specificity'])} "
                           f"| {_value(o['precision'])} | {o['called']:,} / {o['labelled_parasitized']:,} |"
                           for name, o in own.items()))
    return text


def _split_text(p: Params, no_slide: int, test: dict) -> tuple[str, str]:
    """(how the data was split, what the test split's cells are): only as patient-level as it was."""
    if p.split.group_by == "none":
        return ("- Split **cells at random** (`split.group_by: none`): cells of one slide are in several splits, "
                "so test results are **not** patient-level and overstate what new patients would see.",
                f"{test['cells']:,} cells, split at random from slides the model also trained on")
    text = "- Split by slide (patient): no slide is in two splits."
    seen = f"{test['cells']:,} cells from {test['slides']} slides the model never saw"
    if no_slide:
        text += (f" **{no_slide:,} files name no slide** (data.slide_pattern): each is its own group, so their "
                 "patients may straddle the splits.")
        seen = f"{test['cells']:,} cells from {test['slides']} slide groups, some of them single files without a slide"
    return text, seen


def _interval_text(p: Params, test: dict) -> str:
    pct = f"{p.evaluate.confidence * 100:g}%"
    text = (f"intervals are {pct} intervals over slides: Korn-Graubard for the proportions (accuracy, sensitivity, "
            f"specificity, PPV, NPV), the percentile interval of {p.evaluate.bootstrap:,} slide resamples for the "
            "others, Wilson's for slide-level calls")
    if not test.get("intervals_reliable", True):
        text += (f". **Intervals unreliable: {test['slides']} test slides, fewer than evaluate.min_slides "
                 f"({p.evaluate.min_slides})**: read them as rough")
    return text


def _slide_text(test: dict) -> str:
    if "slide_rule" not in test:
        return ""
    labels = {"sensitivity": "Slide sensitivity (among slides answered)",
              "specificity": "Slide specificity (among slides answered)", "refer_rate": "Slides referred"}
    return (f"\n\nPatient level: each slide is answered **infected**, **not infected** or **refer to a microscopist**: "
            f"{test['slide_rule']} (the rule and the error rates behind the interval come from the out-of-fold "
            "slides, models/slide_rule.json). The parasitemia reported is corrected for the model's missed parasites "
            "and false calls (Rogan-Gladen), with an interval that carries the slide's own cells and how much those "
            f"errors vary between slides. {test['slides_infected']} infected and {test['slides_uninfected']} "
            "uninfected test slides:\n\n| metric | value | interval |\n|---|---|---|\n" +
            "\n".join(f"| {label} | {_value(test[f'slide_{m}'])} | {_value(test[f'slide_{m}_ci_lower'])} - "
                      f"{_value(test[f'slide_{m}_ci_upper'])} |" for m, label in labels.items()) + _review_text(test))


def _review_text(test: dict) -> str:
    """The answers after a review of each test slide's flagged cells, the labels answering."""
    if "reviewed_recall" not in test:
        return ""
    return (f"\n\nThe model answers \"not infected\" only after a person reviews the cells it flags. With the "
            f"labels answering for that person, on the test slides: {reviewed.describe(test)}.")


def model_card(p: Params, parameters: int, image_size: int, stored: dict, test: dict, sizes: dict,
               data_sha256: str, files: dict[str, int], parity: dict[str, dict], no_slide: int = 0) -> str:
    """The card's Markdown.

    `stored` is models/threshold.json, `test` metrics/metrics.json, `sizes` data/split/sizes.json,
    `files` each exported file's size in bytes, `parity` each exported copy's parity(), `no_slide` the
    cells whose file names named no slide.
    """
    split_text, test_cells = _split_text(p, no_slide, test)
    source, synthetic = _sources(p)
    warning = ("\n> **Trained on the built-in synthetic cells.** This model is for trying the pipeline, "
               "not for real smears.\n" if synthetic else "")
    rule = stored["rule"] + (f" (sensitivity >= {stored['min_sensitivity']})" if stored.get("min_sensitivity") else "")
    chosen = stored["chosen_on"]
    split_rows = "\n".join(f"| {name} | {s['Parasitized']:,} | {s['Uninfected']:,} | {s['slides']} |"
                           for name, s in sizes.items() if name in SPLITS and s["slides"])
    split_rows += "".join(f"\n| train, fold {f['fold']} | {f['parasitized']:,} | {f['cells'] - f['parasitized']:,} | "
                          f"{f['slides']} |" for f in sizes.get("folds", []) if len(sizes["folds"]) > 1)
    metric_rows = "\n".join(
        f"| {_LABELS[m]} | {_value(test[m])} | {_value(test[m + '_ci_lower'])} - {_value(test[m + '_ci_upper'])} |"
        for m in metric_names.NAMES)
    file_rows = "\n".join(f"| `{name}` | {_mb(size)} |" for name, size in files.items())
    check = {None: "-", True: "passed", False: "**failed: not for use**"}
    parity_rows = "\n".join(
        f"| {name} | {d['agreement']:.4f} | {d['max_probability_difference']:.6f} | {check[d.get('passed')]} |"
        for name, d in parity.items())
    params = "\n".join(f"- `{section}`: `{value}`" for section, value in
                       [("epochs", p.epochs), ("cv", asdict(p.cv)), ("model", asdict(p.model)),
                        ("train", asdict(p.train))])
    return f"""# Model card: malaria-cnn `{p.model.preset}` network
{warning}
Tells **parasitized** from **uninfected** red blood cells in thin-smear microscopy crops, one cell per image.

## Input and output

{_preparation(p.preprocess.stain, image_size)}
- Output: P(Uninfected), P(Parasitized), in that order.
- Decision: a cell is called **Parasitized** when P(Parasitized) >= **{stored['threshold']:.6f}**.
  The threshold was chosen by the rule {rule} on {_chosen_on(chosen)}; there it gave sensitivity
  {_value(chosen['sensitivity'])} and specificity {_value(chosen['specificity'])} on {chosen['cells']:,} cells
  from {chosen['slides']} slides.{_fold_by_fold(stored.get('fold_by_fold'))}
- Network: {_network(p, chosen.get('folds', 1))}, {parameters:,} parameters.

## Data

- Source: {source}; raw archive sha256 `{data_sha256}`.
{split_text}

| split | Parasitized | Uninfected | slides |
|---|---|---|---|
{split_rows}

## Test results

On the test split ({test_cells}), at the threshold above; {_interval_text(p, test)}:

| metric | value | interval |
|---|---|---|
{metric_rows}{_slide_text(test)}{_by_source(test)}

## Files

| file | size |
|---|---|
{file_rows}

Agreement with `malaria-cnn predict` on the test split, each copy fed the raw crops (share of cells called the
same at the threshold, and the largest difference in P(Parasitized)); the int8 copy must agree on at least
export.min_int8_agreement of them:

| copy | agreement | max difference | check |
|---|---|---|---|
{parity_rows}

## Use without this package

Each program prints `file,P(Parasitized)` for the crops named after the model (`python client.py MODEL CROP...`);
the tests run each one, without this package, against `malaria-cnn predict`. The int8 file takes the float32
file's code.

{_clients()}

## Training params

{params}

## Intended use and limits

For research and for screening aids under a microscopist's review, on crops of single cells from
Giemsa-stained thin smears like the training data. Not a diagnostic device. Results on the test
slides say little about other labs, stains, microscopes or cameras: check on your own slides first.
"""
