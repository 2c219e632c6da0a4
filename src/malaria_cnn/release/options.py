"""What every command shares: the project's params where it runs, every option checked before any work,
the crop limits, and the trained model with what is stored beside it (threshold, slide rule, stain range)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from malaria_cnn.core import paths
from malaria_cnn.core.errors import UserError
from malaria_cnn.data.inputs import Limits


def project_params():
    """params.yaml where the command runs, else the defaults: the limits and slide naming the pipeline used."""
    from malaria_cnn.core import params

    return params.load() if Path(params.PARAMS_FILE).is_file() else params.Params()


def limits(args: argparse.Namespace, p) -> Limits:
    """The crop limits: the options given, else params.yaml's."""
    return Limits(args.min_side or p.preprocess.min_side, args.max_pixels or p.preprocess.max_pixels,
                  args.max_entry_mb or p.data.max_entry_mb)


@dataclass
class Scoring:
    """A trained model as the commands use it, with what is stored beside it."""

    model: object  # the Keras model
    score: Callable  # uint8 crops (n, size, size, 3) -> P(Parasitized)
    threshold: float
    rule: object  # the slide rule (patients.SlideRule), or None without slide_rule.json beside the model
    stain_range: object  # the training slides' stains (stain.StainRange), or None without stain_range.json
    size: int  # the side of the crops it takes
    stain_mode: str  # how its crops are prepared (stain.standardised)
    source: str | None = None  # the training source whose threshold and slide rule these are (--source), or pooled


def checked(args: argparse.Namespace):
    """Every option of any command checked before any work, the slide pattern defaulted to params.yaml's;
    the project's params. One UserError for the first option that is wrong."""
    import re

    p = project_params()
    if args.batch_size < 1:
        raise UserError(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.threshold is not None and not 0 <= args.threshold <= 1:
        raise UserError(f"--threshold must be between 0 and 1, got {args.threshold}")
    for name in ("min_side", "max_pixels", "max_entry_mb"):
        value = getattr(args, name, None)
        if value is not None and value < 1:
            raise UserError(f"--{name.replace('_', '-')} must be at least 1, got {value}")
    if getattr(args, "cell_diameter", None) is not None and not 4 <= args.cell_diameter <= 5000:
        raise UserError(f"--cell-diameter must be between 4 and 5000 pixels, got {args.cell_diameter}")
    if args.slide_pattern is None:
        args.slide_pattern = p.data.slide_pattern
    try:
        re.compile(args.slide_pattern)
    except re.error as exc:
        raise UserError(f"--slide-pattern is not a regular expression: {exc}") from None
    missing = [p for p in args.paths if not Path(p).exists()]
    if missing:
        raise UserError(f"no such file or folder: {', '.join(missing)}")
    out, folder = Path(args.out), args.command != "predict"
    if (folder and out.exists() and not out.is_dir()) or (not folder and out.is_dir()):
        raise UserError(f"--out {out} is a {'file' if folder else 'folder'}: give a {'folder' if folder else 'CSV file'}")
    for name in ("threshold_file", "truth"):
        given = getattr(args, name, None)
        if given and not Path(given).is_file():
            raise UserError(f"--{name.replace('_', '-')}: {given} not found")
    if not Path(args.model).is_file():
        raise UserError(f"{args.model} not found: run the pipeline first (dvc repro), or give --model")
    return p


def scorer(args: argparse.Namespace) -> Scoring:
    """The model named by the arguments, with its threshold, slide rule and stain range."""
    from malaria_cnn.data import stain
    from malaria_cnn.evaluation import operating_point, patients
    from malaria_cnn.training import model_io  # TensorFlow: after every check that needs none

    source = getattr(args, "source", None)
    threshold_file = args.threshold_file or Path(args.model).with_name("threshold.json")
    if args.threshold is None:
        stored = operating_point.load_record(threshold_file, args.model)
        threshold = operating_point.pick(stored, threshold_file, source)
    else:
        stored, threshold = {}, args.threshold
    rule_file = Path(args.model).with_name(Path(paths.SLIDE_RULE).name)
    rule = patients.load(rule_file, args.model, source) if rule_file.is_file() else None
    if source is None and stored.get("by_source"):
        print(f"note: the model has a threshold and slide rule of its own for each training source "
              f"({', '.join(stored['by_source'])}); --source NAME uses one, for photos like that source's",
              file=sys.stderr)
    model = model_io.load(args.model)
    range_file = Path(args.model).with_name(Path(paths.STAIN_RANGE).name)
    span = stain.StainRange.load(range_file, args.model) if range_file.is_file() else None
    return Scoring(model, model_io.scorer(model, args.batch_size), threshold, rule, span, model_io.image_size(model),
                   model_io.stain_mode(model), source)
