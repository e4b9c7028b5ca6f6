"""What the front ends show, read from the store: plain dataclasses, built off the UI thread."""

from __future__ import annotations

import functools
import json
import time
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlmodel import col, select

from engine.lifecycle import phase_label
from engine.registry import TASKS
from engine.store import Phase, Run, Store, now
from pgg_tui.core.aggregate import Group, group_runs
from pgg_tui.core.present import (
    CHANCE,
    TAU,
    duration,
    headline,
    last_line,
    number,
    printable,
    shared_overrides,
    variant_label,
    waiting_text,
)

# a live run's score, the first it has: the prompt task's dev score, summarization's validation ROUGE-1
# (its val/score, R1 + 2·R2 + RLsum, reads as a broken percentage in a cell), the train score
SCORE_METRICS = ("dev/score", "val/rouge1", "val/score", "train/score")


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
    score_name: str = ""  # which metric `score` is: the headline result when done, a live score before
    cancelling: bool = False  # running, asked to stop: it saves a checkpoint at its next step
    phase_step: int = 0  # progress inside the current phase (a reward training), of phase_total
    phase_total: int = 0
    name: str = ""
    tags: tuple[str, ...] = ()
    priority: int = 0
    waiting_for: int = 0  # rankings the run waits for from people
    resources: str | None = None  # its process's last CPU and memory reading (JSON, engine.resources)
    method: str = ""
    overrides: str = "{}"  # JSON: the settings the user changed (`variant` names them after the method)
    after: tuple[int, ...] = ()  # the runs a queued run waits for (`pgg queue --after`)

    @property
    def shown_status(self) -> str:
        return "cancelling…" if self.cancelling else self.status

    def matches(self, text: str) -> bool:
        hay = (
            f"{self.id} {self.status} {self.task} {self.dataset} {self.variant} seed={self.seed} {self.group_id} "
            f"{self.name} {' '.join('#' + t for t in self.tags)}"
        ).lower()
        return all(part in hay for part in text.lower().split())


def fetch_rows(store: Store, ids: list[int] | None = None, after_id: int | None = None) -> list[RunRow]:
    """One row per run, from a Core query of the columns shown (no ORM objects: it runs every poll).

    With `ids` / `after_id`: only those runs and the runs newer than after_id (an incremental poll).
    """
    t = Run.__table__  # type: ignore[attr-defined]
    cols = [
        t.c[n]
        for n in (
            "id",
            "status",
            "task",
            "dataset",
            "method",
            "overrides",
            "seed",
            "dataset_seed",
            "phase",
            "step",
            "total_steps",
            "results",
            "started_at",
            "finished_at",
            "group_id",
            "error",
            "parent_id",
            "cancel_requested",
            "phase_step",
            "phase_total",
            "eta_at",
            "name",
            "tags",
            "priority",
            "waiting_for",
            "resources",
            "after",
        )
    ]
    q = sa.select(*cols).order_by(t.c.id)
    if after_id is not None:
        q = q.where(sa.or_(t.c.id.in_(ids or []), t.c.id > after_id))
    with store.read() as s:
        runs = s.connection().execute(q).all()
    live = [r.id for r in runs if r.status == "running"]
    recorded = store.latest_metric_rows(live, SCORE_METRICS + (TAU, CHANCE))
    latest = {k: value for k, (_, value) in recorded.items()}
    now_ = now()
    rows = []
    for r in runs:
        if r.results:
            score_name, score, tau = _result_score(r.task, r.results)
        else:
            score_name = next((m for m in SCORE_METRICS if (r.id, m) in latest), "")
            score = latest.get((r.id, score_name))
            tau = live_tau(recorded, r.id)
        end = r.finished_at or (now_ if r.status == "running" else None)
        elapsed = end - r.started_at if r.started_at and end else None
        eta = None
        if r.status == "running" and r.eta_at is not None:
            eta = max(0.0, r.eta_at - now_)  # the engine's own estimate, over the phases still to come
        rows.append(
            RunRow(
                r.id,
                r.status,
                r.task,
                r.dataset,
                variant_label(r.method, r.overrides),
                r.seed,
                r.dataset_seed,
                r.phase or "",
                r.step,
                r.total_steps,
                score,
                elapsed,
                eta,
                r.group_id,
                last_line(r.error),
                tau,
                r.parent_id,
                score_name,
                bool(r.cancel_requested) and r.status == "running",
                r.phase_step or 0,
                r.phase_total or 0,
                r.name or "",
                tuple(json.loads(r.tags or "[]")),
                r.priority or 0,
                (r.waiting_for or 0) if r.status == "running" else 0,
                r.resources if r.status == "running" else None,
                r.method,
                r.overrides or "{}",
                tuple(json.loads(r.after or "[]")) if r.status == "queued" else (),
            )
        )
    return rows


