"""One run in words: what `pgg show` (text and --json) and the app's run screen say about a run, built once.

`build_report` is pure (the run screen builds it from the rows it already polled); `run_report` reads what it
needs from the store first (`pgg show`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from engine.config import field_help
from engine.registry import TASKS
from pgg_tui.core.present import (
    CHANCE,
    TAU,
    fmt_metric,
    printable,
    repeatability,
    run_label,
    tau_by_phase,
    usage_of,
    usage_text,
)
from pgg_tui.core.views import PhaseView, RunView, phase_view

if TYPE_CHECKING:
    from engine.store import Store

# settings every listing already names (task / dataset / method / seed), left out of "changed from defaults"
NAMED = ("dataset", "method", "seed", "dataset_seed")
PEOPLE_TAU = "reward/human_tau"


@dataclass(frozen=True)
class ConfigRow:
    name: str
    value: Any
    default: Any
    help: str

    @property
    def changed(self) -> bool:
        return bool(self.value != self.default)


@dataclass(frozen=True)
class RunReport:
    run: RunView
    phases: list[PhaseView] = field(default_factory=list)
    latest: dict[str, float] = field(default_factory=dict)  # each metric's last value
    grounding_tau: dict[str, float | None] = field(default_factory=dict)  # reward phase -> Kendall tau (None: n/a)
    people_tau: list[float] = field(default_factory=list)  # per reward phase, on held-out people-ranked lists
    people_count: int = 0  # rankings people made for this run
    config: list[ConfigRow] = field(default_factory=list)
    # a queued run's `--after` runs: (run, its newest attempt, that attempt's status; None: deleted)
    waits: list[tuple[int, int, str | None]] = field(default_factory=list)

    @property
    def waits_text(self) -> str:
        """'run 12 (running), run 13 (done as run 20)': what a queued run waits for, as it stands."""
        return ", ".join(
            f"run {rid} ({status or 'deleted'}" + (f" as run {newest}" if newest != rid else "") + ")"
            for rid, newest, status in self.waits
        )

    @property
    def progress(self) -> str:
        """'reward 2 37/120 · step 40/120 · ETA 3m' (empty before the run has a phase or a step count)."""
        return self.run.where if self.run.phase or self.run.total_steps else ""

    @property
    def place(self) -> str:
        """Where it trains (several hosts may share a store): host, GPU, Slurm job."""
        r = self.run
        if not r.host:
            return ""
        return r.host + (f" gpu {r.gpu}" if r.gpu else "") + (f" · Slurm job {r.job_id}" if r.job_id else "")

    @property
    def usage(self) -> str:
        """The process's last CPU and memory reading ('' before the first, or for runs older than schema 9)."""
        return usage_text(self.run.resources)

    @property
    def changed(self) -> dict[str, Any]:
        return {c.name: c.value for c in self.config if c.changed and c.name not in NAMED}

    @property
    def scalar_results(self) -> dict[str, Any]:
        return {
            k: v for k, v in self.run.results.items() if not isinstance(v, (list, dict)) and not k.startswith("env/")
        }

    @property
    def env(self) -> dict[str, Any]:
        return {k.removeprefix("env/"): v for k, v in self.run.results.items() if k.startswith("env/")}

    @property
    def last_grounding_tau(self) -> float | None:
        return list(self.grounding_tau.values())[-1] if self.grounding_tau else None

    def lines(self) -> list[str]:
        """`pgg show`: one labelled line per fact."""
        r = self.run
        out = [
            f"run {r.id} · {r.status} · {r.task} / {r.dataset} / {r.variant} · seed {r.seed} · "
            f"dataset seed {r.dataset_seed} · preset {r.preset} · attempt {r.attempt}"
            + (f" (retries run {r.parent_id})" if r.parent_id else "")
        ]
        if r.name or r.tags:
            out.append(f"name      {run_label(r.name, list(r.tags))}")
        if r.notes:
            out.append("notes     " + r.notes.strip().replace("\n", "\n          "))
        if r.status == "queued" and r.priority:
            out.append(f"priority  {r.priority}")
        if r.status == "queued" and self.waits:
            out.append(f"after     {self.waits_text}; it starts once all are done")
        if self.progress:
            out.append(f"progress  {self.progress}")
        if self.phases:
            out.append(
                "phases    "
                + ", ".join(
                    f"{p.label} [{p.start_step}–{p.end_step if p.end_step is not None else '…'}]" for p in self.phases
                )
            )
        if self.latest:
            out.append("metrics   " + ", ".join(f"{k} {fmt_metric(k, v)}" for k, v in self.latest.items()))
        if any(t is not None for t in self.grounding_tau.values()):
            taus = [f"{t:+.2f}" if t is not None else "n/a" for t in self.grounding_tau.values()]
            chance = self.latest.get("reward/chance_loss", float("nan"))
            val = self.latest.get("reward/best_val_loss", self.latest.get("reward/val_loss", float("nan")))
            out.append(
                f"grounding Kendall tau per reward phase {', '.join(taus)} (0 = chance); "
                f"last validation ListMLE {val:.3f} vs chance ln K! {chance:.3f}"
            )
        if self.people_tau:  # preference=human or mixed: the same against held-out people-ranked lists
            out.append(
                f"people    Kendall tau on held-out rankings per reward phase "
                f"{', '.join(f'{t:+.2f}' for t in self.people_tau)}; {self.people_count} ranking(s) by people "
                f"(pgg rankings export {r.id})"
            )
        if r.results:
            out.append(
                "results   "
                + ", ".join(
                    f"{k} {fmt_metric(k, v)}" if isinstance(v, (int, float)) else f"{k} {v}"
                    for k, v in self.scalar_results.items()
                )
            )
            if self.env:
                out.append("made by   " + ", ".join(f"{k} {v}" for k, v in self.env.items()))
            if "device" in self.env:
                out.append("repeats   " + repeatability(str(self.env["device"]), self.env.get("threads")))
        if self.place:
            out.append(f"where     {self.place}")
        if self.usage:
            out.append(f"uses      {self.usage}" + ("" if r.status == "running" else " (its last reading)"))
        if r.run_dir:
            out.append(f"run dir   {r.run_dir}")
        out.append("config    " + (", ".join(f"{k}={v}" for k, v in self.changed.items()) or "paper defaults"))
        if r.error:
            out.append("error     " + r.error.strip().replace("\n", "\n          "))
        return [printable(line) for line in out]


