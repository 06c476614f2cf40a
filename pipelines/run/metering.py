"""Wall time, CPU time and peak resident memory of the consecutive stages of this process.

The peak of a stage is the process's high-water mark of resident memory while it ran: on Linux
the mark is reset at the start of each stage (``/proc/self/clear_refs``), elsewhere it is the
process's peak so far. CPU time counts every thread (polars works on all cores).
"""

from __future__ import annotations

import resource
import sys
import time
from pathlib import Path

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def _reset_peak() -> bool:
    try:
        _CLEAR_REFS.write_text("5")
        return True
    except OSError:
        return False


def peak_mb() -> float:
    """The process's peak resident memory in MB since the last reset (VmHWM), else since it started."""
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024


class StageMeter:
    """Measures consecutive stages: call ``lap(name)`` at the end of each."""

    def __init__(self) -> None:
        self.stages: dict[str, dict[str, float]] = {}
        self._begin()

    def _begin(self) -> None:
        self.per_stage_peak = _reset_peak()
        self._wall = time.perf_counter()
        self._cpu = time.process_time()

    def lap(self, name: str) -> None:
        """Record the stage that just ended and start the next."""
        self.stages[name] = {
            "wall_s": round(time.perf_counter() - self._wall, 3),
            "cpu_s": round(time.process_time() - self._cpu, 3),
            "peak_mb": round(peak_mb(), 1),
        }
        self._begin()
