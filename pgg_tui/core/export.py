"""Runs, metrics and samples as records, and those records as CSV, JSON or JSONL: one column set for
`pgg export`, `pgg runs --json`, `pgg show --json` and the app's export key."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime, UTC
from collections.abc import Iterator, Sequence
from typing import Any

from engine.errors import ConfigError
from engine.store import Run, Store

RUN_FIELDS = (
    "id",
    "status",
    "task",
    "dataset",
    "method",
    "seed",
    "dataset_seed",
    "preset",
    "phase",
    "step",
    "total_steps",
    "attempt",
    "parent_id",
    "group_id",
    "gpu",
    "host",
    "created_at",
    "started_at",
    "finished_at",
    "name",
    "priority",
    "notes",
    "job_id",
)
FORMATS = ("csv", "json", "jsonl")
KINDS = ("runs", "metrics", "samples")


def run_record(r: Run, full: bool = False) -> dict[str, Any]:
    """A run as plain data; `full` adds its config, folder, process and error."""
    d: dict[str, Any] = {k: getattr(r, k) for k in RUN_FIELDS}
    d["overrides"] = json.loads(r.overrides)
    d["tags"] = json.loads(r.tags or "[]")
    d["after"] = json.loads(r.after or "[]")  # the runs it waits for (`pgg queue --after`)
    d["results"] = json.loads(r.results) if r.results else None
    if full:
        d.update(
            config=json.loads(r.config),
            error=r.error,
            run_dir=r.run_dir,
            pid=r.pid,
            worker=r.worker,
            exit_code=r.exit_code,
            heartbeat_at=r.heartbeat_at,
            cancel_requested=r.cancel_requested,
        )
    return d


def iso_time(t: float | None) -> str:
    """A CSV cell's time: ISO 8601 in UTC to the second, as spreadsheets and pandas read it (JSON keeps the
    epoch seconds)."""
    if t is None:
        return ""
    return datetime.fromtimestamp(t, tz=UTC).isoformat(timespec="seconds")


def flat_run(r: Run) -> dict[str, Any]:
    """One CSV row: the run's fields, then config.* and result.* columns (lists and tables left out)."""
    d = run_record(r, full=True)
    flat = {
        k: iso_time(v) if k.endswith("_at") else v
        for k, v in d.items()
        if not isinstance(v, (dict, list)) and k != "error"
    }
    flat["overrides"] = r.overrides
    flat["tags"] = ",".join(d["tags"])
    flat.update({f"config.{k}": v for k, v in d["config"].items()})
    flat.update({f"result.{k}": v for k, v in (d["results"] or {}).items() if not isinstance(v, (dict, list))})
    return flat


def records(store: Store, runs: Sequence[Run], kind: str, flat: bool) -> Iterator[dict[str, Any]]:
    """Rows of one kind for these runs, streamed run by run (a store's metrics can run to millions)."""
    if kind not in KINDS:
        raise ConfigError(f"unknown kind {kind!r}; choose one of: {', '.join(KINDS)}")
    for r in runs:
        rid: int = r.id  # type: ignore[assignment]
        if kind == "runs":
            yield flat_run(r) if flat else run_record(r, full=True)
        elif kind == "metrics":
            for _mid, phase, step, name, value in store.metric_tuples(rid):
                yield dict(run_id=rid, step=step, phase=phase, name=name, value=value)
        else:
            for s in store.samples(rid):
                tokens, rewards = json.loads(s.tokens), json.loads(s.rewards)
                row = dict(
                    run_id=rid,
                    step=s.step,
                    phase=s.phase,
                    kind=s.kind,
                    context=s.context,
                    text=s.text,
                    true_score=s.true_score,
                    model_score=s.model_score,
                )
                if flat:  # a CSV cell holds the token lists as JSON
                    row.update(tokens=s.tokens, rewards=s.rewards, extra=s.extra)
                else:
                    row.update(tokens=tokens, rewards=rewards, extra=json.loads(s.extra))
                yield row


def render(rows: Sequence[dict[str, Any]], fmt: str) -> str:
    if fmt not in FORMATS:
        raise ConfigError(f"unknown format {fmt!r}; choose one of: {', '.join(FORMATS)}")
    if fmt == "json":
        return json.dumps(list(rows), indent=1) + "\n"
    if fmt == "jsonl":
        return "".join(json.dumps(row) + "\n" for row in rows)
    keys: list[str] = []
    seen: set[str] = set()
    for row in rows:  # the union of columns, in first-seen order (runs differ in config and results)
        for k in row:
            if k not in seen:
                seen.add(k)
                keys.append(k)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=keys)
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()
