"""Looking at runs: `pgg runs`, `show`, `wait`, `diff`, `logs`."""

from __future__ import annotations

import json
import signal
import sys
import threading
import time
from typing import TYPE_CHECKING, Annotated, Any

import typer

from engine.errors import ConfigError
from engine.lifecycle import LIVE
from pgg_tui.core.present import (
    TAU,
    fmt_metric,
    headline,
    last_line,
    number,
    printable,
    run_label,
    shared_overrides,
    variant_label,
    waiting_text,
)

if TYPE_CHECKING:
    from engine.store import Run

from pgg_tui.cli._common import (
    DatasetFilter,
    DbOpt,
    JsonOpt,
    LimitOpt,
    MethodFilter,
    RunIdArg,
    StatusOpt,
    SweepOpt,
    TagOpt,
    TaskOpt,
    app,
    boundary,
    examples,
    narrow_terminal,
    open_store,
    print_json,
    print_table,
    run_query,
)

RUNS_COLUMNS = (
    "id",
    "status",
    "task",
    "dataset",
    "method",
    "seed",
    "dseed",
    "phase",
    "step",
    "metric",
    "result",
    "tau",
    "parent",
    "name",
)
NARROW_RUNS_COLUMNS = ("id", "status", "method", "seed", "step", "metric", "result", "tau", "name")


def runs_cells(r: Run, shared: dict[str, Any] | None = None) -> list[str]:
    res = json.loads(r.results or "{}")
    head = headline(r.task, res)
    tau = number(res, TAU)
    return [
        str(r.id),
        r.status,
        r.task,
        r.dataset,
        variant_label(r.method, r.overrides, shared),
        str(r.seed),
        str(r.dataset_seed),
        (r.phase or "") + (f" ({waiting_text(r.waiting_for)})" if r.waiting_for and r.status == "running" else ""),
        f"{r.step}/{r.total_steps}" if r.total_steps else after_text(r),
        head[0] if head else "",
        f"{head[1]:.2f}" if head else "",
        f"{tau:+.2f}" if tau is not None else "",
        str(r.parent_id or ""),
        run_label(r.name, json.loads(r.tags or "[]")),
    ]


def after_text(r: Run) -> str:
    """'after 12,13' for a run queued --after others, in the step column it has no use for yet."""
    after = json.loads(r.after or "[]") if r.status == "queued" else []
    return f"after {','.join(map(str, after))}" if after else ""


@app.command(
    epilog=examples(
        "pgg runs --status failed,cancelled -n 20   # the newest 20 that did not finish",
        "pgg runs --task prompt -d sst-2 -m pgg --tag paper",
        "pgg runs --status queued -q                # ids only, one per line, for scripts",
    )
)
@boundary
def runs(
    status: StatusOpt = None,
    task: TaskOpt = None,
    dataset: DatasetFilter = None,
    method: MethodFilter = None,
    sweep: SweepOpt = None,
    limit: LimitOpt = None,
    tag: TagOpt = None,
    ids_only: Annotated[bool, typer.Option("--quiet", "-q", help="print only run ids, one per line")] = False,
    watch: Annotated[
        float | None,
        typer.Option(
            "--watch", "-w", min=0.2, metavar="SECONDS", help="redraw every N seconds until Ctrl-C", show_default=False
        ),
    ] = None,
    wide: Annotated[
        bool,
        typer.Option("--wide", "-o", help="every column whole, whatever the terminal's width (as a pipe gets them)"),
    ] = False,
    json_: JsonOpt = False,
    db: DbOpt = None,
) -> None:
    """List runs, by status, task, dataset, method, sweep or tag."""
    from pgg_tui.core.export import run_record
    from pgg_tui.core.views import RunQuery, find_runs

    query = run_query(status, task, dataset, method, sweep, limit, tags=tag or [])
    store = open_store(db, create=False)
    stop = threading.Event()
    if watch:  # Ctrl-C ends the watch at once, wherever it lands (a store read, a redraw, the wait)
        signal.signal(signal.SIGINT, lambda *_: stop.set())
    while not stop.is_set():
        rows = find_runs(store, query)
        if watch and not json_ and not ids_only and sys.stdout.isatty():
            typer.echo("\033[H\033[2J", nl=False)
            typer.echo(f"every {watch:g}s · {store.location} · {time.strftime('%H:%M:%S')}", err=True)
        if json_:
            print_json([run_record(r) for r in rows])
        elif ids_only:
            for r in rows:
                typer.echo(str(r.id))
        elif rows:
            narrow = narrow_terminal(wide)
            shared = shared_overrides(r.overrides for r in rows) if narrow and len(rows) > 1 else {}
            cells = [runs_cells(r, shared) for r in rows]
            named = any(c[-1] for c in cells)  # the name column only when some run has a name or tags
            cols = list(RUNS_COLUMNS[: len(RUNS_COLUMNS) - (not named)])
            if narrow:  # the telling columns whole, the method cut with … (-o wide, or a pipe: all of them)
                keep = [i for i, c in enumerate(cols) if c in NARROW_RUNS_COLUMNS]
                cols, cells = [cols[i] for i in keep], [[c[i] for i in keep] for c in cells]
            print_table(
                cols,
                cells,
                right=("id", "seed", "dseed", "step", "parent"),
                squeeze=("method", "name") if narrow else (),
                whole_cells=wide,
            )
            if shared:
                typer.echo("every run: " + " ".join(f"{k}={v}" for k, v in sorted(shared.items())), err=True)
        else:
            typer.echo("no runs" + (" match" if query != RunQuery() else ""), err=True)
        if not watch:
            return
        stop.wait(watch)


