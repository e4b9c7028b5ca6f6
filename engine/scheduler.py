"""The scheduler behind `pgg worker`: one worker per host, one run per free slot.

Each run is launched as `python -m engine run --db URL --run-id N` in a process session of its own,
with `CUDA_VISIBLE_DEVICES` set to its slot's GPU, its stdout and stderr going to files in the run's
folder. The worker copies new lines of those files into the store, so output survives the worker and
the terminal. Closing the terminal or killing the worker never kills a run: a restarted worker adopts
the runs still alive on its host, and marks `lost` the ones whose process or heartbeat is gone.
Workers on several hosts may share one store (PostgreSQL): claims are exactly-once across them, each
adopts, signals and kills only processes of its own host, and a run on another host is judged by its
heartbeat alone.

Stdlib + engine.store (and its light neighbours) only: no torch here.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa
from sqlmodel import Session, select

from engine import sqlite_file
from engine.errors import StoreError
from engine.lifecycle import ENDS_WITHOUT_RESULTS
from engine.procs import describe_exit, hostname, pid_alive, signal_group
from engine.schema import LogLine, Run, WorkerLease, now, table_of
from engine.store import QueueControl, Store

CHUNK = 1 << 20  # bytes of a run's output read at once
# The store URL reaches the run through PGG_DB, not argv, where `ps` would show a PostgreSQL password.
# A custom --command may still use {db}.
DEFAULT_COMMAND = "{python} -m engine run --run-id {run_id}"
LEASE_STALE = 15.0  # seconds without a worker heartbeat before another worker may take over


def lease_alive(lease: WorkerLease, t: float) -> bool:
    """Is the worker holding this lease alive? Its heartbeat is fresh and, on this host, its process exists
    (a worker on another host is judged by its heartbeat alone). The app and `pgg worker status` ask this too."""
    fresh = t - lease.heartbeat_at < LEASE_STALE
    return fresh and (lease.host != hostname() or pid_alive(lease.pid))


@dataclass
class Slot:
    label: str  # "gpu0/0", "cpu/1"
    gpu: str | None  # value for CUDA_VISIBLE_DEVICES; None on a CPU slot ("" is exported: no GPU)


def detect_gpus() -> list[str]:
    """GPU indices visible to this process: CUDA_VISIBLE_DEVICES if set, else what nvidia-smi lists."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [g for g in env.split(",") if g.strip() and g.strip() != "-1"]
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=index", "--format=csv,noheader"], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [line.strip() for line in out.stdout.splitlines() if line.strip()] if out.returncode == 0 else []


