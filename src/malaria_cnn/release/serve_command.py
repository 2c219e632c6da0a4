"""`malaria-cnn serve`: the review pages in a browser, for a workspace of slides (serve/)."""

from __future__ import annotations

import argparse
import ipaddress
import os
import secrets
from pathlib import Path

from malaria_cnn.core.errors import UserError

TOKEN_VARIABLE = "MALARIA_CNN_TOKEN"


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def checked(args: argparse.Namespace) -> str | None:
    """Every option checked before the model is loaded; the token (given, or generated; None with --no-token)."""
    given = args.token or os.environ.get(TOKEN_VARIABLE) or None
    if getattr(args, "no_token", False):
        if given:
            raise UserError(f"--no-token and a token ({'--token' if args.token else TOKEN_VARIABLE}) contradict: give one")
        if not _loopback(args.host):
            raise UserError(f"--no-token is for a loopback host only: --host {args.host} lets other machines in")
        token = None
    else:
        token = given or secrets.token_urlsafe(24)
    if token is not None and len(token) < 16:
        raise UserError("--token must be at least 16 characters")
    if not 1 <= args.port <= 65535:
        raise UserError(f"--port must be between 1 and 65535, got {args.port}")
    for name in ("max_upload_mb", "max_files", "max_photos", "max_pixels", "batch_size"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            raise UserError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    if args.threshold is not None and not 0 <= args.threshold <= 1:
        raise UserError(f"--threshold must be between 0 and 1, got {args.threshold}")
    workspace = Path(args.workspace)
    if workspace.exists() and not workspace.is_dir():
        raise UserError(f"--workspace {workspace} is a file: give a folder")
    if not Path(args.model).is_file():
        raise UserError(f"{args.model} not found: run the pipeline first (dvc repro), or give --model")
    if args.threshold_file and not Path(args.threshold_file).is_file():
        raise UserError(f"--threshold-file: {args.threshold_file} not found")
    return token


def serve_command(args: argparse.Namespace) -> int:
    import uvicorn

    from malaria_cnn.core.atomic import file_sha256
    from malaria_cnn.release.options import scorer
    from malaria_cnn.serve.app import Settings, check_model, create_app
    from malaria_cnn.serve.limits import UploadLimits
    from malaria_cnn.serve.store import Store

    token = checked(args)
    workspace = Path(args.workspace)
    workspace.mkdir(parents=True, exist_ok=True)
    sha256 = file_sha256(args.model)
    store = Store(workspace / "serve.sqlite3")
    try:  # before the model is loaded: a workspace of another model is refused at once
        check_model(store, workspace, Path(args.model), sha256)
    finally:
        store.close()
    limits = UploadLimits(args.max_upload_mb, args.max_files, args.max_photos, args.max_pixels)
    settings = Settings(workspace, scorer(args), Path(args.model), sha256, token,
                        loopback_only=_loopback(args.host), limits=limits)
    app = create_app(settings)  # UserError when the workspace holds another model's cells
    shown = "127.0.0.1" if args.host in ("0.0.0.0", "::") else args.host
    address = f"http://{shown}:{args.port}/" + (f"?token={token}" if token and not args.token_hidden else "")
    print(f"serve: workspace {workspace.resolve()}, model {args.model}; open {address}", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", timeout_graceful_shutdown=10)
    return 0
