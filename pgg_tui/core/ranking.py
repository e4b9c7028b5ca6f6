"""A ranker's order of one request's candidates, as the Rank screen edits it: pure, tested on its own."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from engine.schema import Ranking


@dataclass
class Verdict:
    """The label word the task LM picks for one shown example with the candidate prompt, and the gold one."""

    text: str  # the example
    gold: str
    said: str

    @property
    def right(self) -> bool:
        return self.said == self.gold


@dataclass
class Auto:
    """What a prompt-task candidate does, as its run measured it when asking (engine.prompt.people.
    what_prompts_do): the Rank screen shows it on `v` only (docs/rankings.md)."""

    score: float  # the automatic score: the scorer's mean reward on the training examples
    accuracy: float | None  # the task LM's share right on them; None for a user's scorer
    examples: int  # how many training examples
    verdicts: list[Verdict]  # on the examples the ranker is shown, in the context's order

    def summary(self) -> str:
        """`automatic score +60.7 · 16/32 training examples right`."""
        out = f"automatic score {self.score:+.1f}" if abs(self.score) >= 1 else f"automatic score {self.score:+.3g}"
        if self.accuracy is not None:
            out += f" · {round(self.accuracy * self.examples)}/{self.examples} training examples right"
        elif self.examples:
            out += f" on {self.examples} training examples"
        return out


@dataclass
class Candidate:
    label: int  # 1-based, fixed: the number key that places it
    text: str
    tokens: list[str]
    rewards: list[float]
    auto: Auto | None = None  # a prompt-task request's; None for the other tasks and older requests


@dataclass
class Order:
    """Candidates in the ranker's order, best first. Number keys place candidates from the top down
    (`pick`): the first key pressed names the best, the next the second best, ...; `move` shifts the
    one under the cursor. Whatever is on screen is what `submit` records."""

    k: int
    order: list[int] = field(default_factory=list)  # candidate indices, best first
    cursor: int = 0  # a position in `order`
    placed: int = 0  # positions from the top fixed by number keys

    def __post_init__(self) -> None:
        self.order = self.order or list(range(self.k))

    def pick(self, label: int) -> bool:
        """Put candidate `label` (1-based) in the next free place from the top. False if there is no such
        candidate or it is already placed."""
        c = label - 1
        if not 0 <= c < self.k or self.order.index(c) < self.placed:
            return False
        self.order.remove(c)
        self.order.insert(self.placed, c)
        self.placed += 1
        if self.placed == self.k - 1:  # the last one has only one place left
            self.placed = self.k
        self.cursor = min(self.placed, self.k - 1)
        return True

    def move(self, delta: int) -> None:
        """Move the candidate under the cursor up (-1) or down (+1); the cursor follows it."""
        i, j = self.cursor, self.cursor + delta
        if 0 <= j < self.k:
            self.order[i], self.order[j] = self.order[j], self.order[i]
            self.cursor = j
            self.placed = min(self.placed, i, j)  # the places above both stay fixed

    def go(self, delta: int) -> None:
        self.cursor = max(0, min(self.k - 1, self.cursor + delta))

    def reset(self) -> None:
        self.order, self.cursor, self.placed = list(range(self.k)), 0, 0

    @property
    def complete(self) -> bool:
        return self.placed >= self.k


def candidates(r: Ranking) -> list[Candidate]:
    out = []
    for i, c in enumerate(json.loads(r.candidates), 1):
        tokens: list[Any] = c.get("tokens") or [c.get("text", "")]
        out.append(
            Candidate(
                i,
                str(c.get("text", "")),
                [str(t) for t in tokens],
                [float(x) for x in c.get("rewards") or []],
                auto_of(c.get("auto")),
            )
        )
    return out


def auto_of(a: Any) -> Auto | None:
    """A candidate's stored `auto` (see `Auto`), or None where there is none or it cannot be read."""
    if not isinstance(a, dict) or not isinstance(a.get("score"), int | float):
        return None
    acc = a.get("accuracy")
    verdicts = [
        Verdict(str(v.get("text", "")), str(v.get("gold", "")), str(v.get("said", "")))
        for v in a.get("verdicts") or []
        if isinstance(v, dict)
    ]
    n = a.get("examples")
    return Auto(
        float(a["score"]),
        float(acc) if isinstance(acc, int | float) else None,
        int(n) if isinstance(n, int) else 0,
        verdicts,
    )


def has_auto(cands: list[Candidate]) -> bool:
    """Whether the Rank screen's `v` has something to show for this request."""
    return any(c.auto is not None for c in cands)
