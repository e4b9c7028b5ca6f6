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
    """A worker of the store started, stopped, changed its slots or reported its GPUs (leases: every live
    worker, this host's first), or the queue was paused, resumed or given another number of runs at once."""

    leases: list[Lease]
    queue_control: QueueControl | None = None
