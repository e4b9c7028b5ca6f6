"""`pgg queue` and `pgg run`: validate a request, expand its grid and seeds, queue it (or train it here)."""

from __future__ import annotations

import json
import os
import sys
import threading
from typing import TYPE_CHECKING, Annotated

import typer
from engine.errors import ConfigError
from engine.registry import RunSpec, get_task, plan_errors, plan_runs

from pgg_tui.core.present import last_line

if TYPE_CHECKING:
    from engine.store import Store
    from engine.sweep import Sweep

from pgg_tui.cli._common import (
    EXTRA,
    DataDirOpt,
    DatasetOpt,
    DbOpt,
    DSeedsOpt,
    JsonOpt,
    MethodOpt,
    NameOpt,
    PresetOpt,
    SeedsOpt,
    SetOpt,
    TagOpt,
    TaskArg,
    app,
    boundary,
    complete_run_ids,
    examples,
    open_store,
    print_json,
    print_table,
    run_ids_of,
)


def overrides_of(set_: list[str] | None, ctx: typer.Context) -> list[str]:
    """--set values plus the key=value words that follow them (`--set a=1 b=2`, as people type it)."""
    extra = list(ctx.args)
    stray = [w for w in extra if "=" not in w or w.startswith("-")]
    if stray or (extra and not set_):
        raise ConfigError(f"unexpected argument {(stray or extra)[0]!r}; settings go after --set as key=value")
    return [*(set_ or []), *extra]


def plan(
    ctx: typer.Context,
    task: str,
    dataset: str,
    method: str,
    seeds: str,
    dataset_seeds: str,
    preset: str,
    data_dir: str,
    set_: list[str] | None,
    sweep_file: str | None = None,
    name: str = "",
    samples: int = 0,
    sample_seed: int = 0,
) -> tuple[list[RunSpec], Sweep | None]:
    """The runs a queue request makes, and the sweep they form when settings list several values
    (`--set agg=avg,max`) or a sweep file names grids per method (None: seeds alone)."""
    from engine.sweep import Sweep, is_range, load_sweep, parse_grid, plan_sweep

    method = method or get_task(task).default_method
    grid = parse_grid(overrides_of(set_, ctx))
    ranged = [k for k, v in grid.items() if any(is_range(x) for x in v)]
    if ranged and not samples:
        raise ConfigError(
            f"{ranged[0]}={grid[ranged[0]][0]} is a range: draw from it with --samples N "
            "(random search), or list values"
        )
    if sweep_file is None and not samples and all(len(v) == 1 for v in grid.values()):
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
        if samples:  # --samples N draws N configurations for every method of the file
            sweep.samples = dict.fromkeys(sweep.grids, samples)
            sweep.sample_seed = sample_seed
    else:
        sweep, common = Sweep(grids={method: grid}), []
        if samples:
            sweep.samples, sweep.sample_seed = {method: samples}, sample_seed
    sweep.name = name or sweep.name
    return plan_sweep(task, dataset, sweep, seeds, dataset_seeds, preset, data_dir, common), sweep


