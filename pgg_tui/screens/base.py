"""What every pgg screen shares: typed access to the app and its store, and one place that reports a
background task's failure (a thread worker's error would otherwise vanish and freeze what it feeds)."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from textual.dom import DOMNode
from textual.screen import Screen
from textual.worker import Worker

from engine.store import Store

if TYPE_CHECKING:
    from pgg_tui.app import PggApp


def pgg(node: DOMNode) -> PggApp:
    """The running PggApp, typed."""
    return cast("PggApp", node.app)


class PggScreen(Screen[None]):
    @property
    def store(self) -> Store:
        return pgg(self).store

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        pgg(self).report_worker(event)
