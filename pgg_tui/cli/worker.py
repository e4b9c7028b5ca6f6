"""`pgg worker`: start (here, detached, or submitting to Slurm), stop, or list the workers serving a store."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated, Any

import typer
from engine.errors import ConfigError

from pgg_tui.core.present import duration, gpu_reading

if TYPE_CHECKING:
    from engine.store import Store

from pgg_tui.cli._common import DbOpt, JsonOpt, app, boundary, examples, open_store, print_json

WORKER_ACTIONS = ("start", "stop", "status")


@app.command(
    epilog=examples(
        "pgg worker --gpus 0,1 --slots-per-gpu 2       # two runs at once on each of GPUs 0 and 1",
        "pgg worker --detach --exit-when-idle           # in the background, until the queue is empty",
        "pgg worker --executor slurm --partition gpu --max-jobs 8",
    )
)
@boundary
def worker(
    action: Annotated[
        str,
        typer.Argument(metavar="start|stop|status", help="start (the default), stop, or status of this store's worker"),
    ] = "start",
    gpus: Annotated[
        str | None,
        typer.Option("--gpus", metavar="IDS", help="GPU indices to use, e.g. 0,1 (default: all that nvidia-smi lists)"),
    ] = None,
    slots_per_gpu: Annotated[int, typer.Option("--slots-per-gpu", min=1, metavar="N", help="runs at once per GPU")] = 1,
    cpu_slots: Annotated[
        int, typer.Option("--cpu-slots", min=1, metavar="N", help="runs at once on a box without GPUs")
    ] = 1,
    command: Annotated[
        str | None,
        typer.Option(
            "--command", metavar="CMD", help="command launched per run; {python}, {db} and {run_id} are filled in"
        ),
    ] = None,
    wait: Annotated[
        bool,
        typer.Option("--wait", help="if a worker already serves this store, wait for it to stop instead of exiting"),
    ] = False,
    exit_when_idle: Annotated[
        bool, typer.Option("--exit-when-idle", help="stop once the queue is empty and no run is left")
    ] = False,
    detach: Annotated[
        bool,
        typer.Option(
            "--detach",
            help="run in the background, detached from this terminal (output in pgg-worker.log beside the store)",
        ),
    ] = False,
    lost_after: Annotated[
        float,
        typer.Option("--lost-after", metavar="SECONDS", help="seconds without a heartbeat before a run is marked lost"),
    ] = 120.0,
    grace: Annotated[
        float,
        typer.Option("--grace", metavar="SECONDS", help="seconds a cancelled run gets to stop before it is killed"),
    ] = 30.0,
    poll: Annotated[float, typer.Option("--poll", metavar="SECONDS", help="seconds between scheduler ticks")] = 0.5,
    host: Annotated[
        str | None,
        typer.Option(
            "--host",
            metavar="HOST",
            help="stop: the worker on this host (another machine sharing the store)",
            show_default=False,
        ),
    ] = None,
    executor: Annotated[
        str,
        typer.Option(
            "--executor",
            metavar="local|slurm",
            help="local (processes on this machine) or slurm (one Slurm job per run, through submitit)",
        ),
    ] = "local",
    partition: Annotated[
        str | None, typer.Option("--partition", metavar="NAME", help="slurm: partition", show_default=False)
    ] = None,
    # the Slurm options default to None: engine.slurm.SlurmOptions holds the one set of defaults
    gpus_per_run: Annotated[
        int | None,
        typer.Option("--gpus-per-run", min=0, metavar="N", help="slurm: GPUs per job [default: 1]", show_default=False),
    ] = None,
    cpus_per_run: Annotated[
        int | None,
        typer.Option("--cpus-per-run", min=1, metavar="N", help="slurm: CPUs per job [default: 4]", show_default=False),
    ] = None,
    mem_gb: Annotated[
        float | None,
        typer.Option("--mem-gb", min=0.1, metavar="GB", help="slurm: memory per job (GB)", show_default=False),
    ] = None,
    time_min: Annotated[
        int | None,
        typer.Option(
            "--time-min",
            min=1,
            metavar="MINUTES",
            help="slurm: time limit per job, minutes (a run stopped by it resumes when requeued) [default: 1440]",
            show_default=False,
        ),
    ] = None,
    account: Annotated[
        str | None, typer.Option("--account", metavar="NAME", help="slurm: account", show_default=False)
    ] = None,
    qos: Annotated[str | None, typer.Option("--qos", metavar="NAME", help="slurm: QOS", show_default=False)] = None,
    setup: Annotated[
        list[str] | None,
        typer.Option(
            "--setup",
            metavar="LINE",
            help="slurm: a shell line run before each job, e.g. 'module load cuda' (repeatable)",
            show_default=False,
        ),
    ] = None,
    max_jobs: Annotated[
        int | None,
        typer.Option(
            "--max-jobs", min=1, metavar="N", help="slurm: jobs in flight at once [default: 4]", show_default=False
        ),
    ] = None,
    json_: JsonOpt = False,
    db: DbOpt = None,
) -> None:
    """Train queued runs, one per free GPU or CPU slot, until stopped.

    Runs survive the terminal. One worker per host; several hosts may share a PostgreSQL store and its
    queue. `pgg worker status` lists the workers serving the store; `pgg worker stop [--host H]` stops one
    (its runs go on).
    """
    if action not in WORKER_ACTIONS:
        raise ConfigError(f"unknown worker action {action!r}; choose one of: {', '.join(WORKER_ACTIONS)}")
    if executor not in ("local", "slurm"):
        raise ConfigError(f"unknown executor {executor!r}; choose local or slurm")
    store = open_store(db, create=action == "start")
    if action == "status":
        _status(store, json_)
    elif action == "stop":
        from pgg_tui.core import launch

        typer.echo(launch.stop_worker(store, host))
    elif detach:
        from pgg_tui.core import launch

        argv = [a for a in sys.argv[1:] if a not in ("--detach", "worker", "start")]
        pid, log_path = launch.start_worker(store, _without_db(argv))  # the URL goes by PGG_DB, not argv
        typer.echo(f"worker started in the background (pid {pid}); output in {log_path}")
    elif executor == "slurm":
        given = dict(
            partition=partition,
            gpus_per_run=gpus_per_run,
            cpus_per_run=cpus_per_run,
            mem_gb=mem_gb,
            time_min=time_min,
            account=account,
            qos=qos,
            setup=list(setup or []) or None,
            max_jobs=max_jobs,
        )
        _serve_slurm(
            store,
            {k: v for k, v in given.items() if v is not None},
            command,
            wait,
            exit_when_idle,
            lost_after,
            grace,
            poll,
        )
    else:
        _serve_local(store, gpus, slots_per_gpu, cpu_slots, command, wait, exit_when_idle, lost_after, grace, poll)


def _log(msg: str) -> None:
    typer.echo(f"[{time.strftime('%H:%M:%S')}] {msg}", err=True)


def _status(store: Store, json_: bool) -> None:
    """The workers serving the store and what its queue holds; exit 3 when none serves it from here."""
    from pgg_tui.core import launch

    leases = launch.worker_leases(store)
    queued = len(store.runs(status="queued"))
    running = len(store.runs(status="running"))
    control = store.queue_control()
    if json_:
        print_json(
            dict(
                running=any(x.here for x in leases),
                workers=[
                    dict(
                        host=x.host,
                        pid=x.pid,
                        here=x.here,
                        slots=json.loads(x.slots),
                        gpus=json.loads(x.gpus),
                        started_at=x.started_at,
                        heartbeat_at=x.heartbeat_at,
                    )
                    for x in leases
                ],
                runs_running=running,
                runs_queued=queued,
                paused=control.paused,
                parallel=control.parallel,
            )
        )
    else:
        tail = (
            f"{running} running · {queued} queued"
            + (" · queue paused" if control.paused else "")
            + (f" · {control.parallel} at once" if control.parallel else "")
        )
        if not leases:
            typer.echo(f"no worker serves {store.location} · {tail}")
        for x in leases:
            gpus = " ".join(gpu_reading(g) for g in json.loads(x.gpus))
            typer.echo(
                f"worker {x} serving {store.location} since {duration(time.time() - x.started_at)} · "
                f"slots {', '.join(json.loads(x.slots))}" + (f" · {gpus}" if gpus else "")
            )
        if leases:
            typer.echo(tail)
    if not any(x.here for x in leases):
        raise typer.Exit(3)  # scripts: `pgg worker status || pgg worker --detach`


def _serve_slurm(
    store: Store,
    given: dict[str, Any],
    command: str | None,
    wait: bool,
    exit_when_idle: bool,
    lost_after: float,
    grace: float,
    poll: float,
) -> None:
    """One Slurm job per run, through submitit; options not given take SlurmOptions' defaults."""
    from engine.scheduler import DEFAULT_COMMAND
    from engine.slurm import SlurmOptions, SlurmWorker

    options = SlurmOptions(**given)
    sw = SlurmWorker(
        store,
        options,
        command=command or DEFAULT_COMMAND,
        poll=max(poll, 2.0),
        lost_after=lost_after,
        grace=grace,
        log=_log,
    )
    sw.acquire(wait=wait)
    typer.echo(
        f"worker {sw.name} submitting to Slurm for {store.display_url}: up to {options.max_jobs} jobs, "
        f"{options.gpus_per_run} GPU(s) and {options.cpus_per_run} CPU(s) each",
        err=True,
    )
    sw.serve(exit_when_idle=exit_when_idle)


def _serve_local(
    store: Store,
    gpus: str | None,
    slots_per_gpu: int,
    cpu_slots: int,
    command: str | None,
    wait: bool,
    exit_when_idle: bool,
    lost_after: float,
    grace: float,
    poll: float,
) -> None:
    """Processes on this machine, one per free GPU slot (or CPU slot)."""
    from engine.scheduler import DEFAULT_COMMAND, Worker, make_slots

    gpu_list = None
    if gpus is not None:
        gpu_list = [g.strip() for g in gpus.split(",") if g.strip()]
        if not all(g.isdigit() for g in gpu_list):
            raise ConfigError(f"bad --gpus {gpus!r}: expected indices such as 0,1")
    slots = make_slots(gpu_list, slots_per_gpu, cpu_slots)
    w = Worker(store, slots, command or DEFAULT_COMMAND, poll=poll, lost_after=lost_after, grace=grace, log=_log)
    w.acquire(wait=wait)
    typer.echo(
        f"worker {w.name} serving {store.display_url} on {len(slots)} slot(s): {', '.join(s.label for s in slots)}",
        err=True,
    )
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
