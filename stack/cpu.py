"""CPU time of a process and its descendants, from /proc (Linux)."""

import os
from pathlib import Path

from stack.processes import child_pids

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds used so far by `pid` and its living descendants."""
    total = 0.0
    for process in [pid, *_descendants(pid)]:
        try:
            fields = Path(f"/proc/{process}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        total += (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return total


def _descendants(pid: int) -> list[int]:
    children = child_pids(pid)
    return children + [grandchild for child in children for grandchild in _descendants(child)]
