"""Headless Chromium for the tests that look at the plots page as a user's browser shows it."""

from __future__ import annotations

import html
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--virtual-time-budget=20000"]


def require_chromium() -> str:
    """Chromium's path; without it the test skips, or fails where CI demands a browser."""
    if CHROMIUM is None:
        reason = "no chromium on PATH (Debian: apt-get install chromium)"
        if os.environ.get("MALARIA_CNN_REQUIRE_BROWSER"):
            pytest.fail(reason)
        pytest.skip(reason)
    return CHROMIUM


def _run(args: list[str]) -> str:
    result = subprocess.run([require_chromium(), *FLAGS, *args], capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def dom(page: Path) -> str:
    """The page's DOM after its scripts have run."""
    return _run(["--dump-dom", page.resolve().as_uri()])


def screenshot(page: Path, dest: Path, width: int = 1400, height: int = 4400) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    _run([f"--screenshot={dest}", f"--window-size={width},{height}", page.resolve().as_uri()])
    assert dest.stat().st_size > 0
    return dest


def page_errors(document: str) -> list[str]:
    """The messages the page's error banner lists."""
    box = re.search(r'<div id="page-errors"[^>]*>(.*?)</div>', document, re.S)
    assert box, "the page has no error banner"
    return [html.unescape(m) for m in re.findall(r"<li>(.*?)</li>", box.group(1), re.S)]


def rendered_plots(document: str) -> int:
    """Vega plots drawn (each draws one canvas of marks)."""
    return len(re.findall(r'<canvas[^>]*class="marks"', document))
