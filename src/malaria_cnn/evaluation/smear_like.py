"""Out-of-fold slides resampled to the compositions of real smears, for fitting the slide rule.

NIH's crop set was balanced by class: its infected "slides" hold a median 28% parasitized crops, where a
patient's smear holds 0.001-2%. A rule fitted on those slides as they are learns limits no smear reaches (a
boundary of 12%, an uncertain band filled by parasites). So each out-of-fold slide with uninfected cells
becomes two smear-like slides: its uninfected cells alone (a healthy patient), and its uninfected cells
with parasitized cells drawn at a parasitemia uniform in (0, MAX_PARASITEMIA] (an infected one), from its own
parasitized cells where it has at least OWN_MIN, else from all the out-of-fold parasitized cells. The
classifier's scores stay each cell's own: only the mix changes. A source of smear photos is a smear already
and is used as it is (fit_rule.choose_rule's `smear_like`).
"""

from __future__ import annotations

import numpy as np

from malaria_cnn.core.labels import POSITIVE

MAX_PARASITEMIA = 0.02  # the infected smear-like slides' parasitemia is drawn up to this
OWN_MIN = 5  # parasitized cells a slide needs to lend its own to its infected smear-like slide
HEALTHY, INFECTED = "~healthy", "~infected"  # the suffixes of the two slides made from one


def resample(y: np.ndarray, prob: np.ndarray, slides: np.ndarray, seed: int = 0) -> tuple[np.ndarray, ...]:
    """(y, prob, slides) of the smear-like slides made from these (OOF) cells; each slide `<name>~healthy` and
    `<name>~infected` (the latter only where any parasitized cell exists to draw)."""
    y, prob, slides = np.asarray(y), np.asarray(prob, float), np.asarray(slides)
    rng = np.random.default_rng(seed)
    positive = y == POSITIVE
    pool = np.flatnonzero(positive)
    out_y, out_p, out_s = [], [], []
    for name in np.unique(slides):
        mine = slides == name
        healthy = np.flatnonzero(mine & ~positive)
        if len(healthy) == 0:
            continue
        out_y.append(y[healthy])
        out_p.append(prob[healthy])
        out_s.append(np.full(len(healthy), f"{name}{HEALTHY}"))
        if len(pool) == 0:
            continue
        own = np.flatnonzero(mine & positive)
        source = own if len(own) >= OWN_MIN else pool
        share = rng.uniform(0, MAX_PARASITEMIA) or MAX_PARASITEMIA
        k = max(1, int(rng.binomial(len(healthy), share / (1 - share))))  # an infected slide has one at least
        drawn = rng.choice(source, k, replace=k > len(source))
        out_y.append(np.r_[y[healthy], y[drawn]])
        out_p.append(np.r_[prob[healthy], prob[drawn]])
        out_s.append(np.full(len(healthy) + k, f"{name}{INFECTED}"))
    if not out_y:
        return y[:0], prob[:0], slides[:0]
    return np.concatenate(out_y), np.concatenate(out_p), np.concatenate(out_s)
