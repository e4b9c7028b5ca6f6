"""Fold runs that differ only in their seed into one row with mean ± std (n) per result metric."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from engine.store import Run
from pgg_tui.core.present import number, variant_label


@dataclass
class Stat:
    values: list[float] = field(default_factory=list)

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float:
        return sum(self.values) / len(self.values)

    @property
    def std(self) -> float:
        """Sample standard deviation (n - 1), as papers report over seeds; 0 for a single run."""
        if len(self.values) < 2:
            return 0.0
        m = self.mean
        return math.sqrt(sum((v - m) ** 2 for v in self.values) / (len(self.values) - 1))

    def format(self, digits: int = 2, paper: bool = False) -> str:
        if not self.values:
            return "–"
        if paper:
            return f"{self.mean:.{digits}f} ({self.std:.{digits}f})"
        return f"{self.mean:.{digits}f} ± {self.std:.{digits}f} ({self.n})"


@dataclass
class Group:
    key: tuple[str, ...]  # task, dataset, method, preset, overrides
    run_ids: list[int] = field(default_factory=list)
    stats: dict[str, Stat] = field(default_factory=dict)

    @property
    def task(self) -> str:
        return self.key[0]

    @property
    def dataset(self) -> str:
        return self.key[1]

    @property
    def method(self) -> str:
        return self.key[2]

    @property
    def variant(self) -> str:
        """The method with its non-default overrides, e.g. 'pgg agg=min'."""
        return variant_label(self.key[2], self.key[4])


def group_key(run: Run) -> tuple[str, ...]:
    """Everything that defines an experiment except the seeds: task, dataset, method, preset, overrides."""
    return (run.task, run.dataset, run.method, run.preset, run.overrides)


def group_runs(runs: Iterable[Run], only_done: bool = True) -> list[Group]:
    """Runs folded by everything but the seed. A seed counts once: of the attempts of one run (a retry
    chain), only the newest done one (older stores may hold several)."""
    runs = list(runs)
    retried = {r.parent_id for r in runs if r.parent_id is not None and (r.status == "done" or not only_done)}
    groups: dict[tuple[str, ...], Group] = {}
    for run in runs:
        if only_done and run.status != "done" or run.id in retried:
            continue
        g = groups.setdefault(group_key(run), Group(group_key(run)))
        g.run_ids.append(run.id)  # type: ignore[arg-type]
        results = json.loads(run.results or "{}")
        for name in results:
            value = number(results, name)
            if value is not None:
                g.stats.setdefault(name, Stat()).values.append(value)
    return sorted(groups.values(), key=lambda g: g.key)


def metric_names(groups: Sequence[Group]) -> list[str]:
    names: list[str] = []
    for g in groups:
        for n in g.stats:
            if n not in names:
                names.append(n)
    return names
