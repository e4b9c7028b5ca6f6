"""`pgg`: queue, run, watch and compare pgg experiments from scripts.

Each command is a thin skin over pgg_tui.core, the same functions the app calls. Errors meant for
people (engine.errors.PggError, usage errors) become one line on stderr and a non-zero exit. A listing
printed to a pipe is whole tab-separated rows; `--json` gives every listing as data. Importing this
module loads neither torch, textual nor the store's ORM: `pgg --help` is instant.
"""

from __future__ import annotations

import functools
import json
import shutil
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

try:  # typer >= 0.25 carries its own copy of click
    from typer._click.exceptions import UsageError
except ImportError:  # pragma: no cover
    from click.exceptions import UsageError  # type: ignore[assignment, no-redef, unused-ignore]

import engine
from engine.config import field_help
from engine.errors import ConfigError, PggError
from engine.lifecycle import STATUSES
from engine.registry import TASKS, RunSpec, get_task, plan_errors, plan_runs
from pgg_tui.core.present import (CHANCE, TAU, duration, fmt_metric, gpu_reading, headline, last_line, number,
                                  printable, repeatability, run_label, shared_overrides,
                                  tau_by_phase, variant_label, waiting_text)

if TYPE_CHECKING:
    from engine.store import Run, Store
    from engine.sweep import Sweep
    from pgg_tui.core.views import RunQuery

