"""params.yaml's schema: every knob once, with its default, what it may be and the comment beside it.

params.yaml is written from this file (`python -m malaria_cnn.core.params`), and a test checks that
the committed file matches. Each stage calls `load()` first, so a bad or misspelt key stops it with
one line naming the key and what is allowed, before any work is done.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from malaria_cnn.core.atomic import write_text
from malaria_cnn.core.schema import (  # noqa: F401  (render and ParamsError are part of this module's interface)
    ParamsError,
    auto_or_boolean,
    auto_or_fraction,
    boolean,
    build,
    fraction,
    hex_digest,
    integer,
    integer_list,
    one_of,
    param,
    positive_number,
    probability,
    regex,
    render,
    section,
    section_list,
    text,
    url,
)

PARAMS_FILE = "params.yaml"
HEADER = """\
Every knob of the pipeline. Change one with `dvc exp run -S key=value` (e.g. -S epochs=10);
only the stages that read a changed key rerun. The defaults, allowed values and these comments
come from src/malaria_cnn/core/params.py (`python -m malaria_cnn.core.params` rewrites this file)."""

SOURCES = ("synthetic", "nih", "folder", "zip", "photos")
GROUP_BY = ("slide", "none")
PRESETS = ("seed", "compact")
OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")
SCHEDULES = ("plateau", "cosine")
STAIN_JITTER = ("gain", "hed")
STAIN_MODES = ("od", "none")
THRESHOLD_RULES = ("sensitivity", "youden", "f1", "count", "fixed")
PER_SOURCE_RULES = ("f1", "count", "sensitivity", "youden", "none")
DISTRIBUTE = ("auto", "none", "mirrored", "multi_worker")
FINAL_MODELS = ("ensemble", "refit")
# dvc.yaml declares a train stage for each of folds 0..4 (cv.folds uses the first ones): each slot costs every
# `dvc repro` its checks, also when idle. More folds: lengthen dvc.yaml's foreach list and raise this.
FOLD_SLOTS = 5


@dataclass(frozen=True)
class SyntheticParams:
    per_class: int = param(500, integer(1), "cells of each class, as in the tutorial")
    slides: int = param(60, integer(3), "synthetic patients' slides; about a quarter carry no parasitized cells")
    seed: int = param(42, integer())


@dataclass(frozen=True)
class NihParams:
    url: str = param("https://data.lhncbc.nlm.nih.gov/public/Malaria/cell_images.zip", url())
    size: int = param(353_452_851, integer(1))
    sha256: str = param("0a949556b2414159b5100192609805376654c4266d8d187be9b1922fad43c668", hex_digest(64))


@dataclass(frozen=True)
class ClassDirs:
    Parasitized: str = param("Parasitized", text())
    Uninfected: str = param("Uninfected", text())


@dataclass(frozen=True)
class SourceParams:
    """One entry of data.sources: a data source as data.source, data.path, data.boxes and data.slide_pattern
    give it, and its name."""

    source: str = param("synthetic", one_of(*SOURCES))
    path: str = param("", text())
    boxes: str = param("", text())
    slide_pattern: str = param("", regex())
    name: str = param("", text(), "empty: the source, or its path's name")


@dataclass(frozen=True)
class DataParams:
    source: str = param("synthetic", one_of(*SOURCES),
                        "synthetic: the built-in cell set (for trying the pipeline, not for real smears)\n"
                        "nih: NIH's cell_images.zip, downloaded | folder, zip: your crops at data.path\n"
                        "photos: your smear photos at data.path (a folder or zip), their cells boxed in data.boxes")
    path: str = param("", text(), "the folder or zip for source folder, zip or photos (relative to this folder, "
                                  "or absolute)")
    boxes: str = param("", text(), "for source photos: the labelled boxes, IML's JSON list or COCO (the review "
                                   "page's export\nboxes.coco.json is COCO)")
    unboxed: str = param("skip", one_of("skip", "uninfected"),
                         "for source photos: a found cell no box matches (debris, a clump, a cell cut by the\n"
                         "edge: what screen meets and every red cell is boxed) | skip | uninfected: a crop of the\n"
                         "negative class")
    class_dirs: ClassDirs = section(ClassDirs, "the folder of each class, found anywhere beneath data.path, any case")
    slide_pattern: str = param("", regex(),
                               "regex on file names naming the slide (group 1); empty: NIH's C<n>..._IMG_ naming")
    sources: tuple = param((), section_list(SourceParams),
                           "several sources in one run, e.g. [{source: zip, path: nih.zip}, {source: photos, path:\n"
                           "ours/, boxes: ours/boxes.json, slide_pattern: ...}]; each cell's source is kept; when\n"
                           "given, data.source, path, boxes and slide_pattern above are not read")
    max_entry_mb: int = param(64, integer(1), "archive entries larger than this are rejected")
    max_total_mb: int = param(20_000, integer(1), "archives unpacking to more than this are refused")
    synthetic: SyntheticParams = section(SyntheticParams)
    nih: NihParams = section(NihParams, "where NIH's set is and what it must be")


@dataclass(frozen=True)
class PreprocessParams:
    image_size: int = param(96, integer(8), "crops are resized to image_size x image_size RGB")
    workers: int = param(0, integer(0), "decoding processes; 0: one per available core")
    min_side: int = param(16, integer(1), "images with a side shorter than this are rejected")
    max_pixels: int = param(4_000_000, integer(1),
                            "images with more pixels are rejected before decoding (decompression bombs)")
    stain: str = param("od", one_of(*STAIN_MODES),
                       "od: each cell's stain standardised (its optical density scaled to a reference cell's),\n"
                       "the same in training, predict, evaluate and screen | none: crops as decoded")


@dataclass(frozen=True)
class SplitParams:
    group_by: str = param("slide", one_of(*GROUP_BY),
                          "slide: no slide in two splits (patient-level results) | none: cells at random")
    test_size: float = param(0.2, fraction(), "share of all cells held out for the final test")
    val_size: float = param(0.1, fraction(), "with cv.folds 1: share of the rest watched during training")
    seed: int = param(42, integer())


@dataclass(frozen=True)
class CvParams:
    folds: int = param(5, integer(1, FOLD_SLOTS),
                       "the non-test slides in this many slide-disjoint folds, a model for each, scored on\n"
                       "the fold it did not see (out of fold) | 1: one train/val split, scored on val")
    final: str = param("ensemble", one_of(*FINAL_MODELS),
                       "the model shipped and tested | ensemble: the fold models' mean probability\n"
                       "refit: one model on all non-test slides, for the fold models' median best epochs")


@dataclass(frozen=True)
class SeedNetParams:
    """The tutorial's network: two conv blocks, then a Dense -> BatchNorm -> Dropout block per dense unit."""

    filters: int = param(32, integer(1), "filters of each convolution")
    dense_units: tuple[int, ...] = param((512, 256), integer_list(1), "one Dense -> BatchNorm -> Dropout block per entry")
    conv_dropout: float = param(0.2, fraction(allow_zero=True))
    dense_dropout: float = param(0.2, fraction(allow_zero=True))


