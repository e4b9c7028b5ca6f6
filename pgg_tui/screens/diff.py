"""Two runs side by side: the settings they differ in, then their results (as `pgg diff`)."""

from __future__ import annotations

import json

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Static

from pgg_tui.core.present import run_diff
from pgg_tui.screens.base import PggScreen
from pgg_tui.widgets.keybar import KeyBar


class DiffScreen(PggScreen):
    BINDINGS = [Binding("escape", "app.pop_screen", "Back")]

    def __init__(self, a: int, b: int):
        super().__init__()
        self.a, self.b = a, b

    def compose(self) -> ComposeResult:
        yield Static(id="diff-header")
        yield DataTable(id="diff", cursor_type="row", zebra_stripes=True)
        yield KeyBar()

    def on_mount(self) -> None:
        self.load()

    @work(thread=True, exclusive=True, group="diff", name="comparing two runs", exit_on_error=False)
    def load(self) -> None:
        a, b = self.store.get(self.a), self.store.get(self.b)
        rows = run_diff(
            json.loads(a.config), json.loads(b.config), json.loads(a.results or "{}"), json.loads(b.results or "{}")
        )
        self.app.call_from_thread(self._show, rows)

    def _show(self, rows: list[tuple[str, str, str, str]]) -> None:
        n = sum(1 for r in rows if r[0] == "config")
        self.query_one("#diff-header", Static).update(
            f"[b]run {self.a}[/b] against [b]run {self.b}[/b] · "
            + (f"{n} settings differ" if n != 1 else "1 setting differs")
            + ("" if rows else " · same config and results")
        )
        table = self.query_one("#diff", DataTable)
        table.clear(columns=True)
        for col in ("", "setting", f"run {self.a}", f"run {self.b}"):
            table.add_column(col)
        for row in rows:
            table.add_row(*row)
