"""NIH's cell_images.zip: downloaded once with a progress bar, resumed after an interruption, verified.

The download goes to data/downloads/ (outside DVC's outputs, so a rerun of ingest does not fetch
it again); only an archive whose size and sha256 match params is ever used.
"""

from __future__ import annotations

import http.client
import shutil
import urllib.error
import urllib.request
from pathlib import Path

from tqdm import tqdm

from malaria_cnn.core.atomic import atomic_path, file_sha256
from malaria_cnn.core.errors import UserError
from malaria_cnn.core.params import NihParams

DOWNLOADS = Path("data/downloads")
_CHUNK = 1 << 20


def fetch(cfg: NihParams, dest: Path, downloads: Path = DOWNLOADS) -> None:
    """Put the verified archive at `dest`, downloading (or resuming) only what is missing."""
    with atomic_path(dest) as tmp:
        shutil.copyfile(verified(cfg, downloads), tmp)


def verified(cfg: NihParams, downloads: Path = DOWNLOADS) -> Path:
    """The verified archive in `downloads`, downloaded (or resumed) first if it is not there whole."""
    path = downloads / f"cell_images-{cfg.sha256[:16]}.zip"
    if not (path.is_file() and path.stat().st_size == cfg.size):
        part = path.with_name(path.name + ".part")
        download(cfg.url, part, cfg.size)
        actual = file_sha256(part)
        if actual != cfg.sha256:
            part.unlink()
            raise UserError(
                f"checksum mismatch for {cfg.url}: expected sha256 {cfg.sha256}, got {actual}; "
                "the download was deleted and nothing was ingested"
            )
        part.replace(path)
    return path


def download(url: str, part: Path, size: int) -> None:
    """Stream `url` into `part`, continuing from what `part` already holds (HTTP Range)."""
    part.parent.mkdir(parents=True, exist_ok=True)
    have = part.stat().st_size if part.exists() else 0
    if have > size:
        part.unlink()
        have = 0
    if have == size:
        return
    headers = {"Range": f"bytes={have}-"} if have else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=60) as resp:
            if have and resp.status != 206:  # the server ignored the range: start over
                have = 0
            bar = tqdm(total=size, initial=have, unit="B", unit_scale=True, desc="download NIH", disable=None)
            with bar, open(part, "ab" if have else "wb") as fh:
                while block := resp.read(_CHUNK):
                    fh.write(block)
                    bar.update(len(block))
    except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
        got = part.stat().st_size if part.exists() else 0
        raise UserError(
            f"download of {url} stopped at {got:,} of {size:,} bytes ({_reason(exc)}); run again to resume"
        ) from None
    got = part.stat().st_size
    if got < size:
        raise UserError(f"download of {url} stopped at {got:,} of {size:,} bytes; run again to resume")
    if got > size:
        part.unlink()
        raise UserError(f"{url} sent {got:,} bytes, expected {size:,} (data.nih.size); the download was deleted")


def _reason(exc: Exception) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        return str(exc.reason)
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