@app.command(
    context_settings=EXTRA,
    epilog=examples(
        "pgg queue prompt -d sst-2 -s 0-4                  # pgg on SST-2, seeds 0 to 4",
        "pgg queue prompt -d sst-2 --set agg=avg,max reward_lr=1e-3,3e-3 --dry-run   # a grid, listed",
        "pgg queue prompt -d toy-sentiment -p tiny -m seq-reinforce --after 12 -t baseline  # once 12 is done",
    ),
)
@boundary
def queue(
    ctx: typer.Context,
    task: TaskArg,
    dataset: DatasetOpt,
    method: MethodOpt = "",
    seeds: SeedsOpt = "0",
    dataset_seeds: DSeedsOpt = "0",
    preset: PresetOpt = "paper",
    data_dir: DataDirOpt = "",
    set_: SetOpt = None,
    db: DbOpt = None,
    sweep_file: Annotated[
        str | None,
        typer.Option(
            "--sweep",
            metavar="FILE",
            help="a TOML file of grids, one table per method (docs: engine/sweep.py)",
            show_default=False,
        ),
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="validate and list the runs; queue nothing")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="queue a sweep of more than 1,000 runs")] = False,
    samples: Annotated[
        int,
        typer.Option(
            "--samples",
            min=0,
            metavar="N",
            help="random search: draw N configurations "
            "per method from the --set values (a list: a choice; lo:hi: a range, "
            "log-uniform when lo > 0) instead of the whole grid",
        ),
    ] = 0,
    sample_seed: Annotated[
        int, typer.Option("--sample-seed", min=0, metavar="N", help="the seed of the --samples draw")
    ] = 0,
    name: NameOpt = "",
    tag: TagOpt = None,
    priority: Annotated[int, typer.Option("--priority", metavar="N", help="higher runs first")] = 0,
    after: Annotated[
        list[str] | None,
        typer.Option(
            "--after",
            metavar="IDS",
            autocompletion=complete_run_ids,
            help="start only once these runs are done (ids, ranges, lists: 12 or 3-5,9); if one ends "
            "otherwise, these are cancelled, saying why",
            show_default=False,
        ),
    ] = None,
    json_: JsonOpt = False,
) -> None:
    """Queue runs for a worker to train; prints their ids.

    Seeds x dataset seeds, and a grid of settings (`--set agg=avg,max lr=1e-3,3e-3`, or a --sweep file of
    grids per method). `pgg worker` trains them."""
    from engine.registry import parse_seeds
    from engine.sweep import CONFIRM_ABOVE

    # validated with the first seed alone (every configuration and dataset seed; the seed changes no check), so
    # a request of 100,001 runs is counted and refused in a moment instead of being built run by run
    seed_list = parse_seeds(seeds, "seeds")
    after_ids = run_ids_of(after or [])
    probe, sweep = plan(
        ctx,
        task,
        dataset,
        method,
        str(seed_list[0]),
        dataset_seeds,
        preset,
        data_dir,
        set_,
        sweep_file,
        name,
        samples,
        sample_seed,
    )
    total = len(probe) * len(seed_list)
    if total > CONFIRM_ABOVE and not yes:
        if not dry_run:
            raise ConfigError(
                f"this would queue {total:,} runs (more than {CONFIRM_ABOVE:,}); check it with "
                "--dry-run, then add --yes"
            )
        typer.echo(
            f"would queue {total:,} runs ({len(probe):,} per seed x {len(seed_list):,} seeds; dry run: "
            f"nothing queued); more than {CONFIRM_ABOVE:,} needs --yes, and lists them",
            err=True,
        )
        return
    specs, sweep = plan(
        ctx, task, dataset, method, seeds, dataset_seeds, preset, data_dir, set_, sweep_file, name, samples, sample_seed
    )
    grid_line = ""
    if sweep is not None:
        grid_line = "; ".join(
            f"{m}: {len(sweep.configurations(m))} configuration(s)"
            + (" drawn at random" if sweep.samples.get(m) else "")
            + "".join(f", {k} in {{{', '.join(v)}}}" for k, v in g.items() if len(v) > 1 or ":" in v[0])
            for m, g in sweep.grids.items()
        )
    if dry_run:
        if after_ids:  # the runs waited for must be there: checked as queueing would
            store = open_store(db, create=False)
            for rid, (_, status) in store.after_states(after_ids).items():
                if status is None:
                    raise ConfigError(f"no run {rid} in this store (--after)")
        rows = [
            dict(
                task=r.task,
                dataset=r.dataset,
                method=r.method,
                seed=r.seed,
                dataset_seed=r.dataset_seed,
                preset=r.preset,
                overrides=r.overrides,
            )
            for r in specs
        ]
        if json_:
            print_json(rows)
        else:
            print_table(
                ("task", "dataset", "method", "seed", "dseed", "preset", "overrides"),
                [
                    [
                        r.task,
                        r.dataset,
                        r.method,
                        str(r.seed),
                        str(r.dataset_seed),
                        r.preset,
                        " ".join(f"{k}={v}" for k, v in sorted(r.overrides.items())),
                    ]
                    for r in specs
                ],
            )
            if grid_line:
                typer.echo(f"grid: {grid_line}", err=True)
            typer.echo(
                f"would queue {len(specs):,} run{'s' * (len(specs) != 1)} (dry run: nothing queued)"
                + (f"; more than {CONFIRM_ABOVE:,} needs --yes" if len(specs) > CONFIRM_ABOVE and not yes else ""),
                err=True,
            )
        return
    if len(specs) > CONFIRM_ABOVE and not yes:
        raise ConfigError(
            f"this would queue {len(specs):,} runs (more than {CONFIRM_ABOVE:,}); check it with "
            "--dry-run, then add --yes"
        )
    from pgg_tui.core.ops import queue_runs

    ids = queue_runs(open_store(db), specs, name=name, tags=tag or [], priority=priority, sweep=sweep, after=after_ids)
    if json_:
        print_json(ids)
    else:
        typer.echo(" ".join(str(i) for i in ids))
    if sweep is not None:
        typer.echo(f"sweep {grid_line}", err=True)
    typer.echo(f"queued {len(ids)} run{'s' * (len(ids) != 1)}; start a worker with `pgg worker` if none runs", err=True)


