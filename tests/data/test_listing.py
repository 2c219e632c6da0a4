import os

from malaria_cnn.core.params import DataParams
from malaria_cnn.data import listing


def test_listing_changes_with_the_files_and_only_with_them(tmp_path):
    root = tmp_path / "crops"
    (root / "Parasitized").mkdir(parents=True)
    (root / "Parasitized" / "a.png").write_bytes(b"one")
    cfg = DataParams(source="folder", path=str(root))
    first = listing.lines(cfg)
    assert first == listing.lines(cfg) and first[0].startswith("Parasitized/a.png\t3\t")
    os.utime(root / "Parasitized" / "a.png", ns=(1, 1))  # the same size, edited in place: a new mtime
    assert listing.lines(cfg) != first
    with open(os.fsencode(root) + b"/caf\xe9.png", "wb"):  # a name that is not UTF-8 is listed too
        pass
    assert listing.write(cfg, tmp_path / "l.tsv") == f"listing: 2 files behind data.path -> {tmp_path / 'l.tsv'}"
    assert "caf%E9.png\t0\t" in (tmp_path / "l.tsv").read_text()


def test_synthetic_and_nih_list_nothing_that_changes():
    assert listing.lines(DataParams()) == ["synthetic: no files to watch"]
