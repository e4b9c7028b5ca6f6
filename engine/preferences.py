"""Preferences from people: the pool of lists a run's reward model learns from when `preference` is
human or mixed (docs/rankings.md).

At each reward training the run asks for `rank_lists` more lists (K candidates sampled from the current
policy: the tasks' `people.ranking_requests`), waits until people have ordered them in pgg-tui, and
trains on every list ranked so far in the run (its retries' included). A `rankings_file` replaces the
asking: its lists are the pool. Lists marked held out never train; the grounding quality against people,
`reward/human_tau`, is measured on them.

A ranking becomes ListMLE targets as the automatic score does: the candidate ranked first gets the
highest score (K), the last the lowest (1); ListMLE only reads their order. No torch here: the tasks'
`people` modules turn lists into tensors.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from engine.errors import Cancelled, EngineError
from engine.rankings import Request, RunRankings, read_file
from engine.report import Reporter

POLL = 1.0  # seconds between looks at the store while waiting
clock = time.monotonic  # what rank_timeout is measured on (a test steps it)


@dataclass
class Ranked:
    """A list of K candidates in a person's order."""

    context: str
    texts: list[str]
    order: list[int]  # candidate indices, best first
    payload: dict[str, Any] = field(default_factory=dict)  # the engine's own data; {} for a file's lists
    heldout: bool = False
    annotator: str = ""

    def scores(self) -> list[float]:
        """Targets for ListMLE: K for the candidate ranked first ... 1 for the last."""
        k = len(self.order)
        out = [0.0] * k
        for position, c in enumerate(self.order):
            out[c] = float(k - position)
        return out


def is_heldout(i: int, share: float) -> bool:
    """Every 1/share-th list is held out (share 0.25: the 4th, 8th, ...), so any prefix holds out its share."""
    return math.floor((i + 1) * share) > math.floor(i * share)


