"""Stage ingest: the data source's cells -> data/raw/cell_images.zip + manifest.csv + rejects.csv."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # run the package in this tree

from malaria_cnn.core import params, paths
from malaria_cnn.core.errors import run_main
from malaria_cnn.data.ingest import ingest
from malaria_cnn.screening import labelled


def main() -> None:
    p = params.load()
    print(ingest(p.data, paths.RAW_ZIP, paths.MANIFEST, paths.RAW_REJECTS, photos=labelled.cells))


if __name__ == "__main__":
    run_main(main)
