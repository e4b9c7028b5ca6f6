"""How long a run has left, counting the phases still to come.

A pgg run spends most of its time in reward trainings between policy steps, so an ETA drawn from policy
steps alone freezes for minutes and then jumps. This one times each kind of work since the process
started (a resumed run counts from its resume, not from a first attempt's start) and adds up what is
left: the remaining policy steps at the policy rate, the open reward training at its own rate, and one
mean reward training per retraining still scheduled. Reward trainings may stop early, so that part is an
upper bound. Stdlib only.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence


class Eta:
    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self.total = 0
        self.reward_at: list[int] = []  # policy steps after which the reward model is retrained
        self.step = 0
        self.kind = ""
        self._began = (0, clock())  # (policy step, clock) when the open phase began
        self._policy = [0.0, 0]  # seconds and policy steps timed
        self._reward: list[float] = []  # seconds of each reward training ended in this process
        self._inside = (0, 0)  # the open phase's own steps: done, at most

    def plan(self, total: int, reward_at: Sequence[int]) -> None:
        self.total, self.reward_at = total, sorted(reward_at)

    def begin(self, kind: str, step: int) -> None:
        self.end(step)
        self.step = max(self.step, step)
        self.kind, self._began, self._inside = kind, (step, self.clock()), (0, 0)

    def end(self, step: int) -> None:
        first, t0 = self._began
        took = self.clock() - t0
        if self.kind == "policy" and step > first:
            self._policy[0] += took
            self._policy[1] += step - first
        elif self.kind == "reward" and self._inside[0]:
            self._reward.append(took)
        self.kind = ""

    def progress(self, step: int) -> None:
        self.step = step

    def inside(self, done: int, total: int) -> None:
        self._inside = (done, total)

    def seconds_left(self) -> float | None:
        """None until there is a rate to go by."""
        first, t0 = self._began
        now = self.clock()
        sec, steps = self._policy
        if self.kind == "policy" and self.step > first:
            sec, steps = sec + now - t0, steps + self.step - first
        left_steps = max(0, self.total - self.step)
        if left_steps and not steps:
            return None
        left = left_steps * sec / steps if steps else 0.0
        done, at_most = self._inside
        mean_reward = sum(self._reward) / len(self._reward) if self._reward else None
        if self.kind == "reward":
            if not done:
                return None
            rate = (now - t0) / done
            left += rate * max(0, at_most - done)
            mean_reward = mean_reward if mean_reward is not None else rate * at_most
        still = sum(
            1 for n in self.reward_at if n > self.step or (n == self.step and self.kind == "policy" and first < n)
        )
        if still:
            if mean_reward is None:
                return None
            left += still * mean_reward
        return left
