"""The experiment store: SQLModel tables, safe opening, migrations and the run lifecycle.

One URL picks the backend: `sqlite:///experiments.db` (the default, in the working directory) or
`postgresql+psycopg://...` when runs span machines. SQLite is opened for many writer processes and one
reader: WAL, a busy timeout, `synchronous=NORMAL`, and `BEGIN IMMEDIATE` for every write transaction
(a deferred transaction that upgrades to a write fails at once with "database is locked", whatever the
busy timeout). Reads use plain deferred transactions and stay short.

A store carries its schema version in `pgg_meta`. An older store is migrated; a newer, foreign, corrupt
or non-SQLite file is refused with one line and is never written to.

sqlmodel + stdlib only: the CLI and the app import this module.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import threading
import time
import traceback as tb
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlmodel import Field, Session, SQLModel, col, select

from engine.errors import ConfigError, StoreError

SCHEMA_VERSION = 1
APP_ID = "pgg"
DEFAULT_URL = "sqlite:///experiments.db"

# Migrations: MIGRATIONS[v] upgrades a store from version v-1 to v, inside one write transaction.
# Keep every statement portable (ALTER TABLE ... ADD COLUMN, CREATE INDEX): no SQLite-only SQL.
MIGRATIONS: dict[int, Callable[[Connection], None]] = {}

STATUSES = ("queued", "running", "done", "failed", "cancelled", "lost")
FINISHED = ("done", "failed", "cancelled", "lost")


def now() -> float:
    return time.time()


# ---------------------------------------------------------------------------------------------------
# tables


class Meta(SQLModel, table=True):
    __tablename__ = "pgg_meta"
    key: str = Field(primary_key=True, max_length=64)
    value: str


class Run(SQLModel, table=True):
    __tablename__ = "run"
    id: int | None = Field(default=None, primary_key=True)
    group_id: str = Field(index=True, max_length=32)  # one id per queued sweep
    task: str = Field(max_length=32)
    dataset: str = Field(max_length=256)
    method: str = Field(max_length=32)
    seed: int = 0
    dataset_seed: int = 0
    preset: str = Field(default="paper", max_length=32)
    config: str  # the task config, whole, as JSON
    overrides: str = "{}"  # the --set values the user gave, as JSON (for display and grouping)
    status: str = Field(default="queued", index=True, max_length=16)
    attempt: int = 1
    parent_id: int | None = None  # the run this one retries
    created_at: float = Field(default_factory=now)
    started_at: float | None = None
    finished_at: float | None = None
    heartbeat_at: float | None = None
    worker: str | None = Field(default=None, max_length=128)
    host: str | None = Field(default=None, max_length=128)
    pid: int | None = None
    gpu: str | None = Field(default=None, max_length=32)
    exit_code: int | None = None
    error: str | None = None
    cancel_requested: bool = False
    cancel_requested_at: float | None = None
    run_dir: str | None = None  # checkpoints and captured output
    phase: str | None = Field(default=None, max_length=32)  # current phase label, e.g. "reward 2"
    step: int = 0
    total_steps: int = 0
    results: str | None = None  # JSON


class Phase(SQLModel, table=True):
    __tablename__ = "phase"
    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(index=True, foreign_key="run.id")
    kind: str = Field(max_length=16)  # reward | policy | eval
    index: int = 1  # 1st, 2nd ... of its kind
    start_step: int = 0
    end_step: int | None = None
    started_at: float = Field(default_factory=now)
    ended_at: float | None = None


class Metric(SQLModel, table=True):
    __tablename__ = "metric"
    __table_args__ = (sa.Index("ix_metric_run_id_id", "run_id", "id"),)
    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="run.id")
    step: int
    phase: str = Field(max_length=32)  # "reward 1", "policy", "eval"
    name: str = Field(max_length=64)
    value: float
    time: float = Field(default_factory=now)


class Sample(SQLModel, table=True):
    __tablename__ = "sample"
    __table_args__ = (sa.Index("ix_sample_run_id_id", "run_id", "id"),)
    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="run.id")
    step: int
    phase: str = Field(max_length=32)
    kind: str = Field(default="policy", max_length=16)  # reward | policy | greedy | final | eval
    context: str = ""  # source text or article excerpt
    text: str = ""
    tokens: str = "[]"  # JSON list of token strings
    rewards: str = "[]"  # JSON list of per-token rewards (same length as tokens; empty if none)
    model_score: float | None = None  # aggregated reward-model score
    true_score: float | None = None
    extra: str = "{}"  # JSON: reference, rank in its list, split...
    time: float = Field(default_factory=now)


class LogLine(SQLModel, table=True):
    __tablename__ = "logline"
    __table_args__ = (sa.Index("ix_logline_run_id_id", "run_id", "id"),)
    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="run.id")
    time: float = Field(default_factory=now)
    stream: str = Field(max_length=8)  # stdout | stderr | engine
    text: str


class WorkerLease(SQLModel, table=True):
    """At most one scheduler per store: the row with id 1 is held by a live worker."""

    __tablename__ = "worker_lease"
    id: int = Field(default=1, primary_key=True)
    name: str = Field(max_length=128)
    host: str = Field(max_length=128)
    pid: int
    heartbeat_at: float
    started_at: float
    slots: str = "[]"  # JSON list of slot labels
    log_offsets: str = "{}"  # JSON run_id -> [stdout bytes, stderr bytes] already copied into the store


# ---------------------------------------------------------------------------------------------------
# opening


def resolve_url(db: str | None) -> str:
    """--db beats PGG_DB beats the default; a bare path means a SQLite file."""
    url = db or os.environ.get("PGG_DB") or DEFAULT_URL
    if "://" not in url:
        url = f"sqlite:///{url}"
    return url


def _sqlite_path(url: str) -> Path | None:
    u = sa.engine.make_url(url)
    if u.get_backend_name() != "sqlite" or not u.database or u.database == ":memory:":
        return None
    return Path(u.database)


def _inspect_sqlite_file(path: Path) -> int | None:
    """Look at a SQLite file without changing it: its pgg schema version, or None if it is new/empty.

    Raises StoreError for anything pgg must not touch.
    """
    if not path.exists() or path.stat().st_size == 0:
        return None
    if path.is_dir():
        raise StoreError(f"{path} is a directory, not a store file")
    with open(path, "rb") as f:
        header = f.read(16)
    if header != b"SQLite format 3\x00":
        raise StoreError(f"{path} is not a SQLite database; refusing to use it as a store")
    # Opening read-only can still create the -wal and -shm side files of a WAL database: remove those we
    # made if the file turns out not to be ours, so a refused file is left exactly as it was found.
    side = [Path(f"{path}{suffix}") for suffix in ("-wal", "-shm")]
    existed = [p.exists() for p in side]
    try:
        return _read_version(path)
    except StoreError:
        for p, was in zip(side, existed):
            if not was and p.exists():
                p.unlink()
        raise


def _read_version(path: Path) -> int | None:
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
        try:
            con.execute("PRAGMA schema_version").fetchone()
            names = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            if not names:
                return None
            if "pgg_meta" not in names:
                raise StoreError(f"{path} is a SQLite database of another program (no pgg_meta table); "
                                 f"refusing to use it as a store")
            rows = dict(con.execute("SELECT key, value FROM pgg_meta").fetchall())
        finally:
            con.close()
    except sqlite3.DatabaseError as err:
        raise StoreError(f"{path} is damaged or truncated ({err}); refusing to use it as a store") from None
    if rows.get("app") != APP_ID:
        raise StoreError(f"{path} is not a pgg store; refusing to use it")
    try:
        return int(rows.get("schema_version", "0"))
    except ValueError:
        raise StoreError(f"{path} has an unreadable schema version") from None


def _set_sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # Autocommit at the driver level so that our own BEGIN (DEFERRED or IMMEDIATE) is the only one.
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA busy_timeout=30000")
    # WAL is a property of the file; asking again on a WAL file is a no-op. Only files that passed
    # _inspect_sqlite_file (ours, or new) ever reach this point.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def _begin_sqlite(conn: Connection) -> None:
    mode = conn.get_execution_options().get("pgg_write", False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if mode else "BEGIN")


class Store:
    """An opened store. Create with `Store.open(url)`; all access goes through `write()` and `read()`."""

    def __init__(self, url: str, engine: Engine):
        self.url = url
        self.engine = engine
        self.is_sqlite = engine.dialect.name == "sqlite"
        self._dv_conn: Any = None
        self._dv_lock = threading.Lock()  # one raw connection, asked from the app's poll threads

    @classmethod
    def open(cls, db: str | None = None, create: bool = True) -> Store:
        """Open (and, if `create`, create or migrate) the store at `db`.

        `create=False` is for readers: a missing store raises StoreError instead of appearing.
        """
        url = resolve_url(db)
        try:
            sa.engine.make_url(url)
        except sa.exc.ArgumentError:
            raise StoreError(f"cannot parse store URL {url!r}") from None
        path = _sqlite_path(url)
        version = None
        if path is not None:
            version = _inspect_sqlite_file(path)
            if version is None and not create:
                raise StoreError(f"no store at {path} (run `pgg queue` or `pgg run` to create one)")
            if version is not None and version > SCHEMA_VERSION:
                raise StoreError(f"{path} was written by a newer pgg (schema {version} > {SCHEMA_VERSION}); "
                                 f"upgrade pgg to use it")
            if version is None:
                parent = path.resolve().parent
                if not parent.is_dir():
                    raise StoreError(f"cannot create store {path}: folder {parent} does not exist")
                if not os.access(parent, os.W_OK):
                    raise StoreError(f"cannot create store {path}: folder {parent} is not writable")
            elif not os.access(path, os.W_OK) or not os.access(path.resolve().parent, os.W_OK):
                raise StoreError(f"store {path} is read-only (the file or its folder is not writable; "
                                 f"SQLite in WAL mode needs both)")
            engine = sa.create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
            event.listen(engine, "connect", _set_sqlite_pragmas)
            event.listen(engine, "begin", _begin_sqlite)
        else:
            try:
                engine = sa.create_engine(url, pool_pre_ping=True)
            except Exception as err:  # a missing driver, a bad dialect name
                raise StoreError(f"cannot open store {url!r}: {err}") from None
        store = cls(url, engine)
        try:
            store._prepare(version, create)
        except sa.exc.OperationalError as err:
            raise StoreError(f"cannot open store {url}: {err.orig}") from None
        return store

    def _prepare(self, file_version: int | None, create: bool) -> None:
        with self.write() as s:
            conn = s.connection()
            insp = sa.inspect(conn)
            if not insp.has_table("pgg_meta"):
                if insp.get_table_names() and not self.is_sqlite:
                    raise StoreError(f"{self.url} holds tables of another program; refusing to use it")
                if not create:
                    raise StoreError(f"no pgg store at {self.url}")
                SQLModel.metadata.create_all(conn)
                s.add(Meta(key="app", value=APP_ID))
                s.add(Meta(key="schema_version", value=str(SCHEMA_VERSION)))
                return
            version = int(s.get(Meta, "schema_version").value)  # type: ignore[union-attr]
            if version > SCHEMA_VERSION:
                raise StoreError(f"store {self.url} is from a newer pgg (schema {version}); upgrade pgg")
            for v in range(version + 1, SCHEMA_VERSION + 1):
                MIGRATIONS[v](conn)
            if version < SCHEMA_VERSION:
                s.get(Meta, "schema_version").value = str(SCHEMA_VERSION)  # type: ignore[union-attr]

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A write transaction (BEGIN IMMEDIATE on SQLite): commits on exit, rolls back on error."""
        with self.engine.connect() as conn:
            conn = conn.execution_options(pgg_write=True)
            with conn.begin():
                with Session(bind=conn, expire_on_commit=False) as s:
                    yield s
                    s.flush()

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A short read transaction. Do not keep it open: long readers starve WAL checkpoints."""
        with self.engine.connect() as conn:
            with conn.begin():
                with Session(bind=conn, expire_on_commit=False) as s:
                    yield s

    def close(self) -> None:
        if self._dv_conn is not None:
            self._dv_conn.close()
            self._dv_conn = None
        self.engine.dispose()

    def schema_version(self) -> int:
        with self.read() as s:
            return int(s.get(Meta, "schema_version").value)  # type: ignore[union-attr]

    def data_version(self) -> int:
        """A number that changes whenever anyone commits; lets pollers skip idle ticks.

        SQLite's `PRAGMA data_version` is per connection, so one connection is kept for it alone.
        """
        if not self.is_sqlite:
            with self.read() as s:
                ids = [s.exec(select(sa.func.max(t.id))).one() or 0 for t in (Run, Metric, Sample, LogLine)]  # type: ignore[call-overload]
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

    def queue(self, specs: Sequence[Any], config_json: Callable[[Any], str]) -> list[int]:
        """Insert one queued run per RunSpec, all sharing a new group id. Returns the run ids in order."""
        group = os.urandom(4).hex()
        with self.write() as s:
            runs = [Run(group_id=group, task=r.task, dataset=r.dataset, method=r.method, seed=r.seed,
                        dataset_seed=r.dataset_seed, preset=r.preset, config=config_json(r.config),
                        overrides=json.dumps(r.overrides, sort_keys=True)) for r in specs]
            s.add_all(runs)
            s.flush()
            return [r.id for r in runs]  # type: ignore[misc]

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

    def claim_next(self, worker: str, gpu: str | None, run_dir_for: Callable[[int], str]) -> Run | None:
        """Atomically move the oldest queued run to running for this worker; None if the queue is empty.

        On SQLite the IMMEDIATE transaction serialises claimers; on PostgreSQL the row lock with
        SKIP LOCKED does. The conditional UPDATE is the guard in both: two workers never start one run.
        """
        with self.write() as s:
            run = s.exec(select(Run).where(Run.status == "queued").order_by(col(Run.id)).limit(1)
                         .with_for_update(skip_locked=True)).first()
            if run is None:
                return None
            t = now()
            res = s.execute(sa.update(Run).where(col(Run.id) == run.id, col(Run.status) == "queued").values(
                status="running", worker=worker, host=socket.gethostname(), gpu=gpu, started_at=t,
                heartbeat_at=t, run_dir=run.run_dir or run_dir_for(run.id)))  # type: ignore[arg-type]
            if res.rowcount != 1:  # type: ignore[attr-defined]
                return None
            s.expire_all()
            return s.get(Run, run.id)

    def attach(self, run_id: int, pid: int, run_dir_for: Callable[[int], str]) -> Run:
        """Called by the run process itself: take a run the worker claimed, or claim a queued one directly."""
        with self.write() as s:
            run = s.get(Run, run_id)
            if run is None:
                raise ConfigError(f"no run {run_id} in this store")
            if run.status not in ("queued", "running"):
                raise ConfigError(f"run {run_id} is {run.status}; `pgg retry {run_id}` starts a new attempt")
            if run.status == "running" and run.pid and run.pid != pid and run.host == socket.gethostname() \
                    and _pid_alive(run.pid):
                raise ConfigError(f"run {run_id} is already running as pid {run.pid}")
            t = now()
            run.status = "running"
            run.pid = pid
            run.host = socket.gethostname()
            run.started_at = run.started_at or t
            run.heartbeat_at = t
            run.run_dir = run.run_dir or run_dir_for(run_id)
            s.add(run)
            return run

    def set_pid(self, run_id: int, pid: int) -> None:
        with self.write() as s:
            s.execute(sa.update(Run).where(col(Run.id) == run_id).values(pid=pid))

    def finish(self, run_id: int, results: dict[str, Any]) -> None:
        with self.write() as s:
            s.execute(sa.update(Run).where(col(Run.id) == run_id).values(
                status="done", finished_at=now(), exit_code=0, results=json.dumps(results)))

    def fail(self, run_id: int, error: str, exit_code: int | None = 1, status: str = "failed") -> None:
        """Record a run's end other than done. Only a run still running (or queued) is changed."""
        with self.write() as s:
            s.execute(sa.update(Run).where(col(Run.id) == run_id, col(Run.status).in_(["running", "queued"]))
                      .values(status=status, finished_at=now(), exit_code=exit_code, error=error))

    def fail_with_traceback(self, run_id: int, err: BaseException) -> None:
        self.fail(run_id, "".join(tb.format_exception(type(err), err, err.__traceback__)))

    def request_cancel(self, run_ids: Sequence[int]) -> list[str]:
        """Queued runs are cancelled at once; running ones get a request. Checks all ids before changing any."""
        with self.write() as s:
            runs = {r.id: r for r in s.exec(select(Run).where(col(Run.id).in_(list(run_ids)))).all()}
            for rid in run_ids:
                if rid not in runs:
                    raise ConfigError(f"no run {rid} in this store")
                if runs[rid].status in FINISHED:
                    raise ConfigError(f"run {rid} is already {runs[rid].status}; nothing to cancel")
            out = []
            t = now()
            for rid in run_ids:
                run = runs[rid]
                if run.status == "queued":
                    run.status, run.finished_at = "cancelled", t
                    out.append(f"run {rid}: cancelled")
                else:
                    run.cancel_requested, run.cancel_requested_at = True, t
                    out.append(f"run {rid}: cancel requested (stops at the next step, then saves a checkpoint)")
                s.add(run)
            return out

    def retry(self, run_ids: Sequence[int]) -> list[int]:
        """Queue a new attempt of each finished-but-not-done run (same config, same run folder to resume from)."""
        with self.write() as s:
            runs = {r.id: r for r in s.exec(select(Run).where(col(Run.id).in_(list(run_ids)))).all()}
            for rid in run_ids:
                if rid not in runs:
                    raise ConfigError(f"no run {rid} in this store")
                if runs[rid].status in ("queued", "running"):
                    raise ConfigError(f"run {rid} is {runs[rid].status}; only finished runs can be retried")
            new = []
            for rid in run_ids:
                old = runs[rid]
                run = Run(group_id=old.group_id, task=old.task, dataset=old.dataset, method=old.method,
                          seed=old.seed, dataset_seed=old.dataset_seed, preset=old.preset, config=old.config,
                          overrides=old.overrides, attempt=old.attempt + 1, parent_id=old.id,
                          run_dir=old.run_dir if old.status != "done" else None)
                s.add(run)
                new.append(run)
            s.flush()
            return [r.id for r in new]  # type: ignore[misc]

    def delete(self, run_ids: Sequence[int]) -> None:
        """Delete finished or queued runs and all their rows; running runs are refused."""
        with self.write() as s:
            runs = {r.id: r for r in s.exec(select(Run).where(col(Run.id).in_(list(run_ids)))).all()}
            for rid in run_ids:
                if rid not in runs:
                    raise ConfigError(f"no run {rid} in this store")
                if runs[rid].status == "running":
                    raise ConfigError(f"run {rid} is running; cancel it first")
            for table in (Metric, Sample, LogLine, Phase):
                s.execute(sa.delete(table).where(col(table.run_id).in_(list(run_ids))))  # type: ignore[attr-defined]
            s.execute(sa.delete(Run).where(col(Run.id).in_(list(run_ids))))

    def mark_lost(self, stale_after: float, host: str | None = None, exclude: set[int] | None = None) -> list[int]:
        """Runs marked running whose heartbeat stopped, or whose process on this host is gone, become lost.

        `exclude`: runs the caller is watching itself (a worker's own children).
        """
        t = now()
        lost = []
        with self.write() as s:
            for run in s.exec(select(Run).where(Run.status == "running")).all():
                if exclude and run.id in exclude:
                    continue
                dead_here = host is not None and run.host == host and run.pid is not None and not _pid_alive(run.pid)
                stale = run.heartbeat_at is None or t - run.heartbeat_at > stale_after
                if dead_here or stale:
                    why = "its process is gone" if dead_here else f"no heartbeat for {t - (run.heartbeat_at or t):.0f}s"
                    run.status, run.finished_at = "lost", t
                    run.error = f"lost: {why}; `pgg retry {run.id}` resumes it from its last checkpoint"
                    s.add(run)
                    lost.append(run.id)
        return lost  # type: ignore[return-value]

    # -----------------------------------------------------------------------------------------------
    # writes from a training process (batched by engine.report)

    def append(self, run_id: int, metrics: list[dict[str, Any]], samples: list[dict[str, Any]],
               logs: list[dict[str, Any]], progress: dict[str, Any] | None) -> bool:
        """One transaction per flush: batched inserts plus the heartbeat. Returns the cancel flag."""
        with self.write() as s:
            conn = s.connection()
            if metrics:
                conn.execute(sa.insert(Metric.__table__), [dict(m, run_id=run_id) for m in metrics])  # type: ignore[attr-defined]
            if samples:
                conn.execute(sa.insert(Sample.__table__), [dict(x, run_id=run_id) for x in samples])  # type: ignore[attr-defined]
            if logs:
                conn.execute(sa.insert(LogLine.__table__), [dict(x, run_id=run_id) for x in logs])  # type: ignore[attr-defined]
            values: dict[str, Any] = {"heartbeat_at": now()}
            values.update(progress or {})
            conn.execute(sa.update(Run.__table__).where(Run.__table__.c.id == run_id).values(**values))  # type: ignore[attr-defined]
            flag = conn.execute(sa.select(Run.__table__.c.cancel_requested)  # type: ignore[attr-defined]
                                .where(Run.__table__.c.id == run_id)).scalar()  # type: ignore[attr-defined]
        return bool(flag)

    def copy_history(self, src: int, dst: int, until: float) -> tuple[dict[str, int], Phase | None]:
        """Copy a run's rows recorded up to time `until` (its checkpoint) into the run resuming from it.

        Returns how many phases of each kind were copied (so the resuming run numbers its next reward
        phase on from them) and the copied phase that was still open at the checkpoint, left open for
        the resuming run to carry on.
        """
        with self.write() as s:
            conn = s.connection()
            for table in (Metric.__table__, Sample.__table__):  # type: ignore[attr-defined]
                cols = [c.name for c in table.columns if c.name not in ("id", "run_id")]
                rows = sa.select(sa.literal(dst), *[table.c[c] for c in cols]).where(
                    table.c.run_id == src, table.c.time <= until).order_by(table.c.id)
                conn.execute(table.insert().from_select(["run_id", *cols], rows))
            counts: dict[str, int] = {}
            current = None
            for ph in s.exec(select(Phase).where(Phase.run_id == src, col(Phase.started_at) <= until)
                             .order_by(col(Phase.id))).all():
                open_at_ckpt = ph.ended_at is None or ph.ended_at > until
                copy = Phase(run_id=dst, kind=ph.kind, index=ph.index, start_step=ph.start_step,
                             end_step=None if open_at_ckpt else ph.end_step, started_at=ph.started_at,
                             ended_at=None if open_at_ckpt else ph.ended_at)
                s.add(copy)
                counts[ph.kind] = max(counts.get(ph.kind, 0), ph.index)
                if open_at_ckpt:
                    current = copy
            s.flush()
            return counts, current

    def start_phase(self, run_id: int, kind: str, index: int, step: int) -> int:
        with self.write() as s:
            ph = Phase(run_id=run_id, kind=kind, index=index, start_step=step)
            s.add(ph)
            s.flush()
            return ph.id  # type: ignore[return-value]

    def end_phase(self, phase_id: int, step: int) -> None:
        with self.write() as s:
            s.execute(sa.update(Phase).where(col(Phase.id) == phase_id).values(end_step=step, ended_at=now()))

    # -----------------------------------------------------------------------------------------------
    # reads for the CLI and the app (incremental: rows after a given id)

    def metrics(self, run_id: int, after_id: int = 0, names: Sequence[str] | None = None) -> list[Metric]:
        with self.read() as s:
            q = select(Metric).where(Metric.run_id == run_id, col(Metric.id) > after_id).order_by(col(Metric.id))
            if names:
                q = q.where(col(Metric.name).in_(list(names)))
            return list(s.exec(q).all())

    def metric_tuples(self, run_id: int, after_id: int = 0) -> list[tuple[int, str, int, str, float]]:
        """(id, phase, step, name, value) rows after `after_id`: the app's hot read, without ORM objects."""
        t = Metric.__table__  # type: ignore[attr-defined]
        with self.read() as s:
            rows = s.connection().execute(sa.select(t.c.id, t.c.phase, t.c.step, t.c.name, t.c.value)
                                          .where(t.c.run_id == run_id, t.c.id > after_id).order_by(t.c.id)).all()
        return [tuple(r) for r in rows]  # type: ignore[misc]

    def samples(self, run_id: int, after_id: int = 0, limit: int | None = None) -> list[Sample]:
        with self.read() as s:
            q = select(Sample).where(Sample.run_id == run_id, col(Sample.id) > after_id).order_by(col(Sample.id))
            if limit:
                q = q.limit(limit)
            return list(s.exec(q).all())

    def logs(self, run_id: int, after_id: int = 0) -> list[LogLine]:
        with self.read() as s:
            return list(s.exec(select(LogLine).where(LogLine.run_id == run_id, col(LogLine.id) > after_id)
                               .order_by(col(LogLine.id))).all())

    def phases(self, run_id: int) -> list[Phase]:
        with self.read() as s:
            return list(s.exec(select(Phase).where(Phase.run_id == run_id).order_by(col(Phase.id))).all())

    def latest_metrics(self, run_ids: Sequence[int], names: Sequence[str]) -> dict[tuple[int, str], float]:
        """The last value of each named metric for each run, in one query."""
        if not run_ids:
            return {}
        with self.read() as s:
            last = (select(Metric.run_id, Metric.name, sa.func.max(Metric.id).label("mid"))
                    .where(col(Metric.run_id).in_(list(run_ids)), col(Metric.name).in_(list(names)))
                    .group_by(Metric.run_id, Metric.name).subquery())
            rows = s.execute(select(Metric.run_id, Metric.name, Metric.value)
                             .join(last, col(Metric.id) == last.c.mid)).all()
        return {(r[0], r[1]): r[2] for r in rows}


def _pid_alive(pid: int) -> bool:
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
