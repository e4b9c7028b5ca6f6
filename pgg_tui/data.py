"""What the app shows, read from the store: plain dataclasses built in worker threads. No Textual here."""

from __future__ import annotations

import functools
import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from engine.registry import TASKS
from engine.store import Run, Store, WorkerLease, now
from pgg_tui.aggregate import Group, group_runs, variant_label

SCORE_METRICS = ("dev/score", "val/score", "train/score")
TAU = "reward/tau"  # grounding quality of the last reward phase (pgg runs)


@dataclass
class RunRow:
    id: int
    status: str
    task: str
    dataset: str
    variant: str
    seed: int
    dataset_seed: int
    phase: str
    step: int
    total: int
    score: float | None
    elapsed: float | None
    eta: float | None
    group_id: str
    error: str = ""
    tau: float | None = None
    parent_id: int | None = None  # the attempt this run retries

    def matches(self, text: str) -> bool:
        hay = f"{self.id} {self.status} {self.task} {self.dataset} {self.variant} seed={self.seed} {self.group_id}".lower()
        return all(part in hay for part in text.lower().split())


def fetch_rows(store: Store, ids: list[int] | None = None, after_id: int | None = None) -> list[RunRow]:
    """One row per run, from a Core query of the columns shown (no ORM objects: it runs every poll).

    With `ids` / `after_id`: only those runs and the runs newer than after_id (an incremental poll).
    """
    t = Run.__table__  # type: ignore[attr-defined]
    cols = [t.c[n] for n in ("id", "status", "task", "dataset", "method", "overrides", "seed", "dataset_seed", "phase",
                             "step", "total_steps", "results", "started_at", "finished_at", "group_id", "error",
                             "parent_id")]
    q = sa.select(*cols).order_by(t.c.id)
    if after_id is not None:
        q = q.where(sa.or_(t.c.id.in_(ids or []), t.c.id > after_id))
    with store.read() as s:
        runs = s.connection().execute(q).all()
    live = [r.id for r in runs if r.status == "running"]
    latest = store.latest_metrics(live, SCORE_METRICS + (TAU,))
    now_ = now()
    rows = []
    for r in runs:
        if r.results:
            score, tau = _result_score(r.task, r.results)
        else:
            score = next((latest[(r.id, m)] for m in SCORE_METRICS if (r.id, m) in latest), None)
            tau = latest.get((r.id, TAU))
        end = r.finished_at or (now_ if r.status == "running" else None)
        elapsed = end - r.started_at if r.started_at and end else None
        eta = None
        if r.status == "running" and r.started_at and r.step and r.total_steps:
            eta = (now_ - r.started_at) / r.step * (r.total_steps - r.step)
        rows.append(RunRow(r.id, r.status, r.task, r.dataset, variant_label(r.method, r.overrides), r.seed, r.dataset_seed, r.phase or "", r.step,
                           r.total_steps, score, elapsed, eta, r.group_id,
                           r.error.strip().splitlines()[-1] if r.error and r.error.strip() else "", tau,
                           r.parent_id))
    return rows


@functools.lru_cache(maxsize=8192)
def _result_score(task: str, results: str) -> tuple[float | None, float | None]:
    """The headline number of a finished run and its grounding quality; cached, since finished runs are
    re-read on every full refresh."""
    metric = TASKS[task].result_metric if task in TASKS else ""
    res = json.loads(results)
    value, tau = res.get(metric), res.get(TAU)
    return (float(value) if isinstance(value, (int, float)) else None,
            float(tau) if isinstance(tau, (int, float)) else None)


def fetch_groups(store: Store) -> list[Group]:
    return group_runs(store.runs())


@dataclass
class CompareTable:
    """The paper's Table 1 layout: methods as rows, datasets as columns, mean (std) over seeds."""

    task: str
    metric: str
    methods: list[str]
    datasets: list[str]
    cells: dict[tuple[str, str], tuple[float, float, int]] = field(default_factory=dict)

    def best(self, dataset: str) -> str | None:
        col = [(m, self.cells[(m, dataset)][0]) for m in self.methods if (m, dataset) in self.cells]
        return max(col, key=lambda x: x[1])[0] if col else None


