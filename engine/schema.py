"""The store's tables (SQLModel), its schema version and the migrations from older versions.

A store records its version in `pgg_meta`; `create` makes a new one at SCHEMA_VERSION and `upgrade`
brings an older one up to it, each inside the write transaction of the caller (`Store.open`).
Every statement is portable (SQLite and PostgreSQL): ALTER TABLE ... ADD COLUMN, CREATE INDEX, no
SQLite-only SQL. sqlmodel + stdlib only: the CLI and the app import this module.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlmodel import Field, Session, SQLModel

SCHEMA_VERSION = 10
APP_ID = "pgg"


def content_hash(context: str, candidates: list[str], order: list[int], annotator: str) -> str:
    """What a ranking says, as a hash: the same list ordered the same way by the same person, whenever and
    from whichever file it came."""
    text = json.dumps([context, candidates, order, annotator], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def new_uid() -> str:
    return uuid.uuid4().hex


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
    id: int | None = Field(default=None, primary_key=True)  # never reused, even after a delete
    uid: str = Field(default_factory=new_uid, max_length=32)  # unique across stores: names the run's folder
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
    phase_step: int = 0  # steps done in the current phase (a reward training's), of phase_total
    phase_total: int = 0
    eta_at: float | None = None  # when the run expects to end, by the engine's estimate (engine.eta)
    results: str | None = None  # JSON
    job_id: str | None = Field(default=None, max_length=64)  # the Slurm job training it (executor slurm)
    name: str = Field(default="", max_length=128)  # the researcher's own words for a run
    tags: str = "[]"  # JSON list of short labels, for filters
    notes: str = ""
    priority: int = 0  # higher is claimed first; equal priorities go in queue order
    waiting_for: int = 0  # rankings the run waits for from people (preference=human), 0 when not waiting
    resources: str | None = None  # JSON: the process's last CPU %, resident and GPU memory (engine.resources)
    # JSON list of the run ids this queued run waits for (`pgg queue --after`): it starts once each of them, or
    # its newest retry, is done, and is cancelled once one ended otherwise (Store.claim_next)
    after: str = "[]"


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
    # (run, name, id): the latest value of a few named metrics per run (the runs table, every second) is an index
    # range per name, not a scan of every row the run recorded (a lab's store holds tens of millions)
    __table_args__ = (
        sa.Index("ix_metric_run_id_id", "run_id", "id"),
        sa.Index("ix_metric_run_name_id", "run_id", "name", "id"),
    )
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
    """At most one scheduler per host: a live worker holds its host's row. Workers on several hosts share
    one store (PostgreSQL) and its queue; each adopts and signals only the runs of its own host."""

    __tablename__ = "worker_lease"
    id: int | None = Field(default=None, primary_key=True)
    host: str = Field(max_length=128, unique=True)
    name: str = Field(max_length=128)
    pid: int
    heartbeat_at: float
    started_at: float
    slots: str = "[]"  # JSON list of slot labels
    log_offsets: str = "{}"  # JSON run_id -> [stdout bytes, stderr bytes] already copied into the store
    stop_requested: bool = False  # `pgg worker stop --host H` from another machine: it stops at its next tick
    gpus: str = "[]"  # JSON list of {index, util, mem_used, mem_total} (MiB), sampled by the worker (nvidia-smi)


class Ranking(SQLModel, table=True):
    """One list of K candidates to be ordered by a person: a request a run wrote and waits on, or a ranking
    imported from a file. Rankings are data: a deleted run's answered ones stay, with run_id cleared."""

    __tablename__ = "ranking"
    __table_args__ = (
        sa.Index("ix_ranking_status_id", "status", "id"),
        sa.Index("ix_ranking_run_round", "run_id", "round"),
    )
    id: int | None = Field(default=None, primary_key=True)
    run_id: int | None = None  # the run that asked (None: imported, or its run was deleted)
    round: int = 0  # the run's reward training that asked for it (1, 2, ...)
    task: str = Field(default="", max_length=32)
    context: str = ""  # what the candidates answer: the article, or the dataset with example sentences
    candidates: str = "[]"  # JSON list of {"text", "tokens", "rewards"} (rewards by the model of the time)
    payload: str = "{}"  # JSON the engine reads back: token ids, the source and reference
    heldout: bool = False  # kept out of training: the grounding quality is measured on it
    status: str = Field(default="open", max_length=16)  # open | claimed | done | expired
    claimed_by: str | None = Field(default=None, max_length=128)
    claimed_at: float | None = None
    skipped_by: str = "[]"  # JSON list of annotators who skipped it: they are not offered it again
    best_first: str | None = None  # JSON list of candidate indices, best first (the ranking)
    annotator: str | None = Field(default=None, max_length=128)
    answered_at: float | None = None
    created_at: float = Field(default_factory=now)
    source: str = Field(default="live", max_length=16)  # live | import
    # what the ranking says (context, candidates, order, annotator), hashed: an import skips what is stored
    content_hash: str | None = Field(default=None, index=True, max_length=64)


