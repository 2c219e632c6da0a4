"""An upload's multipart body read as it arrives, each file written to a temporary file of the workspace:
the count of files is checked as each one begins, and a file's bytes as they come, so nothing past the
limits is ever kept (the body's total is counted by serve/guard.py, chunked or not)."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from malaria_cnn.serve.limits import MB


class UploadRefused(Exception):
    """An upload refused as a whole: (status, one-line message)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@dataclass
class Received:
    """One sent file: its name as sent, where its bytes are, and how many arrived (all of them, even past
    the limit, when `too_large`: those past it were not kept)."""

    name: str
    path: Path
    size: int = 0
    too_large: bool = False


@dataclass
class _State:
    files: list[Received] = field(default_factory=list)
    headers: dict[bytes, bytes] = field(default_factory=dict)
    header: bytes = b""
    value: bytes = b""
    out: object = None  # the open file of the current part (None: a part not kept)


def boundary(content_type: str) -> bytes:
    kind, options = parse_options_header(content_type)
    if kind != b"multipart/form-data" or not options.get(b"boundary"):
        raise UploadRefused(415, "send the photos as multipart/form-data (field 'files')")
    return options[b"boundary"]


async def receive(chunks, content_type: str, folder: Path, max_files: int, too_many: str,
                  max_file_mb: int) -> list[Received]:
    """The files of the `files` field of a multipart body (an async iterable of byte `chunks`), each in a
    temporary file under `folder`. UploadRefused(413, `too_many`) as soon as a file past `max_files` begins;
    a file past `max_file_mb` is cut off (`too_large`). On any error, no temporary file is left."""
    folder.mkdir(parents=True, exist_ok=True)
    st, limit = _State(), max_file_mb * MB

    def on_header_field(data, start, end):
        st.header += data[start:end]

    def on_header_value(data, start, end):
        st.value += data[start:end]

    def on_header_end():
        st.headers[st.header.lower()] = st.value
        st.header = st.value = b""

    def on_headers_finished():
        _, options = parse_options_header(st.headers.get(b"content-disposition", b""))
        if options.get(b"name") != b"files" or b"filename" not in options:
            return
        if len(st.files) >= max_files:
            raise UploadRefused(413, too_many)
        fd, path = tempfile.mkstemp(dir=folder, prefix="upload-")
        st.out = os.fdopen(fd, "wb")
        st.files.append(Received(options[b"filename"].decode("utf-8", "replace"), Path(path)))

    def on_part_data(data, start, end):
        if st.out is None:
            return
        f = st.files[-1]
        f.size += end - start
        f.too_large = f.too_large or f.size > limit
        if not f.too_large:
            st.out.write(data[start:end])

    def on_part_end():
        if st.out is not None:
            st.out.close()
        st.out, st.headers = None, {}

    parser = MultipartParser(boundary(content_type), {
        "on_header_field": on_header_field, "on_header_value": on_header_value, "on_header_end": on_header_end,
        "on_headers_finished": on_headers_finished, "on_part_data": on_part_data, "on_part_end": on_part_end})
    try:
        async for chunk in chunks:
            parser.write(chunk)
        parser.finalize()
    except MultipartParseError:
        discard(st.files)
        raise UploadRefused(400, "the upload's multipart body is malformed: send the photos again") from None
    except BaseException:
        if st.out is not None:
            st.out.close()
        discard(st.files)
        raise
    return st.files


def discard(files: list[Received]) -> None:
    for f in files:
        f.path.unlink(missing_ok=True)
        f.path.with_suffix(".zip").unlink(missing_ok=True)
