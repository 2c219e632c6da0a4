"""A copy of the project in a temporary git repository, with tiny params, and running commands in it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from malaria_cnn.core.params import FOLD_SLOTS

from conftest import ROOT, committed_params

BIN = Path(sys.executable).parent
COPY = ["dvc.yaml", "data/dvc.yaml", "params.yaml", ".dvcignore", ".gitignore", ".dvc/config", ".dvc/.gitignore",
        "stages", "src", "report"]
TINY = {
    "epochs": 1,
    "data": {"synthetic": {"per_class": 24, "slides": 6}},
    "preprocess": {"image_size": 32, "workers": 2},
    "model": {"compact": {"widths": [8, 16, 32]}},
    "train": {"batch_size": 16},
    "cv": {"folds": 2},
}
TRAIN = [f"train@{k}" for k in range(FOLD_SLOTS)]  # one stage per fold slot
FROM_TRAIN = [*TRAIN, "oof", "final", "threshold", "evaluate", "export", "card"]
STAGES = ["ingest", "preprocess", "split", *FROM_TRAIN]  # and listing, which runs every time
GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]


def merge(base: dict, update: dict) -> dict:
    out = dict(base)
    for k, v in update.items():
        out[k] = merge(base.get(k, {}), v) if isinstance(v, dict) else v
    return out


def env(**extra: str) -> dict[str, str]:
    """This environment with the virtual environment's tools first on PATH."""
    return {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "DVC_NO_ANALYTICS": "1", **extra}


def sh(args: list[str], cwd: Path, stdout_only: bool = False, timeout: int = 600, **extra_env: str) -> str:
    result = subprocess.run(args, cwd=cwd, env=env(**extra_env), capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result.stdout if stdout_only else result.stdout + result.stderr


def ran(output: str) -> list[str]:
    """The stages that ran, leaving out `listing`, which runs every time (and says so)."""
    return [s for s in STAGES if f"Running stage '{s}'" in output]


def make(repo: Path, params: dict | None = None) -> Path:
    """Copy the project into `repo` with TINY params (updated by `params`), as one git commit."""
    for name in COPY:
        src, dst = ROOT / name, repo / name
        if src.is_dir():
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(src, dst)
    write_params(repo, merge(TINY, params or {}))
    sh(["git", "init", "-q"], repo)
    commit(repo, "first")
    return repo


def write_params(repo: Path, update: dict) -> None:
    """params.yaml: the project's own, updated by `update`."""
    params = merge(yaml.safe_load(committed_params()), update)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def commit(repo: Path, message: str) -> None:
    sh([*GIT, "add", "-A"], repo)
    sh([*GIT, "commit", "-qm", message], repo)