def config_rows(task: str, config: Mapping[str, Any]) -> list[ConfigRow]:
    """The run's whole config, each setting with its default and help (unknown tasks: no defaults)."""
    helps = field_help(TASKS[task].config_cls) if task in TASKS else {}
    return [ConfigRow(k, v, helps.get(k, (None, ""))[0], helps.get(k, (None, ""))[1]) for k, v in config.items()]


def build_report(
    run: RunView,
    phases: Sequence[PhaseView],
    series: Mapping[str, Sequence[tuple[str, int, float]]],
    people_count: int = 0,
) -> RunReport:
    """A report from rows already read: `series` maps a metric name to its (phase, step, value) rows in order."""
    latest = {name: rows[-1][2] for name, rows in series.items() if rows}
    tau = tau_by_phase([p for p, _, _ in series.get(CHANCE, [])], [(p, v) for p, _, v in series.get(TAU, [])])
    people = [v for _, _, v in series.get(PEOPLE_TAU, [])]
    return RunReport(run, list(phases), latest, tau, people, people_count, config_rows(run.task, run.config))


def run_report(store: Store, run_id: int) -> RunReport:
    """Read one run's record, phases and metrics from the store and report them (`pgg show`)."""
    from engine import rankings

    run = RunView.of(store.get(run_id))
    series: dict[str, list[tuple[str, int, float]]] = {}
    for m in store.metrics(run_id):
        series.setdefault(m.name, []).append((m.phase, m.step, m.value))
    phases = [phase_view(p) for p in store.phases(run_id)]
    people = rankings.answered_count(store, [run_id]) if series.get(PEOPLE_TAU) else 0
    report = build_report(run, phases, series, people)
    if run.status == "queued" and run.after:
        states = store.after_states(run.after)
        report = replace(report, waits=[(rid, *states[rid]) for rid in run.after])
    return report


def report_json(store: Store, report: RunReport) -> dict[str, Any]:
    """`pgg show --json`: the run's record (config, folder, process, error), its phases and latest metrics."""
    from pgg_tui.core.export import run_record

    d = run_record(store.get(report.run.id), full=True)
    d["phases"] = [
        dict(kind=p.kind, index=p.index, start_step=p.start_step, end_step=p.end_step) for p in report.phases
    ]
    d["latest_metrics"] = dict(report.latest)
    d["grounding_tau"] = list(report.grounding_tau.values())
    if report.people_tau:
        d["people"] = dict(tau=report.people_tau, rankings=report.people_count)
    d["place"] = report.place
    d["resources"] = usage_of(report.run.resources)
    d["config_changed"] = report.changed
    d["progress"] = report.progress
    if report.waits:
        d["waits_for"] = [dict(run=rid, attempt=newest, status=status) for rid, newest, status in report.waits]
    return d
