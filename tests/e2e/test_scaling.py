"""Scaling out: tf.distribute strategies run through the train stage, parallel experiments from
DVC's queue, and sharing data, models and metrics through a DVC remote.

Each test works in a temporary git repository with tiny params (see temp_repo.py).
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from temp_repo import FROM_TRAIN, GIT, STAGES, env, make, ran, sh

pytestmark = pytest.mark.e2e

OUTPUTS_IN_GIT = ["dvc.lock", "metrics", "plots", "models/threshold.json", "models/slide_rule.json",  # kept in git
                  "models/stain_range.json", "models/export/MODEL_CARD.md"]  # (cache: false)


def _trained(repo: Path) -> None:
    """The train stage left a model and its training curves, and evaluate scored it."""
    assert (repo / "models/model.keras").stat().st_size > 0
    assert json.loads((repo / "models/folds/0/dvclive/metrics.json").read_text())["step"] >= 0
    metrics = json.loads((repo / "metrics/metrics.json").read_text())
    assert metrics["cells"] > 0 and 0 <= metrics["accuracy"] <= 1


def test_mirrored_over_two_logical_cpu_devices(tmp_path):
    repo = make(tmp_path, {"train": {"distribute": "mirrored"}, "cv": {"folds": 1}})
    out = sh(["dvc", "repro"], repo, MALARIA_CNN_CPU_DEVICES="2")
    assert ran(out) == STAGES
    assert out.count("train: mirrored over 2 devices, global batch 16 = 8 per replica, float32") == 1
    _trained(repo)


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def test_multi_worker_with_two_local_workers(tmp_path):
    repo = make(tmp_path, {"train": {"distribute": "multi_worker"}, "cv": {"folds": 1}})
    sh(["dvc", "repro", "split"], repo)  # every worker needs the same data
    cluster = {"worker": [f"127.0.0.1:{port}" for port in _free_ports(2)]}

    def tf_config(index: int) -> str:
        return json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})

    out, err = tmp_path / "worker.out", tmp_path / "worker.err"  # files: a full pipe would stall the worker
    with out.open("w") as stdout, err.open("w") as stderr:
        worker = subprocess.Popen([sys.executable, "stages/train.py", "0"], cwd=repo, env=env(TF_CONFIG=tf_config(1)),
                                  stdout=stdout, stderr=stderr, text=True)
        try:
            chief = sh(["dvc", "repro"], repo, timeout=300, TF_CONFIG=tf_config(0))
            worker.wait(timeout=120)
        finally:
            worker.kill()
    assert worker.returncode == 0, err.read_text()
    worker_out = out.read_text()
    assert ran(chief) == FROM_TRAIN
    assert "train: 2 replicas on several workers, this is worker 0" in chief
    assert "no checkpoints with train.distribute=multi_worker" in chief
    assert "worker 1 done, the chief saves the model" in worker_out
    best = [line.split("val loss ")[1].split(")")[0] for line in (chief + worker_out).splitlines()
            if line.startswith("train@0: ") and "val loss" in line]
    assert len(best) == 2 and best[0] == best[1]  # one model, trained together
    _trained(repo)
    assert sorted(p.name for p in (repo / "models").iterdir()) == [".gitignore", "export", "folds", "model.keras",
                                                                            "slide_rule.json", "stain_range.json",
                                                                            "threshold.json"]


@pytest.fixture(scope="module")
def shared(tmp_path_factory) -> tuple[Path, Path]:
    """A repository whose pipeline has run (one fold: the folds have their own tests), its outputs committed,
    with a local folder as its DVC remote."""
    repo = make(tmp_path_factory.mktemp("shared"), {"cv": {"folds": 1}})
    storage = tmp_path_factory.mktemp("storage")
    sh(["dvc", "remote", "add", "-d", "storage", str(storage)], repo)
    sh(["dvc", "repro"], repo)
    sh([*GIT, "add", ".dvc/config", *OUTPUTS_IN_GIT], repo)
    sh([*GIT, "commit", "-qm", "pipeline run"], repo)
    assert not sh(["git", "status", "--porcelain"], repo, stdout_only=True)  # everything else is DVC's
    return repo, storage


def test_push_then_a_fresh_clone_pulls_and_has_nothing_to_do(shared, tmp_path):
    repo, storage = shared
    sh(["dvc", "push"], repo)
    assert any(storage.rglob("*")), "nothing was pushed"
    clone = tmp_path / "clone"
    sh(["git", "clone", "-q", str(repo), str(clone)], tmp_path)
    assert not (clone / "models/model.keras").exists()
    sh(["dvc", "pull"], clone)
    assert (clone / "models/model.keras").read_bytes() == (repo / "models/model.keras").read_bytes()
    out = sh(["dvc", "repro"], clone)
    assert ran(out) == []
    shown = sh(["dvc", "metrics", "show"], clone, stdout_only=True)
    assert "accuracy" in shown and shown == sh(["dvc", "metrics", "show"], repo, stdout_only=True)


def test_queued_sweep_runs_two_experiments_in_parallel(shared):
    repo, _ = shared
    out = sh(["dvc", "exp", "run", "--queue", "-S", "epochs=2,3"], repo)
    assert out.count("Queued experiment") == 2, out
    sh(["dvc", "queue", "start", "-j", "2"], repo)
    deadline = time.time() + 420
    while time.time() < deadline:
        status = sh(["dvc", "queue", "status"], repo, stdout_only=True)
        if "Queued" not in status and "Running" not in status:
            break
        time.sleep(3)
    assert status.count("Success") == 2, status
    table = json.loads(sh(["dvc", "exp", "show", "--json"], repo, stdout_only=True))
    exps = [e for row in table for e in (row.get("experiments") or [])]
    data = [e["revs"][0]["data"] for e in exps]
    assert sorted(d["params"]["params.yaml"]["data"]["epochs"] for d in data) == [2, 3]
    for d in data:
        assert 0 <= d["metrics"]["metrics/metrics.json"]["data"]["accuracy"] <= 1
        assert d["metrics"]["metrics/cv.json"]["data"]["folds"] == 1
    plain = sh(["dvc", "exp", "show", "--no-pager", "--only-changed"], repo, stdout_only=True, COLUMNS="250")
    for e in exps:
        assert e["name"] in plain
        stages = ran(sh(["dvc", "queue", "logs", e["name"]], repo))
        # the data from the cache; the later stages may come from DVC's run cache when both epochs keep
        # the same best weights
        assert stages[0] == "train@0" and set(stages) <= set(FROM_TRAIN), stages
