"""What a run's process uses: CPU, resident memory and, on a GPU, the memory torch holds.

Read by the Reporter at each flush and stored on the run's row (`run.resources`, JSON), so the runs table
and the run header explain a slow run (nvitop's per-process view, for a run). Nothing here imports torch:
a GPU reading is taken only when the run has already imported it and initialised CUDA.
"""

from __future__ import annotations

import os
import resource
import sys
import time
from typing import Any

PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
GB = 1024**3


def rss_bytes() -> int:
    """Resident memory now (Linux's /proc); elsewhere the peak, which is what getrusage knows."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * PAGE
    except (OSError, IndexError, ValueError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024  # bytes on macOS, KiB on Linux


def gpu_bytes() -> int | None:
    """Memory torch has reserved on the current CUDA device, if this process uses one."""
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_available() or not torch.cuda.is_initialized():
        return None
    return int(torch.cuda.memory_reserved())


class Usage:
    """CPU use between two readings, as a percentage of one core (200 = two cores busy), like `top`."""

    def __init__(self) -> None:
        self._last = (time.monotonic(), time.process_time())

    def read(self, every: float = 0.0) -> dict[str, Any] | None:
        """A reading, or None when the last one is under `every` seconds old (a CPU share over a shorter
        window is noise)."""
        wall, cpu = time.monotonic(), time.process_time()
        wall0, cpu0 = self._last
        if wall - wall0 < every:
            return None
        self._last = (wall, cpu)
        out: dict[str, Any] = {"rss_gb": round(rss_bytes() / GB, 3)}
        if wall > wall0:
            out["cpu"] = round(100.0 * (cpu - cpu0) / (wall - wall0), 1)
        gpu = gpu_bytes()
        if gpu is not None:
            out["gpu_gb"] = round(gpu / GB, 3)
        return out