@app.command(epilog=examples("pgg show 7", "pgg show 7 --json     # everything, config and results whole"))
@boundary
def show(run_id: RunIdArg, json_: JsonOpt = False, db: DbOpt = None) -> None:
    """Show one run: status, config, phases, metrics, results, error."""
    from pgg_tui.core.report import report_json, run_report

    store = open_store(db, create=False)
    report = run_report(store, run_id)
    if json_:
        print_json(report_json(store, report))
        return
    typer.echo("\n".join(report.lines()))


@app.command(
    epilog=examples(
        "pgg wait 1 2 3 && pgg table          # the table once all three are done",
        "pgg wait --sweep 3f2a9c1e --timeout 3600",
    )
)
@boundary
def wait(
    run_ids: Annotated[
        list[int] | None,
        typer.Argument(
            metavar="RUN...", help="the runs to wait for (default: those the filters name)", show_default=False
        ),
    ] = None,
    sweep: SweepOpt = None,
    task: TaskOpt = None,
    timeout: Annotated[
        float | None,
        typer.Option(
            "--timeout", min=0, metavar="SECONDS", help="give up after N seconds (exit 124)", show_default=False
        ),
    ] = None,
    poll: Annotated[float, typer.Option("--poll", min=0.1, metavar="SECONDS", help="seconds between looks")] = 2.0,
    db: DbOpt = None,
) -> None:
    """Wait until runs end, a line as each does.

    Exit 0 if all are done, 1 if any failed, was lost or cancelled; for scripts:
    `pgg queue ... && pgg wait --sweep ID && pgg table`.
    """
    from engine.lifecycle import FINISHED
    from pgg_tui.core.views import find_runs

    if not run_ids and sweep is None and task is None:
        raise ConfigError("name the runs to wait for: run ids, --sweep ID or --task T")
    query = run_query(None, task, None, None, sweep, None, run_ids or ())
    store = open_store(db, create=False)
    runs = find_runs(store, query)
    missing = sorted(set(run_ids or ()) - {r.id for r in runs})
    if missing:
        raise ConfigError(f"no run {missing[0]} in this store")
    if not runs:
        raise ConfigError("no run matches")
    ids = [r.id for r in runs if r.id is not None]
    told: set[int] = set()
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        now_runs = store.runs(ids=ids)
        for r in now_runs:
            if r.status in FINISHED and r.id not in told:
                told.add(r.id or 0)
                head = headline(r.task, json.loads(r.results or "{}"))
                reason = f": {last_line(r.error)}" if r.status != "done" and r.error else ""
                typer.echo(f"run {r.id}: {r.status}" + (f" ({head[0]} {fmt_metric(*head)})" if head else "") + reason)
        if len(told) == len(ids):
            bad = [r.id for r in now_runs if r.status != "done"]
            raise typer.Exit(1 if bad else 0)
        if deadline is not None and time.monotonic() > deadline:
            typer.echo(f"pgg: {len(ids) - len(told)} of {len(ids)} runs still going after {timeout:g}s", err=True)
            raise typer.Exit(124)
        try:
            time.sleep(poll)
        except KeyboardInterrupt:
            raise typer.Exit(130) from None


@app.command(epilog=examples("pgg diff 1 6"))
@boundary
def diff(run_a: RunIdArg, run_b: RunIdArg, json_: JsonOpt = False, db: DbOpt = None) -> None:
    """The settings and results two runs differ in.

    Their whole configs are compared, defaults included."""
    from pgg_tui.core.present import config_diff, run_diff

    store = open_store(db, create=False)
    a, b = store.get(run_a), store.get(run_b)
    changed = config_diff(json.loads(a.config), json.loads(b.config))
    results = config_diff(json.loads(a.results or "{}"), json.loads(b.results or "{}"))
    if json_:
        print_json(
            dict(
                config={k: [x, y] for k, x, y in changed},
                results={k: [x, y] for k, x, y in results if not isinstance(x, (list, dict))},
            )
        )
        return
    rows = [
        [k, x, y]
        for _, k, x, y in run_diff(
            json.loads(a.config), json.loads(b.config), json.loads(a.results or "{}"), json.loads(b.results or "{}")
        )
    ]
    if not rows:
        typer.echo(f"runs {run_a} and {run_b} have the same config and results")
        return
    print_table(("setting", f"run {run_a}", f"run {run_b}"), rows)


@app.command(epilog=examples("pgg logs 8", "pgg logs 7 -f          # until the run ends"))
@boundary
def logs(
    run_id: RunIdArg,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="keep printing until the run ends")] = False,
    db: DbOpt = None,
) -> None:
    """Print a run's captured output: stdout, stderr and engine lines."""
    store = open_store(db, create=False)
    store.get(run_id)
    last = 0
    while True:
        for line in store.logs(run_id, after_id=last):
            last = line.id  # type: ignore[assignment]
            typer.echo(printable(line.text), err=line.stream == "stderr")
        if not follow or store.get(run_id).status not in LIVE:
            if follow:
                for line in store.logs(run_id, after_id=last):
                    typer.echo(printable(line.text), err=line.stream == "stderr")
            return
        time.sleep(0.5)