class Sweep(SQLModel, table=True):
    """A grid of settings queued as one group (`pgg queue --set k=a,b` or `--sweep FILE`): its runs share
    the group id. The grid is kept so a comparison can say how many configurations each method tried."""

    __tablename__ = "sweep"
    group_id: str = Field(primary_key=True, max_length=32)
    name: str = Field(default="", max_length=128)
    task: str = Field(default="", max_length=32)
    grid: str = "{}"  # JSON: method -> setting -> list of values tried
    created_at: float = Field(default_factory=now)


def table_of(model: type[SQLModel]) -> sa.Table:
    """The Core table behind a model, for bulk inserts and hot reads without ORM objects."""
    table: sa.Table = model.__table__  # type: ignore[attr-defined]  # SQLModel's classes do not declare it
    return table


# ---------------------------------------------------------------------------------------------------
# creation and migrations

# MIGRATIONS[v] upgrades a store from version v-1 to v, inside one write transaction.
MIGRATIONS: dict[int, Callable[[Connection], None]] = {}


def _migrate_2(conn: Connection) -> None:
    """Schema 2: a uid per run (its folder and checkpoints are tied to it); ids never reused."""
    conn.execute(sa.text("ALTER TABLE run ADD COLUMN uid VARCHAR(32)"))
    for (rid,) in conn.execute(sa.text("SELECT id FROM run")).all():
        conn.execute(sa.text("UPDATE run SET uid = :uid WHERE id = :id"), {"uid": new_uid(), "id": rid})
    top = conn.execute(sa.text("SELECT MAX(id) FROM run")).scalar() or 0
    conn.execute(sa.text("INSERT INTO pgg_meta (key, value) VALUES ('last_run_id', :v)"), {"v": str(top)})


MIGRATIONS[2] = _migrate_2


def _migrate_3(conn: Connection) -> None:
    """Schema 3: a run's progress inside its current phase (reward trainings are most of a pgg run)."""
    for column in ("phase_step", "phase_total"):
        conn.execute(sa.text(f"ALTER TABLE run ADD COLUMN {column} INTEGER NOT NULL DEFAULT 0"))


MIGRATIONS[3] = _migrate_3


def _migrate_4(conn: Connection) -> None:
    """Schema 4: runs get a name, tags and notes, a priority in the queue, and the engine's ETA."""
    conn.execute(sa.text("ALTER TABLE run ADD COLUMN eta_at FLOAT"))
    conn.execute(sa.text("ALTER TABLE run ADD COLUMN name VARCHAR(128) NOT NULL DEFAULT ''"))
    conn.execute(sa.text("ALTER TABLE run ADD COLUMN tags VARCHAR NOT NULL DEFAULT '[]'"))
    conn.execute(sa.text("ALTER TABLE run ADD COLUMN notes VARCHAR NOT NULL DEFAULT ''"))
    conn.execute(sa.text("ALTER TABLE run ADD COLUMN priority INTEGER NOT NULL DEFAULT 0"))


MIGRATIONS[4] = _migrate_4


