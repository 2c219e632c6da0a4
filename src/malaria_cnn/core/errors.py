"""The one kind of error a user can fix, and the wrapper that prints every error as one line."""

from __future__ import annotations

import gc
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

INTERNAL = 3  # the exit code of an error that is the program's, not the input's (1: some inputs failed)


class UserError(Exception):
    """Something the user can fix (a bad param, a broken input): shown as one line, no traceback."""


def log_internal(exc: BaseException) -> Path:
    """Write the traceback of an unexpected error to a log file of its own; its path."""
    where = Path(tempfile.gettempdir()) / f"malaria-cnn-error-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
    where.write_text("".join(traceback.format_exception(exc)), encoding="utf-8")
    return where


def run_main(main: Callable[[], int | None]) -> None:
    """Run a stage's or command's `main`, turning a UserError into `error: ...` on stderr and exit
    code 2, and any other error into one line naming the log with its traceback and exit code 3
    (INTERNAL); a nonzero number `main` returns becomes the exit code.

    It is the last thing a stage or command does: afterwards the objects alive are frozen (gc.freeze),
    so that the interpreter's last collection at exit skips them (with TensorFlow loaded, about 1 s).
    """
    try:
        status = main()
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        raise SystemExit(130) from None
    except Exception as exc:  # noqa: BLE001 - the last line of defence: one line, the details in a log
        log = log_internal(exc)
        message = str(exc).splitlines()[0] if str(exc) else ""
        print(f"internal error: {type(exc).__name__}{': ' + message if message else ''} (traceback in {log})",
              file=sys.stderr)
        raise SystemExit(INTERNAL) from None
    finally:
        gc.freeze()
    if status:
        raise SystemExit(status)
