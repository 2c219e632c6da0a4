"""The raw data as one uncompressed zip in NIH's layout: cell_images/<Class>/<file>.png.

One archive instead of thousands of loose files keeps DVC fast; entries are stored (PNG is
already compressed) with fixed timestamps so the same crops always give the same bytes. A zip is
written member by member at bounded memory: each member's directory entry waits in a temporary file,
not in memory, until the zip's end is written.
"""

from __future__ import annotations

import pickle
import posixpath
import shutil
import tempfile
import zipfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from malaria_cnn.core.atomic import atomic_path
from malaria_cnn.core.errors import UserError

ROOT = "cell_images"
_EPOCH = (1980, 1, 1, 0, 0, 0)


def member_name(label: str, filename: str) -> str:
    return f"{ROOT}/{label}/{filename}"


class Members:
    """Adds members, in the order given, to a zip being written (see `writing`)."""

    def __init__(self, zf: zipfile.ZipFile):
        self.zf = zf

    def add(self, name: str, data: bytes) -> None:
        self.zf.writestr(_info(name), data)

    def add_file(self, name: str, source: BinaryIO, size: int) -> None:
        """A member of `size` bytes copied from an open file, a block at a time."""
        info = _info(name)
        info.file_size = size  # known first: the entry's header is then written as writestr writes it
        with self.zf.open(info, "w") as out:
            shutil.copyfileobj(source, out)


@contextmanager
def writing(dest: str | Path) -> Iterator[Members]:
    """A deterministic stored zip at `dest`, written member by member and put in place in one step (an
    earlier file there stays whole until then); its memory does not grow with its members."""
    with atomic_path(dest) as tmp, _SpooledZip(tmp, "w", zipfile.ZIP_STORED) as zf:
        yield Members(zf)


def write(dest: str | Path, members: Iterable[tuple[str, bytes]]) -> None:
    """Write (name, bytes) pairs, in the order given, as a deterministic stored zip."""
    with writing(dest) as out:
        for name, data in members:
            out.add(name, data)


def _info(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(check_member_name(name), date_time=_EPOCH)
    info.external_attr = 0o644 << 16
    return info


class _SpooledInfos:
    """zipfile's list of written members' entries, kept in a temporary file (about 450 bytes a member in
    memory otherwise: 100 MB for an export of 230,000 crops). zipfile appends to it and reads it back once,
    when it writes the zip's central directory."""

    def __init__(self, folder: Path):
        self._file, self._n = tempfile.TemporaryFile(dir=folder), 0  # beside the zip: /tmp may be memory

    def append(self, info: zipfile.ZipInfo) -> None:
        pickle.dump(info, self._file, pickle.HIGHEST_PROTOCOL)
        self._n += 1

    def __len__(self) -> int:
        return self._n

    def __iter__(self) -> Iterator[zipfile.ZipInfo]:
        self._file.seek(0)
        for _ in range(self._n):
            yield pickle.load(self._file)
        self._file.seek(0, 2)

    def close(self) -> None:
        self._file.close()


class _Unindexed(dict):
    """zipfile's index of members by name, left empty: it only warns of a name written twice."""

    def __setitem__(self, key, value) -> None:
        pass


class _SpooledZip(zipfile.ZipFile):
    """A ZipFile for writing whose member entries wait on disk (_SpooledInfos), not in memory."""

    def __init__(self, path: Path, *args, **kwargs):
        super().__init__(path, *args, **kwargs)
        self.filelist, self.NameToInfo = _SpooledInfos(Path(path).parent), _Unindexed()

    def close(self) -> None:
        try:
            super().close()
        finally:
            if isinstance(self.filelist, _SpooledInfos):
                self.filelist.close()


def check_member_name(name: str) -> str:
    """Return `name` if it is a plain relative path; raise for absolute paths and `..` (zip-slip)."""
    norm = posixpath.normpath(name.replace("\\", "/"))
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":") or norm.startswith("../") or norm == "..":
        raise UserError(f"unsafe archive entry name {name!r}")
    return name


def open_zip(path: str | Path) -> zipfile.ZipFile:
    """Open a zip for reading, with one clear error if it is missing or not a zip."""
    try:
        return zipfile.ZipFile(path)
    except FileNotFoundError:
        raise UserError(f"{path} not found: run the ingest stage first (dvc repro)") from None
    except zipfile.BadZipFile:
        raise UserError(f"{path} is not a zip archive") from None
