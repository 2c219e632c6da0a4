import zipfile
from pathlib import Path

from malaria_cnn.data.inputs import Limits, items

MB = 1 << 20


def test_a_file_larger_than_the_entry_limit_is_refused_by_its_size_before_it_is_read(tmp_path, monkeypatch):
    (tmp_path / "in").mkdir()
    with open(tmp_path / "in" / "huge.jpg", "wb") as fh:
        fh.truncate(2 * MB)  # sparse: no data written
    (tmp_path / "in" / "small.jpg").write_bytes(b"\xff\xd8 small")
    with zipfile.ZipFile(tmp_path / "more.zip", "w") as zf:
        zf.writestr("huge.jpg", b"\0" * (2 * MB))
    read = []
    real_read_bytes = Path.read_bytes
    monkeypatch.setattr(Path, "read_bytes", lambda self: read.append(self.name) or real_read_bytes(self))
    found = list(items([tmp_path / "in", tmp_path / "in" / "huge.jpg", tmp_path / "more.zip"], Limits(max_entry_mb=1)))
    problems = [(Path(i.name.split(":")[-1]).name, i.problem) for i in found]
    refused = "file of 2.0 MB is larger than data.max_entry_mb (1)"
    assert problems == [("huge.jpg", refused), ("small.jpg", ""), ("huge.jpg", refused),
                        ("huge.jpg", "entry of 2.0 MB is larger than data.max_entry_mb (1)")]
    assert read == ["small.jpg"] and found[1].data == b"\xff\xd8 small"


def test_a_colon_splits_a_name_only_after_a_real_zip(tmp_path):
    from malaria_cnn.data.inputs import member

    with zipfile.ZipFile(tmp_path / "a.zip", "w") as zf:
        zf.writestr("d/x.png", b"")
    assert member(f"{tmp_path}/a.zip:d/x.png") == "d/x.png"
    assert member("P4:x.png") == "P4:x.png" and member(f"{tmp_path}/b.zip:x.png") == f"{tmp_path}/b.zip:x.png"