@app.command(
    context_settings=EXTRA,
    epilog=examples(
        "pgg run prompt -d toy-sentiment -p tiny            # a few minutes on a CPU, with a progress line",
        "pgg run summarize -d toy-news -p tiny --set epochs=1 -q     # no progress line: the result alone",
    ),
)
@boundary
def run(
    ctx: typer.Context,
    task: TaskArg,
    dataset: DatasetOpt,
    method: MethodOpt = "",
    seeds: SeedsOpt = "0",
    dataset_seeds: DSeedsOpt = "0",
    preset: PresetOpt = "paper",
    data_dir: DataDirOpt = "",
    set_: SetOpt = None,
    db: DbOpt = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no live progress line")] = False,
) -> None:
    """Train in the foreground, no worker; recorded like any run.

    Ctrl-C stops it at the next step with a checkpoint; a second Ctrl-C kills it."""
    specs, _ = plan(ctx, task, dataset, method, seeds, dataset_seeds, preset, data_dir, set_)
    store = open_store(db)
    group = os.urandom(4).hex()
    worst = 0
    for spec in specs:
        # created running and owned by this process, one at a time: a worker never sees it queued
        (rid,) = store.queue([spec], group=group, started_by=os.getpid())
        code = _run_foreground(store, rid, quiet)
        r = store.get(rid)
        summary = ", ".join(
            f"{k} {v:.4g}" for k, v in json.loads(r.results or "{}").items() if isinstance(v, (int, float))
        )
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
        code = run_in_foreground(
            store,
            run_id,
            echo=not live,
            on_stop=lambda text: typer.echo("\n" + text, err=True),
            out=lambda line: typer.echo(line, nl=False),
            err=lambda line: typer.echo(line, nl=False, err=True),
        )
    finally:
        stop.set()
        if watcher is not None:
            watcher.join(timeout=2)
            sys.stderr.write("\r\033[K")
    if store.get(run_id).status == "running":  # killed by the second Ctrl-C: it could not record its end
        store.fail(
            run_id, "aborted: the run process was killed (second Ctrl-C); `pgg retry` resumes it", exit_code=code
        )
    return 130 if code < 0 else code


def _progress_line(store: Store, run_id: int, stop: threading.Event) -> None:
    """One live status line on stderr: phase, step / total, latest losses, ETA."""
    names = ["reward/loss", "reward/val_loss", "policy/loss", "train/score", "dev/score", "val/score"]
    from pgg_tui.core.views import RunView

    while not stop.wait(0.5):
        try:
            r = store.get(run_id)
            last = store.latest_metrics([run_id], names)
        except Exception:  # a busy store: the next tick shows the line
            continue
        vals = " · ".join(f"{n} {last[(run_id, n)]:.3g}" for n in names if (run_id, n) in last)
        where = RunView.of(r).where if r.phase else f"setup {r.step}/{r.total_steps or '?'}"
        line = f"run {run_id} · {where}" + (f" · {vals}" if vals else "")
        width = os.get_terminal_size(sys.stderr.fileno()).columns if sys.stderr.isatty() else 200
        sys.stderr.write("\r\033[K" + line[: width - 1])
        sys.stderr.flush()
