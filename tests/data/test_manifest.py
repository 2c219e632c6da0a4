import pytest

from malaria_cnn.core.errors import UserError
from malaria_cnn.data import manifest


def test_round_trip(tmp_path):
    records = [manifest.ManifestRow("cell_images/Uninfected/a.png", "Uninfected", "C1P1thinF", manifest.sha256(b"a"))]
    manifest.write(tmp_path / "m.csv", records)
    assert manifest.read(tmp_path / "m.csv") == records
    assert (tmp_path / "m.csv").read_text().splitlines()[0] == "file,label,slide,sha256,source"


def test_bad_header_label_and_missing_file(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text("name,label\nx,Uninfected\n")
    with pytest.raises(UserError, match="expected the columns file,label,slide,sha256"):
        manifest.read(path)
    path.write_text("file,label,slide,sha256,source\nx.png,Infected,s,0,zip\n")
    with pytest.raises(UserError, match="has label 'Infected'"):
        manifest.read(path)
    with pytest.raises(UserError, match="run the ingest stage first"):
        manifest.read(tmp_path / "none.csv")
