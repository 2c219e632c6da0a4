"""The real `malaria-cnn serve` for tests and benchmarks, run as a user runs it: a subprocess on a free port
of 127.0.0.1, its output in a log file beside the workspace, and small JSON helpers over httpx.

    with start(tmp_path / "ws", model_dir) as server:
        slide_id = server.create_slide("P1")
        server.upload(slide_id, {"field.png": png_bytes})
        slide = server.wait_screened(slide_id)

No pytest in here: benchmarks/serve.py imports it too. Failures raise AssertionError with the log's tail.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Self

import cv2
import httpx
import numpy as np

CLI = Path(sys.executable).parent / "malaria-cnn"
START_TIMEOUT = 60.0  # seconds for the server to answer GET /api/status (TensorFlow and the model load first)
SCREEN_TIMEOUT = 120.0
POLL = 0.05
TOKEN = "a-test-token-of-some-length"  # passed as --token: clients send it as `Authorization: Bearer`
Files = Mapping[str, bytes] | Sequence[tuple[str, tuple[str, bytes, str]]]


def free_port() -> int:
    """A port of 127.0.0.1 nothing listens on now (the OS's choice)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def png(rgb: np.ndarray) -> bytes:
    """An RGB array as PNG bytes."""
    ok, buf = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    assert ok
    return buf.tobytes()


def tiled(tiles: Sequence[np.ndarray], across: int = 2) -> np.ndarray:
    """Equal-sized RGB photos laid out `across` per row (four 640x480 fields: one 1280x960 photo). Cells of
    the synthetic fields keep clear of their borders, so no cell is cut by a seam."""
    rows = [np.hstack(tiles[i:i + across]) for i in range(0, len(tiles), across)]
    return np.ascontiguousarray(np.vstack(rows))


def field_photos(rgbs: Sequence[np.ndarray], n: int) -> list[bytes]:
    """`n` distinct PNG photos of twice the fields' size (four 640x480 synthetic fields: 1280x960): the fields
    tiled 2x2 in turn, three of every four flipped one way or another."""
    out = []
    for i in range(n):
        rgb = tiled([rgbs[(i + k) % len(rgbs)] for k in range(4)])
        if i % 4:
            rgb = cv2.flip(rgb, i % 4 - 2)
        out.append(png(rgb))
    return out


def _as_files(files: Files) -> list[tuple[str, tuple[str, bytes, str]]]:
    """httpx's multipart list, every part named "files"; {name: bytes} or the list itself."""
    if isinstance(files, Mapping):
        kinds = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".zip": "application/zip"}
        return [("files", (name, data, kinds.get(Path(name).suffix.lower(), "application/octet-stream")))
                for name, data in files.items()]
    return list(files)


# -- JSON helpers over any httpx.Client whose base_url is the server's --
def create_slide(client: httpx.Client, name: str) -> httpx.Response:
    return client.post("/api/slides", json={"name": name})


def upload(client: httpx.Client, slide_id: int, files: Files) -> httpx.Response:
    return client.post(f"/api/slides/{slide_id}/photos", files=_as_files(files))


def answer(client: httpx.Client, cell_id: int, value: str) -> httpx.Response:
    return client.put(f"/api/cells/{cell_id}/answer", json={"answer": value})


def ok_json(response: httpx.Response, status: int = 200):
    """The reply's JSON, asserting its status."""
    assert response.status_code == status, (f"{response.request.method} {response.request.url}: "
                                            f"{response.status_code} {response.text[:500]}")
    return response.json()


def wait_screened(client: httpx.Client, slide_id: int, timeout: float = SCREEN_TIMEOUT,
                  alive: Server | None = None) -> dict:
    """The slide (GET /api/slides/{id}) once none of its photos is queued or being screened."""
    deadline = time.monotonic() + timeout
    while True:
        slide = ok_json(client.get(f"/api/slides/{slide_id}"))
        if not any(p["state"] in ("queued", "screening") for p in slide["photos"]):
            return slide
        if alive is not None:
            alive.check_alive()
        if time.monotonic() > deadline:
            states = [p["state"] for p in slide["photos"]]
            raise AssertionError(f"slide {slide_id} not screened in {timeout:.0f} s: {states}"
                                 + (f"\n{alive.tail()}" if alive else ""))
        time.sleep(POLL)