@dataclass(frozen=True)
class CompactNetParams:
    """A small network: a conv stem, then one separable-conv stage per width, global average pooling."""

    widths: tuple[int, ...] = param((24, 48, 96, 192), integer_list(1),
                                    "the stem's filters, then one stage of two separable convolutions per width")
    dropout: float = param(0.3, fraction(allow_zero=True))


@dataclass(frozen=True)
class ModelParams:
    preset: str = param("compact", one_of(*PRESETS),
                        "compact: 80,930 parameters | seed: the tutorial's network (4,340,130 at 64x64)")
    # Keras's default 0.99 averages over ~100 steps: too slow for a small set, whose few hundred
    # steps leave the inference-time statistics far from the trained weights' (docs/pipeline.md).
    bn_momentum: float = param(0.9, fraction(),
                               "BatchNorm's moving-average momentum (Keras's default 0.99 lags on small sets)")
    seed: SeedNetParams = section(SeedNetParams, "the seed preset's knobs")
    compact: CompactNetParams = section(CompactNetParams, "the compact preset's knobs")


@dataclass(frozen=True)
class FinetuneParams:
    """What changes when training starts from a trained model (train.init_from)."""

    learning_rate: float = param(0.0001, positive_number(), "replaces train.learning_rate when train.init_from is set")
    epochs: int = param(5, integer(1), "replaces the top-level epochs when train.init_from is set")


