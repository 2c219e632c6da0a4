"""Stage preprocess: decode and resize every crop -> data/processed/cells.npz + rejects.csv."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # run the package in this tree

from malaria_cnn.core import params, paths
from malaria_cnn.core.errors import run_main
from malaria_cnn.data.preprocess import preprocess


def main() -> None:
    cfg = params.load().preprocess
    print(preprocess(paths.RAW_ZIP, paths.MANIFEST, paths.CELLS_NPZ, paths.DECODE_REJECTS, cfg))


if __name__ == "__main__":
    run_main(main)
