"""The model card: a Markdown page that travels with the exported models and says what they are."""

from __future__ import annotations

from dataclasses import asdict

from malaria_cnn.core.params import Params
from malaria_cnn.data.split import SPLITS
from malaria_cnn.evaluation import metrics as metric_names

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


def _network(p: Params, folds: int) -> str:
    if folds < 2:
        return f"one `{p.model.preset}` network"
    if p.cv.final == "ensemble":
        return f"the mean of {folds} `{p.model.preset}` networks, one per cross-validation fold"
    return f"one `{p.model.preset}` network refitted on all non-test slides"


def model_card(p: Params, parameters: int, image_size: int, stored: dict, test: dict, sizes: dict,
               data_sha256: str, files: dict[str, int], parity: dict[str, dict]) -> str:
    """The card's Markdown.

    `stored` is models/threshold.json, `test` metrics/metrics.json, `sizes` data/split/sizes.json,
    `files` each exported file's size in bytes, `parity` each TFLite copy's parity().
    """
    source = p.data.source + (f" ({p.data.path})" if p.data.path else "")
    warning = ("\n> **Trained on the built-in synthetic cells.** This model is for trying the pipeline, "
               "not for real smears.\n" if p.data.source == "synthetic" else "")
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

- Input: RGB uint8 crops of {image_size} x {image_size} pixels, values 0-255 (scaling is inside the model).
  Resize a crop as the pipeline does: `malaria_cnn.data.images.load_cell` (area averaging when shrinking).
- Output: P(Uninfected), P(Parasitized), in that order.
- Decision: a cell is called **Parasitized** when P(Parasitized) >= **{stored['threshold']:.6f}**.
  The threshold was chosen by the rule {rule} on {_chosen_on(chosen)}; there it gave sensitivity
  {_value(chosen['sensitivity'])} and specificity {_value(chosen['specificity'])} on {chosen['cells']:,} cells
  from {chosen['slides']} slides.{_fold_by_fold(stored.get('fold_by_fold'))}
- Network: {_network(p, chosen.get('folds', 1))}, {parameters:,} parameters.

## Data

- Source: {source}; raw archive sha256 `{data_sha256}`.
- Split by slide (patient): no slide is in two splits.

| split | Parasitized | Uninfected | slides |
|---|---|---|---|
{split_rows}

## Test results

On the test split ({test['cells']:,} cells from {test['slides']} slides the model never saw), at the threshold
above; intervals are 95% percentile intervals over resamples of slides:

| metric | value | interval |
|---|---|---|
{metric_rows}

## Files

| file | size |
|---|---|
{file_rows}

Agreement with the Keras model on the test split (share of cells called the same at the threshold, and the
largest difference in P(Parasitized)); the int8 copy must agree on at least export.min_int8_agreement of them:

| copy | agreement | max difference | check |
|---|---|---|---|
{parity_rows}

## Training params

{params}

## Intended use and limits

For research and for screening aids under a microscopist's review, on crops of single cells from
Giemsa-stained thin smears like the training data. Not a diagnostic device. Results on the test
slides say little about other labs, stains, microscopes or cameras: check on your own slides first.
"""
