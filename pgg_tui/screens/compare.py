"""Methods against datasets in the paper's Table 1 layout: mean (std) over seeds, the best per column in bold."""

from __future__ import annotations

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Static

from engine.registry import TASKS
from pgg_tui.core.compare import validated_table
from pgg_tui.core.views import CompareTable, RunRow, compare_metrics, fetch_compare
from pgg_tui.screens.base import PggScreen, pgg
from pgg_tui.widgets.keybar import KeyBar


class CompareScreen(PggScreen):
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("t", "task", "Task"),
        Binding("m", "metric", "Metric"),
        Binding("v", "validated", "Validated"),
    ]

    def __init__(self, ids: list[int] | None = None) -> None:
        super().__init__()
        self.ids = ids  # the runs chosen on the runs screen; None: all
        self.task_name = "prompt"  # set on mount from the chosen runs
        self.metric = compare_metrics("prompt")[0]
        self.validated = False  # v: one row per method, its best configuration chosen on validation

    def compose(self) -> ComposeResult:
        yield Static(id="compare-header")
        yield DataTable(id="compare", cursor_type="row", zebra_stripes=True)
        yield Static(id="compare-note")
        yield KeyBar()

    def on_mount(self) -> None:
        self.task_name = opening_task(pgg(self).rows, self.ids)
        self.metric = compare_metrics(self.task_name)[0]
        self.load()

    def show_rows(self, _rows: object) -> None:  # new results arrive with the app's poll
        self.load()

    @work(thread=True, exclusive=True, group="compare", name="comparing results", exit_on_error=False)
    def load(self) -> None:
        notes: list[str] = []
        if self.validated:
            table, notes = validated_table(self.store, self.task_name, self.metric, self.ids)
        else:
            table = fetch_compare(self.store, self.task_name, self.metric, self.ids)
        self.app.call_from_thread(self._show, table, notes)

    def _show(self, t: CompareTable, notes: list[str]) -> None:
        chosen = " · each method's configuration chosen on validation (v: all)" if self.validated else ""
        self.query_one("#compare-header", Static).update(
            f"[b]{self.task_name}[/b] · {self.metric} · mean (std) over seeds of done "
            + (f"runs among the {len(self.ids)} chosen" if self.ids is not None else "runs")
            + " · [b]bold[/b] = best per column (2+ seeds)"
            + chosen
        )
        table = self.query_one("#compare", DataTable)
        table.clear(columns=True)
        table.add_column("method", key="method")
        for d in t.datasets:
            table.add_column(d, key=d)
        best = {d: t.best(d) for d in t.datasets}
        for m in t.methods:
            cells: list[object] = [Text(m)]
            for d in t.datasets:
                if (m, d) in t.cells:
                    mean, std, n = t.cells[(m, d)]
                    if n < 2:  # no spread to show from one seed
                        cells.append(Text(f"{mean:.1f} n=1", "dim"))
                    else:
                        cells.append(Text(f"{mean:.1f} ({std:.1f}) n={n}", "bold green" if best[d] == m else ""))
                else:
                    cells.append("–")
            table.add_row(*cells)
        note = "\n".join(notes) if t.methods else f"no done {self.task_name} runs with {self.metric} yet"
        if t.shared and t.methods:
            note = "every row: " + " ".join(f"{k}={v}" for k, v in sorted(t.shared.items())) + "\n" + note
        self.query_one("#compare-note", Static).update(Text(note))

    def action_task(self) -> None:
        tasks = list(TASKS)
        self.task_name = tasks[(tasks.index(self.task_name) + 1) % len(tasks)]
        self.metric = compare_metrics(self.task_name)[0]
        self.load()

    def action_validated(self) -> None:
        self.validated = not self.validated
        self.load()

    def action_metric(self) -> None:
        names = compare_metrics(self.task_name)
        self.metric = names[(names.index(self.metric) + 1) % len(names)]
        self.load()


def opening_task(rows: list[RunRow], ids: list[int] | None) -> str:
    """The task the chosen runs (all when `ids` is None) are mostly about: the most done runs, else the most runs,
    ties in TASKS order. A runs table filtered to `summarize` opens on summarize, not on prompt."""
    wanted = None if ids is None else set(ids)
    chosen = [r for r in rows if wanted is None or r.id in wanted]
    tasks = list(TASKS)

    def weight(task: str) -> tuple[int, int, int]:
        mine = [r for r in chosen if r.task == task]
        return sum(r.status == "done" for r in mine), len(mine), -tasks.index(task)

    return max(tasks, key=weight)
