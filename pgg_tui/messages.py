"""The messages the app's parts send each other, typed, in one place."""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message

from pgg_tui.core.launch import Lease
from pgg_tui.core.views import RunRow


@dataclass
class RunsChanged(Message):
    """A poll of the store found runs added, changed or gone: every run, as the runs table shows it."""

    rows: list[RunRow]


@dataclass
class WorkerChanged(Message):
    """The store's worker started, stopped or changed its slots (None: no worker serves the store)."""

    lease: Lease | None
