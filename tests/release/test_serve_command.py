"""`malaria-cnn serve`'s options: a token by default (generated at each start), none only on loopback."""

from __future__ import annotations

import argparse

import pytest

from malaria_cnn.core.errors import UserError
from malaria_cnn.release.serve_command import TOKEN_VARIABLE, checked


def options(tmp_path, **kw) -> argparse.Namespace:
    model = tmp_path / "model.keras"
    model.write_bytes(b"x")
    base = dict(token=None, no_token=False, host="127.0.0.1", port=8000, max_upload_mb=64, max_files=100,
                max_photos=2000, max_pixels=None, batch_size=None, threshold=None, workspace=str(tmp_path / "ws"),
                model=str(model), threshold_file=None)
    return argparse.Namespace(**{**base, **kw})


def test_a_token_is_generated_at_each_start_unless_given(tmp_path, monkeypatch):
    monkeypatch.delenv(TOKEN_VARIABLE, raising=False)
    first, second = checked(options(tmp_path)), checked(options(tmp_path))
    assert len(first) >= 16 and first != second
    assert checked(options(tmp_path, token="given-token-of-16+")) == "given-token-of-16+"
    monkeypatch.setenv(TOKEN_VARIABLE, "from-the-environment")
    assert checked(options(tmp_path)) == "from-the-environment"


def test_no_token_is_for_loopback_only(tmp_path, monkeypatch):
    monkeypatch.delenv(TOKEN_VARIABLE, raising=False)
    assert checked(options(tmp_path, no_token=True)) is None
    assert checked(options(tmp_path, no_token=True, host="::1")) is None
    with pytest.raises(UserError, match="--no-token is for a loopback host only"):
        checked(options(tmp_path, no_token=True, host="0.0.0.0"))
    with pytest.raises(UserError, match="contradict"):
        checked(options(tmp_path, no_token=True, token="given-token-of-16+"))
    assert len(checked(options(tmp_path, host="0.0.0.0"))) >= 16  # any host: a token, generated
