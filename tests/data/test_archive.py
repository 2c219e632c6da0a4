import zipfile

import pytest

from malaria_cnn.core.errors import UserError
from malaria_cnn.data import archive


def test_write_is_stored_in_order_and_deterministic(tmp_path):
    members = [(archive.member_name("Parasitized", "a.png"), b"AAA"), (archive.member_name("Uninfected", "b.png"), b"B")]
    archive.write(tmp_path / "one.zip", members)
    archive.write(tmp_path / "two.zip", members)
    assert (tmp_path / "one.zip").read_bytes() == (tmp_path / "two.zip").read_bytes()
    with zipfile.ZipFile(tmp_path / "one.zip") as zf:
        assert zf.namelist() == ["cell_images/Parasitized/a.png", "cell_images/Uninfected/b.png"]
        assert all(i.compress_type == zipfile.ZIP_STORED for i in zf.infolist())
        assert zf.read("cell_images/Parasitized/a.png") == b"AAA"


@pytest.mark.parametrize("name", ["/etc/passwd", "../evil.png", "cell_images/../../evil.png", "C:\\evil.png", "\\x.png"])
def test_unsafe_member_names_are_refused(name, tmp_path):
    with pytest.raises(UserError, match="unsafe archive entry"):
        archive.check_member_name(name)
    with pytest.raises(UserError):
        archive.write(tmp_path / "bad.zip", [(name, b"x")])
    assert not (tmp_path / "bad.zip").exists()


def test_safe_names_pass():
    assert archive.check_member_name("cell_images/Uninfected/x..y.png") == "cell_images/Uninfected/x..y.png"


def test_open_zip_errors_are_clear(tmp_path):
    with pytest.raises(UserError, match="not found"):
        archive.open_zip(tmp_path / "missing.zip")
    (tmp_path / "fake.zip").write_text("hello")
    with pytest.raises(UserError, match="is not a zip archive"):
        archive.open_zip(tmp_path / "fake.zip")
