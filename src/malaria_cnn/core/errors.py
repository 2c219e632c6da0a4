"""The one kind of error a user can fix, and the wrapper that prints it as one line."""

from __future__ import annotations

import gc
import sys
from collections.abc import Callable


class UserError(Exception):
    """Something the user can fix (a bad param, a broken input): shown as one line, no traceback."""


def run_main(main: Callable[[], int | None]) -> None:
    """Run a stage's or command's `main`, turning a UserError into `error: ...` on stderr and exit
    code 2; a nonzero number `main` returns becomes the exit code.

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
    finally:
        gc.freeze()
    if status:
        raise SystemExit(status)
