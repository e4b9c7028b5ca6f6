"""The run lifecycle: the statuses a run may have and the one table of moves between them.

`Store` changes a status only along TRANSITIONS, with a conditional UPDATE (`Store._move`), so a run
that was marked lost (or cancelled) meanwhile can never be recorded done afterwards, and a run is
started at most once. Stdlib only: the CLI and the app read these names.
"""

from __future__ import annotations

STATUSES = ("queued", "running", "done", "failed", "cancelled", "lost")
LIVE = ("queued", "running")  # not ended yet: the app watches these, `pgg logs -f` follows them
# The ends a run can reach other than done (done comes with results: Store.finish; these: Store.end)
ENDS_WITHOUT_RESULTS = ("failed", "cancelled", "lost")
FINISHED = ("done",) + ENDS_WITHOUT_RESULTS
TRANSITIONS: dict[str, tuple[str, ...]] = {
    "queued": ("running", "cancelled"),
    "running": ("done", "failed", "cancelled", "lost"),
    "done": (),
    "failed": (),
    "cancelled": (),
    "lost": (),
}
RETRYABLE = ("failed", "cancelled", "lost")  # `pgg retry` queues a new attempt of these


def sources(to: str) -> list[str]:
    """The statuses a run may be in to move to `to`."""
    return [s for s, targets in TRANSITIONS.items() if to in targets]


def phase_label(kind: str, index: int) -> str:
    """How a phase is named in a run's rows and on screen: reward phases are numbered ("reward 2"); the
    policy and eval phases are not."""
    return f"{kind} {index}" if kind == "reward" else kind
