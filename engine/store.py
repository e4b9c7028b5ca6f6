"""The experiment store: safe opening, reads and writes, and the run lifecycle's moves.

One URL picks the backend: `sqlite:///experiments.db` (the default, in the working directory) or
`postgresql+psycopg://...` when runs span machines. SQLite is opened for many writer processes and one
reader (WAL, `BEGIN IMMEDIATE` writes: engine.sqlite_file, with the checks a file passes first). Reads
use plain deferred transactions and stay short.

A store carries its schema version in `pgg_meta`. An older store is migrated; a newer, foreign, corrupt
or non-SQLite file is refused with one line and is never written to. The tables and migrations are in
engine.schema, the statuses and their transitions in engine.lifecycle; their names are re-exported here.

sqlmodel + stdlib only: the CLI and the app import this module.
"""

from __future__ import annotations

import functools
import json
import os
import sqlite3
import sys
import threading
import time
import traceback as tb
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, ParamSpec, TypeVar, cast

import sqlalchemy as sa
from sqlalchemy.engine import CursorResult, Engine
from sqlmodel import Session, col, select

from engine import schema, sqlite_file
from engine.config import to_json
from engine.errors import ConfigError, StoreError
from engine.lifecycle import ENDS_WITHOUT_RESULTS, FINISHED, LIVE, RETRYABLE, sources
from engine.procs import hostname, pid_alive
from engine.run_rows import RunRows
from engine.schema import LogLine, Meta, Metric, Phase, Ranking, Run, Sample, WorkerLease, now, table_of
from engine.schema import Sweep as SweepRow

__all__ = [
    "Store",
    "QueueControl",
    "clean_tags",
    "resolve_url",
    "display_url",
    "outlasts_outages",
    "DEFAULT_URL",
    "OUTAGE_PATIENCE",
    # the tables and the clock (engine.schema), re-exported: the app, the tests and the benchmarks import
    # them from here
    "LogLine",
    "Metric",
    "Phase",
    "Run",
    "Sample",
    "WorkerLease",
    "now",
]

DEFAULT_URL = "sqlite:///experiments.db"
P = ParamSpec("P")
R = TypeVar("R")
# seconds a run's direct writes (phase boundaries, its end) keep retrying an unreachable store: a restarting or
# failing-over server, a full disk. Ten minutes: a run that gives up loses every row it buffered since.
OUTAGE_PATIENCE = 600.0


