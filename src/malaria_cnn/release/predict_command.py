"""`malaria-cnn predict PATH...`: crops scored into a CSV, rows streamed as they come; `--by-slide` adds
one row per slide with its answer."""

from __future__ import annotations

import argparse

from malaria_cnn.release.options import checked, limits, scorer


def predict_command(args: argparse.Namespace) -> int:
    from malaria_cnn.core import atomic
    from malaria_cnn.release import by_slide, predict

    p = checked(args)
    m = scorer(args)
    tally = by_slide.Tally(args.slide_pattern)
    read = positive = failed = 0
    lim = limits(args, p)
    with atomic.interrupted_note(args.out):
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
