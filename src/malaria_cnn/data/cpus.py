"""What this process may use: its CPU cores (the size of every worker pool) and the memory free for it."""

from __future__ import annotations

import os


def available_cores() -> int:
    """The cores this process may run on (its affinity mask, as a container's CPU set limits it)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def available_memory() -> int | None:
    """Bytes of memory free for this process now: the system's available memory, or less when a
    container's cgroup limit leaves less; None where neither can be read."""
    free = []
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            free += [int(line.split()[1]) * 1024 for line in fh if line.startswith("MemAvailable:")]
    except (OSError, ValueError, IndexError):
        pass
    try:
        limit = open("/sys/fs/cgroup/memory.max", encoding="ascii").read().strip()
        used = int(open("/sys/fs/cgroup/memory.current", encoding="ascii").read())
        if limit != "max":
            free.append(max(0, int(limit) - used))
    except (OSError, ValueError):
        pass
    return min(free) if free else None
