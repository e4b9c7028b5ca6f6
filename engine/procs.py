"""Processes on this host, as the store and the scheduler see them: alive or gone, signalled as a
group, and why one ended. Stdlib only."""

from __future__ import annotations

import os
import signal
import socket
import contextlib


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still "exists"; treat it as gone.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def signal_group(pid: int, sig: int) -> None:
    """Signal a run's whole process session (it was started in one of its own), or the process alone."""
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def describe_exit(code: int) -> str:
    """Why a run's process ended without recording a result, from its exit code (-N: killed by signal N)."""
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"the run's process was killed by {name}"
    return f"the run's process exited with code {code} without recording a result"


def hostname() -> str:
    """This machine's name as the store records it, and as every check of "is it this host's?" reads it.
    PGG_HOST overrides it: a worker gives its runs its own name (tests play several hosts on one machine
    with it)."""
    return os.environ.get("PGG_HOST") or socket.gethostname()
