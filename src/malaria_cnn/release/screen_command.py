"""`malaria-cnn screen PATH... --out DIR`: smear photos -> red cells -> scores -> parasitemia and slide answers."""

from __future__ import annotations

import argparse

from malaria_cnn.release.options import checked, scorer


def screen_command(args: argparse.Namespace) -> int:
    from malaria_cnn.screening import truth
    from malaria_cnn.screening.run import run
    from malaria_cnn.screening.screen import MAX_PIXELS

    checked(args)
    boxes = truth.load(args.truth) if args.truth else None
    m = scorer(args)
    return run(m.score, args.paths, args.out, m.size, m.threshold, args.cell_diameter, args.slide_pattern, boxes,
               m.stain_mode, m.stain_range, rule=m.rule, max_pixels=args.max_pixels or MAX_PIXELS)
