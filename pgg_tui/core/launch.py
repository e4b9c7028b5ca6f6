"""Starting processes: the detached worker, a run in the foreground, and who holds a store's worker lease.

A store URL always travels in the environment (PGG_DB), never in argv, where `ps` would show a
PostgreSQL password to every user of the box.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import IO

import sqlalchemy as sa
from sqlmodel import col, select

from engine.scheduler import DEFAULT_COMMAND, lease_alive
from engine.procs import hostname, pid_alive
from engine.schema import WorkerLease, now
from engine.store import Store


@dataclass(frozen=True)
class Lease:
    """A worker serving the store, as read from its host's lease row."""

    pid: int
    host: str
    started_at: float
    heartbeat_at: float
    slots: str
    gpus: str = "[]"  # JSON readings per GPU: index, util, mem_used, mem_total

    def __str__(self) -> str:
        return f"pid {self.pid} on {self.host}"

    @property
    def here(self) -> bool:
        return self.host == hostname()


def worker_leases(store: Store) -> list[Lease]:
    """Every live worker of this store, this host's first: a fresh heartbeat, and on this host a process
    that exists."""
    with store.read() as s:
        rows = list(s.exec(select(WorkerLease).order_by(col(WorkerLease.id))).all())
    t = now()
    leases = [Lease(r.pid, r.host, r.started_at, r.heartbeat_at, r.slots, r.gpus) for r in rows if lease_alive(r, t)]
    return sorted(leases, key=lambda lease: not lease.here)


def worker_lease(store: Store) -> Lease | None:
    """This host's live worker for the store, if any."""
    return next((lease for lease in worker_leases(store) if lease.here), None)


def worker_log(store: Store) -> Path:
    """A detached worker's output: beside the store's runs folder, wherever the command was typed."""
    return store.runs_root.parent / "pgg-worker.log"


def start_worker(store: Store, args: Sequence[str] = ()) -> tuple[int, Path]:
    """Start `pgg worker ARGS` detached from this terminal and session; returns its pid and log file."""
    log_path = worker_log(store)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "pgg_tui", "worker", *args],
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env=dict(os.environ, PGG_DB=store.url),
        )
    return proc.pid, log_path


def ensure_worker(store: Store, args: Sequence[str] = (), wait: float = 4.0) -> str:
    """Start a worker (`pgg worker ARGS`) unless one serves the store; returns what to tell the person."""
    holder = worker_lease(store)
    if holder:
        return f"a worker is already running ({holder})"
    pid, log_path = start_worker(store, args)
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:  # briefly, so the table shows its runs start
        time.sleep(0.1)
        if worker_lease(store):
            return f"worker started on {hostname()} (pid {pid}; log: {log_path})"
    return f"worker starting (pid {pid}; log: {log_path})"


def stop_worker(store: Store, host: str | None = None, wait: float = 10.0) -> str:
    """Ask a worker to stop taking runs (its runs keep going): this host's by SIGTERM; another host's by a
    flag in its lease, which it reads at its next tick."""
    if host is not None and host != hostname():
        lease = next((x for x in worker_leases(store) if x.host == host), None)
        if lease is None:
            return f"no worker serves this store on {host}"
        with store.write() as s:
            s.execute(sa.update(WorkerLease).where(col(WorkerLease.host) == host).values(stop_requested=True))
        return f"asked the worker on {host} (pid {lease.pid}) to stop; it stops at its next tick"
    lease = worker_lease(store)
    if lease is None:
        others = ", ".join(x.host for x in worker_leases(store))
        return "no worker serves this store on this host" + (
            f" (workers run on {others}: --host H stops one)" if others else ""
        )
    os.kill(lease.pid, signal.SIGTERM)
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline and pid_alive(lease.pid):
        time.sleep(0.1)
    if pid_alive(lease.pid):
        return f"asked the worker ({lease}) to stop; it is still finishing its tick"
    return f"worker stopped ({lease}); its runs keep running and the next worker adopts them"


def run_in_foreground(
    store: Store,
    run_id: int,
    echo: bool,
    on_stop: Callable[[str], None],
    out: Callable[[str], None],
    err: Callable[[str], None],
) -> int:
    """Train one run as the worker would (`python -m engine run`), in this terminal; returns its exit code.

    The run gets a session of its own, so the terminal's Ctrl-C reaches only this process, which turns
    the first one into SIGTERM (a graceful stop with a checkpoint) and the second into SIGKILL. The
    run's output comes back line by line through `out` and `err`.
    """
    argv = shlex.split(DEFAULT_COMMAND.format(python=shlex.quote(sys.executable), run_id=run_id))
    argv += ["--echo"] if echo else []  # the run's log lines on this terminal
    env = dict(os.environ, PGG_DB=store.url, PGG_RUNS_DIR=str(store.runs_root), PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        argv,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
        text=True,
        errors="replace",
    )
    pumps = [
        threading.Thread(target=_pump, args=(stream, sink), daemon=True)
        for stream, sink in ((proc.stdout, out), (proc.stderr, err))
    ]
    for t in pumps:
        t.start()
    asked = [0]

    def forward(signum: int, _frame: FrameType | None) -> None:
        asked[0] += 1
        if asked[0] == 1:
            proc.send_signal(signal.SIGTERM)
            on_stop("stopping at the next step (Ctrl-C again to abort)")
        else:
            proc.kill()

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        code = proc.wait()
        for t in pumps:
            t.join()
        return code
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _pump(stream: IO[str] | None, sink: Callable[[str], None]) -> None:
    for line in stream or ():
        sink(line)
