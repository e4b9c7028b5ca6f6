"""`pgg-tui`: the experiment manager a researcher keeps open over SSH.

The app reads and writes the store in thread workers, never on the event loop, through the same core
functions as the CLI (pgg_tui.core). Training happens in worker subprocesses; the app can start one.
"""

from __future__ import annotations

import argparse
import getpass
import os
import json
import sys
import time
from collections.abc import Callable, Iterable
from functools import partial
from typing import cast

from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.command import Hit, Hits, Provider
from textual.screen import Screen
from textual.worker import Worker, WorkerState

from engine.errors import PggError
from engine.lifecycle import LIVE
from engine.sqlite_file import path_of
from engine.store import QueueControl, Store, resolve_url
from pgg_tui.core.launch import Lease, ensure_worker, worker_leases
from pgg_tui.core.ops import demo_size, demo_worker_args, needs_requeue, queue_demo, retry_runs, toggle_pause
from pgg_tui.core.present import last_line
from pgg_tui.core.views import RunRow, fetch_rows
from pgg_tui.messages import RunsChanged, WorkerChanged


class RunCommands(Provider):
    """Command palette: open a run, requeue the failed seeds of a sweep."""

    async def search(self, query: str) -> Hits:
        app = cast(PggApp, self.app)
        matcher = self.matcher(query)
        for row in app.rows:
            title = f"open run {row.id}: {row.dataset} {row.variant} seed {row.seed} ({row.status})"
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), partial(app.open_run, row.id), help="run view")
        for group, ids in needs_requeue(app.rows).items():
            title = f"requeue the {len(ids)} failed seeds of sweep {group}"
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), partial(app.retry_runs, ids), help=f"runs {ids}")
        slots = max((len(json.loads(w.slots)) for w in app.leases), default=8)
        for n in [*range(1, slots + 1), None]:
            title = f"run {n} at once" if n else "run one per worker slot"
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), partial(app.set_parallel, n), help="changes the worker live")


