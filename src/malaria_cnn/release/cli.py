"""The `malaria-cnn` command: `predict PATH...` scores crops, `evaluate PATH... --out DIR` scores labelled crops,
`screen PATH... --out DIR` finds, scores and counts the red cells of smear photos."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from malaria_cnn.core import paths
from malaria_cnn.core.errors import UserError, run_main

# crops per forward pass in the commands: the shipped ensemble runs its members side by side, so the
# activations of 256 crops cost ~110 MB more at the peak than 64, for ~10% more speed (benchmarks/README.md)
BATCH = 64
EXIT_CODES = ("Exit code 0: every file read; 1: some files failed (reasons in the CSV); 2: a usage error; "
              "3: an internal error (one line naming the log with its details).")


def _model_args(p: argparse.ArgumentParser) -> None:
    """The arguments of every command that scores with a trained model."""
    p.add_argument("--model", default=paths.MODEL, help=f"a model trained by the pipeline (default {paths.MODEL})")
    p.add_argument("--threshold-file", help="the model's threshold (default: threshold.json beside the model)")
    p.add_argument("--threshold", type=float, help="call Parasitized at P >= this, instead of the stored threshold")
    p.add_argument("--batch-size", type=int, default=BATCH, help=f"crops per forward pass (default {BATCH})")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("paths", nargs="+", metavar="PATH", help="image files, folders and .zip files")
    _model_args(p)
    p.add_argument("--slide-pattern", help="regex on file names naming the slide (group 1); default: "
                                           "data.slide_pattern in params.yaml, else NIH's naming")
    p.add_argument("--min-side", type=int, help="reject crops with a shorter side (default: params.yaml's or 16)")
    p.add_argument("--max-pixels", type=int, help="reject crops with more pixels (default: params.yaml's)")
    p.add_argument("--max-entry-mb", type=int, help="reject zip entries larger than this (default: params.yaml's)")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="malaria-cnn", description="Tell parasitized from uninfected cell crops.")
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("predict", help="score image files, folders (recursively) and zips of crops",
                            description=f"Write P(Parasitized) and the label of every crop to a CSV. {EXIT_CODES}")
    _common(p)
    p.add_argument("--out", default="predictions.csv", help="the CSV to write (default predictions.csv)")
    p.add_argument("--by-slide", action="store_true", help="also write one row per slide: OUT's name + _slides.csv")
    e = commands.add_parser("evaluate", help="score labelled crops (folders or zips with one folder per class)",
                            description="Metrics with slide intervals, a per-slide table, plots and one offline "
                                        f"page, as the pipeline's evaluate stage writes them. {EXIT_CODES}")
    _common(e)
    e.add_argument("--out", required=True, metavar="DIR", help="the folder to write into")
    _screen_parser(commands)
    return parser


def _screen_parser(commands) -> None:
    s = commands.add_parser("screen", help="find, score and count the red cells of smear photos (files, folders, zips)",
                            description="Segment the red blood cells of each photo, score each cell with the model "
                                        "at its threshold, and write cells.csv, images.csv, slides.csv, annotated "
                                        f"photos and a sheet of the cells called parasitized to DIR. {EXIT_CODES}")
    s.add_argument("paths", nargs="+", metavar="PATH", help="JPEG, PNG or TIFF photos, folders and .zip files")
    s.add_argument("--out", default="screened", metavar="DIR", help="where to write (default screened/)")
    _model_args(s)
    s.add_argument("--cell-diameter", type=float, metavar="PIXELS",
                   help="a red cell's diameter in the photos' pixels (default: estimated per photo)")
    s.add_argument("--slide-pattern", metavar="REGEX",
                   help="regex on file names whose first group names the slide (default: data.slide_pattern in "
                        "params.yaml, else NIH's naming; a photo whose name gives no slide is its own slide)")
    s.add_argument("--truth", metavar="FILE", help="labelled boxes (IML JSON or COCO): adds detection.json")


def project_params():
    """params.yaml where the command runs, else the defaults: the limits and slide naming the pipeline used."""
    from malaria_cnn.core import params

    return params.load() if Path(params.PARAMS_FILE).is_file() else params.Params()


def limits(args: argparse.Namespace, p):
    from malaria_cnn.release.predict import Limits

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

    model = model_io.load(args.model)
    if args.threshold is not None:
        threshold = args.threshold
    else:
        threshold = operating_point.load(args.threshold_file or Path(args.model).with_name("threshold.json"), args.model)
    rule_file = Path(args.model).with_name(Path(paths.SLIDE_RULE).name)
    rule = patients.load(rule_file, args.model) if rule_file.is_file() else None
    range_file = Path(args.model).with_name(Path(paths.STAIN_RANGE).name)
    span = stain.StainRange.load(range_file, args.model) if range_file.is_file() else None
    return Scoring(model, model_io.scorer(model, args.batch_size), threshold, rule, span, model_io.image_size(model),
                   model_io.stain_mode(model))


def screen_command(args: argparse.Namespace) -> int:
    from malaria_cnn.screening import truth
    from malaria_cnn.screening.run import run

    checked(args)
    boxes = truth.load(args.truth) if args.truth else None
    m = scorer(args)
    return run(m.score, args.paths, args.out, m.size, m.threshold, args.cell_diameter, args.slide_pattern, boxes,
               m.stain_mode, m.stain_range, rule=m.rule)


def predict_command(args: argparse.Namespace) -> int:
    from malaria_cnn.core import atomic
    from malaria_cnn.release import by_slide, predict

    p = checked(args)
    m = scorer(args)
    tally = by_slide.Tally(args.slide_pattern)
    read = positive = failed = 0
    lim = limits(args, p)
    with by_slide.interrupted_note(args.out):
        with atomic.streamed_csv(args.out, predict.COLUMNS) as csv_out:
            for item, prob, error, density in predict.scored(m.score, predict.items(args.paths, lim), m.size,
                                                             args.batch_size, lim, stain_mode=m.stain_mode):
                row = predict.row(item, prob, error, m.threshold)
                csv_out.writerow(row)
                failed += bool(error)
                if not error:
                    read += 1
                    positive += row[2] == "Parasitized"
                    tally.add(row[0], row[1], density)
    if args.by_slide:
        tally.write(by_slide.path_beside(args.out), m.threshold, m.rule, m.stain_range)
    print(predict.tally_line(read, positive, failed, m.threshold, args.out) + tally.note(args.by_slide, args.out))
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    if args.command == "evaluate":
        from malaria_cnn.release.evaluate_command import evaluate_command

        run_main(lambda: evaluate_command(args))
    else:
        run_main(lambda: (screen_command if args.command == "screen" else predict_command)(args))