class Pool:
    """The ranked lists a run trains its reward model on, and how it gets more."""

    def __init__(self, cfg: Any, reporter: Reporter, task: str):
        self.cfg, self.reporter, self.task = cfg, reporter, task
        self.lists: list[Ranked] = []
        self.fallback: list[Ranked] = []  # lists ordered by the automatic score when rankers ran out of time
        if cfg.rankings_file:
            records = read_file(cfg.rankings_file, cfg.reward_k)
            self.lists = [
                Ranked(
                    r["context"],
                    r["candidates"],
                    r["order"],
                    heldout=is_heldout(i, cfg.rank_heldout),
                    annotator=str(r.get("annotator") or ""),
                )
                for i, r in enumerate(records)
            ]
            reporter.log(f"grounding on {len(self.lists)} ranked lists from {cfg.rankings_file}")

    @property
    def train(self) -> list[Ranked]:
        return [r for r in self.lists if not r.heldout]

    @property
    def heldout(self) -> list[Ranked]:
        return [r for r in self.lists if r.heldout]

    @property
    def ranked_by_people(self) -> int:
        """How many of the lists people ranked (queries/human): all but those ordered after a timeout."""
        return len(self.lists) - len(self.fallback)

    def split_heldout(self) -> tuple[list[Ranked], list[Ranked]]:
        """(selection, report): the held-out lists early stopping chooses the reward model on, and the
        disjoint ones its grounding against people is reported on, so the reported tau is not the number
        the model was picked for. Alternate lists go to each side; with one held-out list, selection uses
        the training lists (as with none held out) and the report keeps it."""
        held = self.heldout
        if len(held) < 2:
            return self.train, held
        return held[0::2], held[1::2]

    def collect(
        self, round_: int, make: Callable[[int], list[Request]], auto_order: Callable[[list[Ranked]], list[list[int]]]
    ) -> None:
        """Before reward training `round_`: ask people to rank `rank_lists` new lists (made by `make(n)`)
        and wait for them; then the pool is every list ranked in the run so far. Cancel works while
        waiting; `rank_timeout` ends the wait: the rest are ordered by `auto_order` or the run fails."""
        if self.cfg.rankings_file:
            return
        rep, cfg, people = self.reporter, self.cfg, self._rankings()
        ids = people.asked(round_)
        if ids:
            rep.log(f"reward {round_}: {len(ids)} ranking requests already asked (resumed); waiting for them")
        else:
            requests = make(cfg.rank_lists)
            before = len(people.answered()) + len(self.fallback)  # counted over the run, not per training
            for i, r in enumerate(requests, before):
                r.heldout = is_heldout(i, cfg.rank_heldout)
            ids = people.ask(round_, self.task, requests)
            rep.log(
                f"reward {round_}: asked people to rank {len(ids)} lists of {cfg.reward_k}; rank them in pgg-tui (R)"
            )
        deadline = clock() + 60 * cfg.rank_timeout if cfg.rank_timeout > 0 else math.inf
        while True:
            left = len(ids) - len(people.answers(ids))
            rep.waiting(left)
            if left == 0:
                break
            if rep.should_stop():
                people.withdraw(ids)
                raise Cancelled()
            if clock() >= deadline:
                self._timed_out(people, ids, auto_order)
                break
            time.sleep(POLL)
        rep.waiting(0)
        self.lists = [Ranked(**r) for r in people.answered()] + self.fallback
        rep.log(f"reward {round_}: {len(self.train)} ranked lists to train on, {len(self.heldout)} held out")

    def _rankings(self) -> RunRankings:
        """Where the run asks people: its reporter's store."""
        if self.reporter.rankings is None:
            raise EngineError(
                "preference=human asks people through the store: queue the run (pgg queue, pgg run) "
                "or ground it on a rankings_file"
            )
        return self.reporter.rankings

    def _timed_out(
        self, people: RunRankings, ids: list[int], auto_order: Callable[[list[Ranked]], list[list[int]]]
    ) -> None:
        people.withdraw(ids)  # first: a ranking submitted from now on is refused, so none counts twice
        done = people.answers(ids)
        unranked = [Ranked(**r) for i, r in people.requested(ids).items() if i not in done]
        left = len(unranked)
        if self.cfg.rank_fallback == "fail":
            raise EngineError(
                f"{left} of {len(ids)} rankings still missing after rank_timeout={self.cfg.rank_timeout:g} "
                f"min (rank_fallback=fail)"
            )
        for r, order in zip(unranked, auto_order(unranked)):
            r.order, r.annotator = order, "auto (timeout)"
            self.fallback.append(r)
        self.reporter.log(
            f"{left} of {len(ids)} rankings missing after {self.cfg.rank_timeout:g} min: ordered by "
            f"the automatic score instead (rank_fallback=auto)",
            "stderr",
        )

    def draw(self, n: int, rng: random.Random) -> list[Ranked]:
        """`n` training lists, in turn through a fresh shuffle of the pool each pass (n may exceed it)."""
        pool = self.train
        if not pool:
            raise EngineError("no ranked lists to train on: every list is held out (lower rank_heldout or rank more)")
        out: list[Ranked] = []
        while len(out) < n:
            order = list(range(len(pool)))
            rng.shuffle(order)
            out += [pool[i] for i in order[: n - len(out)]]
        return out


def orders_by_score(lists: list[Ranked], scores: Sequence[float]) -> list[list[int]]:
    """Each list's candidates best first by `scores`, one score per candidate of every list in turn."""
    out, i = [], 0
    for r in lists:
        part = scores[i : i + len(r.texts)]
        i += len(r.texts)
        out.append(sorted(range(len(part)), key=lambda c: -part[c]))
    return out


def human_count(cfg: Any, n: int) -> int:
    """Of an update's `n` lists, how many come from people: all (human), a share (mixed), none (auto)."""
    if cfg.preference == "human":
        return n
    if cfg.preference == "mixed":
        return min(n, max(1, int(round(cfg.human_share * n))))
    return 0
