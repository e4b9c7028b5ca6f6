"""The runs screen: a live table of runs (or of groups folding seeds into mean ± std), and its actions."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import DataTable, Input, Static

from engine.lifecycle import LIVE
from pgg_tui.core import export, ops
from pgg_tui.core.aggregate import Group
from pgg_tui.core.present import (
    TAU,
    box_load,
    duration,
    gpu_reading,
    headline_metric,
    run_label,
    second_metric,
    shared_overrides,
    short_location,
    usage_cell,
    variant_label,
)
from pgg_tui.core.views import RunRow, fetch_groups
from pgg_tui.render import status_text, tau_cell
from pgg_tui.widgets.cursor import cursor_key, move_to_key
from pgg_tui.screens.base import PggScreen, pgg
from pgg_tui.widgets.keybar import KeyBar
from pgg_tui.widgets.run_cells import (
    bar_width,
    fit,
    method_cell,
    plan_columns,
    plan_group_columns,
    preview,
    result_cell,
    running_progress,
)

WELCOME = """[b]Welcome to pgg.[/b] This store has no runs yet.

  [b]D[/b]  queue the demo sweep and start a worker: tiny models on
     the CPU, both tasks, a few minutes. It shows the machinery (live
     losses, grounding, token rewards), not the paper's numbers.
  [b]n[/b]  queue runs yourself (task, dataset, method, seeds ...)
  [b]Ctrl+P[/b]  command palette

