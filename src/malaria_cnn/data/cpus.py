"""How many CPU cores this process may use: the size of every worker pool."""

from __future__ import annotations

import os


def available_cores() -> int:
    """The cores this process may run on (its affinity mask, as a container's CPU set limits it)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
