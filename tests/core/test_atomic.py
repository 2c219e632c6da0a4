import os
import signal
import subprocess
import sys

import pytest

from malaria_cnn.core import atomic

from conftest import ROOT


def test_failure_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    dest = tmp_path / "out.json"
    atomic.write_json(dest, {"v": 1})
    with pytest.raises(RuntimeError):
        with atomic.atomic_path(dest) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert dest.read_text() == '{\n  "v": 1\n}\n'
    assert os.listdir(tmp_path) == ["out.json"]


def test_temporary_keeps_the_suffix_and_is_hidden(tmp_path):
    with atomic.atomic_path(tmp_path / "model.keras") as tmp:
        assert tmp.suffix == ".keras" and tmp.name.startswith(".") and tmp.parent == tmp_path
        tmp.write_bytes(b"x")
    assert (tmp_path / "model.keras").read_bytes() == b"x"


def test_kill_9_mid_write_leaves_no_output(tmp_path):
    """A writer killed half way leaves only an ignored `.*.tmp-*` file, never a partial output."""
    script = (
        "import sys, time\n"
        f"sys.path.insert(0, {str(ROOT / 'src')!r})\n"
        "from malaria_cnn.core.atomic import atomic_path\n"
        f"with atomic_path({str(tmp_path / 'cells.npz')!r}) as tmp:\n"
        "    tmp.write_bytes(b'half written')\n"
        "    print('writing', flush=True)\n"
        "    time.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "writing"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    assert not (tmp_path / "cells.npz").exists()
    leftovers = os.listdir(tmp_path)
    assert len(leftovers) == 1 and leftovers[0].startswith(".cells.tmp-")
    assert ".*.tmp-*" in (ROOT / ".gitignore").read_text().splitlines()


def test_write_csv(tmp_path):
    atomic.write_csv(tmp_path / "a.csv", ["x", "y"], [(1, "a"), (2, "b")])
    assert (tmp_path / "a.csv").read_text() == "x,y\n1,a\n2,b\n"


def test_atomic_dir_replaces_a_folder_whole_or_not_at_all(tmp_path):
    dest = tmp_path / "export"
    with atomic.atomic_dir(dest) as tmp:
        (tmp / "a.txt").write_text("first")
    with pytest.raises(RuntimeError):
        with atomic.atomic_dir(dest) as tmp:
            (tmp / "b.txt").write_text("half")
            raise RuntimeError("killed halfway")
    assert sorted(p.name for p in dest.iterdir()) == ["a.txt"]
    with atomic.atomic_dir(dest) as tmp:
        (tmp / "c.txt").write_text("second")
    assert sorted(p.name for p in dest.iterdir()) == ["c.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export"]  # no temporary left behind