On a GPU box: queue the paper preset (prompt / sst-2 / pgg, seeds 0-4)
and press [b]w[/b] for a worker."""

SORTS = ("id", "status", "result", "dataset")


class RunsScreen(PggScreen):
    BINDINGS = [
        Binding("enter", "open", "Open"),
        Binding("n", "app.queue", "Queue"),
        Binding("c", "cancel", "Cancel"),
        Binding("r", "retry", "Retry"),
        Binding("k", "clone", "Clone"),
        Binding("x", "delete", "Del"),
        Binding("space", "select", "Select"),
        Binding("g", "grouped", "Group"),
        Binding("slash", "filter", "Filter"),
        Binding("o", "sort", "Sort"),
        Binding("s", "samples", "Samples"),
        Binding("m", "compare", "Compare"),
        Binding("v", "chart", "Chart"),
        Binding("d", "diff", "Diff"),
        Binding("e", "export", "Export"),
        Binding("a", "label", "Label"),
        Binding("R", "rank", "Rank"),
        Binding("p", "app.pause", "Pause queue"),
        Binding("plus,equals_sign", "priority(1)", "Prio+"),
        Binding("minus", "priority(-1)", "Prio-"),
        Binding("w", "app.worker", "Worker"),
        Binding("D", "app.demo", "Demo"),
        Binding("escape", "clear", "Clear", show=False),
        Binding("u", "undo", "Undo delete", show=False),  # said by the delete's own message
    ]

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[RunRow] = []
        self.groups: list[Group] = []
        self.selected: set[int] = set()
        self.deleted: list[int] = []  # the last delete, which u undoes (its rows are in the trash)
        self.grouped = False
        self.sort = "id"
        self.filter_text = ""
        self._shape: tuple[object, ...] = ()
        self._cells_shown: dict[int, list[str]] = {}  # what each row shows, to touch only changed cells
        self._cell_cache: dict[int, tuple[RunRow, bool, list[object]]] = {}  # row, selected -> its cells
        self._shown_objs: dict[int, list[object]] = {}
        self._shared: tuple[tuple[int, ...], dict[str, object]] = ((), {})  # visible ids -> settings all share

    def compose(self) -> ComposeResult:
        yield Static(id="topbar")
        yield Input(
            placeholder="filter: words that must all appear (status, dataset, method, seed=N, ...)", id="filter"
        )
        with Vertical(id="body"):
            yield DataTable(id="runs", cursor_type="row", zebra_stripes=True)
            yield Static(id="preview")
            yield Static(WELCOME, id="welcome")
        yield KeyBar()

    def on_mount(self) -> None:
        box = self.query_one("#filter", Input)
        box.display, box.disabled = False, True  # hidden and out of the focus chain until `/`
        self.query_one("#runs").focus()
        self.show_rows(pgg(self).rows)

    # -- data in
    def show_rows(self, rows: list[RunRow]) -> None:
        self.rows = rows
        self.query_one("#welcome").display = not rows
        self.query_one("#runs").display = bool(rows)
        if self.grouped:
            self._load_groups()
        else:
            self._render_runs()
        self._topbar()

    @work(thread=True, exclusive=True, group="groups", name="grouping runs", exit_on_error=False)
    def _load_groups(self) -> None:
        groups = fetch_groups(self.store, self.chosen_ids())
        self.app.call_from_thread(self._render_groups, groups)

    def _topbar(self) -> None:
        counts: dict[str, int] = {}
        for r in self.rows:
            counts[r.status] = counts.get(r.status, 0) + 1
        parts = [f"[b]{v}[/b] {k}" for k, v in counts.items()]
        leases = pgg(self).leases
        control = pgg(self).queue_control
        if control is not None and control.paused:
            parts.append("[yellow]queue paused[/yellow] (p)")
        if control is not None and control.parallel:
            parts.append(f"{control.parallel} at once")
        if len(leases) == 1:
            lease = leases[0]
            worker = f"[green]worker[/green] pid {lease.pid}" + ("" if lease.here else f"@{lease.host}")
        elif leases:
            worker = f"[green]{len(leases)} workers[/green] ({', '.join(x.host for x in leases)})"
        else:
            worker = "[yellow]no worker[/yellow] (w)" if counts.get("queued") else "no worker"
        gpus = [gpu_reading(g) for x in leases for g in json.loads(x.gpus)]
        if gpus:
            worker += " · " + " ".join(gpus[:4]) + (" …" if len(gpus) > 4 else "")
        load = box_load()
        if load:  # this machine's: a slow run explains itself
            worker += f" · {load}"
        mode = "groups (mean ± std over seeds)" if self.grouped else f"sorted by {self.sort}"
        sel = f" · {len(self.selected)} selected" if self.selected else ""
        filt = f" · filter '{self.filter_text}'" if self.filter_text else ""
        self.query_one("#topbar", Static).update(
            f"[b]pgg[/b] {worker} · "
            + (" · ".join(parts) or "empty")
            + f" · {mode}{filt}{sel} · {short_location(self.store.location)}"
        )

    def _visible(self) -> list[RunRow]:
        rows = [r for r in self.rows if not self.filter_text or r.matches(self.filter_text)]
        key = {
            "id": lambda r: r.id,
            "status": lambda r: (r.status, r.id),
            # by metric first: a ROUGE-1 and an accuracy are not ranked against each other
            "result": lambda r: (r.score is None, r.status != "done", r.score_name, -(r.score or 0.0)),
            "dataset": lambda r: (r.dataset, r.variant, r.seed),
        }
        return sorted(rows, key=key[self.sort])

    def shared(self, visible: list[RunRow]) -> dict[str, object]:
        """The settings every shown run holds (a sweep's fixed part): left out of the method cells and said
        once below the table. Read again only when the shown runs change: a run's overrides never do."""
        ids = tuple(r.id for r in visible)
        if ids != self._shared[0]:
            common = shared_overrides(r.overrides for r in visible) if len(visible) > 1 else {}
            self._shared = (ids, dict(common))
        return self._shared[1]

    def _render_runs(self) -> None:
        table = self.query_one("#runs", DataTable)
        visible = self._visible()
        shared = self.shared(visible)
        width = self.app.size.width
        plan = plan_columns(visible, width, [method_cell(r, shared) for r in visible])
        cols = list(plan)
        shape = ("runs", tuple(plan.items()), tuple(r.id for r in visible))
        if (tuple(plan.items()), bar_width(width)) != getattr(self, "_cache_cols", None):
            self._cell_cache, self._cache_cols = {}, (tuple(plan.items()), bar_width(width))
        cells = []
        for r in visible:  # cells only for rows that changed since the last poll
            hit = self._cell_cache.get(r.id)
            sel = r.id in self.selected
            if hit is None or hit[0] != r or hit[1] != sel or r.status == "running":
                hit = (r, sel, self._cells(r, plan, shared, bar_width(width)))
                self._cell_cache[r.id] = hit
            cells.append(hit[2])
        if shape != self._shape:
            cursor, row_at = self._cursor_key(), table.cursor_row
            table.clear(columns=True)
            for c, w in plan.items():
                table.add_column(c, key=c, width=w)
            for r, row in zip(visible, cells):
                table.add_row(*row, key=str(r.id))
            self._shape = shape
            self._cells_shown = {r.id: [str(x) for x in row] for r, row in zip(visible, cells)}
            self._restore_cursor(cursor, row_at)
        else:
            for r, row in zip(visible, cells):
                before = self._cells_shown.get(r.id)
                if before is not None and row is self._shown_objs.get(r.id):
                    continue  # unchanged row, same cell objects as last time
                plain = [str(x) for x in row]
                for i, (c, value) in enumerate(zip(cols, row)):
                    if before is None or before[i] != plain[i]:
                        table.update_cell(str(r.id), c, value)
                self._cells_shown[r.id] = plain
        self._shown_objs = {r.id: row for r, row in zip(visible, cells)}
        self._preview()

    def _cells(self, r: RunRow, plan: dict[str, int], shared: dict[str, object], bar: int) -> list[object]:
        values: dict[str, str | Text] = {
            "": "✓" if r.id in self.selected else " ",
            "id": str(r.id),
            "status": status_text(r.shown_status),
            "task": r.task,
            "dataset": r.dataset,
            "method": method_cell(r, shared),
            "seed": str(r.seed),
            "dseed": str(r.dataset_seed),
            "phase": r.phase if r.status == "running" else "",
            "progress": running_progress(r, bar)
            if r.status in LIVE
            else Text(f"{r.step}/{r.total}" if r.total else "", "dim"),
            "result": result_cell(r),
            "τ": tau_cell(r.tau),
            "elapsed": duration(r.elapsed),
            "eta": duration(r.eta),
            "use": Text(usage_cell(r.resources), "dim"),
            "name": run_label(r.name, r.tags),
            "sweep": r.group_id,
        }
        return [fit(values[c], w) for c, w in plan.items()]

    def _preview(self) -> None:
        """Under the table: the selected run whole, where the screen has the rows for it (from 32 lines);
        on a smaller screen only the settings every shown run shares, if any (the cells leave them out)."""
        pane = self.query_one("#preview", Static)
        shared = self._shared[1]
        row = None if self.grouped else next((r for r in self.rows if r.id == self.current_id()), None)
        tall = self.app.size.height >= 32
        if tall and row is not None:
            pane.update(preview(row, shared))
        elif shared:
            pane.update(Text("every run shown: " + " ".join(f"{k}={v}" for k, v in sorted(shared.items())), "dim"))
        else:
            pane.update("")
        pane.display = bool(self.rows) and (tall and row is not None or bool(shared))

    @on(DataTable.RowHighlighted)
    def _row_highlighted(self, _event: DataTable.RowHighlighted) -> None:
        self._preview()

    def _render_groups(self, groups: list[Group]) -> None:
        self.groups = groups
        table = self.query_one("#runs", DataTable)
        cursor = self._cursor_key()
        shared = dict(shared_overrides(g.key[4] for g in groups)) if len(groups) > 1 else {}
        rows: list[dict[str, str]] = []
        for g in groups:
            first, second = headline_metric(g.task), second_metric(g.task)
            if first not in g.stats and "test/score" in g.stats:  # a custom scorer's runs: no accuracy
                first = "test/score"
            rows.append(
                {
                    "task": g.task,
                    "dataset": g.dataset,
                    "method": variant_label(g.method, g.key[4], shared),
                    "preset": g.key[3],
                    "done": str(len(g.run_ids)),
                    "result (mean ± std (n))": f"{first.split('/')[-1]} {g.stats[first].format()}"
                    if first in g.stats
                    else "–",
                    "also": f"{second.split('/')[-1]} {g.stats[second].format()}" if second in g.stats else "",
                    "τ": g.stats[TAU].format() if TAU in g.stats else "",
                }
            )
        plan = plan_group_columns(rows, self.app.size.width)
        table.clear(columns=True)
        for c, w in plan.items():
            table.add_column(c, key=c, width=w)
        for i, row in enumerate(rows):
            table.add_row(*(fit(row[c], w) for c, w in plan.items()), key=f"g{i}")
        self._shape = ("groups",)
        self._shared = ((), shared)
        self._restore_cursor(cursor)
        self._preview()

    def _cursor_key(self) -> str | None:
        return cursor_key(self.query_one("#runs", DataTable))

    def _restore_cursor(self, key: str | None, row_at: int | None = None) -> None:
        """Back onto the row it was on; if that row is gone (deleted, filtered out), onto the row now at its
        place, never row 1: a second `x y` must not delete a run the user never looked at."""
        table = self.query_one("#runs", DataTable)
        if key is None or table.row_count == 0:
            return
        if not move_to_key(table, key) and row_at is not None:
            table.move_cursor(row=min(row_at, table.row_count - 1))

    # -- which runs an action applies to
    def current_id(self) -> int | None:
        key = self._cursor_key()
        if key is None or key.startswith("g"):
            if key and self.groups:
                group = self.groups[int(key[1:])]
                return group.run_ids[0]
            return None
        return int(key)

    def targets(self) -> list[int]:
        if self.selected:
            return sorted(self.selected)
        key = self._cursor_key()
        if self.grouped and key:
            return list(self.groups[int(key[1:])].run_ids)
        rid = self.current_id()
        return [rid] if rid is not None else []

    # -- actions
    def action_open(self) -> None:
        rid = self.current_id()
        if rid is not None:
            pgg(self).open_run(rid)

    @on(DataTable.RowSelected)
    def _row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_open()

    def action_select(self) -> None:
        rid = self.current_id()
        if rid is None or self.grouped:
            return
        self.selected ^= {rid}
        self._shape = ()
        self._render_runs()
        self._topbar()

    def action_grouped(self) -> None:
        self.grouped = not self.grouped
        self._shape = ()
        self.show_rows(self.rows)

    def action_sort(self) -> None:
        self.sort = SORTS[(SORTS.index(self.sort) + 1) % len(SORTS)]
        self._shape = ()
        self.show_rows(self.rows)

    def action_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.display, box.disabled = True, False
        box.focus()

    @on(Input.Changed, "#filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.filter_text = event.value.strip()
        self._shape = ()
        self.show_rows(self.rows)

    @on(Input.Submitted, "#filter")
    def _filter_done(self) -> None:
        self.query_one("#runs").focus()

    def action_clear(self) -> None:
        box = self.query_one("#filter", Input)
        box.value = ""
        box.display, box.disabled = False, True
        self.selected.clear()
        self.query_one("#runs").focus()

    def _act(self, what: str, change: Callable[[list[int]], list[str]]) -> None:
        ids = self.targets()
        if not ids:
            self.notify(f"no run to {what}", severity="warning")
            return
        self.selected.clear()
        pgg(self).act(lambda: change(ids))

    def action_cancel(self) -> None:
        self._act("cancel", lambda ids: ops.cancel_runs(self.store, ids))

    def action_priority(self, by: int) -> None:
        self._act("reprioritise", lambda ids: ops.bump_priority(self.store, ids, by))

    def action_rank(self) -> None:
        """Rank the selected run's samples when it waits for rankings, else whatever any run waits for."""
        rid = self.current_id()
        row = next((r for r in self.rows if r.id == rid), None)
        pgg(self).action_rank(rid if row is not None and row.waiting_for else None)

    @work(thread=True, group="label", name="opening the labels", exit_on_error=False)
    def action_label(self) -> None:
        from pgg_tui.core.views import RunView
        from pgg_tui.screens.label import LabelScreen

        rid = self.current_id()
        if rid is None:
            return
        view = RunView.of(self.store.get(rid))
        self.app.call_from_thread(self.app.push_screen, LabelScreen(view))

    def action_retry(self) -> None:
        self._act("retry", lambda ids: ops.retry_runs(self.store, ids))

    def action_delete(self) -> None:
        from pgg_tui.screens.confirm import ConfirmScreen

        ids = self.targets()
        if not ids:
            return
        running = [r.id for r in self.rows if r.id in ids and r.status == "running"]
        if running:  # refused before asking, not after a "y"
            self.notify(f"run {running[0]} is running: cancel it first (c), then delete", severity="error")
            return

        def done(ok: bool | None) -> None:
            if ok:
                self.deleted = list(ids)
                self._act(
                    "delete",
                    lambda xs: [
                        line.split(" (in the trash")[0] + " · u undoes" for line in ops.delete_runs(self.store, xs)
                    ],
                )

        self.app.push_screen(
            ConfirmScreen(
                f"Delete {len(ids)} run(s) ({', '.join(map(str, ids[:8]))}{'…' if len(ids) > 8 else ''}) "
                f"and everything they recorded?"
            ),
            done,
        )

    def action_undo(self) -> None:
        """Bring the last deleted runs back from the trash."""
        ids, self.deleted = self.deleted, []
        if not ids:
            self.notify("nothing to undo: no run was deleted here (`pgg trash` lists the trash)", severity="warning")
            return
        pgg(self).act(lambda: ops.restore_runs(self.store, ids))

    @work(thread=True, group="clone", name="opening the clone form", exit_on_error=False)
    def action_clone(self) -> None:
        from pgg_tui.screens.queue import QueueScreen

        rid = self.current_id()
        if rid is None:
            return
        fields = ops.clone_fields(self.store.get(rid))
        self.app.call_from_thread(self.app.push_screen, QueueScreen(prefill=fields, clone_of=rid))

    def chosen_ids(self) -> list[int] | None:
        """The runs an overview is about: the selection, else what the filter shows, else all (None)."""
        if self.selected:
            return sorted(self.selected)
        if self.filter_text:
            return [r.id for r in self.rows if r.matches(self.filter_text)]
        return None

    def action_compare(self) -> None:
        from pgg_tui.screens.compare import CompareScreen

        self.app.push_screen(CompareScreen(self.chosen_ids()))

    def action_chart(self) -> None:
        """One metric across the selection, else what the filter shows, else every run."""
        from pgg_tui.screens.chart import ChartScreen

        ids = self.chosen_ids() or [r.id for r in self.rows]
        if ids:
            self.app.push_screen(ChartScreen(ids))

    def action_diff(self) -> None:
        """The two selected runs, or the one selected against the one under the cursor."""
        from pgg_tui.screens.diff import DiffScreen

        pair = sorted(self.selected)
        cursor = self.current_id()
        if len(pair) == 1 and cursor is not None and cursor not in pair:
            pair.append(cursor)
        if len(pair) != 2:
            self.notify(
                "select two runs with space (or one, and put the cursor on the other), then d", severity="warning"
            )
            return
        self.app.push_screen(DiffScreen(pair[0], pair[1]))

    def action_samples(self) -> None:
        from pgg_tui.screens.samples import SamplesScreen

        rid = self.current_id()
        if rid is not None:
            self.app.push_screen(SamplesScreen(rid))

    def action_export(self) -> None:
        """The selected runs, else the runs the filter shows, with config and results, to a CSV file here."""
        ids = sorted(self.selected) if self.selected else [r.id for r in self._visible()]
        path = Path(f"pgg-export-{time.strftime('%Y%m%d-%H%M%S')}.csv").resolve()

        def write() -> list[str]:
            runs = self.store.runs(ids=ids) if ids else []
            path.write_text(export.render(list(export.records(self.store, runs, "runs", flat=True)), "csv"))
            return [f"exported {len(runs)} runs to {path}"]

        pgg(self).act(write)