def outlasts_outages(fn: Callable[P, R]) -> Callable[P, R]:
    """Retry a write through a brief store outage (locked, full disk, a restarting server) with backoff,
    instead of killing a run at a phase boundary or at its very end; one line per retry on stderr."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        delay, deadline = 0.5, time.monotonic() + OUTAGE_PATIENCE
        while True:
            try:
                return fn(*args, **kwargs)
            except sa.exc.OperationalError as err:
                cause = str(err.orig).splitlines()[0][:200]
                if time.monotonic() + delay > deadline:
                    raise StoreError(f"store unreachable for {OUTAGE_PATIENCE:.0f}s: {cause}") from None
                print(f"pgg: store write failed ({cause}); retrying in {delay:.1f}s", file=sys.stderr, flush=True)
                time.sleep(delay)
                delay = min(2 * delay, 10.0)

    return wrapper


# ---------------------------------------------------------------------------------------------------
# opening


def resolve_url(db: str | None) -> str:
    """--db beats PGG_DB beats the default; a bare path means a SQLite file."""
    url = db or os.environ.get("PGG_DB") or DEFAULT_URL
    if "://" not in url:
        url = f"sqlite:///{url}"
    return url


def display_url(url: str) -> str:
    """The URL as shown to people and in argv: a password never appears (postgresql://user:***@host/db)."""
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return "<unparsable store URL>"


def clean_tags(tags: Iterable[str]) -> list[str]:
    """Tags as stored: stripped, no empties or commas (a comma separates them on the command line), each once."""
    out: list[str] = []
    for tag in tags:
        for t in str(tag).split(","):
            t = t.strip()[:32]
            if t and t not in out:
                out.append(t)
    return out


@dataclass(frozen=True)
class QueueControl:
    paused: bool
    parallel: int | None  # runs at once across a worker's slots; None: one per slot


def _get_meta(s: Session, key: str) -> str | None:
    row = s.get(Meta, key)
    return None if row is None else row.value


def _set_meta(s: Session, key: str, value: str) -> None:
    row = s.get(Meta, key)
    if row is None:
        s.add(Meta(key=key, value=value))
    else:
        row.value = value
        s.add(row)


class Store(RunRows):
    """An opened store. Create with `Store.open(url)`; all access goes through `write()` and `read()`."""

    def __init__(self, url: str, engine: Engine):
        self.url = url
        self.engine = engine
        self.is_sqlite = engine.dialect.name == "sqlite"
        self._dv_conn: Any = None
        self._dv_lock = threading.Lock()  # one raw connection, asked from the app's poll threads
        self.read_only = False

    @classmethod
    def open(cls, db: str | None = None, create: bool = True, read_only_ok: bool = False) -> Store:
        """Open (and, if `create`, create or migrate) the store at `db`.

        `create=False` is for readers: a missing store raises StoreError instead of appearing.
        `read_only_ok`: a SQLite store that cannot be written (read-only media, a copy from a colleague)
        opens for reading; writes then fail with one line.
        """
        url = resolve_url(db)
        try:
            sa.engine.make_url(url)
        except sa.exc.ArgumentError:
            raise StoreError(f"cannot parse store URL {display_url(url)!r}") from None
        path = sqlite_file.path_of(url)
        version = None
        if path is not None:
            version = sqlite_file.inspect(path)
            if version is None and not create:
                raise StoreError(f"no store at {path} (run `pgg queue` or `pgg run` to create one)")
            if version is not None and version > schema.SCHEMA_VERSION:
                raise StoreError(
                    f"{path} was written by a newer pgg (schema {version} > {schema.SCHEMA_VERSION}); "
                    f"upgrade pgg to use it"
                )
            if version is None:
                sqlite_file.check_creatable(path)
            elif not sqlite_file.writable(path):
                if not read_only_ok:
                    raise StoreError(
                        f"store {path} is read-only (the file or its folder is not writable; "
                        f"SQLite in WAL mode needs both)"
                    )
                if version < schema.SCHEMA_VERSION:
                    raise StoreError(
                        f"store {path} is read-only and needs an upgrade (schema {version}); open it "
                        f"once where it can be written"
                    )
                store = cls(url, sqlite_file.create_read_only_engine(path))
                store.read_only = True
                return store
            engine = sqlite_file.create_engine(url)
        else:
            try:
                engine = sa.create_engine(url, pool_pre_ping=True)
            except Exception as err:  # a missing driver, a bad dialect name
                raise StoreError(f"cannot open store {display_url(url)!r}: {type(err).__name__}") from None
        store = cls(url, engine)
        try:
            store._prepare(version, create)
        except sa.exc.OperationalError as err:
            engine.dispose()
            # psycopg's message is two lines ("... Connection refused", "\tIs the server running ..."): one
            why = " ".join(str(err.orig).replace(url, display_url(url)).split())
            raise StoreError(f"cannot open store {display_url(url)}: {why}") from None
        except BaseException:
            engine.dispose()  # no pooled connection left holding locks on a store we refused
            raise
        if path is not None:
            sqlite_file.opened(path)
        return store

    def _prepare(self, file_version: int | None, create: bool) -> None:
        with self.write() as s:
            conn = s.connection()
            insp = sa.inspect(conn)
            if not insp.has_table("pgg_meta"):
                if insp.get_table_names() and not self.is_sqlite:
                    raise StoreError(f"{self.display_url} holds tables of another program; refusing to use it")
                if not create:
                    raise StoreError(f"no pgg store at {self.display_url}")
                schema.create(s)
                return
            row = s.get(Meta, "schema_version")
            if row is None or not row.value.isdigit() or int(row.value) < 1:
                raise StoreError(
                    f"store {self.display_url} has no readable schema version (damaged?); refusing to use it"
                )
            version = int(row.value)
            if version > schema.SCHEMA_VERSION:
                raise StoreError(f"store {self.display_url} is from a newer pgg (schema {version}); upgrade pgg")
            schema.upgrade(s, version)

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A write transaction (BEGIN IMMEDIATE on SQLite): commits on exit, rolls back on error."""
        if self.read_only:
            raise StoreError(f"store {self.location} is open read-only (its file or folder is not writable)")
        with self.engine.connect() as conn:
            conn = conn.execution_options(pgg_write=True)
            with conn.begin(), Session(bind=conn, expire_on_commit=False) as s:
                yield s
                s.flush()

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A short read transaction. Do not keep it open: long readers starve WAL checkpoints."""
        with self.engine.connect() as conn, conn.begin(), Session(bind=conn, expire_on_commit=False) as s:
            yield s

    def close(self) -> None:
        if self._dv_conn is not None:
            self._dv_conn.close()
            self._dv_conn = None
        self.engine.dispose()

    def backup(self, dest: Path) -> int:
        """Copy a SQLite store to `dest` as one consistent snapshot, while runs keep writing; returns the
        number of runs in the copy. Copying the file with `cp` misses what is still in its -wal file, and
        a copy taken mid-write can lose committed rows without a word: SQLite's online backup cannot."""
        path = sqlite_file.path_of(self.url)
        if path is None:
            raise ConfigError("pgg backup copies SQLite stores; for PostgreSQL use pg_dump")
        dest = dest.expanduser()
        if dest.exists():
            raise ConfigError(f"{dest} exists; choose a new file")
        if not dest.resolve().parent.is_dir():
            raise ConfigError(f"cannot write {dest}: folder {dest.resolve().parent} does not exist")
        tmp = dest.with_name(dest.name + ".partial")
        src = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
        try:
            out = sqlite3.connect(tmp)
            try:
                src.backup(out)
                out.execute("PRAGMA journal_mode=DELETE")  # a single file, whole by itself
                runs = int(out.execute("SELECT COUNT(*) FROM run").fetchone()[0])
            finally:
                out.close()
        except sqlite3.Error as err:
            tmp.unlink(missing_ok=True)
            raise StoreError(f"backup of {self.location} failed: {err}") from None
        finally:
            src.close()
        os.replace(tmp, dest)
        return runs

    def schema_version(self) -> int:
        with self.read() as s:
            row = s.get(Meta, "schema_version")
        assert row is not None  # Store.open read it
        return int(row.value)

    def data_version(self) -> int:
        """A number that changes whenever anyone commits; lets pollers skip idle ticks.

        SQLite's `PRAGMA data_version` is per connection, so one connection is kept for it alone.
        """
        if not self.is_sqlite:
            with self.read() as s:
                ids = [s.exec(select(sa.func.max(t.id))).one() or 0 for t in (Run, Metric, Sample, LogLine)]
                return hash(tuple(ids))
        with self._dv_lock:
            if self._dv_conn is None:
                self._dv_conn = self.engine.raw_connection()
            cur = self._dv_conn.cursor()
            try:
                return int(cur.execute("PRAGMA data_version").fetchone()[0])
            finally:
                cur.close()

    # -----------------------------------------------------------------------------------------------
    # lifecycle

    def queue(
        self,
        specs: Sequence[Any],
        config_json: Callable[[Any], str] = to_json,
        group: str | None = None,
        started_by: int | None = None,
        name: str = "",
        tags: Sequence[str] = (),
        priority: int = 0,
        grid: tuple[str, str] | None = None,
        after: Sequence[int] = (),
    ) -> list[int]:
        """Insert one queued run per RunSpec, all sharing a group id (a new one unless given), its config
        stored whole as `config_json` writes it: engine.config.to_json, the form from_json reads back (the
        tests pass it by name). Returns the run ids in order. `started_by`: a pid that trains the runs itself
        (`pgg run`); they are created running and owned by it, so a worker never sees them queued and never
        starts them too.
        `grid`: (name, grid JSON) of the sweep the runs make, recorded under the group id.
        `after`: runs these wait for (`pgg queue --after`): each must be in the store and not have ended
        otherwise than done (then they would never start); see claim_next."""
        group = group or os.urandom(4).hex()
        after = list(dict.fromkeys(after))
        with self.write() as s:
            for rid, (newest, status) in self._after_states(s, after).items():
                if status is None:
                    raise ConfigError(f"no run {rid} in this store (--after)")
                if status not in LIVE and status != "done":
                    via = f" (its newest attempt, run {newest})" if newest != rid else ""
                    raise ConfigError(
                        f"run {rid}{via} ended {status}: runs queued after it would never start; "
                        f"`pgg retry {rid}` first, then queue --after {rid}"
                    )
            if grid is not None:
                s.add(SweepRow(group_id=group, name=grid[0], task=specs[0].task if specs else "", grid=grid[1]))
            ids = self._reserve_ids(s, len(specs))
            t = now()
            owner: dict[str, Any] = {}
            if started_by is not None:
                owner = dict(
                    status="running", pid=started_by, host=hostname(), worker="foreground", started_at=t, heartbeat_at=t
                )
            runs = [
                Run(
                    id=rid,
                    group_id=group,
                    task=r.task,
                    dataset=r.dataset,
                    method=r.method,
                    seed=r.seed,
                    dataset_seed=r.dataset_seed,
                    preset=r.preset,
                    config=config_json(r.config),
                    overrides=json.dumps(r.overrides, sort_keys=True),
                    name=name,
                    tags=json.dumps(clean_tags(tags)),
                    priority=priority,
                    after=json.dumps(after),
                    **owner,
                )
                for rid, r in zip(ids, specs)
            ]
            for run in runs:
                run.run_dir = self.run_dir(run)
            s.add_all(runs)
            return ids

    @staticmethod
    def _runs_by_id(s: Session, run_ids: Sequence[int], refuse: Callable[[Run], str | None]) -> dict[int | None, Run]:
        """The runs `run_ids` names, every one checked before the caller changes any: a ConfigError for an id
        the store does not hold, or for a run `refuse` gives a reason ("run 3 " + reason)."""
        runs = {r.id: r for r in s.exec(select(Run).where(col(Run.id).in_(list(run_ids)))).all()}
        for rid in run_ids:
            if rid not in runs:
                raise ConfigError(f"no run {rid} in this store")
            if (why := refuse(runs[rid])) is not None:
                raise ConfigError(f"run {rid} {why}")
        return runs

    def _reserve_ids(self, s: Session, n: int) -> list[int]:
        """The next n run ids, past every id this store ever gave out: a deleted run's id is never reused,
        so nothing keyed by an id (a folder, a checkpoint, a script) can meet a different run."""
        mark = s.exec(select(Meta).where(Meta.key == "last_run_id").with_for_update()).one()
        top = s.exec(select(sa.func.max(Run.id))).one() or 0
        first = max(int(mark.value), top) + 1
        mark.value = str(first + n - 1)
        s.add(mark)
        return list(range(first, first + n))

    @property
    def display_url(self) -> str:
        return display_url(self.url)

    @property
    def location(self) -> str:
        """Where the store is, as a person needs to read it: a SQLite file's absolute path (~ for home)."""
        path = sqlite_file.path_of(self.url)
        if path is None:
            return self.display_url
        full = str(path.resolve())
        home = str(Path.home())
        return "~" + full[len(home) :] if full.startswith(home + os.sep) else full

    @property
    def runs_root(self) -> Path:
        """Run folders: beside a SQLite store (pgg-runs/), else in the working directory; PGG_RUNS_DIR wins."""
        env = os.environ.get("PGG_RUNS_DIR")
        if env:
            return Path(env).resolve()
        path = sqlite_file.path_of(self.url)
        return (path.resolve().parent if path is not None else Path.cwd()) / "pgg-runs"

    def run_dir(self, run: Run) -> str:
        """`<runs root>/<id>-<uid prefix>`: two stores in one folder, or a reused id, never share a folder."""
        return str(self.runs_root / f"{run.id}-{run.uid[:8]}")

    def confined_run_dir(self, run: Run) -> Path:
        """The run's folder, refused unless it lies in the runs root: a store's rows must not make a worker
        create folders, write logs or load checkpoints anywhere else."""
        root = self.runs_root
        path = Path(run.run_dir or self.run_dir(run)).resolve()
        if not path.is_relative_to(root):
            raise StoreError(f"run {run.id}'s folder {path} lies outside the runs root {root}; refusing to use it")
        return path

    def get(self, run_id: int) -> Run:
        with self.read() as s:
            run = s.get(Run, run_id)
        if run is None:
            raise ConfigError(f"no run {run_id} in this store")
        return run

    def runs(self, status: str | None = None, ids: Sequence[int] | None = None) -> list[Run]:
        with self.read() as s:
            q = select(Run).order_by(col(Run.id))
            if status:
                q = q.where(Run.status == status)
            if ids:
                q = q.where(col(Run.id).in_(list(ids)))
            return list(s.exec(q).all())

    def lineage(self, run_id: int) -> list[Run]:
        """The run and the attempts it retries, newest first (parent_id chain)."""
        out: list[Run] = []
        with self.read() as s:
            run = s.get(Run, run_id)
            while run is not None and len(out) < 1000:
                out.append(run)
                run = s.get(Run, run.parent_id) if run.parent_id is not None else None
        return out

    def _move(self, s: Session, run_id: int, to: str, **values: Any) -> bool:
        """Change a run's status along lifecycle.TRANSITIONS only: a conditional UPDATE, so concurrent writers
        cannot both win. False when the run was no longer in a status that may move to `to`."""
        res = s.execute(
            sa.update(Run).where(col(Run.id) == run_id, col(Run.status).in_(sources(to))).values(status=to, **values)
        )
        return cast(CursorResult[Any], res).rowcount == 1  # an UPDATE's result (typed as a SELECT's)

    def _after_states(self, s: Session, run_ids: Iterable[int]) -> dict[int, tuple[int, str | None]]:
        """Each run waited for (`--after`) -> (its newest attempt, that attempt's status): a retry stands in for
        the run it retries, so `pgg retry 12 15` makes 15's new attempt wait for 12's. Status None: the run is
        gone (deleted)."""
        t = table_of(Run)
        conn = s.connection()
        ids = list(dict.fromkeys(run_ids))
        found = dict(conn.execute(sa.select(t.c.id, t.c.status).where(t.c.id.in_(ids))).all()) if ids else {}
        out: dict[int, tuple[int, str | None]] = {rid: (rid, found.get(rid)) for rid in ids}
        frontier = {rid: rid for rid in ids if rid in found}  # an attempt -> the run waited for it stands for
        for _ in range(1000):  # a retry chain is as long as the attempts made
            if not frontier:
                break
            rows = conn.execute(
                sa.select(t.c.id, t.c.parent_id, t.c.status).where(t.c.parent_id.in_(list(frontier))).order_by(t.c.id)
            ).all()
            step: dict[int, int] = {}
            for rid, parent, status in rows:
                out[frontier[parent]] = (rid, status)  # in id order: the newest attempt stays
                step[rid] = frontier[parent]
            frontier = step
        return out

    def after_states(self, run_ids: Iterable[int]) -> dict[int, tuple[int, str | None]]:
        """What the runs a queued run waits for are now (see _after_states): `pgg show`, the app."""
        with self.read() as s:
            return self._after_states(s, run_ids)

    def _release_waiting(self, s: Session) -> list[tuple[int, int]]:
        """Queued runs that wait for others (`--after`): (priority, id) of those whose runs are all done;
        those whose run ended otherwise (failed, cancelled, lost, deleted) are cancelled, saying why."""
        t = table_of(Run)
        waiting = (
            s.connection()
            .execute(sa.select(t.c.id, t.c.priority, t.c.after).where(t.c.status == "queued", t.c.after != "[]"))
            .all()
        )
        if not waiting:
            return []
        after = {rid: [int(x) for x in json.loads(a)] for rid, _, a in waiting}
        states = self._after_states(s, {d for ds in after.values() for d in ds})
        ready, stamp = [], now()
        for rid, priority, _ in waiting:
            ended = [(d, *states[d]) for d in after[rid] if states[d][1] not in (*LIVE, "done")]
            if ended:
                d, newest, status = ended[0]
                via = f" (its newest attempt, run {newest})" if newest != d else ""
                why = (
                    f"not started: run {d}, which it waits for (--after), was deleted; `pgg restore {d}`, then "
                    f"`pgg retry {rid}`"
                    if status is None
                    else f"not started: run {d}{via}, which it waits for (--after), ended {status}; "
                    f"`pgg retry {d} {rid}` queues both again, in order"
                )
                self._move(s, rid, "cancelled", finished_at=stamp, error=why)
            elif all(states[d][1] == "done" for d in after[rid]):
                ready.append((priority or 0, rid))
        return ready

    def claim_next(self, worker: str, gpu: str | None, host: str | None = None) -> Run | None:
        """Atomically move the next queued run (highest priority, then oldest) to running for this worker;
        None if the queue is empty or paused. A run queued `--after` others is next only once each of them
        (or its newest retry) is done; once one ended otherwise, it is cancelled, saying why.

        On SQLite the IMMEDIATE transaction serialises claimers; on PostgreSQL the row lock with
        SKIP LOCKED does. The conditional UPDATE is the guard in both: two workers never start one run.
        """
        with self.write() as s:
            if _get_meta(s, "queue_paused") == "1":
                return None
            ready = self._release_waiting(s)
            run = s.exec(
                select(Run)
                .where(Run.status == "queued", col(Run.after) == "[]")
                .order_by(col(Run.priority).desc(), col(Run.id))
                .limit(1)
                .with_for_update(skip_locked=True)
            ).first()
            if ready:  # the first of the released runs, if it comes before the first that waits for nothing
                priority, rid = min(ready, key=lambda x: (-x[0], x[1]))
                if run is None or (-priority, rid) < (-run.priority, run.id or 0):
                    run = s.get(Run, rid)
            if run is None:
                return None
            assert run.id is not None  # a stored row has its id
            t = now()
            if not self._move(
                s,
                run.id,
                "running",
                worker=worker,
                host=host or hostname(),
                gpu=gpu,
                started_at=t,
                heartbeat_at=t,
                run_dir=run.run_dir or self.run_dir(run),
            ):
                return None
            s.expire_all()
            return s.get(Run, run.id)

    @outlasts_outages
    def attach(self, run_id: int, pid: int) -> Run:
        """Called by the run process itself: take a run the worker claimed, or claim a queued one directly."""
        with self.write() as s:
            run = s.get(Run, run_id)
            if run is None:
                raise ConfigError(f"no run {run_id} in this store")
            if run.status not in LIVE:
                raise ConfigError(f"run {run_id} is {run.status}; `pgg retry {run_id}` starts a new attempt")
            # a run created running by `pgg run` is owned by that process, which starts this one to train it
            if (
                run.status == "running"
                and run.pid
                and run.pid not in (pid, os.getppid())
                and run.host == hostname()
                and pid_alive(run.pid)
            ):
                raise ConfigError(f"run {run_id} is already running as pid {run.pid}")
            t = now()
            run.status = "running"
            run.pid = pid
            run.host = hostname()
            run.started_at = run.started_at or t
            run.heartbeat_at = t
            run.run_dir = run.run_dir or self.run_dir(run)
            s.add(run)
            return run

    def set_job(self, run_id: int, job_id: str) -> None:
        with self.write() as s:
            s.execute(sa.update(Run).where(col(Run.id) == run_id).values(job_id=job_id))

    def touch(self, run_id: int) -> None:
        """A fresh heartbeat for a run that cannot beat itself (a Slurm job waiting in the queue)."""
        with self.write() as s:
            s.execute(
                sa.update(Run).where(col(Run.id) == run_id, col(Run.status) == "running").values(heartbeat_at=now())
            )

    def set_pid(self, run_id: int, pid: int) -> None:
        with self.write() as s:
            s.execute(sa.update(Run).where(col(Run.id) == run_id).values(pid=pid))

    @outlasts_outages
    def finish(self, run_id: int, results: dict[str, Any]) -> bool:
        """Record a running run as done. False if it had ended meanwhile (marked lost, say): then its
        results are not recorded and its status stays."""
        with self.write() as s:
            moved = self._move(
                s, run_id, "done", finished_at=now(), exit_code=0, results=json.dumps(results), waiting_for=0
            )
            if moved:
                self._withdraw_rankings(s, run_id)
            return moved

    @staticmethod
    def _withdraw_rankings(s: Session, run_id: int) -> None:
        """An ended run waits for nobody: its unranked requests leave the rankers' queue."""
        s.execute(
            sa.update(Ranking)
            .where(col(Ranking.run_id) == run_id, col(Ranking.status).in_(("open", "claimed")))
            .values(status="expired", claimed_by=None, claimed_at=None)
        )

    @outlasts_outages
    def end(self, run_id: int, status: str, error: str | None = None, exit_code: int | None = None) -> bool:
        """Record a run's end other than done: failed, cancelled or lost. False if its status does not
        allow it (it had ended meanwhile): then nothing changes."""
        if status not in ENDS_WITHOUT_RESULTS:
            raise ValueError(f"end() records {', '.join(ENDS_WITHOUT_RESULTS)}, not {status!r} (done: finish())")
        with self.write() as s:
            moved = self._move(s, run_id, status, finished_at=now(), exit_code=exit_code, error=error, waiting_for=0)
            if moved:
                self._withdraw_rankings(s, run_id)
            return moved

    def fail(self, run_id: int, error: str, exit_code: int | None = 1) -> bool:
        """Record a run as failed, with why."""
        return self.end(run_id, "failed", error, exit_code)

    def fail_with_traceback(self, run_id: int, err: BaseException) -> None:
        self.fail(run_id, "".join(tb.format_exception(type(err), err, err.__traceback__)))

    def request_cancel(self, run_ids: Sequence[int]) -> list[str]:
        """Queued runs are cancelled at once; running ones get a request. Checks all ids before changing any."""
        with self.write() as s:
            runs = self._runs_by_id(
                s, run_ids, lambda r: f"is already {r.status}; nothing to cancel" if r.status in FINISHED else None
            )
            out = []
            t = now()
            for rid in run_ids:
                run = runs[rid]
                if run.status == "queued" and self._move(s, rid, "cancelled", finished_at=t):
                    out.append(f"run {rid}: cancelled")
                else:
                    s.execute(
                        sa.update(Run).where(col(Run.id) == rid).values(cancel_requested=True, cancel_requested_at=t)
                    )
                    out.append(f"run {rid}: cancel requested (stops at the next step, then saves a checkpoint)")
            return out

    def retry(self, run_ids: Sequence[int]) -> list[int]:
        """Queue a new attempt of each failed, cancelled or lost run; it resumes from that attempt's last
        checkpoint, in a folder of its own. A run retried before is retried through its newest attempt.
        Checks every id before queueing any."""
        with self.write() as s:
            newest: dict[int | None, Run] = {}  # run id -> its newest retry
            for r in s.exec(select(Run).where(col(Run.parent_id).is_not(None)).order_by(col(Run.id))).all():
                newest[r.parent_id] = r  # in id order: the last one stays
            targets: list[Run] = []
            for rid in run_ids:
                run = s.get(Run, rid)
                if run is None:
                    raise ConfigError(f"no run {rid} in this store")
                while run.id in newest:
                    run = newest[run.id]
                via = f" (its newest attempt is run {run.id})" if run.id != rid else ""
                if run.status not in RETRYABLE:
                    raise ConfigError(
                        f"run {rid}{via} is {run.status}; only failed, cancelled or lost runs "
                        f"can be retried" + ("; queue it again to train another" if run.status == "done" else "")
                    )
                if run in targets:
                    raise ConfigError(f"run {rid}{via} is listed twice")
                targets.append(run)
            ids = self._reserve_ids(s, len(targets))
            for rid, old in zip(ids, targets):
                run = Run(
                    id=rid,
                    group_id=old.group_id,
                    task=old.task,
                    dataset=old.dataset,
                    method=old.method,
                    seed=old.seed,
                    dataset_seed=old.dataset_seed,
                    preset=old.preset,
                    config=old.config,
                    overrides=old.overrides,
                    attempt=old.attempt + 1,
                    parent_id=old.id,
                    name=old.name,
                    tags=old.tags,
                    notes=old.notes,
                    priority=old.priority,
                    after=old.after,  # waits for the same runs, or for their newest attempts (_after_states)
                )
                run.run_dir = self.run_dir(run)
                s.add(run)
            return ids

    def set_priority(self, run_ids: Sequence[int], priority: int) -> list[str]:
        """Reorder the queue: higher priorities are claimed first. Only queued runs; checks every id first."""
        with self.write() as s:
            self._runs_by_id(
                s,
                run_ids,
                lambda r: f"is {r.status}; priority orders only queued runs" if r.status != "queued" else None,
            )
            s.execute(sa.update(Run).where(col(Run.id).in_(list(run_ids))).values(priority=priority))
        return [f"run {rid}: priority {priority}" for rid in run_ids]

    def annotate(
        self,
        run_id: int,
        name: str | None = None,
        add_tags: Sequence[str] = (),
        remove_tags: Sequence[str] = (),
        notes: str | None = None,
    ) -> Run:
        """A run's name, tags and notes: the researcher's words, at any status."""
        with self.write() as s:
            run = s.get(Run, run_id)
            if run is None:
                raise ConfigError(f"no run {run_id} in this store")
            if name is not None:
                run.name = name.strip()[:128]
            if add_tags or remove_tags:
                drop = set(clean_tags(remove_tags))
                run.tags = json.dumps([t for t in clean_tags([*json.loads(run.tags), *add_tags]) if t not in drop])
            if notes is not None:
                run.notes = notes
            s.add(run)
            s.flush()
            s.refresh(run)
            return run

    def queue_control(self) -> QueueControl:
        """Whether workers claim new runs, and how many runs at once (None: one per slot)."""
        with self.read() as s:
            paused = _get_meta(s, "queue_paused") == "1"
            parallel = _get_meta(s, "parallel")
        return QueueControl(paused, int(parallel) if parallel else None)

    def set_queue_control(
        self, paused: bool | None = None, parallel: int | None | Literal["keep"] = "keep"
    ) -> QueueControl:
        """Pause or resume claiming (running runs go on), or change how many run at once; workers read it live."""
        if parallel != "keep" and parallel is not None and parallel < 1:
            raise ConfigError(f"parallel must be at least 1 (got {parallel}); pause the queue to run none")
        with self.write() as s:
            if paused is not None:
                _set_meta(s, "queue_paused", "1" if paused else "0")
            if parallel != "keep":
                _set_meta(s, "parallel", "" if parallel is None else str(parallel))
        return self.queue_control()

    def run_count(self) -> int:
        with self.read() as s:
            return int(s.exec(select(sa.func.count()).select_from(Run)).one())

    def sweep(self, group: str) -> SweepRow | None:
        """The grid a group of runs was queued with (None: seeds alone, or queued before schema 7)."""
        with self.read() as s:
            return s.get(SweepRow, group)

    def delete(self, run_ids: Sequence[int]) -> None:
        """Delete finished or queued runs and all their rows; running runs are refused."""
        with self.write() as s:
            self._runs_by_id(s, run_ids, lambda r: "is running; cancel it first" if r.status == "running" else None)
            for table in (Metric, Sample, LogLine, Phase):
                s.execute(sa.delete(table).where(col(table.run_id).in_(list(run_ids))))
            # rankings are data: answered ones outlive their run; unanswered ones are withdrawn
            mine = col(Ranking.run_id).in_(list(run_ids))
            s.execute(sa.delete(Ranking).where(mine, col(Ranking.status) != "done"))
            s.execute(sa.update(Ranking).where(mine).values(run_id=None))
            s.execute(sa.delete(Run).where(col(Run.id).in_(list(run_ids))))

    def mark_lost(self, stale_after: float, host: str | None = None, exclude: set[int] | None = None) -> list[int]:
        """Runs marked running whose heartbeat stopped, or whose process on this host is gone, become lost.

        `exclude`: runs the caller is watching itself (a worker's own children).
        """
        t = now()
        lost: list[int] = []
        with self.write() as s:
            for run in s.exec(select(Run).where(Run.status == "running")).all():
                assert run.id is not None  # a stored row has its id
                if exclude and run.id in exclude:
                    continue
                dead_here = host is not None and run.host == host and run.pid is not None and not pid_alive(run.pid)
                stale = run.heartbeat_at is None or t - run.heartbeat_at > stale_after
                if dead_here or stale:
                    why = "its process is gone" if dead_here else f"no heartbeat for {t - (run.heartbeat_at or t):.0f}s"
                    if self._move(
                        s,
                        run.id,
                        "lost",
                        finished_at=t,
                        error=f"lost: {why}; `pgg retry {run.id}` resumes it from its last checkpoint",
                    ):
                        lost.append(run.id)
        return lost

    # -----------------------------------------------------------------------------------------------
    # writes from a training process (batched by engine.report)

    def append(
        self,
        run_id: int,
        metrics: list[dict[str, Any]],
        samples: list[dict[str, Any]],
        logs: list[dict[str, Any]],
        progress: dict[str, Any] | None,
    ) -> bool:
        """One transaction per flush: batched inserts plus the heartbeat. Returns whether the run must stop:
        a cancel was asked, or the run was marked lost while it was stopped or cut off (perhaps retried
        already): then nothing more is written under its id (fencing)."""
        with self.write() as s:
            conn = s.connection()
            table = table_of(Run)
            state = conn.execute(
                sa.select(table.c.cancel_requested, table.c.status).where(table.c.id == run_id)
            ).first()
            if state is None or state.status == "lost":  # the worker gave it up: a retry may train it now
                return True
            if metrics:
                conn.execute(sa.insert(table_of(Metric)), [dict(m, run_id=run_id) for m in metrics])
            if samples:
                conn.execute(sa.insert(table_of(Sample)), [dict(x, run_id=run_id) for x in samples])
            if logs:
                conn.execute(sa.insert(table_of(LogLine)), [dict(x, run_id=run_id) for x in logs])
            values: dict[str, Any] = {"heartbeat_at": now()}
            values.update(progress or {})
            conn.execute(sa.update(table).where(table.c.id == run_id).values(**values))
        return bool(state.cancel_requested)

    @outlasts_outages
    def start_phase(self, run_id: int, kind: str, index: int, step: int) -> int:
        with self.write() as s:
            ph = Phase(run_id=run_id, kind=kind, index=index, start_step=step)
            s.add(ph)
            s.flush()
            assert ph.id is not None  # given by the flush
            return ph.id

    @outlasts_outages
    def end_phase(self, phase_id: int, step: int) -> None:
        with self.write() as s:
            s.execute(sa.update(Phase).where(col(Phase.id) == phase_id).values(end_step=step, ended_at=now()))