app = typer.Typer(
    name="pgg", help="Preference-grounded token-level guidance: queue, run and compare experiments.",
    no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
EXTRA = {"allow_extra_args": True}  # `--set a=1 b=2`: the words after the first --set value

F = TypeVar("F", bound=Callable[..., Any])
GLOBAL_DB: str | None = None  # --db given before the command

DbOpt = Annotated[str | None, typer.Option("--db", help="store URL or SQLite path [env: PGG_DB; "
                                           "default: sqlite:///experiments.db]", show_default=False)]
RunIdArg = Annotated[int, typer.Argument(help="run id (see `pgg runs`)", show_default=False)]
RunIdsArg = Annotated[list[str], typer.Argument(help="run ids: N, ranges A-B and lists (3 5 7-9, 22-29)",
                                                metavar="IDS...", show_default=False)]


def run_ids_of(words: Sequence[str]) -> list[int]:
    """`["3", "7-9", "12,14"]` -> [3, 7, 8, 9, 12, 14]: ids as people type them, in the order given."""
    from engine.registry import parse_seeds

    ids: list[int] = []
    for word in words:
        for rid in parse_seeds(word, "run ids"):
            if rid not in ids:
                ids.append(rid)
    return ids
JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output")]


def fail(message: str, code: int = 1) -> None:
    typer.echo(f"pgg: error: {message}", err=True)
    raise typer.Exit(code)


def boundary(fn: F) -> F:
    """Turn the errors people cause into one line and a non-zero exit, never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except PggError as err:
            fail(str(err))
        except BrokenPipeError:  # `pgg runs | head`: the reader left; not an error
            _quiet_pipe()
        except Exception as err:
            import sqlalchemy as sa

            if isinstance(err, sa.exc.OperationalError):  # disk full, read-only file, locked past the timeout
                fail(f"store: {str(err.orig).splitlines()[0]}")
            raise

    return wrapper  # type: ignore[return-value]


def version_callback(value: bool) -> None:
    if value:
        typer.echo(f"pgg {engine.__version__}")
        raise typer.Exit()


def _quiet_pipe() -> None:
    """Stop writing to a closed pipe without a traceback at interpreter exit."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    raise typer.Exit(0)


@app.callback()
def main_options(
    version: Annotated[bool, typer.Option("--version", callback=version_callback, is_eager=True,
                                          help="print the version and exit")] = False,
    db: DbOpt = None,
) -> None:
    """Preference-grounded token-level guidance: queue, run and compare experiments."""
    global GLOBAL_DB
    GLOBAL_DB = db  # `pgg --db URL runs`, as git and kubectl users type it; a command's own --db still wins


def open_store(db: str | None, create: bool = True) -> Store:
    from engine.store import Store  # SQLModel and pydantic load only for commands that use the store

    # readers can read a store they cannot write
    return Store.open(db or GLOBAL_DB, create=create, read_only_ok=not create)


def to_pipe() -> bool:
    """Whole tab-separated rows when stdout is not a terminal: `pgg runs | grep -c failed` counts."""
    return not sys.stdout.isatty()


def print_table(cols: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[str] = (),
                squeeze: Sequence[str] = (), whole_cells: bool = False) -> None:
    """Whole TSV rows into a pipe; a table on a terminal. `squeeze`: the columns that give up width (cut
    with …) when the terminal is narrow, so every other cell stays whole and no row wraps."""
    if to_pipe():
        typer.echo("\t".join(cols))
        for row in rows:
            typer.echo("\t".join(c.replace("\t", " ").replace("\n", " ") for c in row))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(box=None, pad_edge=False, header_style="bold")
    whole = [max([len(col), *(len(r[i]) for r in rows)]) for i, col in enumerate(cols)]
    cut = [i for i, col in enumerate(cols) if col in squeeze]
    # each gap between columns is two spaces (padding 1 on either side, none at the edges)
    room = shutil.get_terminal_size().columns - sum(w for i, w in enumerate(whole) if i not in cut) - 2 * (len(cols) - 1)
    share = {}
    for n, i in enumerate(sorted(cut, key=lambda i: whole[i])):  # the narrowest first; what it leaves goes on
        share[i] = max(8, min(whole[i], room // (len(cut) - n)))
        room -= share[i]
    for i, col in enumerate(cols):
        if squeeze:  # the others whole; the squeezed ones share what is left, cut with …
            width = share.get(i, whole[i])
            table.add_column(col, justify="right" if col in right else "left", no_wrap=True, overflow="ellipsis",
                             width=width)
        else:
            table.add_column(col, justify="right" if col in right else "left")
    for row in rows:
        table.add_row(*row)
    # whole_cells (-o wide): every cell in full, the rows as long as they need (the terminal wraps them)
    Console(width=sum(whole) + 2 * (len(cols) - 1) if whole_cells else None).print(table)


def print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=1))


# ---------------------------------------------------------------------------------------------------
# queue and run

TaskArg = Annotated[str, typer.Argument(help=f"task: {', '.join(TASKS)}", show_default=False)]
DatasetOpt = Annotated[str, typer.Option("--dataset", "-d", help="dataset name (`pgg tasks` lists them) "
                                         "or, for summarize, a .jsonl/.csv file", show_default=False)]
MethodOpt = Annotated[str, typer.Option("--method", "-m", help="method (`pgg tasks` lists them)")]
SeedsOpt = Annotated[str, typer.Option("--seeds", "-s", help="seeds: N, A-B or a list (0-4, 0,2,5)")]
DSeedsOpt = Annotated[str, typer.Option("--dataset-seeds", help="dataset seeds (few-shot splits 0-4)")]
PresetOpt = Annotated[str, typer.Option("--preset", "-p", help="paper (the paper's models and schedule) or "
                                        "tiny (tiny models, minutes on a CPU)")]
DataDirOpt = Annotated[str, typer.Option("--data-dir", help="folder of local data (prompt: the 16-shot layout)")]
SetOpt = Annotated[list[str] | None, typer.Option("--set", help="override settings: key=value [key=value ...] "
                                                  "(`pgg options TASK` lists them)")]


NameOpt = Annotated[str, typer.Option("--name", help="a name for the runs, shown in listings and the app")]
TagOpt = Annotated[list[str] | None, typer.Option("--tag", "-t", help="a tag (repeatable, or comma-separated)",
                                                  show_default=False)]


def overrides_of(set_: list[str] | None, ctx: typer.Context) -> list[str]:
    """--set values plus the key=value words that follow them (`--set a=1 b=2`, as people type it)."""
    extra = list(ctx.args)
    stray = [w for w in extra if "=" not in w or w.startswith("-")]
    if stray or (extra and not set_):
        raise ConfigError(f"unexpected argument {(stray or extra)[0]!r}; settings go after --set as key=value")
    return [*(set_ or []), *extra]


def plan(ctx: typer.Context, task: str, dataset: str, method: str, seeds: str, dataset_seeds: str, preset: str,
         data_dir: str, set_: list[str] | None, sweep_file: str | None = None,
         name: str = "") -> tuple[list[RunSpec], Sweep | None]:
    """The runs a queue request makes, and the sweep they form when settings list several values
    (`--set agg=avg,max`) or a sweep file names grids per method (None: seeds alone)."""
    from engine.sweep import Sweep, load_sweep, parse_grid, plan_sweep

    grid = parse_grid(overrides_of(set_, ctx))
    if sweep_file is None and all(len(v) == 1 for v in grid.values()):
        sets = [f"{k}={v[0]}" for k, v in grid.items()]
        errors = plan_errors(task, dataset, method, seeds, dataset_seeds, preset, data_dir, sets)
        if errors:  # every problem at once, as the queue form shows them
            raise ConfigError("; ".join(errors))
        return plan_runs(task, dataset, method, seeds, dataset_seeds, preset, data_dir, sets), None
    if sweep_file is not None:
        many = [k for k, v in grid.items() if len(v) > 1]
        if many:
            raise ConfigError(f"--set {many[0]} lists several values beside --sweep: put that grid in the file")
        source = ctx.get_parameter_source("method")
        if source is not None and source.name != "DEFAULT":
            raise ConfigError("--method with --sweep: the sweep file's tables name the methods")
        sweep = load_sweep(sweep_file)
        common = [f"{k}={v[0]}" for k, v in grid.items()]
    else:
        sweep, common = Sweep(grids={method: grid}), []
    sweep.name = name or sweep.name
    return plan_sweep(task, dataset, sweep, seeds, dataset_seeds, preset, data_dir, common), sweep


@app.command(context_settings=EXTRA)
@boundary
def queue(ctx: typer.Context, task: TaskArg, dataset: DatasetOpt, method: MethodOpt = "pgg", seeds: SeedsOpt = "0",
          dataset_seeds: DSeedsOpt = "0", preset: PresetOpt = "paper", data_dir: DataDirOpt = "",
          set_: SetOpt = None, db: DbOpt = None,
          sweep_file: Annotated[str | None, typer.Option("--sweep", help="a TOML file of grids, one table per "
                                                         "method (docs: engine/sweep.py)", show_default=False)] = None,
          dry_run: Annotated[bool, typer.Option("--dry-run", help="validate and list the runs; queue nothing")] = False,
          yes: Annotated[bool, typer.Option("--yes", "-y", help="queue a sweep of more than 1,000 runs")] = False,
          name: NameOpt = "", tag: TagOpt = None,
          priority: Annotated[int, typer.Option("--priority", help="higher runs first (default 0)")] = 0,
          json_: JsonOpt = False) -> None:
    """Queue runs: seeds x dataset seeds, and a grid of settings (`--set agg=avg,max lr=1e-3,3e-3`, or a
    --sweep file of grids per method). A worker runs them. Prints the new run ids."""
    from engine.registry import parse_seeds
    from engine.sweep import CONFIRM_ABOVE

    # validated with the first seed alone (every configuration and dataset seed; the seed changes no check), so
    # a request of 100,001 runs is counted and refused in a moment instead of being built run by run
    seed_list = parse_seeds(seeds, "seeds")
    probe, sweep = plan(ctx, task, dataset, method, str(seed_list[0]), dataset_seeds, preset, data_dir, set_,
                        sweep_file, name)
    total = len(probe) * len(seed_list)
    if total > CONFIRM_ABOVE and not yes:
        if not dry_run:
            raise ConfigError(f"this would queue {total:,} runs (more than {CONFIRM_ABOVE:,}); check it with "
                              "--dry-run, then add --yes")
        typer.echo(f"would queue {total:,} runs ({len(probe):,} per seed x {len(seed_list):,} seeds; dry run: "
                   f"nothing queued); more than {CONFIRM_ABOVE:,} needs --yes, and lists them", err=True)
        return
    specs, sweep = plan(ctx, task, dataset, method, seeds, dataset_seeds, preset, data_dir, set_, sweep_file, name)
    grid_line = ""
    if sweep is not None:
        grid_line = "; ".join(f"{m}: {len(sweep.configurations(m))} configuration(s)"
                              + "".join(f", {k} in {{{', '.join(v)}}}" for k, v in g.items() if len(v) > 1)
                              for m, g in sweep.grids.items())
    if dry_run:
        rows = [dict(task=r.task, dataset=r.dataset, method=r.method, seed=r.seed, dataset_seed=r.dataset_seed,
                     preset=r.preset, overrides=r.overrides) for r in specs]
        if json_:
            print_json(rows)
        else:
            print_table(("task", "dataset", "method", "seed", "dseed", "preset", "overrides"),
                        [[r.task, r.dataset, r.method, str(r.seed), str(r.dataset_seed), r.preset,
                          " ".join(f"{k}={v}" for k, v in sorted(r.overrides.items()))] for r in specs])
            if grid_line:
                typer.echo(f"grid: {grid_line}", err=True)
            typer.echo(f"would queue {len(specs):,} run{'s' * (len(specs) != 1)} (dry run: nothing queued)"
                       + (f"; more than {CONFIRM_ABOVE:,} needs --yes" if len(specs) > CONFIRM_ABOVE and not yes else ""),
                       err=True)
        return
    if len(specs) > CONFIRM_ABOVE and not yes:
        raise ConfigError(f"this would queue {len(specs):,} runs (more than {CONFIRM_ABOVE:,}); check it with "
                          "--dry-run, then add --yes")
    from pgg_tui.core.ops import queue_runs

    ids = queue_runs(open_store(db), specs, name=name, tags=tag or [], priority=priority, sweep=sweep)
    if json_:
        print_json(ids)
    else:
        typer.echo(" ".join(str(i) for i in ids))
    if sweep is not None:
        typer.echo(f"sweep {grid_line}", err=True)
    typer.echo(f"queued {len(ids)} run{'s' * (len(ids) != 1)}; start a worker with `pgg worker` if none runs",
               err=True)


@app.command(context_settings=EXTRA)
@boundary
def run(ctx: typer.Context, task: TaskArg, dataset: DatasetOpt, method: MethodOpt = "pgg", seeds: SeedsOpt = "0",
        dataset_seeds: DSeedsOpt = "0", preset: PresetOpt = "paper", data_dir: DataDirOpt = "",
        set_: SetOpt = None, db: DbOpt = None,
        quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no live progress line")] = False) -> None:
    """Train in the foreground (no worker), recorded in the store like any run. Ctrl-C stops gracefully."""
    specs, _ = plan(ctx, task, dataset, method, seeds, dataset_seeds, preset, data_dir, set_)
    from engine.config import to_json

    store = open_store(db)
    group = os.urandom(4).hex()
    worst = 0
    for spec in specs:
        # created running and owned by this process, one at a time: a worker never sees it queued
        (rid,) = store.queue([spec], to_json, group=group, started_by=os.getpid())
        code = _run_foreground(store, rid, quiet)
        r = store.get(rid)
        summary = ", ".join(f"{k} {v:.4g}" for k, v in json.loads(r.results or "{}").items()
                            if isinstance(v, (int, float)))
        typer.echo(f"run {rid}: {r.status}" + (f": {summary}" if summary else ""))
        if r.status == "failed" and r.error and "Traceback" in r.error:
            typer.echo(last_line(r.error), err=True)  # the exception line of the traceback
        worst = max(worst, code if r.status != "cancelled" else 130)
        if r.status == "cancelled":
            break
    if worst:
        raise typer.Exit(worst)


def _run_foreground(store: Store, run_id: int, quiet: bool) -> int:
    """The run trains in a process of its own, exactly as under a worker; this one shows its progress."""
    from pgg_tui.core.launch import run_in_foreground

    stop = threading.Event()
    watcher = None
    live = not quiet and sys.stderr.isatty()
    if live:
        watcher = threading.Thread(target=_progress_line, args=(store, run_id, stop), daemon=True)
        watcher.start()
    try:
        code = run_in_foreground(store, run_id, echo=not live, on_stop=lambda text: typer.echo("\n" + text, err=True),
                                 out=lambda line: typer.echo(line, nl=False),
                                 err=lambda line: typer.echo(line, nl=False, err=True))
    finally:
        stop.set()
        if watcher is not None:
            watcher.join(timeout=2)
            sys.stderr.write("\r\033[K")
    if store.get(run_id).status == "running":  # killed by the second Ctrl-C: it could not record its end
        store.fail(run_id, "aborted: the run process was killed (second Ctrl-C); `pgg retry` resumes it", exit_code=code)
    return 130 if code < 0 else code


def _progress_line(store: Store, run_id: int, stop: threading.Event) -> None:
    """One live status line on stderr: phase, step / total, latest losses, ETA."""
    names = ["reward/loss", "reward/val_loss", "policy/loss", "train/score", "dev/score", "val/score"]
    while not stop.wait(0.5):
        try:
            r = store.get(run_id)
            last = store.latest_metrics([run_id], names)
        except Exception:  # a busy store: the next tick shows the line
            continue
        eta = f" · ETA {duration(max(0.0, r.eta_at - time.time()))}" if r.eta_at else ""  # engine.eta
        vals = " · ".join(f"{n} {last[(run_id, n)]:.3g}" for n in names if (run_id, n) in last)
        inside = f" {r.phase_step}/{r.phase_total}" if r.phase_total else ""  # a reward training's own steps
        wait = f" · {waiting_text(r.waiting_for)} (pgg-tui, R)" if r.waiting_for else ""
        line = f"run {run_id} · {r.phase or 'setup'}{inside}{wait} · step {r.step}/{r.total_steps or '?'}{eta}" + (f" · {vals}" if vals else "")
        width = os.get_terminal_size(sys.stderr.fileno()).columns if sys.stderr.isatty() else 200
        sys.stderr.write("\r\033[K" + line[: width - 1])
        sys.stderr.flush()


# ---------------------------------------------------------------------------------------------------
# looking at runs

StatusOpt = Annotated[list[str] | None, typer.Option("--status", help=f"only runs in these states (repeatable, "
                                                     f"or comma-separated): {', '.join(STATUSES)}", show_default=False)]
TaskOpt = Annotated[str | None, typer.Option("--task", help="only this task", show_default=False)]
DatasetFilter = Annotated[str | None, typer.Option("--dataset", "-d", help="only this dataset", show_default=False)]
MethodFilter = Annotated[str | None, typer.Option("--method", "-m", help="only this method", show_default=False)]
SweepOpt = Annotated[str | None, typer.Option("--sweep", help="only this sweep (its group id)", show_default=False)]
LimitOpt = Annotated[int | None, typer.Option("--limit", "-n", min=1, help="only the newest N", show_default=False)]


def run_query(status: list[str] | None, task: str | None, dataset: str | None, method: str | None,
              sweep: str | None, limit: int | None, ids: Sequence[int] = (), tags: Sequence[str] = ()) -> RunQuery:
    from engine.store import clean_tags
    from pgg_tui.core.views import RunQuery

    statuses = tuple(s.strip() for item in status or [] for s in item.split(",") if s.strip())
    for s in statuses:
        if s not in STATUSES:
            raise ConfigError(f"unknown status {s!r}; choose among: {', '.join(STATUSES)}")
    if task is not None:
        get_task(task)
    return RunQuery(statuses, task, dataset, method, sweep, tuple(ids), limit, tuple(clean_tags(tags)))


RUNS_COLUMNS = ("id", "status", "task", "dataset", "method", "seed", "dseed", "phase", "step", "metric", "result",
                "tau", "parent", "name")
NARROW_RUNS_COLUMNS = ("id", "status", "method", "seed", "step", "metric", "result", "tau", "name")


def runs_cells(r: Run, shared: dict[str, Any] | None = None) -> list[str]:
    res = json.loads(r.results or "{}")
    head = headline(r.task, res)
    tau = number(res, TAU)
    return [str(r.id), r.status, r.task, r.dataset, variant_label(r.method, r.overrides, shared), str(r.seed),
            str(r.dataset_seed), (r.phase or "") + (f" (waits {r.waiting_for} rankings)" if r.waiting_for and r.status == "running" else ""),
            f"{r.step}/{r.total_steps}" if r.total_steps else "",
            head[0] if head else "", f"{head[1]:.2f}" if head else "", f"{tau:+.2f}" if tau is not None else "",
            str(r.parent_id or ""), run_label(r.name, json.loads(r.tags or "[]"))]


@app.command()
@boundary
def runs(status: StatusOpt = None, task: TaskOpt = None, dataset: DatasetFilter = None, method: MethodFilter = None,
         sweep: SweepOpt = None, limit: LimitOpt = None, tag: TagOpt = None,
         ids_only: Annotated[bool, typer.Option("--quiet", "-q", help="print only run ids, one per line")] = False,
         watch: Annotated[float | None, typer.Option("--watch", "-w", min=0.2, help="redraw every N seconds "
                                                     "until Ctrl-C", show_default=False)] = None,
         wide: Annotated[bool, typer.Option("--wide", "-o", help="every column whole, whatever the terminal's "
                                            "width (as a pipe gets them)")] = False,
         json_: JsonOpt = False, db: DbOpt = None) -> None:
    """List runs, filtered by status, task, dataset, method or sweep."""
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
            narrow = not wide and not to_pipe() and shutil.get_terminal_size().columns < 160
            shared = shared_overrides(r.overrides for r in rows) if narrow and len(rows) > 1 else {}
            cells = [runs_cells(r, shared) for r in rows]
            named = any(c[-1] for c in cells)  # the name column only when some run has a name or tags
            cols = list(RUNS_COLUMNS[:len(RUNS_COLUMNS) - (not named)])
            if narrow:  # the telling columns whole, the method cut with … (-o wide, or a pipe: all of them)
                keep = [i for i, c in enumerate(cols) if c in NARROW_RUNS_COLUMNS]
                cols, cells = [cols[i] for i in keep], [[c[i] for i in keep] for c in cells]
            print_table(cols, cells, right=("id", "seed", "dseed", "step", "parent"),
                        squeeze=("method", "name") if narrow else (), whole_cells=wide)
            if shared:
                typer.echo("every run: " + " ".join(f"{k}={v}" for k, v in sorted(shared.items())), err=True)
        else:
            typer.echo("no runs" + (" match" if query != RunQuery() else ""), err=True)
        if not watch:
            return
        stop.wait(watch)


@app.command()
@boundary
def show(run_id: RunIdArg, json_: JsonOpt = False, db: DbOpt = None) -> None:
    """Show one run: status, config, phases, latest metrics, results, error."""
    from pgg_tui.core.export import run_record

    store = open_store(db, create=False)
    r = store.get(run_id)
    d = run_record(r, full=True)
    d["phases"] = [dict(kind=p.kind, index=p.index, start_step=p.start_step, end_step=p.end_step)
                   for p in store.phases(run_id)]
    latest: dict[str, float] = {}
    for m in store.metrics(run_id):
        latest[m.name] = m.value
    d["latest_metrics"] = latest
    if json_:
        print_json(d)
        return
    out = [f"run {r.id} · {r.status} · {r.task} / {r.dataset} / {variant_label(r.method, r.overrides)} · seed {r.seed} · "
           f"dataset seed {r.dataset_seed} · preset {r.preset} · attempt {r.attempt}"
           + (f" (retries run {r.parent_id})" if r.parent_id else "")]
    if r.name or d["tags"]:
        out.append(f"name      {run_label(r.name, d['tags'])}")
    if r.notes:
        out.append("notes     " + r.notes.strip().replace("\n", "\n          "))
    if r.status == "queued" and r.priority:
        out.append(f"priority  {r.priority}")
    if r.phase or r.total_steps:
        inside = f" ({r.phase_step}/{r.phase_total} in phase)" if r.phase_total else ""
        left = f" · ETA {duration(r.eta_at - time.time())}" if r.status == "running" and r.eta_at else ""
        wait = f" · {waiting_text(r.waiting_for)}" if r.status == "running" and r.waiting_for else ""
        out.append(f"progress  {r.phase or ''}{inside} step {r.step}/{r.total_steps}{wait}{left}")
    if d["phases"]:
        out.append("phases    " + ", ".join(f"{p['kind']} {p['index']} [{p['start_step']}–{p['end_step'] if p['end_step'] is not None else '…'}]"
                                           for p in d["phases"]))
    if latest:
        out.append("metrics   " + ", ".join(f"{k} {fmt_metric(k, v)}" for k, v in latest.items()))
    rows = store.metrics(run_id, names=[CHANCE, TAU])
    phase_tau = tau_by_phase([m.phase for m in rows if m.name == CHANCE], [(m.phase, m.value) for m in rows if m.name == TAU])
    taus = [f"{t:+.2f}" if t is not None else "n/a" for t in phase_tau.values()]
    if any(t is not None for t in phase_tau.values()):
        chance = latest.get("reward/chance_loss", float("nan"))
        val = latest.get("reward/best_val_loss", latest.get("reward/val_loss", float("nan")))
        out.append(f"grounding Kendall tau per reward phase {', '.join(taus)} (0 = chance); "
                   f"last validation ListMLE {val:.3f} vs chance ln K! {chance:.3f}")
    human = [m.value for m in store.metrics(run_id, names=["reward/human_tau"])]
    if human:  # preference=human or mixed: the same against held-out people-ranked lists
        from engine import rankings

        out.append(f"people    Kendall tau on held-out rankings per reward phase {', '.join(f'{t:+.2f}' for t in human)}"
                   f"; {rankings.answered_count(store, [run_id])} ranking(s) by people (pgg rankings export {run_id})")
    if d["results"]:
        res = {k: v for k, v in d["results"].items() if not isinstance(v, (list, dict))}
        out.append("results   " + ", ".join(f"{k} {fmt_metric(k, v)}" if isinstance(v, (int, float)) else f"{k} {v}"
                                          for k, v in res.items() if not k.startswith("env/")))
        env = [f"{k.removeprefix('env/')} {v}" for k, v in res.items() if k.startswith("env/")]
        if env:
            out.append("made by   " + ", ".join(env))
        if "env/device" in res:
            out.append("repeats   " + repeatability(str(res["env/device"]), res.get("env/threads")))
    if r.host:
        out.append(f"where     {r.host}" + (f" gpu {r.gpu}" if r.gpu else "") + (f" · Slurm job {r.job_id}" if r.job_id else ""))
    if r.run_dir:
        out.append(f"run dir   {r.run_dir}")
    cfg = json.loads(r.config)
    defaults = {k: v[0] for k, v in field_help(get_task(r.task).config_cls).items()}
    changed = {k: v for k, v in cfg.items() if defaults.get(k) != v and k not in ("dataset", "method", "seed", "dataset_seed")}
    out.append("config    " + (", ".join(f"{k}={v}" for k, v in changed.items()) or "paper defaults"))
    if r.error:
        out.append("error     " + r.error.strip().replace("\n", "\n          "))
    typer.echo(printable("\n".join(out)))


@app.command()
@boundary
def wait(run_ids: Annotated[list[int] | None, typer.Argument(help="the runs to wait for (default: those the "
                                                             "filters name)", show_default=False)] = None,
         sweep: SweepOpt = None, task: TaskOpt = None,
         timeout: Annotated[float | None, typer.Option("--timeout", min=0, help="give up after N seconds "
                                                       "(exit 124)", show_default=False)] = None,
         poll: Annotated[float, typer.Option("--poll", min=0.1, help="seconds between looks")] = 2.0,
         db: DbOpt = None) -> None:
    """Wait until runs end, a line as each does; exit 0 if all are done, 1 if any failed, was lost or cancelled.

    For scripts: `pgg queue ... && pgg wait --sweep ID && pgg table`.
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


@app.command()
@boundary
def diff(run_a: RunIdArg, run_b: RunIdArg, json_: JsonOpt = False, db: DbOpt = None) -> None:
    """The settings two runs differ in (their whole configs, defaults included), and their results."""
    from pgg_tui.core.present import config_diff, run_diff

    store = open_store(db, create=False)
    a, b = store.get(run_a), store.get(run_b)
    changed = config_diff(json.loads(a.config), json.loads(b.config))
    results = config_diff(json.loads(a.results or "{}"), json.loads(b.results or "{}"))
    if json_:
        print_json(dict(config={k: [x, y] for k, x, y in changed},
                        results={k: [x, y] for k, x, y in results if not isinstance(x, (list, dict))}))
        return
    rows = [[k, x, y] for _, k, x, y in run_diff(json.loads(a.config), json.loads(b.config),
                                                 json.loads(a.results or "{}"), json.loads(b.results or "{}"))]
    if not rows:
        typer.echo(f"runs {run_a} and {run_b} have the same config and results")
        return
    print_table(("setting", f"run {run_a}", f"run {run_b}"), rows)


@app.command()
@boundary
def logs(run_id: RunIdArg,
         follow: Annotated[bool, typer.Option("--follow", "-f", help="keep printing until the run ends")] = False,
         db: DbOpt = None) -> None:
    """Print a run's captured output (stdout, stderr and engine log lines)."""
    store = open_store(db, create=False)
    store.get(run_id)
    last = 0
    while True:
        for line in store.logs(run_id, after_id=last):
            last = line.id  # type: ignore[assignment]
            typer.echo(printable(line.text), err=line.stream == "stderr")
        if not follow or store.get(run_id).status not in ("queued", "running"):
            if follow:
                for line in store.logs(run_id, after_id=last):
                    typer.echo(printable(line.text), err=line.stream == "stderr")
            return
        time.sleep(0.5)


@app.command()
@boundary
def cancel(run_ids: RunIdsArg, db: DbOpt = None) -> None:
    """Cancel runs: queued ones at once, running ones at their next step (they save a checkpoint)."""
    from pgg_tui.core.ops import cancel_runs

    for line in cancel_runs(open_store(db, create=False), run_ids_of(run_ids)):
        typer.echo(line)


@app.command()
@boundary
def retry(run_ids: RunIdsArg, db: DbOpt = None) -> None:
    """Queue a new attempt of failed, cancelled or lost runs; it resumes from their last checkpoint."""
    from pgg_tui.core.ops import retry_runs

    for line in retry_runs(open_store(db, create=False), run_ids_of(run_ids)):
        typer.echo(line)


@app.command()
@boundary
def annotate(run_id: RunIdArg, name: Annotated[str | None, typer.Option("--name", help="the run's name ('' clears it)",
                                                                       show_default=False)] = None,
             tag: TagOpt = None,
             untag: Annotated[list[str] | None, typer.Option("--untag", help="remove a tag (repeatable)",
                                                             show_default=False)] = None,
             note: Annotated[str | None, typer.Option("--note", help="the run's notes, replaced ('' clears them; "
                                                      "- reads them from stdin)", show_default=False)] = None,
             db: DbOpt = None) -> None:
    """Name a run, tag it, or write notes on it (any status)."""
    if name is None and not tag and not untag and note is None:
        raise ConfigError("nothing to change; give --name, --tag, --untag or --note")
    if note == "-":
        note = sys.stdin.read()
    r = open_store(db, create=False).annotate(run_id, name, tag or [], untag or [], note)
    label = run_label(r.name, json.loads(r.tags))
    typer.echo(f"run {run_id}: {label or 'no name or tags'}" + (" · notes saved" if note else ""))


@app.command()
@boundary
def priority(level: Annotated[int, typer.Argument(help="the new priority: higher runs first; 0 is the default",
                                                  show_default=False)],
             run_ids: RunIdsArg, db: DbOpt = None) -> None:
    """Reorder the queue: queued runs with a higher priority are started first."""
    for line in open_store(db, create=False).set_priority(run_ids_of(run_ids), level):
        typer.echo(line)


def _say_queue(store: Store) -> None:
    c = store.queue_control()
    typer.echo(f"queue {'paused' if c.paused else 'open'} · {c.parallel or 'one run per slot'}"
               f"{' at once' if c.parallel else ''} · {len(store.runs(status='queued'))} queued")


@app.command()
@boundary
def pause(db: DbOpt = None) -> None:
    """Stop starting queued runs (running ones go on); `pgg resume` starts them again. Workers see it live."""
    store = open_store(db, create=False)
    store.set_queue_control(paused=True)
    _say_queue(store)


@app.command()
@boundary
def resume(db: DbOpt = None) -> None:
    """Start queued runs again after `pgg pause`."""
    store = open_store(db, create=False)
    store.set_queue_control(paused=False)
    _say_queue(store)


@app.command()
@boundary
def parallel(runs_at_once: Annotated[str | None, typer.Argument(help="runs at once across the worker's slots, or "
                                                                "'slots' for one per slot; omit to show it",
                                                                show_default=False)] = None,
             db: DbOpt = None) -> None:
    """How many runs a worker runs at once, changed live (never more than its slots; lowering it stops nothing)."""
    store = open_store(db, create=False)
    if runs_at_once is not None:
        if runs_at_once == "slots":
            store.set_queue_control(parallel=None)
        elif runs_at_once.isdigit():
            store.set_queue_control(parallel=int(runs_at_once))
        else:
            raise ConfigError(f"bad number of runs {runs_at_once!r}: give a whole number, or 'slots'")
    _say_queue(store)


@app.command()
@boundary
def delete(run_ids: RunIdsArg, yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask")] = False,
           db: DbOpt = None) -> None:
    """Delete runs and everything they recorded (not their run folders). Running runs are refused."""
    from pgg_tui.core.ops import delete_runs

    store = open_store(db, create=False)
    ids = run_ids_of(run_ids)
    for rid in ids:
        store.get(rid)
    if not yes and not typer.confirm(f"delete {len(ids)} run(s) and all their rows?"):
        raise typer.Exit(1)
    for line in delete_runs(store, ids):
        typer.echo(line)


@app.command()
@boundary
def export(what: Annotated[str, typer.Option("--what", help="runs (with config and results), metrics, or samples "
                                             "(with their tokens and token rewards)")] = "runs",
           fmt: Annotated[str, typer.Option("--format", help="csv, json or jsonl")] = "csv",
           output: Annotated[Path | None, typer.Option("-o", "--output", help="file (default: stdout)")] = None,
           run_ids: Annotated[list[int] | None, typer.Argument(help="only these runs (default: all that match "
                                                               "the filters)", show_default=False)] = None,
           status: StatusOpt = None, task: TaskOpt = None, dataset: DatasetFilter = None, method: MethodFilter = None,
           sweep: SweepOpt = None, limit: LimitOpt = None, db: DbOpt = None) -> None:
    """Export runs, their metric rows or their samples, as CSV, JSON or JSON lines."""
    from pgg_tui.core.export import FORMATS, KINDS, records, render
    from pgg_tui.core.views import find_runs

    if fmt not in FORMATS:
        raise ConfigError(f"unknown format {fmt!r}; choose one of: {', '.join(FORMATS)}")
    if what not in KINDS:
        raise ConfigError(f"unknown --what {what!r}; choose one of: {', '.join(KINDS)}")
    query = run_query(status, task, dataset, method, sweep, limit, run_ids or ())
    store = open_store(db, create=False)
    chosen = find_runs(store, query)
    missing = sorted(set(run_ids or ()) - {r.id for r in chosen if r.id is not None})
    if missing and not (status or task or dataset or method or sweep or limit):
        raise ConfigError(f"no run {missing[0]} in this store")
    rows = list(records(store, chosen, what, flat=fmt == "csv"))
    text = render(rows, fmt) if rows or fmt != "csv" else ""
    if output is None:
        typer.echo(text, nl=False)
    else:
        try:
            output.write_text(text)
        except OSError as err:
            raise ConfigError(f"cannot write {output}: {err.strerror}") from None
        typer.echo(f"wrote {len(rows)} {what} rows of {len(chosen)} run(s) to {output}", err=True)


rankings_app = typer.Typer(help="Rankings people made of runs' samples (preference=human): what waits, export, "
                                  "import.", no_args_is_help=False, invoke_without_command=True)
app.add_typer(rankings_app, name="rankings")


@rankings_app.callback()
@boundary
def rankings_status(ctx: typer.Context, json_: JsonOpt = False, db: DbOpt = None) -> None:
    """What waits for rankers, per run, and how many rankings the store holds."""
    if ctx.invoked_subcommand is not None:
        return
    from engine import rankings

    store = open_store(db, create=False)
    waiting = rankings.pending(store)
    total = rankings.answered_count(store)
    if json_:
        print_json(dict(waiting=[dict(run=p.run_id, open=p.open, done=p.done) for p in waiting], answered=total))
        return
    if waiting:
        print_table(("run", "to rank", "ranked"), [[str(p.run_id), str(p.open), str(p.done)] for p in waiting],
                    right=("run", "to rank", "ranked"))
    else:
        typer.echo("nothing waits to be ranked", err=True)
    typer.echo(f"{total} ranking(s) in the store; rank in pgg-tui (R), export with `pgg rankings export`", err=True)


def write_rankings(records: Iterable[dict[str, Any]], output: Path) -> int:
    from engine import rankings

    try:
        return rankings.write_file(records, output)
    except OSError as err:
        raise ConfigError(f"cannot write {output}: {err.strerror}") from None


@rankings_app.command("export")
@boundary
def rankings_export(run_ids: Annotated[list[int] | None, typer.Argument(help="only these runs' rankings (default: "
                                                                        "all, imported ones included)",
                                                                        show_default=False)] = None,
                    output: Annotated[Path | None, typer.Option("-o", "--output", help="file (default: stdout)")] = None,
                    db: DbOpt = None) -> None:
    """Write rankings as JSON Lines: context, candidates, order (best first), annotator, time."""
    from engine import rankings

    store = open_store(db, create=False)
    for rid in run_ids or ():
        store.get(rid)  # an unknown run is one line, not an empty file
    records = rankings.export(store, run_ids)
    if output is None:
        for r in records:
            typer.echo(json.dumps(r, ensure_ascii=False))
        return
    typer.echo(f"wrote {write_rankings(records, output)} ranking(s) to {output}", err=True)


@rankings_app.command("import")
@boundary
def rankings_import(path: Annotated[Path, typer.Argument(help="JSON Lines of ranked lists (as export writes)",
                                                         show_default=False)],
                    pairs: Annotated[bool, typer.Option("--pairs", help="the file is a pairwise preference set "
                                                        "({prompt, chosen, rejected} per line): lists of two, "
                                                        "chosen first")] = False,
                    output: Annotated[Path | None, typer.Option("-o", "--output", help="write the ranked lists to "
                                                                "this file instead of the store (a rankings_file "
                                                                "for runs)", show_default=False)] = None,
                    db: DbOpt = None) -> None:
    """Add ranked lists to the store (or, with --output, convert them to a ranking file)."""
    from engine import rankings

    def records() -> Iterator[dict[str, Any]]:  # read as it goes: a multi-GB file in bounded memory
        return rankings.iter_pairs(rankings.iter_jsonl(path)) if pairs else rankings.iter_file(path)

    for _ in records():  # every line checked before anything is written
        pass
    if output is not None:
        typer.echo(f"wrote {write_rankings(records(), output)} ranked list(s) to {output}; ground a run on it: "
                   f"--set preference=human rankings_file={output}", err=True)
        return
    done = rankings.import_stream(open_store(db), records())
    typer.echo(f"imported {done.added} ranked list(s)"
               + (f"; skipped {done.skipped} already in the store" if done.skipped else ""), err=True)


@app.command()
@boundary
def backup(dest: Annotated[Path, typer.Argument(help="the new file", show_default=False)], db: DbOpt = None) -> None:
    """Copy the store to a new file, consistent even while runs write (a plain cp can lose rows)."""
    store = open_store(db, create=False)
    runs = store.backup(dest)
    typer.echo(f"backed up {store.location} to {dest} ({runs} runs)")


@app.command()
@boundary
def table(task: TaskOpt = None, json_: JsonOpt = False, db: DbOpt = None) -> None:
    """Final results of done runs, grouped by everything but the seed: mean ± std (n)."""
    from pgg_tui.core.aggregate import group_runs, metric_names

    if task is not None:
        get_task(task)
    store = open_store(db, create=False)
    groups = [g for g in group_runs(store.runs()) if task is None or g.task == task]
    if json_:
        print_json([dict(task=g.task, dataset=g.dataset, method=g.variant, preset=g.key[3], runs=g.run_ids,
                         **{k: dict(mean=s.mean, std=s.std, n=s.n) for k, s in g.stats.items()}) for g in groups])
        return
    if not groups:
        typer.echo("no finished runs yet", err=True)
        return
    names = [n for n in metric_names(groups) if n.startswith(("test/", "dev/")) or n == TAU] or metric_names(groups)
    width = shutil.get_terminal_size().columns
    narrow = not to_pipe() and width < 160
    if narrow:  # the tasks' headline results and tau first, as many as leave the method 24 columns
        first = [n for n in dict.fromkeys([TASKS[g.task].result_metric for g in groups] + [TAU]) if n in names]
        names = (first + [n for n in names if n not in first])[:max(1, (width - 60) // 19)]
    shared = shared_overrides(g.key[4] for g in groups) if narrow and len(groups) > 1 else {}
    print_table(("task", "dataset", "method", "preset", *names),
                [[g.task, g.dataset, variant_label(g.method, g.key[4], shared), g.key[3],
                  *[g.stats[n].format() if n in g.stats else "–" for n in names]]
                 for g in groups], squeeze=("method", "dataset") if narrow else ())
    if shared:
        typer.echo("every row: " + " ".join(f"{k}={v}" for k, v in sorted(shared.items())), err=True)


@app.command()
@boundary
def compare(task: Annotated[str, typer.Option("--task", help="the task compared")] = "prompt",
            dataset: DatasetFilter = None, sweep: SweepOpt = None,
            metric: Annotated[str | None, typer.Option("--metric", help="the test number reported (default: the "
                                                       "task's, e.g. test/accuracy)", show_default=False)] = None,
            json_: JsonOpt = False, db: DbOpt = None) -> None:
    """Methods compared without peeking: each method's best configuration chosen on validation, then its test
    mean ± std and 95% t interval over seeds, configurations tried, queries and policy samples spent."""
    from pgg_tui.core.compare import COMPARISON_HEADER, compare as compare_runs, comparison_rows

    get_task(task)
    store = open_store(db, create=False)
    runs = [r for r in store.runs() if sweep is None or r.group_id == sweep]
    found = compare_runs(runs, task, dataset, metric)
    if json_:
        print_json([dict(task=c.task, dataset=c.dataset, selected_by=c.select_metric, test_metric=c.test_metric,
                         unequal_tuning=c.unequal_tuning,
                         methods=[dict(method=m.method, config=m.config, runs=m.best.run_ids, validation=m.select.mean,
                                       test=dict(mean=m.test.mean if m.test.values else None, std=m.test.std,
                                                 n=m.test.n, ci95=m.interval),
                                       configs_tried=m.tried, spent={k: v.mean for k, v in m.spent.items()})
                                  for m in c.methods]) for c in found])
        return
    if not found:
        raise ConfigError(f"no done {task} runs with a validation result to compare"
                          + (f" in sweep {sweep}" if sweep else ""))
    for i, c in enumerate(found):
        if i:
            typer.echo("")
        typer.echo(f"{c.task} / {c.dataset}: best configuration per method by {c.select_metric} (validation); "
                   f"{c.test_metric} over its seeds")
        print_table(COMPARISON_HEADER, comparison_rows(c))
        if c.unequal_tuning:
            tried = ", ".join(f"{m.method} {m.tried}" for m in c.methods)
            typer.echo(f"unequal tuning: the methods tried different numbers of configurations ({tried}); "
                       "the one searched more has the better chance at its best", err=True)


# ---------------------------------------------------------------------------------------------------
# the worker and the app

WORKER_ACTIONS = ("start", "stop", "status")


@app.command()
@boundary
def worker(action: Annotated[str, typer.Argument(help="start (the default), stop, or status of this store's "
                                                 "worker")] = "start",
           gpus: Annotated[str | None, typer.Option("--gpus", help="GPU indices to use, e.g. 0,1 "
                                                    "(default: all that nvidia-smi lists)")] = None,
           slots_per_gpu: Annotated[int, typer.Option("--slots-per-gpu", min=1, help="runs at once per GPU")] = 1,
           cpu_slots: Annotated[int, typer.Option("--cpu-slots", min=1, help="runs at once on a box without GPUs")] = 1,
           command: Annotated[str | None, typer.Option("--command", help="command launched per run; "
                                                       "{python}, {db} and {run_id} are filled in")] = None,
           wait: Annotated[bool, typer.Option("--wait", help="if a worker already serves this store, wait for it "
                                              "to stop instead of exiting")] = False,
           exit_when_idle: Annotated[bool, typer.Option("--exit-when-idle", help="stop once the queue is empty and "
                                                        "no run is left")] = False,
           detach: Annotated[bool, typer.Option("--detach", help="run in the background, detached from this "
                                                "terminal (output in pgg-worker.log beside the store)")] = False,
           lost_after: Annotated[float, typer.Option("--lost-after", help="seconds without a heartbeat before a "
                                                     "run is marked lost")] = 120.0,
           grace: Annotated[float, typer.Option("--grace", help="seconds a cancelled run gets to stop before it is "
                                                "killed")] = 30.0,
           poll: Annotated[float, typer.Option("--poll", help="seconds between scheduler ticks")] = 0.5,
           host: Annotated[str | None, typer.Option("--host", help="stop: the worker on this host (another "
                                                    "machine sharing the store)", show_default=False)] = None,
           executor: Annotated[str, typer.Option("--executor", help="local (processes on this machine) or "
                                                 "slurm (one Slurm job per run, through submitit)")] = "local",
           partition: Annotated[str | None, typer.Option("--partition", help="slurm: partition",
                                                         show_default=False)] = None,
           gpus_per_run: Annotated[int, typer.Option("--gpus-per-run", min=0, help="slurm: GPUs per job")] = 1,
           cpus_per_run: Annotated[int, typer.Option("--cpus-per-run", min=1, help="slurm: CPUs per job")] = 4,
           mem_gb: Annotated[float | None, typer.Option("--mem-gb", min=0.1, help="slurm: memory per job (GB)",
                                                        show_default=False)] = None,
           time_min: Annotated[int, typer.Option("--time-min", min=1, help="slurm: time limit per job, minutes "
                                                 "(a run stopped by it resumes when requeued)")] = 24 * 60,
           account: Annotated[str | None, typer.Option("--account", help="slurm: account", show_default=False)] = None,
           qos: Annotated[str | None, typer.Option("--qos", help="slurm: QOS", show_default=False)] = None,
           setup: Annotated[list[str] | None, typer.Option("--setup", help="slurm: a shell line run before each "
                                                           "job, e.g. 'module load cuda' (repeatable)",
                                                           show_default=False)] = None,
           max_jobs: Annotated[int, typer.Option("--max-jobs", min=1, help="slurm: jobs in flight at once")] = 4,
           json_: JsonOpt = False, db: DbOpt = None) -> None:
    """Run queued runs, one per free GPU slot (or CPU slot), until stopped. Runs survive the terminal.

    One worker per host; several hosts may share a PostgreSQL store and its queue. `pgg worker status` lists
    the workers serving the store; `pgg worker stop [--host H]` stops one (its runs go on).
    """
    if action not in WORKER_ACTIONS:
        raise ConfigError(f"unknown worker action {action!r}; choose one of: {', '.join(WORKER_ACTIONS)}")
    from pgg_tui.core import launch

    store = open_store(db, create=action == "start")
    if action == "status":
        leases = launch.worker_leases(store)
        queued = len(store.runs(status="queued"))
        running = len(store.runs(status="running"))
        control = store.queue_control()
        if json_:
            print_json(dict(running=any(x.here for x in leases), workers=[
                dict(host=x.host, pid=x.pid, here=x.here, slots=json.loads(x.slots), gpus=json.loads(x.gpus),
                     started_at=x.started_at, heartbeat_at=x.heartbeat_at) for x in leases],
                runs_running=running, runs_queued=queued, paused=control.paused, parallel=control.parallel))
        else:
            tail = (f"{running} running · {queued} queued" + (" · queue paused" if control.paused else "")
                    + (f" · {control.parallel} at once" if control.parallel else ""))
            if not leases:
                typer.echo(f"no worker serves {store.location} · {tail}")
            for x in leases:
                gpus = " ".join(gpu_reading(g) for g in json.loads(x.gpus))
                typer.echo(f"worker {x} serving {store.location} since {duration(time.time() - x.started_at)} · "
                           f"slots {', '.join(json.loads(x.slots))}" + (f" · {gpus}" if gpus else ""))
            if leases:
                typer.echo(tail)
        if not any(x.here for x in leases):
            raise typer.Exit(3)  # scripts: `pgg worker status || pgg worker --detach`
        return
    if action == "stop":
        typer.echo(launch.stop_worker(store, host))
        return
    if detach:
        argv = [a for a in sys.argv[1:] if a not in ("--detach", "worker", "start")]
        pid, log_path = launch.start_worker(store, _without_db(argv))  # the URL goes by PGG_DB, not argv
        typer.echo(f"worker started in the background (pid {pid}); output in {log_path}")
        return
    from engine.scheduler import DEFAULT_COMMAND, Worker, make_slots

    log = lambda msg: typer.echo(f"[{time.strftime('%H:%M:%S')}] {msg}", err=True)  # noqa: E731
    if executor not in ("local", "slurm"):
        raise ConfigError(f"unknown executor {executor!r}; choose local or slurm")
    if executor == "slurm":
        from engine.slurm import SlurmOptions, SlurmWorker

        options = SlurmOptions(partition, gpus_per_run, cpus_per_run, mem_gb, time_min, account, qos, list(setup or []),
                               max_jobs)
        sw = SlurmWorker(store, options, command=command or DEFAULT_COMMAND, poll=max(poll, 2.0),
                         lost_after=lost_after, grace=grace, log=log)
        sw.acquire(wait=wait)
        typer.echo(f"worker {sw.name} submitting to Slurm for {store.display_url}: up to {max_jobs} jobs, "
                   f"{gpus_per_run} GPU(s) and {cpus_per_run} CPU(s) each", err=True)
        sw.serve(exit_when_idle=exit_when_idle)
        return
    gpu_list = None
    if gpus is not None:
        gpu_list = [g.strip() for g in gpus.split(",") if g.strip()]
        if not all(g.isdigit() for g in gpu_list):
            raise ConfigError(f"bad --gpus {gpus!r}: expected indices such as 0,1")
    slots = make_slots(gpu_list, slots_per_gpu, cpu_slots)
    w = Worker(store, slots, command or DEFAULT_COMMAND, poll=poll, lost_after=lost_after, grace=grace, log=log)
    w.acquire(wait=wait)
    typer.echo(f"worker {w.name} serving {store.display_url} on {len(slots)} slot(s): "
               f"{', '.join(s.label for s in slots)}", err=True)
    w.serve(exit_when_idle=exit_when_idle)


def _without_db(argv: Sequence[str]) -> list[str]:
    """argv without `--db URL` / `--db=URL`."""
    out: list[str] = []
    skip = False
    for a in argv:
        if skip:
            skip = False
        elif a == "--db":
            skip = True
        elif not a.startswith("--db="):
            out.append(a)
    return out


@app.command()
@boundary
def tui(annotator: Annotated[str | None, typer.Option("--annotator", help="the name on the rankings you make "
                                                        "[env: PGG_ANNOTATOR; default: your login name]",
                                                        show_default=False)] = None,
        db: DbOpt = None) -> None:
    """Open the terminal app (same as `pgg-tui`)."""
    from pgg_tui.app import run_app

    run_app(db or GLOBAL_DB, annotator)


# ---------------------------------------------------------------------------------------------------
# what there is


@app.command()
@boundary
def tasks(json_: JsonOpt = False) -> None:
    """List tasks with their datasets, methods and presets."""
    if json_:
        print_json([dict(name=t.name, help=t.help, datasets=list(t.datasets), dataset_paths=t.dataset_paths,
                         methods=dict(t.methods), presets=list(t.presets), result_metric=t.result_metric)
                    for t in TASKS.values()])
        return
    for spec in TASKS.values():
        typer.echo(f"{spec.name}: {spec.help}")
        typer.echo(f"  datasets: {', '.join(spec.datasets)}" + (" (or a .jsonl/.csv path)" if spec.dataset_paths else ""))
        typer.echo("  methods:  " + "; ".join(f"{k} ({v})" for k, v in spec.methods.items()))
        typer.echo(f"  presets:  {', '.join(spec.presets)}")


@app.command()
@boundary
def options(task: TaskArg,
            preset: Annotated[str, typer.Option("--preset", "-p", help="show this preset's values")] = "paper",
            json_: JsonOpt = False) -> None:
    """List a task's settings (for --set key=value) with defaults and help."""
    spec = get_task(task)
    if preset not in spec.presets:
        raise ConfigError(f"unknown preset {preset!r}; choose one of: {', '.join(spec.presets)}")
    fields = [(name, spec.presets[preset].get(name, default), default, text)
              for name, (default, text) in field_help(spec.config_cls).items()]
    if json_:
        print_json([dict(name=n, value=v, default=d, help=t) for n, v, d, t in fields])
        return
    for name, value, _, text in fields:
        typer.echo(f"{name:24} {value!s:16} {text}")


def main(argv: Sequence[str] | None = None) -> None:
    """The console script: click's usage errors become one line, like every other error."""
    try:
        code = app(args=argv, standalone_mode=False)
    except UsageError as err:
        if type(err).__name__ == "NoArgsIsHelpError" and err.ctx is not None:  # `pgg` alone: the help
            typer.echo(err.ctx.get_help())
            code = 0
        else:
            hint = f" (see `{err.ctx.command_path} --help`)" if err.ctx is not None else ""
            typer.echo(f"pgg: error: {_usage_line(err)}{hint}", err=True)
            code = 2
    except typer.Abort:
        typer.echo("", err=True)
        code = 130
    except BrokenPipeError:
        _quiet_pipe()
    sys.exit(code if isinstance(code, int) else 0)


def _usage_line(err: UsageError) -> str:
    text = err.format_message().strip().splitlines()
    return text[0][0].lower() + text[0][1:] if text and text[0] else "bad usage"


if __name__ == "__main__":
    main()
