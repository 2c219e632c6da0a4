"""Stage listing (runs every time): the files behind data.path, with sizes and mtimes -> data/listing.tsv; the
model train.init_from names, with its sha256 -> data/init_from.tsv."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # run the package in this tree

from malaria_cnn.core import params, paths
from malaria_cnn.core.errors import run_main
from malaria_cnn.data import listing


def main() -> None:
    p = params.load()
    print(f"{listing.write(p.data, paths.LISTING)}; {listing.write_init_from(p.train, paths.INIT_FROM)}")


if __name__ == "__main__":
    run_main(main)
