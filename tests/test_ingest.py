import zipfile

from malaria_cnn import manifest
from malaria_cnn.ingest import ingest
from malaria_cnn.params import DataParams, SyntheticParams


def test_synthetic_ingest_writes_the_nih_layout_and_a_true_manifest(tmp_path):
    cfg = DataParams(source="synthetic", synthetic=SyntheticParams(per_class=5, slides=3, seed=1))
    line = ingest(cfg, tmp_path / "raw" / "cell_images.zip", tmp_path / "raw" / "manifest.csv")
    assert line.startswith("ingest: 10 cells (5 Parasitized, 5 Uninfected) from ")
    records = manifest.read(tmp_path / "raw" / "manifest.csv")
    with zipfile.ZipFile(tmp_path / "raw" / "cell_images.zip") as zf:
        assert zf.namelist() == [r.file for r in records]
        for r in records:
            assert r.file == f"cell_images/{r.label}/{r.file.rsplit('/', 1)[1]}"
            assert manifest.sha256(zf.read(r.file)) == r.sha256
    assert sorted({r.label for r in records}) == ["Parasitized", "Uninfected"]