@dataclass(frozen=True)
class TrainParams:
    batch_size: int = param(64, integer(1),
                            "the global batch: with N devices or workers, each computes batch_size / N of it")
    learning_rate: float = param(0.001, positive_number())
    optimizer: str = param("adam", one_of(*OPTIMIZERS), " | ".join(OPTIMIZERS))
    seed: int = param(42, integer())
    augment: bool = param(True, boolean(),
                          "random flips, 90-degree turns, brightness, contrast and stain-colour jitter")
    stain_jitter: str = param("gain", one_of(*STAIN_JITTER),
                              "gain: a random gain per RGB channel | hed: jitter in stain (HED) optical density")
    label_smoothing: float = param(0.1, fraction(allow_zero=True),
                                   "targets 0.05 and 0.95, not 0 and 1 (benchmarks/README.md) | 0: hard labels")
    schedule: str = param("plateau", one_of(*SCHEDULES), "plateau: halve the rate on a flat val loss (reduce_lr) | "
                                                         "cosine: decay it to 0 over epochs")
    class_weights: bool = param(True, boolean(), "weigh the classes by inverse frequency in the train split")
    exclude_label_issues: bool = param(False, boolean(), "cv.final refit: leave the crops the label audit flags out of "
                                                         "training\n(never out of test)")
    early_stopping: int = param(4, integer(0), "stop after this many epochs without a better val loss (0: off); "
                                               "best weights kept")
    reduce_lr: int = param(3, integer(0),
                           "halve the learning rate after this many epochs without a better val loss (0: off)")
    distribute: str = param("auto", one_of(*DISTRIBUTE),
                            "auto: mirrored with more than one GPU, else none | none: one device | mirrored: every\n"
                            "local GPU (or CPU device) | multi_worker: several machines, as TF_CONFIG says (docs/scaling.md)")
    # auto stays float32 on a CPU: bfloat16 was not reliably faster there (benchmarks/scaling.py)
    mixed_precision: str | bool = param("auto", auto_or_boolean(), "auto: float16 on a GPU, off on a CPU | "
                                                                   "true: float16 on a GPU, bfloat16 on a CPU | false")
    init_from: str = param("", text(), "a trained model.keras (e.g. the NIH model) to start from: fine-tuning | empty:\n"
                                       "train from scratch (model.preset) | a path from the project's root, or absolute")
    finetune: FinetuneParams = section(FinetuneParams, "with init_from set: every model trained (each fold's, the refit)")


@dataclass(frozen=True)
class AuditParams:
    sheet: int = param(24, integer(0), "most suspect crops shown in plots/label_issues.png")


@dataclass(frozen=True)
class PredictParams:
    batch_size: int = param(256, integer(1),
                            "cells per forward pass wherever the model scores cells (threshold, evaluate)")


@dataclass(frozen=True)
class ThresholdParams:
    rule: str = param("sensitivity", one_of(*THRESHOLD_RULES),
                      "sensitivity: the highest specificity with sensitivity >= min_sensitivity\n"
                      "youden: the highest sensitivity + specificity - 1 | f1: the highest F1 | count: as many\n"
                      "called as labelled Parasitized | fixed: value")
    min_sensitivity: float = param(0.95, probability())
    value: float = param(0.5, fraction(), "for rule fixed: call a cell Parasitized when P(Parasitized) >= value")
    per_source: str = param("f1", one_of(*PER_SOURCE_RULES),
                            "with data.sources: each source's own threshold and slide rule too, by this rule on its\n"
                            "out-of-fold cells (the commands' --source NAME) | none: the pooled one only")


@dataclass(frozen=True)
class PatientsParams:
    rule_out: Any = param(0.001, auto_or_fraction(),
                          "the parasitemia a \"not infected\" rules out: after a review of the flagged cells, when\n"
                          "no parasite is among enough cells (0.001: clinical; counts alone never reach it, so the\n"
                          "model alone answers infected or refer) | auto: fitted on smear-like out-of-fold slides")
    min_sensitivity: float = param(0.97, probability(), "for rule_out auto: the out-of-fold slide sensitivity at its\n"
                                   "lower confidence bound (evaluation/fit_rule.py)")
    review_recall: float = param(0.9, probability(), "cells flagged for a person's review: those scored at least the\n"
                                 "threshold that holds this share of the parasitized out-of-fold cells\n"
                                 "(evaluation/review.py) ...")
    review_share: float = param(0.02, fraction(), "... and this share of each photo's cells (or a slide of crops'),\n"
                                "the highest scored: on a stain unlike training's the scores sink, the ranking holds")


