"""Deleted runs, with a way back: `pgg delete` moves each run's rows into a trash file before deleting them,
`pgg restore` puts them back, `pgg trash` lists what is there and `pgg trash empty` removes it for good.

A trash file is `<runs root>/.trash/run-<id>-<uid prefix>.jsonl.gz`: a header line (the run row, when it was
deleted, the answered rankings it had), then one line per metric, sample, log line and phase row, written as
they are read, so a run with millions of rows is trashed and restored in bounded memory. Answered rankings
outlive a deleted run in the store (with run_id cleared, engine.store.Store.delete); a restore links them back.
Torch-free: the CLI and the app import it.
"""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlmodel import SQLModel, col

from engine.errors import ConfigError, StoreError
from engine.schema import LogLine, Metric, Phase, Ranking, Run, Sample, now, table_of
from engine.store import Store

TABLES: dict[str, type[SQLModel]] = {"metric": Metric, "sample": Sample, "logline": LogLine, "phase": Phase}
BATCH = 5000


@dataclass(frozen=True)
class TrashEntry:
    run_id: int
    task: str
    dataset: str
    method: str
    seed: int
    status: str
    name: str
    deleted_at: float
    path: Path


def trash_dir(store: Store) -> Path:
    return store.runs_root / ".trash"


def _file(store: Store, run: Run) -> Path:
    return trash_dir(store) / f"run-{run.id}-{run.uid[:8]}.jsonl.gz"


def _plain(row: Any) -> dict[str, Any]:
    return dict(row._mapping)


def save(store: Store, run_ids: Sequence[int]) -> list[Path]:
    """Write each run's rows to its trash file (before the store deletes them). A file that cannot be written
    refuses the delete: StoreError, nothing deleted."""
    folder = trash_dir(store)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise StoreError(
            f"cannot keep deleted runs in {folder}: {err.strerror}; `pgg delete --no-trash` deletes them for good"
        ) from None
    paths = []
    for rid in run_ids:
        run = store.get(rid)
        path = _file(store, run)
        tmp = path.with_suffix(".tmp")
        try:
            with gzip.open(tmp, "wt", encoding="utf-8") as f, store.read() as s:
                conn = s.connection()
                rankings = [
                    int(i)
                    for (i,) in conn.execute(
                        sa.select(table_of(Ranking).c.id).where(
                            table_of(Ranking).c.run_id == rid, table_of(Ranking).c.status == "done"
                        )
                    )
                ]
                run_row = _plain(conn.execute(sa.select(table_of(Run)).where(table_of(Run).c.id == rid)).one())
                f.write(json.dumps(dict(run=run_row, deleted_at=now(), rankings=rankings)) + "\n")
                for kind, model in TABLES.items():
                    t = table_of(model)
                    for row in conn.execute(sa.select(t).where(t.c.run_id == rid).order_by(t.c.id)):
                        f.write(json.dumps([kind, _plain(row)]) + "\n")
            os.replace(tmp, path)
        except OSError as err:
            tmp.unlink(missing_ok=True)
            raise StoreError(
                f"cannot keep run {rid} in the trash ({path}): {err.strerror}; `pgg delete --no-trash` "
                "deletes it for good"
            ) from None
        paths.append(path)
    return paths


def _read(path: Path) -> Iterator[Any]:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            yield json.loads(line)


def entries(store: Store) -> list[TrashEntry]:
    """What the trash holds, oldest deletion first (a file that cannot be read is left out)."""
    out = []
    folder = trash_dir(store)
    for path in sorted(folder.glob("run-*.jsonl.gz")) if folder.is_dir() else []:
        try:
            head = next(_read(path))
        except (OSError, EOFError, ValueError, StopIteration):
            continue
        r = head["run"]
        out.append(
            TrashEntry(
                int(r["id"]),
                r["task"],
                r["dataset"],
                r["method"],
                int(r["seed"]),
                r["status"],
                r.get("name") or "",
                float(head["deleted_at"]),
                path,
            )
        )
    return sorted(out, key=lambda e: (e.deleted_at, e.run_id))


def restore(store: Store, run_id: int) -> int:
    """Put a trashed run back with all its rows; returns its id (a new one when its old id was taken since)."""
    found = [e for e in entries(store) if e.run_id == run_id]
    if not found:
        raise ConfigError(f"run {run_id} is not in the trash (`pgg trash` lists what is)")
    path = found[-1].path
    lines = _read(path)
    head = next(lines)
    run_row = dict(head["run"])
    with store.write() as s:
        conn = s.connection()
        taken = conn.execute(sa.select(table_of(Run).c.id).where(table_of(Run).c.id == run_id)).first() is not None
        if taken:  # a newer run took the id: back under a new one
            run_row.pop("id")
        key = conn.execute(table_of(Run).insert().values(**run_row)).inserted_primary_key
        assert key is not None  # an insert of one row has its key
        new_id = key[0]
        batch: dict[str, list[dict[str, Any]]] = {k: [] for k in TABLES}

        def flush(kind: str) -> None:
            if batch[kind]:
                conn.execute(table_of(TABLES[kind]).insert(), batch[kind])
                batch[kind] = []

        for kind, row in lines:
            row.pop("id", None)  # fresh ids: the old ones may belong to newer rows
            row["run_id"] = new_id
            batch[kind].append(row)
            if len(batch[kind]) >= BATCH:
                flush(kind)
        for kind in TABLES:
            flush(kind)
        if head["rankings"]:
            conn.execute(
                sa.update(table_of(Ranking))
                .where(col(Ranking.id).in_(head["rankings"]), col(Ranking.run_id).is_(None))
                .values(run_id=new_id)
            )
    path.unlink()
    return int(new_id)


def empty(store: Store, run_ids: Sequence[int] | None = None) -> int:
    """Remove trash files for good (all, or these runs'); returns how many."""
    gone = 0
    for e in entries(store):
        if run_ids is None or e.run_id in run_ids:
            e.path.unlink(missing_ok=True)
            gone += 1
    return gone
