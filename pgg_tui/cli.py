"""`pgg`: queue, run, watch and compare pgg experiments from scripts.

Each command is thin: it validates through engine.registry and works on engine.store. Errors meant for
people (engine.errors.PggError) become one line on stderr and exit code 1; importing this module
loads neither torch nor textual.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

import engine
from engine.config import field_help, to_json
from engine.errors import ConfigError, PggError
from engine.registry import TASKS, get_task, plan_runs

app = typer.Typer(
    name="pgg", help="Preference-grounded token-level guidance: queue, run and compare experiments.",
    no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

if TYPE_CHECKING:
    from engine.store import Run, Store

F = TypeVar("F", bound=Callable[..., Any])
GLOBAL_DB: str | None = None  # --db given before the command
STATUSES = ("queued", "running", "done", "failed", "cancelled", "lost")  # as engine.store.STATUSES

DbOpt = Annotated[str | None, typer.Option("--db", help="store URL or SQLite path [env: PGG_DB; "
                                           "default: sqlite:///experiments.db]", show_default=False)]
RunIdArg = Annotated[int, typer.Argument(help="run id (see `pgg runs`)", show_default=False)]
RunIdsArg = Annotated[list[int], typer.Argument(help="one or more run ids", show_default=False)]
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


# ---------------------------------------------------------------------------------------------------
# queue and run

TaskArg = Annotated[str, typer.Argument(help=f"task: {', '.join(TASKS)}", show_default=False)]
DatasetOpt = Annotated[str, typer.Option("--dataset", "-d", help="dataset name (`pgg tasks` lists them) "
                                         "or, for summarize, a .jsonl/.csv file", show_default=False)]
MethodOpt = Annotated[str, typer.Option("--method", "-m", help="method (`pgg tasks` lists them)")]
SeedsOpt = Annotated[str, typer.Option("--seeds", "-s", help="seeds: N, A-B or a list (0-4, 0,2,5)")]
DSeedsOpt = Annotated[str, typer.Option("--dataset-seeds", help="dataset seeds (few-shot splits 0-4)")]
PresetOpt = Annotated[str, typer.Option("--preset", "-p", help="paper (the paper's models and schedule) or "
                                        "tiny (random tiny models, minutes on a CPU)")]
DataDirOpt = Annotated[str, typer.Option("--data-dir", help="folder of local data (prompt: the 16-shot layout)")]
SetOpt = Annotated[list[str] | None, typer.Option("--set", help="override a setting: key=value "
                                                  "(repeatable; `pgg options TASK` lists them)")]


@app.command()
@boundary
def queue(task: TaskArg, dataset: DatasetOpt, method: MethodOpt = "pgg", seeds: SeedsOpt = "0",
          dataset_seeds: DSeedsOpt = "0", preset: PresetOpt = "paper", data_dir: DataDirOpt = "",
          set_: SetOpt = None, db: DbOpt = None) -> None:
    """Queue runs (a sweep over seeds and dataset seeds); a worker runs them. Prints the new run ids."""
    specs = plan_runs(task, dataset, method, seeds, dataset_seeds, preset, data_dir, set_)
    store = open_store(db)
    ids = store.queue(specs, to_json)
    typer.echo(" ".join(str(i) for i in ids))
    typer.echo(f"queued {len(ids)} run{'s' * (len(ids) != 1)}; start a worker with `pgg worker` if none runs",
               err=True)


@app.command()
@boundary
def run(task: TaskArg, dataset: DatasetOpt, method: MethodOpt = "pgg", seeds: SeedsOpt = "0",
        dataset_seeds: DSeedsOpt = "0", preset: PresetOpt = "paper", data_dir: DataDirOpt = "",
        set_: SetOpt = None, db: DbOpt = None,
        quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no live progress line")] = False) -> None:
    """Train in the foreground (no worker), recorded in the store like any run. Ctrl-C stops gracefully."""
    specs = plan_runs(task, dataset, method, seeds, dataset_seeds, preset, data_dir, set_)
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
            typer.echo(r.error.strip().splitlines()[-1], err=True)  # the exception line of the traceback
        worst = max(worst, code if r.status != "cancelled" else 130)
        if r.status == "cancelled":
            break
    if worst:
        raise typer.Exit(worst)


def _run_foreground(store: Store, run_id: int, quiet: bool) -> int:
    import signal

    from engine.__main__ import execute  # loads no torch by itself; the trainer does, once it starts

    stop = threading.Event()
    state: dict[str, Any] = {}

    def on_reporter(reporter: Any) -> None:
        state["reporter"] = reporter

        def on_sigint(*_: Any) -> None:
            if reporter.should_stop():
                raise KeyboardInterrupt
            typer.echo("\nstopping at the next step (Ctrl-C again to abort)", err=True)
            reporter.request_stop()

        signal.signal(signal.SIGINT, on_sigint)

    watcher = None
    if not quiet and sys.stderr.isatty():
        watcher = threading.Thread(target=_progress_line, args=(store, run_id, stop), daemon=True)
        watcher.start()
    previous = signal.getsignal(signal.SIGINT)
    try:
        return execute(store, run_id, echo=quiet or not sys.stderr.isatty(), on_reporter=on_reporter)
    except KeyboardInterrupt:
        return 130
    finally:
        signal.signal(signal.SIGINT, previous)
        stop.set()
        if watcher is not None:
            watcher.join(timeout=2)
            sys.stderr.write("\r\033[K")


def _progress_line(store: Store, run_id: int, stop: threading.Event) -> None:
    """One live status line on stderr: phase, step / total, latest losses, ETA."""
    names = ["reward/loss", "reward/val_loss", "policy/loss", "train/score", "dev/score", "val/score"]
    start_step, start_t = None, time.monotonic()
    while not stop.wait(0.5):
        try:
            r = store.get(run_id)
            last = store.latest_metrics([run_id], names)
        except Exception:
            continue
        if start_step is None and r.step:
            start_step, start_t = r.step, time.monotonic()
        eta = ""
        if start_step is not None and r.total_steps and r.step > start_step:
            rate = (time.monotonic() - start_t) / (r.step - start_step)
            eta = f" · ETA {_fmt_secs(rate * (r.total_steps - r.step))}"
        vals = " · ".join(f"{n} {last[(run_id, n)]:.3g}" for n in names if (run_id, n) in last)
        line = f"run {run_id} · {r.phase or 'setup'} · step {r.step}/{r.total_steps or '?'}{eta}" + (f" · {vals}" if vals else "")
        width = os.get_terminal_size(sys.stderr.fileno()).columns if sys.stderr.isatty() else 200
        sys.stderr.write("\r\033[K" + line[: width - 1])
        sys.stderr.flush()


def _without_db(argv: Any) -> list[str]:
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


def _fmt_secs(s: float) -> str:
    s = int(s)
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


# ---------------------------------------------------------------------------------------------------
# looking at runs

RUN_FIELDS = ("id", "status", "task", "dataset", "method", "seed", "dataset_seed", "preset", "phase", "step",
              "total_steps", "attempt", "group_id", "gpu", "created_at", "started_at", "finished_at")


def run_dict(r: Run, full: bool = False) -> dict[str, Any]:
    d = {k: getattr(r, k) for k in RUN_FIELDS}
    d["overrides"] = json.loads(r.overrides)
    d["results"] = json.loads(r.results) if r.results else None
    if full:
        d.update(config=json.loads(r.config), error=r.error, run_dir=r.run_dir, pid=r.pid, host=r.host,
                 worker=r.worker, exit_code=r.exit_code, parent_id=r.parent_id, heartbeat_at=r.heartbeat_at,
                 cancel_requested=r.cancel_requested)
    return d


@app.command()
@boundary
def runs(status: Annotated[str | None, typer.Option("--status", help=f"only runs in this state: "
                                                    f"{', '.join(STATUSES)}")] = None,
         json_: JsonOpt = False, db: DbOpt = None) -> None:
    """List runs."""
    if status is not None and status not in STATUSES:
        raise ConfigError(f"unknown status {status!r}; choose one of: {', '.join(STATUSES)}")
    store = open_store(db, create=False)
    rows = store.runs(status=status)
    if json_:
        typer.echo(json.dumps([run_dict(r) for r in rows], indent=1))
        return
    if not rows:
        typer.echo("no runs" + (f" with status {status}" if status else ""), err=True)
        return
    cols = ("id", "status", "task", "dataset", "method", "seed", "dseed", "phase", "step", "result", "tau", "parent")
    cells = []
    for r in rows:
        res = json.loads(r.results or "{}")
        metric = get_task(r.task).result_metric if r.task in TASKS else ""
        result = f"{res[metric]:.2f}" if metric in res else ""
        tau = f"{res['reward/tau']:+.2f}" if isinstance(res.get("reward/tau"), (int, float)) else ""
        step = f"{r.step}/{r.total_steps}" if r.total_steps else ""
        cells.append([str(r.id), r.status, r.task, r.dataset, _variant(r), str(r.seed), str(r.dataset_seed),
                      r.phase or "", step, result, tau, str(r.parent_id or "")])
    if not sys.stdout.isatty():  # a pipe gets every cell whole, tab-separated: `pgg runs | grep -c failed`
        typer.echo("\t".join(cols))
        for row in cells:
            typer.echo("\t".join(c.replace("\t", " ") for c in row))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(box=None, pad_edge=False, header_style="bold")
    for col in cols:
        table.add_column(col, justify="right" if col in ("id", "seed", "dseed", "step", "parent") else "left")
    for row in cells:
        table.add_row(*row)
    Console().print(table)


def _variant(r: Run) -> str:
    from pgg_tui.aggregate import variant_label

    return variant_label(r.method, r.overrides)


@app.command()
@boundary
def show(run_id: RunIdArg, json_: JsonOpt = False, db: DbOpt = None) -> None:
    """Show one run: status, config, phases, latest metrics, results, error."""
    store = open_store(db, create=False)
    r = store.get(run_id)
    d = run_dict(r, full=True)
    d["phases"] = [dict(kind=p.kind, index=p.index, start_step=p.start_step, end_step=p.end_step)
                   for p in store.phases(run_id)]
    latest: dict[str, float] = {}
    for m in store.metrics(run_id):
        latest[m.name] = m.value
    d["latest_metrics"] = latest
    if json_:
        typer.echo(json.dumps(d, indent=1))
        return
    out = [f"run {r.id} · {r.status} · {r.task} / {r.dataset} / {_variant(r)} · seed {r.seed} · "
           f"dataset seed {r.dataset_seed} · preset {r.preset} · attempt {r.attempt}"]
    if r.phase or r.total_steps:
        out.append(f"progress  {r.phase or ''} step {r.step}/{r.total_steps}")
    if d["phases"]:
        out.append("phases    " + ", ".join(f"{p['kind']} {p['index']} [{p['start_step']}–{p['end_step'] if p['end_step'] is not None else '…'}]"
                                           for p in d["phases"]))
    if latest:
        out.append("metrics   " + ", ".join(f"{k} {v:.4g}" for k, v in latest.items()))
    taus = [m.value for m in store.metrics(run_id, names=["reward/tau"])]
    if taus:
        chance = latest.get("reward/chance_loss", float("nan"))
        val = latest.get("reward/best_val_loss", latest.get("reward/val_loss", float("nan")))
        out.append(f"grounding Kendall tau per reward phase {', '.join(f'{t:+.2f}' for t in taus)} (0 = chance); "
                   f"last validation ListMLE {val:.3f} vs chance ln K! {chance:.3f}")
    if d["results"]:
        out.append("results   " + ", ".join(f"{k} {v:.4g}" if isinstance(v, (int, float)) else f"{k} {v}"
                                          for k, v in d["results"].items() if not isinstance(v, (list, dict))))
    if r.run_dir:
        out.append(f"run dir   {r.run_dir}")
    cfg = json.loads(r.config)
    defaults = {k: v[0] for k, v in field_help(get_task(r.task).config_cls).items()}
    changed = {k: v for k, v in cfg.items() if defaults.get(k) != v and k not in ("dataset", "method", "seed", "dataset_seed")}
    out.append("config    " + (", ".join(f"{k}={v}" for k, v in changed.items()) or "paper defaults"))
    if r.error:
        out.append("error     " + r.error.strip().replace("\n", "\n          "))
    typer.echo("\n".join(out))


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
            typer.echo(line.text, err=line.stream == "stderr")
        if not follow or store.get(run_id).status not in ("queued", "running"):
            if follow:
                for line in store.logs(run_id, after_id=last):
                    typer.echo(line.text, err=line.stream == "stderr")
            return
        time.sleep(0.5)


@app.command()
@boundary
def cancel(run_ids: RunIdsArg, db: DbOpt = None) -> None:
    """Cancel runs: queued ones at once, running ones at their next step (they save a checkpoint)."""
    store = open_store(db, create=False)
    for line in store.request_cancel(run_ids):
        typer.echo(line)


@app.command()
@boundary
def retry(run_ids: RunIdsArg, db: DbOpt = None) -> None:
    """Queue a new attempt of failed, cancelled or lost runs; it resumes from their last checkpoint."""
    store = open_store(db, create=False)
    new = store.retry(run_ids)
    for old, n in zip(run_ids, new):
        typer.echo(f"run {old}: retried as run {n}")


@app.command()
@boundary
def delete(run_ids: RunIdsArg, yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask")] = False,
           db: DbOpt = None) -> None:
    """Delete runs and everything they recorded (not their run folders). Running runs are refused."""
    store = open_store(db, create=False)
    for rid in run_ids:
        store.get(rid)
    if not yes and not typer.confirm(f"delete {len(run_ids)} run(s) and all their rows?"):
        raise typer.Exit(1)
    store.delete(run_ids)
    typer.echo(f"deleted {len(run_ids)} run(s)")


@app.command()
@boundary
def export(fmt: Annotated[str, typer.Option("--format", help="csv or json")] = "csv",
           output: Annotated[Path | None, typer.Option("-o", "--output", help="file (default: stdout)")] = None,
           what: Annotated[str, typer.Option("--what", help="runs (with config and results) or metrics")] = "runs",
           db: DbOpt = None) -> None:
    """Export runs (config and results) or all metric rows, as CSV or JSON."""
    if fmt not in ("csv", "json"):
        raise ConfigError(f"unknown format {fmt!r}; choose csv or json")
    if what not in ("runs", "metrics"):
        raise ConfigError(f"unknown --what {what!r}; choose runs or metrics")
    store = open_store(db, create=False)
    if what == "runs":
        rows = []
        for r in store.runs():
            d = run_dict(r, full=True)
            flat = {k: v for k, v in d.items() if not isinstance(v, (dict, list)) and k != "error"}
            flat.update({f"config.{k}": v for k, v in d["config"].items()})
            flat.update({f"result.{k}": v for k, v in (d["results"] or {}).items() if not isinstance(v, (dict, list))})
            rows.append(flat if fmt == "csv" else d)
    else:
        rows = [dict(run_id=m.run_id, step=m.step, phase=m.phase, name=m.name, value=m.value, time=m.time)
                for r in store.runs() for m in store.metrics(r.id)]  # type: ignore[arg-type]
    if fmt == "json":
        text = json.dumps(rows, indent=1)
    else:
        buf = io.StringIO()
        keys: list[str] = []
        for row in rows:
            keys += [k for k in row if k not in keys]
        writer = csv.DictWriter(buf, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)
        text = buf.getvalue()
    if output is None:
        typer.echo(text, nl=False)
    else:
        try:
            output.write_text(text)
        except OSError as err:
            raise ConfigError(f"cannot write {output}: {err.strerror}") from None
        typer.echo(f"wrote {len(rows)} rows to {output}", err=True)


@app.command()
@boundary
def table(task: Annotated[str | None, typer.Option("--task", help="only this task")] = None,
          json_: JsonOpt = False, db: DbOpt = None) -> None:
    """Final results of done runs, grouped by everything but the seed: mean ± std (n)."""
    from pgg_tui.aggregate import group_runs, metric_names

    if task is not None:
        get_task(task)
    store = open_store(db, create=False)
    groups = [g for g in group_runs(store.runs()) if task is None or g.task == task]
    if json_:
        typer.echo(json.dumps([dict(task=g.task, dataset=g.dataset, method=g.variant, preset=g.key[3],
                                    runs=g.run_ids, **{k: dict(mean=s.mean, std=s.std, n=s.n)
                                                       for k, s in g.stats.items()}) for g in groups], indent=1))
        return
    if not groups:
        typer.echo("no finished runs yet", err=True)
        return
    from rich.console import Console
    from rich.table import Table

    names = [n for n in metric_names(groups) if n.startswith(("test/", "dev/")) or n == "reward/tau"] or metric_names(groups)
    t = Table(box=None, header_style="bold", pad_edge=False)
    for c in ("task", "dataset", "method", "preset", *names):
        t.add_column(c)
    for g in groups:
        t.add_row(g.task, g.dataset, g.variant, g.key[3], *[g.stats[n].format() if n in g.stats else "–" for n in names])
    Console().print(t)


# ---------------------------------------------------------------------------------------------------
# the worker and the app


@app.command()
@boundary
def worker(gpus: Annotated[str | None, typer.Option("--gpus", help="GPU indices to use, e.g. 0,1 "
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
                                                "terminal (output in pgg-worker.log)")] = False,
           lost_after: Annotated[float, typer.Option("--lost-after", help="seconds without a heartbeat before a "
                                                     "run is marked lost")] = 120.0,
           grace: Annotated[float, typer.Option("--grace", help="seconds a cancelled run gets to stop before it is "
                                                "killed")] = 30.0,
           poll: Annotated[float, typer.Option("--poll", help="seconds between scheduler ticks")] = 0.5,
           db: DbOpt = None) -> None:
    """Run queued runs, one per free GPU slot (or CPU slot), until stopped. Runs survive the terminal."""
    from engine.scheduler import DEFAULT_COMMAND, Worker, make_slots

    store = open_store(db)
    if detach:
        argv = _without_db(a for a in sys.argv if a != "--detach")  # the URL goes by PGG_DB, not argv
        log_path = Path("pgg-worker.log").resolve()
        with open(log_path, "ab") as log:
            proc = subprocess.Popen([sys.executable, "-m", "pgg_tui.cli", *argv[1:]], stdout=log, stderr=log,
                                    stdin=subprocess.DEVNULL, start_new_session=True,
                                    env=dict(os.environ, PGG_DB=store.url))
        typer.echo(f"worker started in the background (pid {proc.pid}); output in {log_path}")
        return
    gpu_list = None
    if gpus is not None:
        gpu_list = [g.strip() for g in gpus.split(",") if g.strip()]
        if not all(g.isdigit() for g in gpu_list):
            raise ConfigError(f"bad --gpus {gpus!r}: expected indices such as 0,1")
    slots = make_slots(gpu_list, slots_per_gpu, cpu_slots)
    w = Worker(store, slots, command or DEFAULT_COMMAND, poll=poll, lost_after=lost_after, grace=grace,
               log=lambda msg: typer.echo(f"[{time.strftime('%H:%M:%S')}] {msg}", err=True))
    w.acquire(wait=wait)
    typer.echo(f"worker {w.name} serving {store.display_url} on {len(slots)} slot(s): "
               f"{', '.join(s.label for s in slots)}", err=True)
    w.serve(exit_when_idle=exit_when_idle)


@app.command()
@boundary
def tui(db: DbOpt = None) -> None:
    """Open the terminal app (same as `pgg-tui`)."""
    from pgg_tui.app import run_app

    run_app(db or GLOBAL_DB)


# ---------------------------------------------------------------------------------------------------
# what there is


@app.command()
@boundary
def tasks() -> None:
    """List tasks with their datasets, methods and presets."""
    for spec in TASKS.values():
        typer.echo(f"{spec.name}: {spec.help}")
        typer.echo(f"  datasets: {', '.join(spec.datasets)}" + (" (or a .jsonl/.csv path)" if spec.dataset_paths else ""))
        typer.echo("  methods:  " + "; ".join(f"{k} ({v})" for k, v in spec.methods.items()))
        typer.echo(f"  presets:  {', '.join(spec.presets)}")


@app.command()
@boundary
def options(task: TaskArg,
            preset: Annotated[str, typer.Option("--preset", "-p", help="show this preset's values")] = "paper") -> None:
    """List a task's settings (for --set key=value) with defaults and help."""
    spec = get_task(task)
    if preset not in spec.presets:
        raise ConfigError(f"unknown preset {preset!r}; choose one of: {', '.join(spec.presets)}")
    for name, (default, text) in field_help(spec.config_cls).items():
        value = spec.presets[preset].get(name, default)
        typer.echo(f"{name:24} {value!s:16} {text}")


def main() -> None:
    try:
        app()
    except BrokenPipeError:
        _quiet_pipe()


if __name__ == "__main__":
    main()
