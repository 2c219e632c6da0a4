import subprocess
import sys

from malaria_cnn.core.errors import INTERNAL


def _run(body: str) -> subprocess.CompletedProcess:
    script = f"from malaria_cnn.core.errors import UserError, run_main\n{body}"
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)


def test_a_users_error_is_one_line_and_exit_code_2():
    result = _run("def main():\n    raise UserError('bad param')\nrun_main(main)")
    assert result.returncode == 2 and result.stderr == "error: bad param\n"


def test_an_internal_error_is_one_line_naming_its_log_and_exit_code_3():
    """Not 1 (some inputs failed), not a traceback wall: one line, and the traceback kept in a log."""
    result = _run("def main():\n    return {}['missing']\nrun_main(main)")
    assert result.returncode == INTERNAL == 3
    line = result.stderr.strip()
    assert "\n" not in line and line.startswith("internal error: KeyError: 'missing' (traceback in ")
    log = line.rsplit("(traceback in ", 1)[1].rstrip(")")
    with open(log, encoding="utf-8") as fh:
        assert "Traceback (most recent call last)" in fh.read()


def test_a_returned_status_is_the_exit_code():
    assert _run("run_main(lambda: 1)").returncode == 1 and _run("run_main(lambda: None)").returncode == 0
