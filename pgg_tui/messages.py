"""The messages the app's parts send each other, typed, in one place."""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message

from engine.store import QueueControl
from pgg_tui.core.launch import Lease
from pgg_tui.core.views import RunRow


@dataclass
class RunsChanged(Message):
    """A poll of the store found runs added, changed or gone: every run, as the runs table shows it."""

    rows: list[RunRow]


@dataclass
class WorkerChanged(Message):
    """The store's worker started, stopped or changed its slots (None: no worker serves the store), or the
    queue was paused, resumed or given another number of runs at once."""

    lease: Lease | None
    queue_control: QueueControl | None = None