def live_tau(recorded: dict[tuple[int, str], tuple[str, float]], run_id: int) -> float | None:
    """A running run's last reward phase's tau: none if that phase recorded its chance level but no tau
    (nothing to rank), rather than the phase before's."""
    tau, chance = recorded.get((run_id, TAU)), recorded.get((run_id, CHANCE))
    if tau is None or (chance is not None and chance[0] != tau[0]):
        return None
    return tau[1]


@functools.lru_cache(maxsize=8192)
def _result_score(task: str, results: str) -> tuple[str, float | None, float | None]:
    """The headline metric of a finished run, its value and the grounding quality; cached, since finished
    runs are re-read on every full refresh."""
    res = json.loads(results)
    head = headline(task, res)
    return (head[0], head[1], number(res, TAU)) if head else ("", None, number(res, TAU))


def fetch_groups(store: Store, ids: list[int] | None = None) -> list[Group]:
    """Groups of all runs, or of these runs only (what a filter or a selection shows)."""
    if ids is not None and not ids:
        return []
    return group_runs(store.runs(ids=ids))


@dataclass
class CompareTable:
    """The paper's Table 1 layout: methods as rows, datasets as columns, mean (std) over seeds."""

    task: str
    metric: str
    methods: list[str]
    datasets: list[str]
    cells: dict[tuple[str, str], tuple[float, float, int]] = field(default_factory=dict)
    shared: dict[str, Any] = field(default_factory=dict)  # settings every row holds, left out of its name

    def best(self, dataset: str) -> str | None:
        """The best mean among cells over two seeds or more: one seed is no evidence of a best method."""
        col = [
            (m, self.cells[(m, dataset)][0])
            for m in self.methods
            if (m, dataset) in self.cells and self.cells[(m, dataset)][2] >= 2
        ]
        return max(col, key=lambda x: x[1])[0] if col else None


def compare_metrics(task: str) -> list[str]:
    return list(TASKS[task].compare_metrics) if task in TASKS else []


def fetch_compare(store: Store, task: str, metric: str, ids: list[int] | None = None) -> CompareTable:
    groups = [g for g in fetch_groups(store, ids) if g.task == task and metric in g.stats]
    shared = dict(shared_overrides(g.key[4] for g in groups)) if len(groups) > 1 else {}
    table = CompareTable(task, metric, [], [], shared=shared)
    for g in groups:
        variant = variant_label(g.method, g.key[4], shared)  # a sweep's fixed part is said once, below
        name = variant if g.key[3] == "paper" else f"{variant} · {g.key[3]}"
        if name not in table.methods:
            table.methods.append(name)
        if g.dataset not in table.datasets:
            table.datasets.append(g.dataset)
        s = g.stats[metric]
        table.cells[(name, g.dataset)] = (s.mean, s.std, s.n)
    return table


@dataclass(frozen=True)
class RunView:
    """One run as its view shows it: plain values, JSON already decoded."""

    id: int
    status: str
    task: str
    dataset: str
    variant: str
    seed: int
    dataset_seed: int
    phase: str
    step: int
    total_steps: int
    finished_at: float | None
    error: str
    config: dict[str, Any]
    results: dict[str, Any]
    phase_step: int = 0
    phase_total: int = 0
    name: str = ""
    tags: tuple[str, ...] = ()
    notes: str = ""
    eta: float | None = None  # seconds left, by the engine's estimate, while it runs
    host: str = ""
    gpu: str | None = None  # CUDA_VISIBLE_DEVICES of its slot ("" on a CPU slot)
    job_id: str | None = None  # its Slurm job
    waiting_for: int = 0  # rankings the run waits for from people
    preset: str = ""
    attempt: int = 1
    parent_id: int | None = None  # the attempt this run retries
    priority: int = 0
    run_dir: str = ""
    resources: str | None = None  # its process's last CPU and memory reading (JSON, engine.resources)
    after: tuple[int, ...] = ()  # the runs a queued run waits for (`pgg queue --after`)

    @classmethod
    def of(cls, r: Run) -> RunView:
        eta = max(0.0, r.eta_at - now()) if r.eta_at is not None and r.status == "running" else None
        return cls(
            r.id or 0,
            r.status,
            r.task,
            r.dataset,
            variant_label(r.method, r.overrides),
            r.seed,
            r.dataset_seed,
            r.phase or "",
            r.step,
            r.total_steps,
            r.finished_at,
            printable(r.error or ""),
            json.loads(r.config),
            json.loads(r.results) if r.results else {},
            r.phase_step,
            r.phase_total,
            r.name,
            tuple(json.loads(r.tags or "[]")),
            r.notes,
            eta,
            r.host or "",
            r.gpu,
            r.job_id,
            (r.waiting_for or 0) if r.status == "running" else 0,
            r.preset,
            r.attempt,
            r.parent_id,
            r.priority or 0,
            r.run_dir or "",
            r.resources,
            tuple(json.loads(r.after or "[]")),
        )

    @property
    def where(self) -> str:
        """'reward 2 37/120 · step 40/120' inside a reward training, else 'policy 40/120'; and the ETA."""
        inside = (
            f" {self.phase_step}/{self.phase_total} · step" if self.phase_total and self.status == "running" else ""
        )
        eta = f" · ETA {duration(self.eta)}" if self.eta is not None else ""
        wait = f" · {waiting_text(self.waiting_for)}" if self.waiting_for else ""
        return f"{self.phase}{inside} {self.step}/{self.total_steps}{wait}{eta}"


