"""The nih source against a loopback HTTP server serving the real dev crops: whole, interrupted, wrong."""

from __future__ import annotations

import hashlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from malaria_cnn.core.errors import UserError
from malaria_cnn.core.params import DataParams, NihParams
from malaria_cnn.data import manifest
from malaria_cnn.data.ingest import ingest
from malaria_cnn.data.sources import nih


class _Server:
    """Serves one file at /cell_images.zip with HTTP Range; can cut the first response short."""

    def __init__(self, payload: bytes, cut_after: int | None = None):
        self.payload, self.cut_after, self.ranges = payload, cut_after, []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                if self.path != "/cell_images.zip":
                    self.send_error(404)
                    return
                start = 0
                header = self.headers.get("Range")
                server.ranges.append(header)
                if header:
                    start = int(header.removeprefix("bytes=").split("-")[0])
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(server.payload) - 1}/{len(server.payload)}")
                else:
                    self.send_response(200)
                body = server.payload[start:]
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if server.cut_after is not None:
                    body, server.cut_after = body[: server.cut_after], None  # drop the connection once
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/cell_images.zip"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def dev_bytes(request) -> bytes:
    from conftest import SHARED_DEV_ZIP

    if not SHARED_DEV_ZIP.is_file():
        pytest.skip(f"the NIH dev crops are not here ({SHARED_DEV_ZIP}); CI provides them")
    return SHARED_DEV_ZIP.read_bytes()


def _params(url: str, payload: bytes, sha256: str | None = None) -> NihParams:
    return NihParams(url=url, size=len(payload), sha256=sha256 or hashlib.sha256(payload).hexdigest())


def test_whole_download_is_verified_and_ingested(tmp_path, dev_bytes, monkeypatch):
    server = _Server(dev_bytes)
    try:
        monkeypatch.chdir(tmp_path)
        cfg = DataParams(source="nih", nih=_params(server.url, dev_bytes))
        line = ingest(cfg, Path("data/raw/cell_images.zip"), Path("data/raw/manifest.csv"), Path("data/raw/rejects.csv"))
        assert Path("data/raw/cell_images.zip").read_bytes() == dev_bytes
        records = manifest.read("data/raw/manifest.csv")
        assert len(records) == 8511 and len({r.slide for r in records}) == 49
        assert line.startswith("ingest nih: 8,511 cells")
        # a second ingest (say, after a param change) uses the verified download instead of fetching again
        ingest(cfg, Path("data/raw/cell_images.zip"), Path("data/raw/manifest.csv"), Path("data/raw/rejects.csv"))
        assert server.ranges == [None]
    finally:
        server.close()


def test_interrupted_download_resumes_where_it_stopped(tmp_path, dev_bytes):
    server = _Server(dev_bytes, cut_after=3_000_000)
    try:
        cfg = _params(server.url, dev_bytes)
        with pytest.raises(UserError, match=r"stopped at 3,000,000 of 102,991,053 bytes.*run again to resume"):
            nih.fetch(cfg, tmp_path / "raw.zip", downloads=tmp_path / "dl")
        assert not (tmp_path / "raw.zip").exists()
        nih.fetch(cfg, tmp_path / "raw.zip", downloads=tmp_path / "dl")
        assert server.ranges == [None, "bytes=3000000-"]
        assert (tmp_path / "raw.zip").read_bytes() == dev_bytes
    finally:
        server.close()


def test_wrong_checksum_is_one_error_and_nothing_is_kept(tmp_path, dev_bytes):
    server = _Server(dev_bytes)
    try:
        cfg = _params(server.url, dev_bytes, sha256="0" * 64)
        with pytest.raises(UserError, match=r"checksum mismatch .* expected sha256 0{64}, got [0-9a-f]{64}"):
            nih.fetch(cfg, tmp_path / "raw.zip", downloads=tmp_path / "dl")
        assert not (tmp_path / "raw.zip").exists()
        assert list((tmp_path / "dl").iterdir()) == []
    finally:
        server.close()


def test_unreachable_server_is_one_error(tmp_path):
    cfg = NihParams(url="http://127.0.0.1:9/cell_images.zip", size=10, sha256="0" * 64)
    with pytest.raises(UserError, match=r"download of http://127.0.0.1:9/cell_images.zip stopped at 0 of 10 bytes"):
        nih.fetch(cfg, tmp_path / "raw.zip", downloads=tmp_path / "dl")
