"""What every pgg screen shares: typed access to the app and its store, and one place that reports a
background task's failure (a thread worker's error would otherwise vanish and freeze what it feeds)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, cast

from textual.dom import DOMNode
from textual.screen import Screen
from textual.worker import Worker

from engine.store import QueueControl, Store
from pgg_tui.core.launch import Lease
from pgg_tui.core.views import RunRow


class PggApp(Protocol):
    """What screens use of the app (pgg_tui.app.PggApp), so that no screen imports the app module."""

    store: Store
    annotator: str
    rows: list[RunRow]
    leases: list[Lease]
    queue_control: QueueControl | None

    def act(self, change: Callable[[], list[str]], then: Callable[[], None] | None = None) -> None: ...

    def open_run(self, run_id: int) -> None: ...

    def poll_now(self, force: bool = False) -> None: ...

    def report_worker(self, event: Worker.StateChanged) -> None: ...

    def action_rank(self, run_id: int | None = None) -> None: ...


def pgg(node: DOMNode) -> PggApp:
    """The running app, typed by what screens use of it."""
    return cast(PggApp, node.app)


class PggScreen(Screen[None]):
    @property
    def store(self) -> Store:
        return pgg(self).store

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        pgg(self).report_worker(event)
