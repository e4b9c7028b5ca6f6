"""One metric across runs, as curves: a line per run, or per experiment the mean over its seeds with a
± one standard deviation band. x is the step, or the wall time since each run started. Also: one run's
metrics against wall time, and the ticks of a wall-time axis."""

from __future__ import annotations

import math
from dataclasses import dataclass

import sqlalchemy as sa

from engine.schema import table_of
from engine.store import Metric, Run, Store
from pgg_tui.core.aggregate import group_key
from pgg_tui.core.present import run_label, variant_label

X_AXES = ("step", "time")


@dataclass(frozen=True)
class Curve:
    label: str
    xs: list[float]
    ys: list[float]
    lower: list[float] | None = None  # mean - std, where two seeds or more have the step
    upper: list[float] | None = None
    n: int = 1  # runs folded into it


def chart_metrics(store: Store, ids: list[int]) -> list[str]:
    """The metrics these runs recorded; the policy's and the scores first, as they are what runs are compared on."""
    names = store.metric_names(ids)
    first = [n for n in names if n.split("/")[0] in ("dev", "val", "train", "test", "policy")]
    return first + [n for n in names if n not in first]


def run_curve_label(r: Run) -> str:
    label = run_label(r.name, [])
    return f"{r.id} {variant_label(r.method, r.overrides)} s{r.seed}" + (f" {label}" if label else "")


def fetch_curves(store: Store, ids: list[int], name: str, x: str = "step", grouped: bool = False) -> list[Curve]:
    """Curves of `name` for these runs. Grouped (by everything but the seed, as the table groups): the mean
    at each step over the runs that reached it; wall time is per run only (seeds do not share a clock)."""
    if x not in X_AXES:
        raise ValueError(f"x is one of {X_AXES}, not {x!r}")
    runs = {r.id: r for r in store.runs(ids=ids)}
    per_run: dict[int, dict[float, float]] = {}
    for rid, step, t, value in store.metric_series(ids, name):
        start = runs[rid].started_at or t
        at = float(step) if x == "step" else (t - start) / 60.0  # minutes
        per_run.setdefault(rid, {})[at] = value  # the last value at a step wins
    if not grouped or x == "time":
        return [Curve(run_curve_label(runs[rid]), list(pts), list(pts.values())) for rid, pts in per_run.items()]
    groups: dict[tuple[str, ...], list[int]] = {}
    for rid in per_run:
        groups.setdefault(group_key(runs[rid]), []).append(rid)
    curves = []
    for key, members in groups.items():
        xs: list[float] = sorted({at for rid in members for at in per_run[rid]})
        mean, lower, upper = [], [], []
        for at in xs:
            vals = [per_run[rid][at] for rid in members if at in per_run[rid]]
            m = sum(vals) / len(vals)
            sd = math.sqrt(sum((v - m) ** 2 for v in vals) / (len(vals) - 1)) if len(vals) > 1 else 0.0
            mean.append(m)
            lower.append(m - sd)
            upper.append(m + sd)
        label = f"{variant_label(key[2], key[4])} · {key[1]} (n={len(members)})"
        banded = len(members) > 1
        curves.append(Curve(label, xs, mean, lower if banded else None, upper if banded else None, len(members)))
    return curves


def timed_metrics(store: Store, run_id: int, after_id: int = 0) -> list[tuple[int, str, str, float, float]]:
    """(id, name, phase, time, value) of one run's metric rows after `after_id`, in the order recorded: the run
    screen's plots against wall time read these incrementally, only while they are asked for."""
    t = table_of(Metric)
    q = (
        sa.select(t.c.id, t.c.name, t.c.phase, t.c.time, t.c.value)
        .where(t.c.run_id == run_id, t.c.id > after_id)
        .order_by(t.c.id)
    )
    with store.read() as s:
        return [tuple(r) for r in s.connection().execute(q).all()]


CLOCK_STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400)


def clock_label(seconds: float) -> str:
    """A tick's time, as short as it reads: 0, 45s, 2m, 1m30s, 1h, 2h30m."""
    s = int(round(seconds))
    if s == 0:
        return "0"
    h, m, sec = s // 3600, s % 3600 // 60, s % 60
    if h:
        return f"{h}h" + (f"{m}m" if m else "")
    if m:
        return f"{m}m" + (f"{sec}s" if sec else "")
    return f"{sec}s"


def clock_ticks(span: float, width: int, gap: int = 8) -> list[tuple[int, str]]:
    """(column, label) ticks of a wall-time axis `width` cells wide spanning `span` seconds from 0: the finest
    round step that leaves `gap` cells between ticks. Time t sits at column round(t / span · width), the
    column where a bar segment starting at t starts."""
    if span <= 0 or width <= 0:
        return [(0, "0")]
    step = next((s for s in CLOCK_STEPS if s / span * width >= gap), None)
    if step is None:  # longer than days: a day's multiple
        step = CLOCK_STEPS[-1] * math.ceil(span * gap / width / CLOCK_STEPS[-1])
    return [
        (min(width - 1, round(k * step / span * width)), clock_label(k * step)) for k in range(int(span // step) + 1)
    ]


def clock_axis(span: float, width: int) -> tuple[str, str]:
    """A wall-time axis under a bar `width` cells wide: a rule with ┬ at each tick, and the labels under
    them (the last one pulled left to fit, a label that would touch the one before left out)."""
    rule, labels = ["─"] * width, [" "] * width
    end = -2  # the last column labelled
    for col, label in clock_ticks(span, width):
        rule[col] = "┬"
        at = min(col, width - len(label))
        if at > end + 1:
            labels[at : at + len(label)] = label
            end = at + len(label) - 1
    return "".join(rule), "".join(labels).rstrip()


def log_ticks(lo: float, hi: float, most: int = 5) -> tuple[list[float], list[str]]:
    """Ticks of a y axis drawn as log10 of the values, from 10^lo to 10^hi: (positions, as log10, and labels,
    the values). Round values (1, 2, 5 × 10^k, else the decades, else every other decade...), at most `most`;
    a span too narrow for three of them gets `most` evenly spaced ticks; a single value, itself with a row
    either side (as the linear axis does it)."""
    if hi - lo < 1e-12:
        ticks = [lo + math.log10(0.5), lo, lo + math.log10(1.5)]
        return ticks, [f"{10**t:.4g}" for t in ticks]
    for mantissas, every in [((1, 2, 5), 1), ((1,), 1)] + [((1,), k) for k in range(2, 400)]:
        ticks = [
            k + math.log10(m)
            for k in range(math.floor(lo), math.ceil(hi) + 1)
            if k % every == 0
            for m in mantissas
            if lo - 1e-9 <= k + math.log10(m) <= hi + 1e-9
        ]
        if len(ticks) <= most:
            break
    if len(ticks) < 3:
        ticks = [lo + (hi - lo) * i / (most - 1) for i in range(most)]
        return ticks, [f"{10**t:.3g}" for t in ticks]
    return ticks, [f"{10**t:.4g}" for t in ticks]
