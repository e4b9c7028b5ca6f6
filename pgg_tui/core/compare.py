"""A comparison of methods, chosen without peeking: per method, the configuration with the best mean
validation number (the task's `select_metric`, never a test number), then its test result over seeds as
mean ± std and a 95% Student-t interval, with what each method spent and how many configurations it tried.

A configuration is everything a run was queued with except its seeds (task, dataset, method, preset,
overrides); its seeds are the done runs, each seed counted once (the newest attempt).
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from engine.registry import get_task
from engine.store import Run, Store
from pgg_tui.core.aggregate import Group, Stat, group_runs
from pgg_tui.core.views import CompareTable

# two-sided 97.5% quantiles of Student's t for df = 1..30; beyond, the normal's 1.96 is within 2%
_T975 = (
    12.706,
    4.303,
    3.182,
    2.776,
    2.571,
    2.447,
    2.365,
    2.306,
    2.262,
    2.228,
    2.201,
    2.179,
    2.160,
    2.145,
    2.131,
    2.120,
    2.110,
    2.101,
    2.093,
    2.086,
    2.080,
    2.074,
    2.069,
    2.064,
    2.060,
    2.056,
    2.052,
    2.048,
    2.045,
    2.042,
)


def t_interval(values: Sequence[float]) -> tuple[float, float] | None:
    """The 95% Student-t interval of the mean (None below two values: no spread to estimate)."""
    n = len(values)
    if n < 2:
        return None
    mean, sd = statistics.fmean(values), statistics.stdev(values)
    half = (_T975[n - 2] if n - 1 <= len(_T975) else 1.96) * sd / math.sqrt(n)
    return mean - half, mean + half


@dataclass
class MethodResult:
    """One method's line of a comparison: its best configuration by validation, and what it tried."""

    method: str
    best: Group
    tried: int  # configurations of this method in the comparison (with at least one done seed)
    select: Stat  # the validation number of the best configuration, over its seeds
    test: Stat
    interval: tuple[float, float] | None
    spent: dict[str, Stat] = field(default_factory=dict)  # SPENT: queries, prompts scored, policy samples, time

    @property
    def config(self) -> str:
        overrides = json.loads(self.best.key[4] or "{}")
        return " ".join(f"{k}={v}" for k, v in sorted(overrides.items())) or "defaults"


@dataclass
class Comparison:
    task: str
    dataset: str
    select_metric: str
    test_metric: str
    methods: list[MethodResult]

    @property
    def unequal_tuning(self) -> bool:
        """Some method tried more configurations than another: its best is the better searched one."""
        return len({m.tried for m in self.methods}) > 1


SPENT = ("queries/signal", "queries/prompts", "samples/policy", "time/train_s")


def with_selection(run: Run, metric: str) -> Run:
    """A prompt run recorded before dev/top_score: the same number from its ranked final candidates (their
    dev scores, best first, the top final_top of them), so older sweeps compare alike; failing those, its
    dev/score (the single best candidate's)."""
    if metric != "dev/top_score" or not run.results:
        return run
    results = json.loads(run.results)
    if metric in results:
        return run
    tops = results.get("top_prompts")
    if isinstance(tops, list) and tops:
        top = int(json.loads(run.config).get("final_top", 3))
        scores = [float(t["score"]) for t in tops[:top]]
        value: Any = sum(scores) / len(scores)
    else:
        value = results.get("dev/score")
    return run.model_copy(update={"results": json.dumps({**results, metric: value})})


def compare(
    runs: Iterable[Run], task: str, dataset: str | None = None, test_metric: str | None = None
) -> list[Comparison]:
    """Per dataset of `task`, each method's best configuration by mean validation number over its seeds."""
    spec = get_task(task)
    test_name = test_metric or spec.result_metric
    mine = [with_selection(r, spec.select_metric) for r in runs if r.task == task]
    groups = [g for g in group_runs(mine) if dataset is None or g.dataset == dataset]
    out: list[Comparison] = []
    for ds in sorted({g.dataset for g in groups}):
        lines: list[MethodResult] = []
        for method in spec.methods:
            configs = [g for g in groups if g.dataset == ds and g.method == method and spec.select_metric in g.stats]
            if not configs:
                continue
            best = max(configs, key=lambda g: (g.stats[spec.select_metric].mean, g.stats[spec.select_metric].n))
            test = best.stats.get(test_name, Stat())
            lines.append(
                MethodResult(
                    method,
                    best,
                    len(configs),
                    best.stats[spec.select_metric],
                    test,
                    t_interval(test.values),
                    {k: best.stats[k] for k in SPENT if k in best.stats},
                )
            )
        if lines:
            out.append(Comparison(task, ds, spec.select_metric, test_name, lines))
    return out


def comparison_rows(c: Comparison) -> list[list[str]]:
    """The table `pgg compare` prints: one row per method."""
    rows = []
    for m in c.methods:
        t = m.test
        ci = f"[{m.interval[0]:.2f}, {m.interval[1]:.2f}]" if m.interval else "–"
        rows.append(
            [
                m.method,
                m.config,
                f"{m.select.mean:.4g}",
                f"{t.mean:.2f} ± {t.std:.2f}" if t.values else "–",
                ci,
                str(t.n),
                str(m.tried),
                *(f"{m.spent[k].mean:,.0f}" if k in m.spent else "–" for k in SPENT),
            ]
        )
    return rows


COMPARISON_HEADER = (
    "method",
    "best config (by validation)",
    "validation",
    "test mean ± std",
    "95% CI (t)",
    "seeds",
    "configs tried",
    "queries (pairs)",
    "prompts scored",
    "policy samples",
    "train s",
)


def validated_table(
    store: Store, task: str, metric: str, ids: list[int] | None = None
) -> tuple[CompareTable, list[str]]:
    """The app's Compare in its `v` mode: one row per method, each cell its best configuration by validation,
    and one note line per method and dataset: the configuration chosen, how many were tried, the 95% interval."""
    runs = [] if ids is not None and not ids else store.runs(ids=ids)
    found = compare(runs, task, test_metric=metric)
    table = CompareTable(task, metric, [], [])
    notes: list[str] = []
    for c in found:
        table.datasets.append(c.dataset)
        for m in c.methods:
            if m.method not in table.methods:
                table.methods.append(m.method)
            if m.test.values:
                table.cells[(m.method, c.dataset)] = (m.test.mean, m.test.std, m.test.n)
            ci = f" · 95% CI {m.interval[0]:.1f}–{m.interval[1]:.1f}" if m.interval else ""
            notes.append(
                f"{c.dataset} · {m.method}: {m.config} · best of {m.tried} · {c.select_metric} {m.select.mean:.4g}{ci}"
            )
        if c.unequal_tuning:
            notes.append(f"{c.dataset}: unequal tuning (the methods tried different numbers of configs)")
    return table, notes
