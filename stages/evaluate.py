"""Stage evaluate: score the test split at the stored threshold -> metrics/, plots/."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # run the package in this tree

from malaria_cnn.core import atomic, params, paths
from malaria_cnn.core.errors import run_main
from malaria_cnn.data import images, split
from malaria_cnn.evaluation import evaluate, gallery, gradcam, operating_point
from malaria_cnn.training import model_io


def main() -> None:
    p = params.load()
    cfg = p.evaluate
    test = split.load_cells(paths.CELLS_NPZ, paths.SPLITS_CSV, "test")["test"]
    x, y, slides = test["x"], test["y"], test["slide"]
    model = model_io.load(paths.MODEL)
    threshold = operating_point.load(paths.THRESHOLD, paths.MODEL)
    prob = model_io.parasitized_probability(model, x, p.predict.batch_size)

    m = evaluate.report(y, prob, slides, threshold, cfg)
    atomic.write_json(paths.METRICS, m)
    atomic.write_csv(paths.PER_SLIDE, ["slide", "cells", "parasitized", "called_parasitized", "correct", "accuracy",
                                       "mean_probability"], evaluate.per_slide_rows(y, prob, slides, threshold))
    atomic.write_csv(paths.CONFUSION, ["actual", "predicted"], evaluate.confusion_rows(y, prob, threshold))
    atomic.write_csv(paths.ROC, ["fpr", "tpr", "threshold"], evaluate.roc_rows(y, prob))
    atomic.write_csv(paths.PR, ["recall", "precision", "threshold"], evaluate.pr_rows(y, prob))
    atomic.write_csv(paths.CALIBRATION, ["bin_low", "bin_high", "cells", "mean_probability", "fraction_parasitized",
                                         "perfect"], evaluate.calibration_rows(y, prob, cfg.calibration_bins))
    atomic.write_bytes(paths.GALLERY, images.encode_png(gallery.mistakes_sheet(x, y, prob, slides, threshold, cfg.gallery)))
    atomic.write_bytes(paths.GRADCAM, images.encode_png(gradcam.gradcam_sheet(model, x, y, prob, slides, threshold, cfg.gradcam)))
    print(evaluate.summary(m, cfg))


if __name__ == "__main__":
    run_main(main)