@dataclass(frozen=True)
class PhaseView:
    kind: str
    label: str  # "reward 2", "policy", "eval"
    start_step: int
    end_step: int | None
    started_at: float
    ended_at: float | None
    index: int = 0


def phase_view(p: Phase) -> PhaseView:
    return PhaseView(p.kind, phase_label(p.kind, p.index), p.start_step, p.end_step, p.started_at, p.ended_at, p.index)


@dataclass
class RunDetail:
    """Incremental state of one run's view: rows after the last seen ids are appended."""

    run: RunView | None = None
    metrics: dict[str, list[tuple[str, int, float]]] = field(default_factory=dict)  # name -> (phase, step, value)
    phases: list[PhaseView] = field(default_factory=list)
    logs: list[str] = field(default_factory=list)
    last_metric: int = 0
    last_log: int = 0


def poll_detail(store: Store, run_id: int, d: RunDetail) -> tuple[RunDetail, list[str]]:
    """Read only new rows into `d`; returns it and the log lines that are new."""
    d.run = RunView.of(store.get(run_id))
    for mid, phase, step, name, value in store.metric_tuples(run_id, after_id=d.last_metric):
        d.metrics.setdefault(name, []).append((phase, step, value))
        d.last_metric = mid
    new_logs = []
    for line in store.logs(run_id, after_id=d.last_log):
        new_logs.append(f"{time.strftime('%H:%M:%S', time.localtime(line.time))} {printable(line.text)}")
        d.last_log = line.id or d.last_log
    d.logs += new_logs
    d.phases = [phase_view(p) for p in store.phases(run_id)]
    return d, new_logs


@dataclass(frozen=True)
class SampleView:
    """One recorded sample with its tokens and their rewards, decoded off the UI thread."""

    id: int
    step: int
    phase: str
    kind: str
    context: str
    text: str
    tokens: list[str]
    rewards: list[float]
    model_score: float | None
    true_score: float | None
    extra: dict[str, Any]


def fetch_samples(store: Store, run_id: int, after_id: int = 0) -> list[SampleView]:
    return [
        SampleView(
            s.id or 0,
            s.step,
            s.phase,
            s.kind,
            s.context,
            s.text,
            json.loads(s.tokens),
            json.loads(s.rewards),
            s.model_score,
            s.true_score,
            json.loads(s.extra),
        )
        for s in store.samples(run_id, after_id=after_id)
    ]


@dataclass
class RunQuery:
    """Which runs a listing or an export is about; empty fields match everything."""

    statuses: tuple[str, ...] = ()
    task: str | None = None
    dataset: str | None = None
    method: str | None = None
    sweep: str | None = None
    ids: tuple[int, ...] = ()
    limit: int | None = None  # the newest N
    tags: tuple[str, ...] = ()  # runs carrying every one of these

    def matches(self, r: Run) -> bool:
        return (
            (not self.statuses or r.status in self.statuses)
            and (self.task is None or r.task == self.task)
            and (not self.tags or set(self.tags) <= set(json.loads(r.tags or "[]")))
            and (self.dataset is None or r.dataset == self.dataset)
            and (self.method is None or r.method == self.method)
            and (self.sweep is None or r.group_id == self.sweep)
            and (not self.ids or r.id in self.ids)
        )


def find_runs(store: Store, query: RunQuery) -> list[Run]:
    """The runs a query names, oldest first (with `limit`, the newest N of them). The filters and the limit are
    the query's WHERE and LIMIT, so `pgg runs -n 5` on a store of thousands reads five rows; tags (a JSON list
    per run) are matched here."""
    q = select(Run)
    if query.statuses:
        q = q.where(col(Run.status).in_(query.statuses))
    if query.task is not None:
        q = q.where(col(Run.task) == query.task)
    if query.dataset is not None:
        q = q.where(col(Run.dataset) == query.dataset)
    if query.method is not None:
        q = q.where(col(Run.method) == query.method)
    if query.sweep is not None:
        q = q.where(col(Run.group_id) == query.sweep)
    if query.ids:
        q = q.where(col(Run.id).in_(query.ids))
    if query.limit and not query.tags:
        q = q.order_by(col(Run.id).desc()).limit(query.limit)
    else:
        q = q.order_by(col(Run.id))
    with store.read() as s:
        runs = sorted((r for r in s.exec(q).all() if query.matches(r)), key=lambda r: r.id or 0)
    return runs[-query.limit :] if query.limit else runs