def compare_metrics(task: str) -> list[str]:
    if task == "summarize":
        return ["test/rouge1", "test/rouge2", "test/rougeL", "test/rougeLsum", "test/meteor"]
    return ["test/accuracy", "test/score", "dev/score"]


def fetch_compare(store: Store, task: str, metric: str) -> CompareTable:
    groups = [g for g in group_runs(store.runs()) if g.task == task]
    table = CompareTable(task, metric, [], [])
    for g in groups:
        if metric not in g.stats:
            continue
        name = g.variant if g.key[3] == "paper" else f"{g.variant} · {g.key[3]}"
        if name not in table.methods:
            table.methods.append(name)
        if g.dataset not in table.datasets:
            table.datasets.append(g.dataset)
        s = g.stats[metric]
        table.cells[(name, g.dataset)] = (s.mean, s.std, s.n)
    return table


def worker_alive(store: Store) -> str | None:
    """'pid N on HOST' if a worker holds this store's lease, else None."""
    with store.read() as s:
        lease = s.get(WorkerLease, 1)
    if lease is None or now() - lease.heartbeat_at > 15:
        return None
    return f"pid {lease.pid} on {lease.host}"


def start_worker(store: Store) -> str:
    """Start `pgg worker --detach` for this store; returns what to tell the person."""
    holder = worker_alive(store)
    if holder:
        return f"a worker is already running ({holder})"
    subprocess.Popen([sys.executable, "-m", "pgg_tui", "worker"], stdin=subprocess.DEVNULL,
                     stdout=open(os.devnull, "wb"), stderr=open("pgg-worker.log", "ab"), start_new_session=True,
                     env=dict(os.environ, PGG_DB=store.url))  # not in argv: a password would show in `ps`
    for _ in range(40):  # wait briefly so the table shows it running
        time.sleep(0.1)
        if worker_alive(store):
            return f"worker started on {socket.gethostname()} (log: pgg-worker.log)"
    return "worker starting (log: pgg-worker.log)"


DEMO = [  # (task, dataset, method, seeds): tiny models, CPU, a minute or two in all
    ("prompt", "toy-sentiment", "pgg", "0-2"),
    ("prompt", "toy-sentiment", "seq-reinforce", "0-1"),
    ("summarize", "toy-news", "pgg", "0-1"),
    ("summarize", "toy-news", "mle", "0"),
]


def queue_demo(store: Store) -> list[int]:
    from engine.config import to_json
    from engine.registry import plan_runs

    ids: list[int] = []
    for task, dataset, method, seeds in DEMO:
        ids += store.queue(plan_runs(task, dataset, method, seeds, "0", "tiny"), to_json)
    return ids


@dataclass
class RunDetail:
    """Incremental state of one run's view: rows after the last seen ids are appended."""

    run: Run | None = None
    metrics: dict[str, list[tuple[str, int, float]]] = field(default_factory=dict)  # name -> (phase, step, value)
    phases: list[Any] = field(default_factory=list)
    logs: list[str] = field(default_factory=list)
    last_metric: int = 0
    last_log: int = 0


def poll_detail(store: Store, run_id: int, d: RunDetail) -> tuple[RunDetail, list[str]]:
    """Read only new rows into `d`; returns it and the log lines that are new."""
    d.run = store.get(run_id)
    for mid, phase, step, name, value in store.metric_tuples(run_id, after_id=d.last_metric):
        d.metrics.setdefault(name, []).append((phase, step, value))
        d.last_metric = mid
    new_logs = []
    for line in store.logs(run_id, after_id=d.last_log):
        new_logs.append(line.text)
        d.last_log = line.id  # type: ignore[assignment]
    d.logs += new_logs
    d.phases = store.phases(run_id)
    return d, new_logs