class PggApp(App[None]):
    CSS_PATH = "app.tcss"
    TITLE = "pgg"
    COMMANDS = App.COMMANDS | {RunCommands}
    BINDINGS = [Binding("q", "quit", "Quit"), Binding("question_mark", "help", "Help", show=False)]

    def __init__(self, store: Store, poll: float = 1.0, created: bool = False, annotator: str | None = None):
        super().__init__()
        self.store = store
        self.annotator = annotator or default_annotator()  # whose name goes on the rankings made here
        self.created = created  # this start created the store: say where, or it looks like runs were lost
        self.poll_interval = poll
        self.rows: list[RunRow] = []
        self._data_version: int | None = None
        self._row_map: dict[int, RunRow] = {}  # owned by the poll thread
        self._polls = 0
        self._reported: dict[str, float] = {}  # failure line -> when it was last shown
        self.leases: list[Lease] = []  # every live worker of the store, this host's first
        self.queue_control: QueueControl | None = None
        self._worker_key: tuple[object, ...] | None = None  # owned by the poll thread

    def on_mount(self) -> None:
        from pgg_tui.screens.runs import RunsScreen

        self.push_screen(RunsScreen())
        if self.created:
            self.notify(
                f"new, empty store created at {self.store.location}; pgg-tui --db PATH opens another", timeout=15
            )
        self.poll_now()
        self.poll_timer = self.set_interval(self.poll_interval, self.poll_now)

    def get_system_commands(self, screen: Screen[object]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield SystemCommand("Queue runs", "open the queue form", self.action_queue)
        yield SystemCommand("Queue the demo sweep", "tiny models on the CPU, both tasks", self.action_demo)
        yield SystemCommand("Start a worker", "run queued runs in the background", self.action_worker)
        yield SystemCommand("Compare methods", "the paper's Table 1 layout", self.action_compare)
        yield SystemCommand("Pause or resume the queue", "running runs go on; queued ones wait", self.action_pause)
        yield SystemCommand("Rank samples", "order runs' samples for preference=human runs", self.action_rank)

    # -- polling: only new data crosses to the UI thread
    def poll_now(self, force: bool = False) -> None:
        self._poll(force)

    @work(thread=True, exclusive=True, group="poll", name="reading the store", exit_on_error=False)
    def _poll(self, force: bool) -> None:
        # The lease is read every poll: a worker that died changes nothing in the store.
        leases = [] if self.store.read_only else worker_leases(self.store)
        control = self.store.queue_control()
        key = (tuple((x.pid, x.host, x.slots, x.gpus) for x in leases), control)
        if key != self._worker_key:
            self._worker_key = key
            self.post_message(WorkerChanged(leases, control))
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
            live = [r.id for r in self._row_map.values() if r.status in LIVE]
            for r in fetch_rows(self.store, ids=live, after_id=max(self._row_map)):
                self._row_map[r.id] = r
        self.post_message(RunsChanged([self._row_map[k] for k in sorted(self._row_map)]))

    def on_runs_changed(self, message: RunsChanged) -> None:
        if self.rows:  # not on the first load: only what changed while the app was open
            self._announce(self.rows, message.rows)
        self.rows = message.rows
        self._show_everywhere()

    def on_worker_changed(self, message: WorkerChanged) -> None:
        self.leases = message.leases
        self.queue_control = message.queue_control
        self._show_everywhere()

    def _announce(self, before: list[RunRow], after: list[RunRow]) -> None:
        """A toast and the terminal bell when a run fails or a whole sweep finishes: nobody watches a table
        for hours."""
        was = {r.id: r.status for r in before}
        ended = [r for r in after if was.get(r.id) in LIVE and r.status not in LIVE]
        for r in ended:
            if r.status in ("failed", "lost"):
                self.notify(f"run {r.id} {r.status}: {r.error or 'see its log'}", severity="error", timeout=15)
        for group in {r.group_id for r in ended}:
            sweep = [r for r in after if r.group_id == group]
            if all(r.status not in LIVE for r in sweep) and len(sweep) > 1:
                counts: dict[str, int] = {}
                for r in sweep:
                    counts[r.status] = counts.get(r.status, 0) + 1
                self.notify(f"sweep {group} finished: " + ", ".join(f"{n} {k}" for k, n in counts.items()), timeout=15)
        if ended:
            self.bell()

    def _show_everywhere(self) -> None:
        for screen in self.screen_stack:
            show = getattr(screen, "show_rows", None)
            if show is not None and screen.is_mounted:  # one not yet mounted shows the rows in its on_mount
                show(self.rows)

    # -- actions shared by screens and the palette
    def open_run(self, run_id: int) -> None:
        from pgg_tui.screens.run import RunScreen

        self.push_screen(RunScreen(run_id))

    @work(thread=True, group="act", name="changing the store", exit_on_error=False)
    def act(self, change: Callable[[], list[str]], then: Callable[[], None] | None = None) -> None:
        """Change the store off the event loop (a locked store can take seconds), then say what happened
        and refresh. `then` runs on the UI thread once the change is in."""
        try:
            lines = change()
        except PggError as err:
            self.call_from_thread(self.notify, str(err), severity="error")
            return
        self.call_from_thread(self.notify, "\n".join(lines))
        if then is not None:
            self.call_from_thread(then)
        self.call_from_thread(self.poll_now, True)

    def report_worker(self, event: Worker.StateChanged) -> None:
        """A background task failed: one line on screen (once a minute per cause, as a broken store fails
        every poll), the traceback in Textual's log (`textual console`)."""
        if event.state != WorkerState.ERROR or event.worker.error is None:
            return
        err = event.worker.error
        self.log.error(f"{event.worker.name}: {err!r}")
        line = f"{event.worker.name or 'a background task'} failed: {last_line(str(err)) or type(err).__name__}"
        if time.monotonic() - self._reported.get(line, -1e9) > 60:
            self._reported[line] = time.monotonic()
            self.notify(line, severity="error", timeout=10)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        self.report_worker(event)

    def retry_runs(self, ids: list[int]) -> None:
        self.act(lambda: retry_runs(self.store, ids))

    def action_queue(self) -> None:
        from pgg_tui.screens.queue import QueueScreen

        self.push_screen(QueueScreen())

    def action_compare(self) -> None:
        from pgg_tui.screens.compare import CompareScreen

        self.push_screen(CompareScreen())

    def action_demo(self) -> None:
        def demo() -> list[str]:
            ids = queue_demo(self.store)
            return [f"queued the demo sweep: runs {ids[0]}–{ids[-1]}", ensure_worker(self.store, demo_worker_args())]

        n = self.store.run_count()
        if not n:  # the welcome's offer: an empty store
            self.act(demo)
            return
        from pgg_tui.screens.confirm import ConfirmScreen

        def answered(ok: bool | None) -> None:
            if ok:
                self.act(demo)

        self.push_screen(
            ConfirmScreen(f"This store already has {n} run(s). Queue the demo sweep ({demo_size()} tiny runs) again?"),
            answered,
        )

    def action_pause(self) -> None:
        self.act(lambda: toggle_pause(self.store))

    def set_parallel(self, n: int | None) -> None:
        def change() -> list[str]:
            self.store.set_queue_control(parallel=n)
            return [f"the worker runs {n} at once" if n else "the worker runs one per slot"]

        self.act(change)

    def action_rank(self, run_id: int | None = None) -> None:
        from pgg_tui.screens.rank import RankScreen

        self.push_screen(RankScreen(run_id))

    def action_worker(self) -> None:
        self.act(lambda: [ensure_worker(self.store)])

    def action_help(self) -> None:
        """Every key of the screen in front, the footer's hidden ones too, and the app's own."""
        from pgg_tui.screens.help import HelpScreen

        self.push_screen(HelpScreen(self.screen))


def default_annotator() -> str:
    """$PGG_ANNOTATOR, else the login name: each SSH session ranks under its own name."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "anonymous"
    return os.environ.get("PGG_ANNOTATOR") or user


def make_app(db: str | None = None, poll: float = 1.0, annotator: str | None = None) -> PggApp:
    path = path_of(resolve_url(db))
    created = path is not None and not path.exists()
    return PggApp(Store.open(db, read_only_ok=True), poll=poll, created=created, annotator=annotator)


def run_app(db: str | None = None, annotator: str | None = None) -> None:
    make_app(db, annotator=annotator).run()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="pgg-tui", description="the pgg experiment manager")
    parser.add_argument("--db", default=None, help="store URL or SQLite path (env PGG_DB; default experiments.db)")
    parser.add_argument(
        "--annotator",
        default=None,
        help="the name on the rankings you make (env PGG_ANNOTATOR; default your login name)",
    )
    args = parser.parse_args(argv)
    try:
        app = make_app(args.db, annotator=args.annotator)
    except PggError as err:
        print(f"pgg-tui: error: {err}", file=sys.stderr)
        sys.exit(1)
    app.run()
