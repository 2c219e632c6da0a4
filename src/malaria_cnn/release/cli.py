"""The `malaria-cnn` command: `malaria-cnn predict PATH... [--model ...] [--out ...]`."""

from __future__ import annotations

import argparse
from pathlib import Path

from malaria_cnn.core import paths
from malaria_cnn.core.errors import UserError, run_main
from malaria_cnn.core.params import PredictParams


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="malaria-cnn", description="Tell parasitized from uninfected cell crops.")
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("predict", help="score image files, folders (recursively) and zips of crops",
                            description="Write P(Parasitized) and the label of every crop to a CSV. "
                                        "Exit code 0: every file read; 1: some files failed (reasons in the "
                                        "CSV); 2: a usage error.")
    p.add_argument("paths", nargs="+", metavar="PATH", help="image files, folders and .zip files")
    p.add_argument("--model", default=paths.MODEL, help=f"a model trained by the pipeline (default {paths.MODEL})")
    p.add_argument("--threshold-file", help="the model's threshold (default: threshold.json beside the model)")
    p.add_argument("--threshold", type=float, help="call Parasitized at P >= this, instead of the stored threshold")
    p.add_argument("--out", default="predictions.csv", help="the CSV to write (default predictions.csv)")
    p.add_argument("--batch-size", type=int, default=PredictParams().batch_size, help="crops per forward pass")
    return parser


def predict_command(args: argparse.Namespace) -> int:
    from malaria_cnn.core import atomic
    from malaria_cnn.evaluation import operating_point
    from malaria_cnn.release import predict
    from malaria_cnn.training import model_io

    if args.batch_size < 1:
        raise UserError(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.threshold is not None and not 0 <= args.threshold <= 1:
        raise UserError(f"--threshold must be between 0 and 1, got {args.threshold}")
    missing = [p for p in args.paths if not Path(p).exists()]
    if missing:
        raise UserError(f"no such file or folder: {', '.join(missing)}")
    model = model_io.load(args.model)
    if args.threshold is not None:
        threshold = args.threshold
    else:
        threshold = operating_point.load(args.threshold_file or Path(args.model).with_name("threshold.json"), args.model)
    rows = predict.predict(lambda x: model_io.parasitized_probability(model, x, args.batch_size), args.paths,
                           model_io.image_size(model), threshold, args.batch_size)
    atomic.write_csv(args.out, predict.COLUMNS, rows)
    print(predict.summary(rows, threshold, args.out))
    return 1 if any(r[3] for r in rows) else 0


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    run_main(lambda: predict_command(args))