@dataclass(frozen=True)
class EvaluateParams:
    bootstrap: int = param(1000, integer(100), "slide (patient) resamples behind the intervals of ROC AUC, PR AUC,\n"
                           "balanced accuracy, F1, MCC, Brier and ECE (proportions: Korn-Graubard over slides)")
    confidence: float = param(0.95, fraction(), "of each interval")
    seed: int = param(42, integer())
    calibration_bins: int = param(10, integer(2),
                                  "equal-width probability bins of the calibration curve and its error (ECE)")
    gallery: int = param(16, integer(0),
                         "most confident mistakes shown in plots/mistakes.png (missed parasitized first)")
    gradcam: int = param(4, integer(0), "cells per outcome (TP, FP, FN, TN) in plots/gradcam.png")
    min_slides: int = param(10, integer(2), "with fewer slides than this, intervals are marked unreliable")


@dataclass(frozen=True)
class ExportParams:
    representative: int = param(200, integer(1), "train crops that calibrate the int8 model's value ranges")
    min_int8_agreement: float = param(0.99, probability(),
                                      "the int8 model must call at least this share of test cells as the Keras model does")


@dataclass(frozen=True)
class Params:
    epochs: int = param(25, integer(1), "training epochs (the tutorial's 25)")
    data: DataParams = section(DataParams, "read by ingest")
    preprocess: PreprocessParams = section(PreprocessParams)
    split: SplitParams = section(SplitParams)
    cv: CvParams = section(CvParams, "read by split, train, oof and final")
    model: ModelParams = section(ModelParams)
    train: TrainParams = section(TrainParams)
    audit: AuditParams = section(AuditParams, "crops whose label the out-of-fold models contradict most confidently")
    predict: PredictParams = section(PredictParams)
    threshold: ThresholdParams = section(ThresholdParams, "chosen on the out-of-fold predictions, used unchanged "
                                                          "on test")
    patients: PatientsParams = section(PatientsParams, "one answer per slide: infected, not infected or refer to a "
                                                       "microscopist; chosen with the threshold")
    evaluate: EvaluateParams = section(EvaluateParams, "the test split")
    export: ExportParams = section(ExportParams, "SavedModel and TFLite copies of the model in models/export/")


def load(path: str | Path = PARAMS_FILE) -> Params:
    """Read and check params.yaml; raise ParamsError with one readable line if anything is off."""
    path = Path(path)
    try:
        content = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ParamsError(f"{path} not found (run the stages from the project's root folder)") from None
    try:
        raw = yaml.safe_load(content)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ParamsError(f"{path} is not valid YAML{where}") from None
    return from_dict(raw if raw is not None else {}, source=str(path))


def from_dict(raw: Any, source: str = PARAMS_FILE) -> Params:
    """Build Params from a mapping, checking every key and value."""
    p = build(Params, raw, prefix="", source=source)
    for key, block in [(f"data.sources[{i}].", b) for i, b in enumerate(p.data.sources)] or [("data.", p.data)]:
        if block.source in ("folder", "zip", "photos") and not block.path:
            raise ParamsError(f"{source}: {key}path must name the {block.source} to read when {key}source is "
                              f"{block.source}")
        if block.source == "photos" and not block.boxes:
            raise ParamsError(f"{source}: {key}boxes must name the labelled boxes (IML JSON or COCO) when "
                              f"{key}source is photos")
    names = [source_name(b) for b in p.data.sources]
    if len(set(names)) < len(names):
        raise ParamsError(f"{source}: data.sources names two sources alike ({', '.join(names)}): give each a name")
    if len(set(name.lower() for name in (p.data.class_dirs.Parasitized, p.data.class_dirs.Uninfected))) < 2:
        raise ParamsError(f"{source}: data.class_dirs must name two different folders")
    if p.train.exclude_label_issues and p.cv.final != "refit":
        raise ParamsError(f"{source}: train.exclude_label_issues needs cv.final: refit (the fold models of an "
                          "ensemble are trained before the audit)")
    return p


def source_name(block: SourceParams | DataParams) -> str:
    """A source's name in the manifest: its `name`, else the source for synthetic and nih, else its path's stem."""
    if getattr(block, "name", ""):
        return block.name
    if block.source in ("synthetic", "nih") or not block.path:
        return block.source
    return Path(block.path.rstrip("/\\")).stem or block.source


def default_file() -> str:
    """params.yaml as it is committed: the defaults, with their comments."""
    return render(Params(), HEADER)


if __name__ == "__main__":
    write_text(sys.argv[1] if len(sys.argv) > 1 else PARAMS_FILE, default_file())
