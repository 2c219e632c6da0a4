"""The `malaria-cnn` command's parser and dispatch: `predict PATH...` scores crops (predict_command.py),
`evaluate PATH... --out DIR` scores labelled crops (evaluate_command.py), `screen PATH... --out DIR` finds,
scores and counts the red cells of smear photos (screen_command.py), `serve` opens them to review in a browser
(serve_command.py); options.py holds what they share."""

from __future__ import annotations

import argparse

from malaria_cnn.core import paths
from malaria_cnn.core.errors import run_main

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
    p.add_argument("--source", metavar="NAME", help="the threshold and slide rule chosen for this training source "
                                                    "(a model trained on data.sources: see threshold.json's by_source)")
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
    _serve_parser(commands)
    return parser


def _screen_parser(commands) -> None:
    s = commands.add_parser("screen", help="find, score and count the red cells of smear photos (files, folders, zips)",
                            description="Segment the red blood cells of each photo, score each cell with the model "
                                        "at its threshold, and write cells.csv, images.csv, slides.csv, annotated "
                                        f"photos and a sheet of the cells called parasitized to DIR. {EXIT_CODES}")
    s.add_argument("paths", nargs="+", metavar="PATH", help="photos (JPEG, PNG, TIFF, WebP, HEIC), folders and .zip files")
    s.add_argument("--out", default="screened", metavar="DIR", help="where to write (default screened/)")
    _model_args(s)
    s.add_argument("--cell-diameter", type=float, metavar="PIXELS",
                   help="a red cell's diameter in the photos' pixels (default: estimated per photo)")
    s.add_argument("--slide-pattern", metavar="REGEX",
                   help="regex on file names whose first group names the slide (default: data.slide_pattern in "
                        "params.yaml, else NIH's naming; a photo whose name gives no slide is its own slide)")
    s.add_argument("--truth", metavar="FILE", help="labelled boxes (IML JSON or COCO): adds detection.json")
    s.add_argument("--max-pixels", type=int, metavar="N",
                   help="refuse photos with more pixels, before decoding them (default: 200-megapixel phone "
                        "photos pass)")


def _serve_parser(commands) -> None:
    from malaria_cnn.serve.limits import UploadLimits

    d = UploadLimits()
    s = commands.add_parser("serve", help="screen and review slides in a browser",
                            description="A web page where photos of a slide are screened, the model's calls reviewed "
                                        "cell by cell, and the corrections exported as training data. Listens on "
                                        "127.0.0.1 only, unless --host; every request carries a token, "
                                        "generated at start unless given.")
    s.add_argument("--workspace", default="serve-workspace", metavar="DIR",
                   help="where slides, photos, results and answers are kept (default serve-workspace/)")
    s.add_argument("--host", default="127.0.0.1", help="the address to listen on (default 127.0.0.1: this machine)")
    s.add_argument("--port", type=int, default=8000, help="default 8000")
    s.add_argument("--token", help="a secret every request must carry, 16 characters or more (default: the "
                                   "MALARIA_CNN_TOKEN environment variable, else one generated at start)")
    s.add_argument("--no-token", action="store_true",
                   help="no token (on a loopback host only; other pages still cannot act on the server)")
    s.add_argument("--token-hidden", action="store_true", help="do not print the address with the token")
    _model_args(s)
    s.add_argument("--max-upload-mb", type=int, default=d.max_upload_mb, help=f"per file (default {d.max_upload_mb})")
    s.add_argument("--max-files", type=int, default=d.max_files, help=f"per upload (default {d.max_files})")
    s.add_argument("--max-photos", type=int, default=d.max_photos_per_slide,
                   help=f"per slide (default {d.max_photos_per_slide:,})")
    s.add_argument("--max-pixels", type=int,
                   help="refuse photos with more pixels, before decoding them (default: as screen)")


def main(argv: list[str] | None = None) -> None:
    """Parse the arguments and run the command's module (each imported only when it runs)."""
    args = _parser().parse_args(argv)
    if args.command == "evaluate":
        from malaria_cnn.release.evaluate_command import evaluate_command as command
    elif args.command == "screen":
        from malaria_cnn.release.screen_command import screen_command as command
    elif args.command == "serve":
        from malaria_cnn.release.serve_command import serve_command as command
    else:
        from malaria_cnn.release.predict_command import predict_command as command
    run_main(lambda: command(args))
