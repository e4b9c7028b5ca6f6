"""One metric across runs, as curves: a line per run, or per experiment the mean over its seeds with a
± one standard deviation band. x is the step, or the wall time since each run started."""

from __future__ import annotations

import math
from dataclasses import dataclass

from engine.store import Run, Store
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