class Server:
    """A running `malaria-cnn serve` subprocess (see start)."""

    def __init__(self, workspace: Path, model_dir: Path, port: int, proc: subprocess.Popen, log_path: Path,
                 log_offset: int, tmpdir: Path, token: str | None = TOKEN):
        self.workspace, self.model_dir, self.port, self.proc = Path(workspace), Path(model_dir), port, proc
        self.log_path, self.log_offset, self.tmpdir, self.token = log_path, log_offset, tmpdir, token
        self.url = f"http://127.0.0.1:{port}/"
        self.address = self.url + (f"?token={token}" if token else "")  # what a person opens: sets the cookie
        # a script's client sends the token; without one, it sends the Origin the server's own pages send
        self.headers = {"Authorization": f"Bearer {token}"} if token else {"Origin": self.url.rstrip("/")}
        self._client: httpx.Client | None = None

    # -- the process --
    def log(self) -> str:
        """What this run of the server printed (stdout and stderr) so far."""
        with open(self.log_path, "rb") as f:
            f.seek(self.log_offset)
            return f.read().decode("utf-8", "replace")

    def tail(self, lines: int = 40) -> str:
        return f"--- {self.log_path} (last {lines} lines) ---\n" + "\n".join(self.log().splitlines()[-lines:])

    def internal_errors(self) -> list[Path]:
        """Tracebacks the server wrote to log files of their own (core/errors.log_internal, in its TMPDIR)."""
        return sorted(self.tmpdir.glob("malaria-cnn-error-*.log"))

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            raise AssertionError(f"the server exited with code {self.proc.returncode}\n{self.tail()}")

    def kill(self) -> int:
        """SIGKILL, as a crash or a power cut would stop it; its exit code."""
        self._close_client()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        return self.proc.wait(30)

    def stop(self, timeout: float = 45) -> int:
        """SIGTERM (uvicorn's graceful shutdown, then the worker's), then wait; SIGKILL after `timeout`."""
        self._close_client()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(30)
                raise AssertionError(f"the server did not stop within {timeout:.0f} s of SIGTERM\n{self.tail()}")
        return self.proc.returncode

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        if self.proc.poll() is None:
            try:
                self.stop()
            except AssertionError:
                if exc[0] is None:
                    raise

    # -- JSON, with a client of its own --
    @property
    def client(self) -> httpx.Client:
        if self._client is None:
            self._client = self.new_client()
        return self._client

    def new_client(self, timeout: float = 120, **kwargs) -> httpx.Client:
        """A client of its own (one connection pool; e.g. one per simulated user) that sends the token,
        httpx.Client's `kwargs`."""
        return httpx.Client(base_url=self.url, timeout=timeout, headers=self.headers, **kwargs)

    def _close_client(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def get(self, path: str):
        return ok_json(self.client.get("/" + path.lstrip("/")))

    def create_slide(self, name: str) -> int:
        """A new slide's id."""
        return ok_json(create_slide(self.client, name), 201)["id"]

    def upload(self, slide_id: int, files: Files) -> list[dict]:
        """The uploaded photos (their Photo records)."""
        return ok_json(upload(self.client, slide_id, files))["photos"]

    def answer(self, cell_id: int, value: str) -> dict:
        return ok_json(answer(self.client, cell_id, value))

    def wait_screened(self, slide_id: int, timeout: float = SCREEN_TIMEOUT) -> dict:
        return wait_screened(self.client, slide_id, timeout, alive=self)


def start(workspace: str | Path, model_dir: str | Path, port: int | None = None, extra_args: Iterable[str] = (),
          timeout: float = START_TIMEOUT, token: str | None = TOKEN) -> Server:
    """`malaria-cnn serve --workspace WORKSPACE --port PORT --model MODEL_DIR/model.keras --token TOKEN
    [extra_args]` (`--no-token` when `token` is None), once it
    answers GET /api/status. Its output goes to WORKSPACE's parent / "<workspace name>.serve.log" (appended
    to: a restart on the same workspace adds to it), its TMPDIR is "<workspace name>.tmp" there (where an
    internal error's traceback would be written). Without `port`, a free one (another is tried if it
    was taken in between)."""
    workspace = Path(workspace)
    workspace.parent.mkdir(parents=True, exist_ok=True)
    log_path = workspace.parent / f"{workspace.name}.serve.log"
    tmpdir = workspace.parent / f"{workspace.name}.tmp"
    tmpdir.mkdir(exist_ok=True)
    model = Path(model_dir) / "model.keras"
    for attempt in range(3):
        chosen = port or free_port()
        offset = log_path.stat().st_size if log_path.exists() else 0
        with open(log_path, "ab") as log:
            log.write(f"=== malaria-cnn serve on port {chosen} ===\n".encode())
            log.flush()
            proc = subprocess.Popen(
                [str(CLI), "serve", "--workspace", str(workspace), "--port", str(chosen), "--model", str(model),
                 *(["--token", token] if token else ["--no-token"]), *extra_args], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env={**os.environ, "TMPDIR": str(tmpdir), "PYTHONUNBUFFERED": "1"})
        server = Server(workspace, Path(model_dir), chosen, proc, log_path, offset, tmpdir, token)
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                if port is None and attempt < 2 and "already in use" in server.log().lower():
                    break  # the free port was taken in between: another one
                raise AssertionError(f"malaria-cnn serve exited with code {proc.returncode} before answering\n"
                                     f"{server.tail()}")
            try:
                if httpx.get(server.url + "api/status", headers=server.headers, timeout=2).status_code == 200:
                    return server
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                proc.kill()
                proc.wait(30)
                raise AssertionError(f"malaria-cnn serve did not answer GET /api/status in {timeout:.0f} s\n"
                                     f"{server.tail()}")
            time.sleep(0.1)
    raise AssertionError("unreachable")
