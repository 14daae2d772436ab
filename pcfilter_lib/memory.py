"""How much memory the machine can give now: the one measurement that every size check uses."""

from __future__ import annotations

import os


def available_memory() -> int:
    """Bytes of memory the system can still give.

    Returns:
        ``MemAvailable`` from ``/proc/meminfo`` on Linux; elsewhere the free physical pages, or the
        total physical memory where the platform cannot count free pages.
    """
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