def read_gpus() -> list[dict[str, float]]:
    """[{index, util (%), mem_used, mem_total (MiB)}] per GPU; [] without nvidia-smi."""
    try:
        out = subprocess.run(
            [
                "nvidia-smi",
                "--query-gpu=index,utilization.gpu,memory.used,memory.total",
                "--format=csv,noheader,nounits",
            ],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return []
    gpus = []
    for line in out.stdout.splitlines() if out.returncode == 0 else []:
        try:
            index, util, used, total = (float(x) for x in line.split(","))
        except ValueError:  # "[N/A]" on some boards
            continue
        gpus.append(dict(index=index, util=util, mem_used=used, mem_total=total))
    return gpus


def make_slots(gpus: list[str] | None = None, slots_per_gpu: int = 1, cpu_slots: int = 1) -> list[Slot]:
    gpus = detect_gpus() if gpus is None else gpus
    if gpus:
        return [Slot(f"gpu{g}/{i}", g) for g in gpus for i in range(slots_per_gpu)]
    return [Slot(f"cpu/{i}", None) for i in range(cpu_slots)]


@dataclass
class Child:
    run_id: int
    slot: Slot
    pid: int
    popen: subprocess.Popen[bytes] | None  # None for a run adopted after a worker restart
    out_paths: tuple[Path, Path]
    offsets: list[int] = field(default_factory=lambda: [0, 0])
    term_sent_at: float | None = None
    job_id: str | None = None  # the Slurm job (engine.slurm), else None: a local process


class Worker:
    def __init__(
        self,
        store: Store,
        slots: list[Slot],
        command: str = DEFAULT_COMMAND,
        poll: float = 0.5,
        lost_after: float = 120.0,
        grace: float = 30.0,
        log: Callable[[str], object] = print,
        host: str | None = None,
    ):
        self.store = store
        self.slots = slots
        self.command = command
        self.runs_root = store.runs_root
        self.poll = poll
        self.lost_after = lost_after
        self.grace = grace
        self.host = host or hostname()  # a test plays several hosts in one process
        self.pid = os.getpid()
        self.name = f"{self.host}:{self.pid}"
        self.children: dict[int, Child] = {}
        self.log = log
        self._stopping = False
        self._control: QueueControl | None = None
        self._gpus_read_at = 0.0
        # Heartbeats are judged from when the worker could read them: after an outage of the store it saw,
        # runs get `lost_after` from its return to write one (they could not beat while it was down either)
        self._store_down_since: float | None = None
        self._judged_from = 0.0

    # -- lease: one worker per host
    def _lease(self, s: Session) -> WorkerLease | None:
        return s.exec(select(WorkerLease).where(WorkerLease.host == self.host)).first()

    def acquire(self, wait: bool = False) -> None:
        while True:
            holder = self._try_acquire()
            if holder is None:
                return
            if not wait:
                raise StoreError(
                    f"a worker is already running on this host for this store ({holder}); "
                    f"use `pgg worker --wait` to take over when it stops"
                )
            time.sleep(max(self.poll, 1.0))

    def _try_acquire(self) -> str | None:
        try:
            with self.store.write() as s:
                lease = self._lease(s)
                t = now()
                if lease is not None and lease.pid != self.pid and lease_alive(lease, t):
                    return f"pid {lease.pid} on {lease.host}"
                offsets = lease.log_offsets if lease is not None else "{}"
                if lease is not None:
                    s.delete(lease)
                    s.flush()
                s.add(
                    WorkerLease(
                        name=self.name,
                        host=self.host,
                        pid=self.pid,
                        heartbeat_at=t,
                        started_at=t,
                        slots=json.dumps([x.label for x in self.slots]),
                        log_offsets=offsets,
                    )
                )
        except sa.exc.IntegrityError:  # PostgreSQL: another worker of this host inserted its row first
            return f"another worker on {self.host}"
        return None

    def release(self) -> None:
        with self.store.write() as s:
            lease = self._lease(s)
            if lease is not None and lease.pid == self.pid:
                s.delete(lease)

    # -- main loop
    def serve(self, exit_when_idle: bool = False, max_seconds: float | None = None) -> None:
        """Run until stopped (SIGINT/SIGTERM), or until the queue is empty and nothing runs."""
        start = time.monotonic()
        self._adopt()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._on_signal)
        identity = self._store_file_identity()
        backoff = 0.0
        try:
            while not self._stopping:
                if identity != self._store_file_identity():
                    raise StoreError(
                        f"the store file {self.store.display_url} was deleted or replaced; stopping "
                        f"(its runs keep running; restore the file and start a worker again)"
                    )
                try:
                    self.tick()
                    if exit_when_idle and not self.children and not self.store.runs(status="queued"):
                        break
                    backoff = 0.0
                except sa.exc.SQLAlchemyError as err:  # full disk, a restarting server, a rejected row: serve on
                    if isinstance(err, sa.exc.OperationalError):  # unreachable, not a row it refused
                        self._store_down_since = self._store_down_since or now()
                    backoff = min(max(2 * backoff, self.poll), 5.0)  # back within seconds of the store
                    why = str(getattr(err, "orig", err)).splitlines()[0][:200]
                    self.log(f"store error, retrying in {backoff:.0f}s: {why}")
                    time.sleep(backoff)
                if max_seconds is not None and time.monotonic() - start > max_seconds:
                    break
                time.sleep(self.poll)
        finally:
            try:
                self._reap()  # a run that ended since the last tick: its last output lines and its end, now
                self._save_offsets()
                self.release()
            except sa.exc.SQLAlchemyError:
                pass

    def _store_file_identity(self) -> tuple[int, int] | None:
        """(device, inode) of a SQLite store file: a worker writing into a deleted file loses everything."""
        path = sqlite_file.path_of(self.store.url)
        if path is None:
            return None
        try:
            st = path.stat()
        except OSError:
            return (-1, -1)
        return (st.st_dev, st.st_ino)

    def _on_signal(self, signum: int, _frame: object) -> None:
        # Runs are detached and keep going; the next worker adopts them.
        self._stopping = True

    def tick(self) -> None:
        self._heartbeat()
        if self._store_down_since is not None:  # the store is back
            self.log(f"store back after {now() - self._store_down_since:.0f}s; heartbeats are judged from now")
            self._store_down_since, self._judged_from = None, now()
        self._tail_logs()
        self._reap()
        self._handle_cancels()
        # a run's heartbeat missed while the store was down is not held against it
        stale_after = self.lost_after if now() - self._judged_from > self.lost_after else float("inf")
        lost = self.store.mark_lost(stale_after, host=self.host, exclude=set(self.children))
        for rid in lost:
            self.log(f"run {rid}: lost")
        self._fill_slots()

    def _heartbeat(self) -> None:
        gpus = self._read_gpus()
        with self.store.write() as s:
            lease = self._lease(s)
            if lease is None or lease.pid != self.pid:
                raise StoreError("this worker's lease was taken by another worker; stopping")
            if lease.stop_requested and not self._stopping:
                self.log("asked to stop (pgg worker stop); its runs keep running")
                self._stopping = True
            lease.heartbeat_at = now()
            if gpus is not None:
                lease.gpus = gpus
            s.add(lease)

    def _read_gpus(self) -> str | None:
        """Each GPU's utilisation and memory, every 10 s, for the app (nvidia-smi: NVML's own tool)."""
        if not any(slot.gpu is not None for slot in self.slots) or time.monotonic() - self._gpus_read_at < 10:
            return None
        self._gpus_read_at = time.monotonic()
        return json.dumps(read_gpus())

    def threads_per_run(self) -> int:
        """The cores shared out between the runs at once: two CPU runs that each spin up a thread per core
        run ~10x slower together than one after the other (measured: a 17 s tiny run took 10 min)."""
        return max(1, (os.cpu_count() or 1) // max(1, len(self.slots)))

    def _free_slots(self) -> list[Slot]:
        busy = {c.slot.label for c in self.children.values()}
        return [x for x in self.slots if x.label not in busy]

    def _fill_slots(self) -> None:
        control = self.store.queue_control()  # read every tick: `pgg pause` / `pgg parallel N` act live
        if control != self._control:
            self._control = control
            self.log(f"queue {'paused' if control.paused else 'open'}, {control.parallel or 'one per slot'} at once")
        if control.paused:
            return
        room = len(self.slots) if control.parallel is None else control.parallel - len(self.children)
        for slot in self._free_slots()[: max(0, room)]:  # lowering parallel stops nothing: runs finish
            run = self.store.claim_next(self.name, slot.gpu, host=self.host)
            if run is None:
                return
            self._launch(run, slot)

    def _launch(self, run: Run, slot: Slot) -> None:
        assert run.id is not None  # a claimed run is a stored row
        try:
            run_dir = self.store.confined_run_dir(run)
        except StoreError as err:
            self.store.fail(run.id, str(err))
            self.log(f"run {run.id}: {err}")
            return
        run_dir.mkdir(parents=True, exist_ok=True)
        out_paths = (run_dir / f"stdout.{run.id}.log", run_dir / f"stderr.{run.id}.log")
        argv = shlex.split(
            self.command.format(python=shlex.quote(sys.executable), db=shlex.quote(self.store.url), run_id=run.id)
        )
        env = dict(
            os.environ,
            PYTHONUNBUFFERED="1",
            PGG_RUNS_DIR=str(self.runs_root),
            PGG_DB=self.store.url,
            PGG_HOST=self.host,
        )
        env["CUDA_VISIBLE_DEVICES"] = slot.gpu if slot.gpu is not None else ""
        env.setdefault("OMP_NUM_THREADS", str(self.threads_per_run()))
        with open(out_paths[0], "ab") as out, open(out_paths[1], "ab") as errors:
            try:
                popen = subprocess.Popen(
                    argv, stdout=out, stderr=errors, stdin=subprocess.DEVNULL, env=env, start_new_session=True
                )  # its own session: the terminal's hangup never reaches it
            except OSError as e:
                self.store.fail(run.id, f"could not launch {argv[0]!r}: {e}")
                self.log(f"run {run.id}: could not launch: {e}")
                return
        self.store.set_pid(run.id, popen.pid)
        offsets = [out_paths[0].stat().st_size, out_paths[1].stat().st_size]
        self.children[run.id] = Child(run.id, slot, popen.pid, popen, out_paths, offsets)
        self.log(f"run {run.id}: started on {slot.label} (pid {popen.pid})")

    def _adopt(self) -> None:
        """After a restart: take back runs still alive on this host, so their slots stay busy."""
        with self.store.read() as s:
            lease = self._lease(s)
            offsets = json.loads(lease.log_offsets) if lease is not None else {}
            running = list(s.exec(select(Run).where(Run.status == "running", Run.host == self.host)).all())
        free = self._free_slots()
        t = now()
        for run in running:
            assert run.id is not None  # a stored row has its id
            if not run.pid or not pid_alive(run.pid) or not run.run_dir:
                continue
            if run.heartbeat_at is None or t - run.heartbeat_at > self.lost_after:  # alive but hung: not adopted
                self.store.end(
                    run.id,
                    "lost",
                    f"lost: hung, no heartbeat for {t - (run.heartbeat_at or t):.0f}s when "
                    f"the worker restarted; killed",
                )
                signal_group(run.pid, signal.SIGKILL)
                self.log(f"run {run.id}: hung (stale heartbeat); killed, not adopted")
                continue
            slot = next((x for x in free if x.gpu == run.gpu), None) or (free[0] if free else None)
            if slot is None:
                continue
            free.remove(slot)
            try:
                run_dir = self.store.confined_run_dir(run)
            except StoreError as err:
                self.log(f"run {run.id}: {err}; not adopted")
                continue
            paths = (run_dir / f"stdout.{run.id}.log", run_dir / f"stderr.{run.id}.log")
            self.children[run.id] = Child(run.id, slot, run.pid, None, paths, list(offsets.get(str(run.id), [0, 0])))
            self.log(f"run {run.id}: adopted (pid {run.pid}, still running)")
        self._finish_tails(offsets)

    def _finish_tails(self, offsets: dict[str, list[int]]) -> None:
        """Runs the previous worker of this host was copying output from and that ended while no worker
        watched (it was killed, or stopped between their end and its next tick): copy their last lines."""
        gone = [int(k) for k in offsets if int(k) not in self.children]
        if not gone:
            return
        ended: list[Child] = []
        for run in self.store.runs(ids=gone):
            if run.id is None or run.status == "running" or not run.run_dir:
                continue  # one still running elsewhere is its worker's to copy
            try:
                run_dir = self.store.confined_run_dir(run)
            except StoreError:
                continue
            paths = (run_dir / f"stdout.{run.id}.log", run_dir / f"stderr.{run.id}.log")
            ended.append(Child(run.id, Slot("-", None), run.pid or 0, None, paths, list(offsets[str(run.id)])))
        if ended:
            self._tail_logs({c.run_id for c in ended}, children=ended)

    def _tail_logs(self, final_for: set[int] | None = None, children: list[Child] | None = None) -> None:
        """Copy new output lines of each run into the store. A run that ended is read to its end (its last
        lines are usually why it ended); a line longer than CHUNK is cut rather than waited for."""
        rows: list[dict[str, object]] = []
        for child in self.children.values() if children is None else children:
            final = final_for is not None and child.run_id in final_for
            for i, (stream, path) in enumerate(zip(("stdout", "stderr"), child.out_paths)):
                while True:
                    try:
                        with open(path, "rb") as f:
                            f.seek(child.offsets[i])
                            data = f.read(CHUNK)
                    except OSError:
                        break
                    full = len(data) == CHUNK
                    if not final and not full:  # keep a partial last line for the next tick
                        data = data[: data.rfind(b"\n") + 1]
                    if not data:
                        break
                    child.offsets[i] += len(data)
                    t = now()
                    rows += [
                        dict(run_id=child.run_id, time=t, stream=stream, text=line.replace("\x00", ""))
                        for line in data.decode("utf-8", "replace").rstrip("\n").split("\n")
                    ]
                    if not (final and full):
                        break
        if rows:
            with self.store.write() as s:
                s.connection().execute(table_of(LogLine).insert(), rows)
                self._save_offsets(s)

    def _save_offsets(self, session: Session | None = None) -> None:
        data = json.dumps({str(c.run_id): c.offsets for c in self.children.values()})
        if session is not None:
            lease = self._lease(session)
            if lease is not None:
                lease.log_offsets = data
                session.add(lease)
            return
        with self.store.write() as s:
            self._save_offsets(s)

    def _reap(self) -> None:
        ended: list[tuple[Child, int | None]] = []  # (child, exit code; None for an adopted run)
        for child in self.children.values():
            over, code = self._exit_status(child)
            if over:
                ended.append((child, code))
        if not ended:
            return
        self._tail_logs(final_for={c.run_id for c, _ in ended})
        for child, code in ended:
            del self.children[child.run_id]
            run = self.store.get(child.run_id)
            if run.status == "running" and not self._record_end(child, run):  # it died without recording its end
                if run.cancel_requested:
                    self.store.end(child.run_id, "cancelled", "cancelled", exit_code=code)
                elif code is None:
                    self.store.end(child.run_id, "lost", "the run's process ended without recording a result")
                else:
                    self.store.fail(child.run_id, describe_exit(code), exit_code=code)
            run = self.store.get(child.run_id)
            why = (
                run.error.strip().splitlines()[-1][:200]
                if run.status != "done" and run.error and run.error.strip()
                else ""
            )
            self.log(f"run {child.run_id}: {run.status}" + (f" ({why})" if why else ""))
        self._save_offsets()

    # -- how runs are started, watched and signalled: local processes here, Slurm jobs in engine.slurm
    def _exit_status(self, child: Child) -> tuple[bool, int | None]:
        """(ended, exit code): None for an adopted run, whose code nobody can read."""
        if child.popen is not None:
            code = child.popen.poll()
            return code is not None, code
        return not pid_alive(child.pid), None

    def _record_end(self, child: Child, run: Run) -> bool:
        """Record the end of a run that ended without recording it, when the executor knows why."""
        return False

    def _signal(self, child: Child, sig: int) -> None:
        signal_group(child.pid, sig)

    def _handle_cancels(self) -> None:
        """Cancel requests, hung runs and time limits: the worker's own runs are watched like any other."""
        if not self.children:
            return
        t = now()
        for run in self.store.runs(ids=list(self.children)):
            assert run.id is not None  # a stored row has its id
            child = self.children[run.id]
            # seconds since its heartbeat, or since the store came back after an outage
            silent = None if run.heartbeat_at is None else t - max(run.heartbeat_at, self._judged_from)
            limit = float(json.loads(run.config).get("time_limit", 0) or 0)
            if run.status == "running" and silent is not None and silent > self.lost_after:
                # stopped or frozen: it will never report again
                self.store.end(
                    run.id,
                    "lost",
                    f"lost: hung, no heartbeat for {silent:.0f}s; killed. "
                    f"`pgg retry {run.id}` resumes it from its last checkpoint",
                )
                self._signal(child, signal.SIGKILL)
                self.log(f"run {run.id}: hung (no heartbeat for {silent:.0f}s); killed")
                continue
            if run.status == "running" and limit and run.started_at and t - run.started_at > limit:
                # recorded first: the run's own "cancelled" on SIGTERM can then no longer replace it
                self.store.fail(
                    run.id,
                    f"time limit of {limit:.0f}s reached (time_limit); stopped. "
                    f"`pgg retry {run.id}` resumes it from its last checkpoint",
                )
                self.log(f"run {run.id}: time limit of {limit:.0f}s reached; stopping it")
            elif not (run.cancel_requested or run.status in ENDS_WITHOUT_RESULTS):
                continue  # running normally, or done and about to exit
            if child.term_sent_at is None:
                self._signal(child, signal.SIGTERM)  # the engine turns SIGTERM into a graceful stop
                child.term_sent_at = t
            elif t - child.term_sent_at > self.grace:
                self._signal(child, signal.SIGKILL)
                self.log(f"run {run.id}: did not stop within {self.grace:.0f}s of SIGTERM; killed")
