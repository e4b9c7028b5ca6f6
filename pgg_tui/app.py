"""`pgg-tui`: the experiment manager a researcher keeps open over SSH.

The app reads the store in thread workers (never on the event loop) and writes only queue requests,
cancels, retries and deletes. Training happens in worker subprocesses; the app can start a worker.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from functools import partial

from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.command import Hit, Hits, Provider
from textual.message import Message
from textual.screen import Screen

from engine.errors import PggError
from engine.store import Store, _sqlite_path, resolve_url
from pgg_tui.data import RunRow, fetch_rows, queue_demo, start_worker


@dataclass
class RunsChanged(Message):
    rows: list[RunRow]


class RunCommands(Provider):
    """Command palette: open a run, requeue the failed seeds of a sweep."""

    async def search(self, query: str) -> Hits:
        app: PggApp = self.app  # type: ignore[assignment]
        matcher = self.matcher(query)
        for row in app.rows:
            title = f"open run {row.id}: {row.dataset} {row.variant} seed {row.seed} ({row.status})"
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), partial(app.open_run, row.id), help="run view")
        sweeps: dict[str, list[int]] = {}
        retried = {row.parent_id for row in app.rows}
        for row in app.rows:  # failed or lost, and not retried already (a cancel was meant)
            if row.status in ("failed", "lost") and row.id not in retried:
                sweeps.setdefault(row.group_id, []).append(row.id)
        for group, ids in sweeps.items():
            title = f"requeue the {len(ids)} failed seeds of sweep {group}"
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), partial(app.retry_runs, ids), help=f"runs {ids}")


class PggApp(App[None]):
    CSS_PATH = "app.tcss"
    TITLE = "pgg"
    COMMANDS = App.COMMANDS | {RunCommands}
    BINDINGS = [Binding("q", "quit", "Quit"), Binding("question_mark", "help", "Help", show=False)]

    def __init__(self, store: Store, poll: float = 1.0, created: bool = False):
        super().__init__()
        self.store = store
        self.created = created  # this start created the store: say where, or it looks like runs were lost
        self.poll_interval = poll
        self.rows: list[RunRow] = []
        self._data_version: int | None = None
        self._row_map: dict[int, RunRow] = {}  # owned by the poll thread
        self._polls = 0

    def on_mount(self) -> None:
        from pgg_tui.screens.runs import RunsScreen

        self.push_screen(RunsScreen())
        if self.created:
            self.notify(f"new, empty store created at {self.store.location}; pgg-tui --db PATH opens another",
                        timeout=15)
        self.poll_now()
        self.poll_timer = self.set_interval(self.poll_interval, self.poll_now)

    def get_system_commands(self, screen: Screen) -> object:
        yield from super().get_system_commands(screen)
        yield SystemCommand("Queue runs", "open the queue form", self.action_queue)
        yield SystemCommand("Queue the demo sweep", "tiny models on the CPU, both tasks", self.action_demo)
        yield SystemCommand("Start a worker", "run queued runs in the background", self.action_worker)
        yield SystemCommand("Compare methods", "the paper's Table 1 layout", self.action_compare)

    # -- polling: only new data crosses to the UI thread
    def poll_now(self, force: bool = False) -> None:
        self._poll(force)

    @work(thread=True, exclusive=True, group="poll", exit_on_error=False)
    def _poll(self, force: bool) -> None:
        version = self.store.data_version()
        if not force and version == self._data_version:
            return
        self._data_version = version
        self._polls += 1
        # Only queued and running runs change, and new runs appear after the newest seen. Every tenth
        # poll (and when forced) reads everything, which also catches runs deleted elsewhere.
        if force or self._polls % 10 == 1 or not self._row_map:
            self._row_map = {r.id: r for r in fetch_rows(self.store)}
        else:
            live = [r.id for r in self._row_map.values() if r.status in ("queued", "running")]
            for r in fetch_rows(self.store, ids=live, after_id=max(self._row_map)):
                self._row_map[r.id] = r
        self.post_message(RunsChanged([self._row_map[k] for k in sorted(self._row_map)]))

    def on_runs_changed(self, message: RunsChanged) -> None:
        self.rows = message.rows
        for screen in self.screen_stack:
            show = getattr(screen, "show_rows", None)
            if show is not None:
                show(message.rows)

    # -- actions shared by screens and the palette
    def open_run(self, run_id: int) -> None:
        from pgg_tui.screens.run import RunScreen

        self.push_screen(RunScreen(run_id))

    def retry_runs(self, ids: list[int]) -> None:
        try:
            new = self.store.retry(ids)
        except PggError as err:
            self.notify(str(err), severity="error")
            return
        self.notify(f"queued {len(new)} new attempt(s): runs {', '.join(map(str, new))}")
        self.poll_now(force=True)

    def action_queue(self) -> None:
        from pgg_tui.screens.queue import QueueScreen

        self.push_screen(QueueScreen())

    def action_compare(self) -> None:
        from pgg_tui.screens.compare import CompareScreen

        self.push_screen(CompareScreen())

    def action_demo(self) -> None:
        ids = queue_demo(self.store)
        self.notify(f"queued the demo sweep: runs {ids[0]}–{ids[-1]}; starting a worker")
        self.action_worker()

    @work(thread=True, group="worker", exit_on_error=False)
    def action_worker(self) -> None:
        message = start_worker(self.store)
        self.call_from_thread(self.notify, message)
        self.call_from_thread(self.poll_now, True)

    def action_help(self) -> None:
        self.notify("Keys are in the footer; Ctrl+P opens the command palette (open run N, requeue failed seeds, ...)",
                    timeout=6)


def make_app(db: str | None = None, poll: float = 1.0) -> PggApp:
    path = _sqlite_path(resolve_url(db))
    created = path is not None and not path.exists()
    return PggApp(Store.open(db, read_only_ok=True), poll=poll, created=created)


def run_app(db: str | None = None) -> None:
    make_app(db).run()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="pgg-tui", description="the pgg experiment manager")
    parser.add_argument("--db", default=None, help="store URL or SQLite path (env PGG_DB; default experiments.db)")
    args = parser.parse_args(argv)
    try:
        app = make_app(args.db)
    except PggError as err:
        print(f"pgg-tui: error: {err}", file=sys.stderr)
        sys.exit(1)
    app.run()