def _migrate_5(conn: Connection) -> None:
    """Schema 5: a run's Slurm job id; one worker lease per host instead of one per store (many hosts, one store),
    with a stop request and GPU readings. Leases are a live worker's heartbeat, not history: the old table is dropped;
    a worker of an older pgg still serving the store stops at its next heartbeat."""
    conn.execute(sa.text("ALTER TABLE run ADD COLUMN job_id VARCHAR(64)"))
    conn.execute(sa.text("DROP TABLE worker_lease"))
    lease = sa.Table(
        "worker_lease",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("host", sa.String(128), nullable=False, unique=True),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("heartbeat_at", sa.Float, nullable=False),
        sa.Column("started_at", sa.Float, nullable=False),
        sa.Column("slots", sa.String, nullable=False),
        sa.Column("log_offsets", sa.String, nullable=False),
        sa.Column("stop_requested", sa.Boolean, nullable=False),
        sa.Column("gpus", sa.String, nullable=False),
    )
    lease.create(conn)


MIGRATIONS[5] = _migrate_5


def _migrate_6(conn: Connection) -> None:
    """Schema 6: rankings by people (preference=human), and how many a run waits for."""
    conn.execute(sa.text("ALTER TABLE run ADD COLUMN waiting_for INTEGER NOT NULL DEFAULT 0"))
    table_of(Ranking).create(conn)


MIGRATIONS[6] = _migrate_6


def _migrate_7(conn: Connection) -> None:
    """Schema 7: sweeps record their grid (method -> setting -> values); rankings carry a hash of what they
    say, so importing a file twice (or an export into its own store) adds nothing twice."""
    table_of(Sweep).create(conn, checkfirst=True)
    # a store older than 6 has just had its ranking table made from today's model, hash column and all
    if "content_hash" not in {c["name"] for c in sa.inspect(conn).get_columns("ranking")}:
        conn.execute(sa.text("ALTER TABLE ranking ADD COLUMN content_hash VARCHAR(64)"))
        conn.execute(sa.text("CREATE INDEX ix_ranking_content_hash ON ranking (content_hash)"))
    rows = conn.execute(
        sa.text("SELECT id, context, candidates, best_first, annotator FROM ranking WHERE status = 'done'")
    ).all()
    for rid, context, candidates, best_first, annotator in rows:
        texts = [c["text"] for c in json.loads(candidates)]
        conn.execute(
            sa.text("UPDATE ranking SET content_hash = :h WHERE id = :id"),
            {"h": content_hash(context, texts, json.loads(best_first or "[]"), annotator or ""), "id": rid},
        )


MIGRATIONS[7] = _migrate_7


def _migrate_8(conn: Connection) -> None:
    """Schema 8: an index on metric (run_id, name, id), for the latest value of named metrics per run."""
    conn.execute(sa.text("CREATE INDEX IF NOT EXISTS ix_metric_run_name_id ON metric (run_id, name, id)"))


MIGRATIONS[8] = _migrate_8


def _migrate_9(conn: Connection) -> None:
    """Schema 9: what a run's process uses (CPU, memory), written with its progress."""
    if "resources" not in {c["name"] for c in sa.inspect(conn).get_columns("run")}:  # a store made by today's model
        conn.execute(sa.text("ALTER TABLE run ADD COLUMN resources VARCHAR"))


MIGRATIONS[9] = _migrate_9


def _migrate_10(conn: Connection) -> None:
    """Schema 10: the runs a queued run waits for (`pgg queue --after`)."""
    if "after" not in {c["name"] for c in sa.inspect(conn).get_columns("run")}:  # a store made by today's model
        conn.execute(sa.text("""ALTER TABLE run ADD COLUMN "after" VARCHAR NOT NULL DEFAULT '[]'"""))


MIGRATIONS[10] = _migrate_10


def create(s: Session) -> None:
    """Every table, and the meta rows of a new store at SCHEMA_VERSION."""
    SQLModel.metadata.create_all(s.connection())
    s.add(Meta(key="app", value=APP_ID))
    s.add(Meta(key="schema_version", value=str(SCHEMA_VERSION)))
    s.add(Meta(key="last_run_id", value="0"))


def upgrade(s: Session, version: int) -> None:
    """Bring a store of schema `version` (<= SCHEMA_VERSION) up to SCHEMA_VERSION, one migration at a time."""
    if version >= SCHEMA_VERSION:
        return
    conn = s.connection()
    for v in range(version + 1, SCHEMA_VERSION + 1):
        MIGRATIONS[v](conn)
    meta = s.get(Meta, "schema_version")
    assert meta is not None  # the caller read the version from it
    meta.value = str(SCHEMA_VERSION)
