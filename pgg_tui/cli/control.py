"""Changing runs and the queue: `pgg cancel`, `retry`, `annotate`, `priority`, `pause`, `resume`, `parallel`,
`delete`, `restore`, `trash`, `clean`."""

from __future__ import annotations

import json
import sys
import time
from typing import TYPE_CHECKING, Annotated

import typer
from engine.errors import ConfigError
from engine.registry import get_task

from pgg_tui.core.clean import CLEANED_BY_DEFAULT, CONFIRM_ABOVE
from pgg_tui.core.present import run_label

if TYPE_CHECKING:
    from engine.store import Store

from pgg_tui.cli._common import (
    DbOpt,
    JsonOpt,
    print_json,
    print_table,
    RunIdArg,
    RunIdsArg,
    SweepOpt,
    TagOpt,
    TaskOpt,
    app,
    boundary,
    complete_statuses,
    examples,
    open_store,
    run_ids_of,
)


@app.command(epilog=examples("pgg cancel 9", "pgg cancel 12-20 25      # ranges and lists"))
@boundary
def cancel(run_ids: RunIdsArg, db: DbOpt = None) -> None:
    """Cancel runs: queued ones now, running ones at their next step.

    A running run saves a checkpoint as it stops; `pgg retry` resumes it."""
    from pgg_tui.core.ops import cancel_runs

    for line in cancel_runs(open_store(db, create=False), run_ids_of(run_ids)):
        typer.echo(line)


@app.command(epilog=examples("pgg retry 8"))
@boundary
def retry(run_ids: RunIdsArg, db: DbOpt = None) -> None:
    """Queue a new attempt of failed, cancelled or lost runs.

    Each attempt resumes from its run's last checkpoint, in a folder of its own."""
    from pgg_tui.core.ops import retry_runs

    for line in retry_runs(open_store(db, create=False), run_ids_of(run_ids)):
        typer.echo(line)


@app.command(
    epilog=examples(
        "pgg annotate 3 --name 'best so far' --tag keep,paper",
        "pgg annotate 3 --untag '#paper' --note 'lr too high after step 40'",
    )
)
@boundary
def annotate(
    run_id: RunIdArg,
    name: Annotated[
        str | None, typer.Option("--name", metavar="NAME", help="the run's name ('' clears it)", show_default=False)
    ] = None,
    tag: TagOpt = None,
    untag: Annotated[
        list[str] | None, typer.Option("--untag", metavar="TAG", help="remove a tag (repeatable)", show_default=False)
    ] = None,
    note: Annotated[
        str | None,
        typer.Option(
            "--note",
            metavar="TEXT",
            help="the run's notes, replaced ('' clears them; - reads them from stdin)",
            show_default=False,
        ),
    ] = None,
    db: DbOpt = None,
) -> None:
    """Name a run, tag it, or write notes on it (any status)."""
    if name is None and not tag and not untag and note is None:
        raise ConfigError("nothing to change; give --name, --tag, --untag or --note")
    from pgg_tui.core.tags import parse_tags

    add, remove = parse_tags(tag or []), parse_tags(untag or [])
    if note == "-":
        note = sys.stdin.read()
    r = open_store(db, create=False).annotate(run_id, name, add, remove, note)
    label = run_label(r.name, json.loads(r.tags))
    typer.echo(f"run {run_id}: {label or 'no name or tags'}" + (" · notes saved" if note else ""))


@app.command(epilog=examples("pgg priority 5 12       # run 12 before the others"))
@boundary
def priority(
    level: Annotated[
        int,
        typer.Argument(
            metavar="LEVEL", help="the new priority: higher runs first; 0 is the default", show_default=False
        ),
    ],
    run_ids: RunIdsArg,
    db: DbOpt = None,
) -> None:
    """Reorder the queue: a higher priority starts first."""
    for line in open_store(db, create=False).set_priority(run_ids_of(run_ids), level):
        typer.echo(line)


def _say_queue(store: Store) -> None:
    c = store.queue_control()
    typer.echo(
        f"queue {'paused' if c.paused else 'open'} · {c.parallel or 'one run per slot'}"
        f"{' at once' if c.parallel else ''} · {len(store.runs(status='queued'))} queued"
    )


@app.command()
@boundary
def pause(db: DbOpt = None) -> None:
    """Stop starting queued runs; running ones go on.

    `pgg resume` starts them again. Workers see it live."""
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


@app.command(epilog=examples("pgg parallel 2", "pgg parallel slots"))
@boundary
def parallel(
    runs_at_once: Annotated[
        str | None,
        typer.Argument(
            metavar="N|slots",
            help="runs at once across the worker's slots, or 'slots' for one per slot; omit to show it",
            show_default=False,
        ),
    ] = None,
    db: DbOpt = None,
) -> None:
    """How many runs a worker runs at once, changed live.

    Never more than its slots; lowering it stops nothing."""
    store = open_store(db, create=False)
    if runs_at_once is not None:
        if runs_at_once == "slots":
            store.set_queue_control(parallel=None)
        elif runs_at_once.isdigit():
            store.set_queue_control(parallel=int(runs_at_once))
        else:
            raise ConfigError(f"bad number of runs {runs_at_once!r}: give a whole number, or 'slots'")
    _say_queue(store)


@app.command(epilog=examples("pgg delete 8 -y         # into the trash: `pgg restore 8` brings it back"))
@boundary
def delete(
    run_ids: RunIdsArg,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask")] = False,
    no_trash: Annotated[bool, typer.Option("--no-trash", help="delete for good (no `pgg restore`)")] = False,
    db: DbOpt = None,
) -> None:
    """Delete runs into the trash, with everything they recorded.

    `pgg restore` brings them back; `pgg trash empty` deletes for good. Their run folders stay; running
    runs are refused."""
    from pgg_tui.core.ops import delete_runs

    store = open_store(db, create=False)
    ids = run_ids_of(run_ids)
    for rid in ids:
        store.get(rid)
    what = "for good" if no_trash else "into the trash"
    if not yes and not typer.confirm(f"delete {len(ids)} run(s) and all their rows {what}?"):
        raise typer.Exit(1)
    for line in delete_runs(store, ids, keep=not no_trash):
        typer.echo(line)


@app.command()
@boundary
def restore(run_ids: RunIdsArg, db: DbOpt = None) -> None:
    """Bring deleted runs back from the trash, with every row."""
    from pgg_tui.core.ops import restore_runs

    for line in restore_runs(open_store(db, create=False), run_ids_of(run_ids)):
        typer.echo(line)


@app.command(epilog=examples("pgg trash", "pgg trash empty 8 -y    # run 8 for good"))
@boundary
def trash(
    action: Annotated[
        str,
        typer.Argument(metavar="list|empty", help="list (the default), or empty: delete what the trash holds for good"),
    ] = "list",
    run_ids: Annotated[
        list[str] | None, typer.Argument(help="empty: only these runs", metavar="[IDS]...", show_default=False)
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask")] = False,
    json_: JsonOpt = False,
    db: DbOpt = None,
) -> None:
    """List the trash, or empty it for good.

    `pgg restore ID` brings a run back; `pgg trash empty` deletes what the trash holds for good."""
    from engine import trash as bin_

    store = open_store(db, create=False)
    held = bin_.entries(store)
    if action == "list":
        if json_:
            print_json(
                [
                    dict(
                        run=e.run_id,
                        task=e.task,
                        dataset=e.dataset,
                        method=e.method,
                        seed=e.seed,
                        status=e.status,
                        name=e.name,
                        deleted_at=e.deleted_at,
                        file=str(e.path),
                    )
                    for e in held
                ]
            )
        elif held:
            print_table(
                ("id", "status", "task", "dataset", "method", "seed", "deleted", "name"),
                [
                    [
                        str(e.run_id),
                        e.status,
                        e.task,
                        e.dataset,
                        e.method,
                        str(e.seed),
                        time.strftime("%Y-%m-%d %H:%M", time.localtime(e.deleted_at)),
                        e.name,
                    ]
                    for e in held
                ],
                right=("id", "seed"),
            )
        else:
            typer.echo("the trash is empty", err=True)
        return
    if action != "empty":
        raise ConfigError(f"unknown trash action {action!r}; choose list or empty")
    ids = run_ids_of(run_ids) if run_ids else None
    n = len([e for e in held if ids is None or e.run_id in ids])
    if n and not yes and not typer.confirm(f"delete {n} trashed run(s) for good?"):
        raise typer.Exit(1)
    typer.echo(f"deleted {bin_.empty(store, ids)} trashed run(s) for good")


@app.command(
    epilog=examples(
        "pgg clean --dry-run                    # what would go: the failed and cancelled runs",
        "pgg clean --status failed,lost --older-than 7d",
        "pgg clean --status done --sweep 3f2a9c1e -y",
    )
)
@boundary
def clean(
    status: Annotated[
        list[str] | None,
        typer.Option(
            "--status",
            metavar="STATUS",
            autocompletion=complete_statuses,
            help="the ended runs to clean (repeatable, or comma-separated): failed, cancelled, lost or done "
            "[default: failed,cancelled]",
            show_default=False,
        ),
    ] = None,
    older_than: Annotated[
        str | None,
        typer.Option(
            "--older-than",
            metavar="AGE",
            help="only runs that ended at least this long ago: 90s, 12h, 7d, 2w",
            show_default=False,
        ),
    ] = None,
    task: TaskOpt = None,
    sweep: SweepOpt = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="list the runs it would clean; change nothing")] = False,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help=f"clean more than {CONFIRM_ABOVE} runs without asking")
    ] = False,
    no_trash: Annotated[bool, typer.Option("--no-trash", help="delete for good (no `pgg restore`)")] = False,
    db: DbOpt = None,
) -> None:
    """Move runs that ended out of the listing, into the trash.

    Failed and cancelled runs by default (done ones only with --status done), as `pueue clean` clears finished
    tasks; `pgg restore` brings a run back with every row. More than 20 runs need -y, or a yes on a terminal."""
    from pgg_tui.core.clean import cleanable, id_ranges, parse_age
    from pgg_tui.core.ops import delete_runs

    statuses = tuple(s.strip() for item in status or [] for s in item.split(",") if s.strip())
    age = parse_age(older_than) if older_than is not None else None
    if task is not None:
        get_task(task)
    store = open_store(db, create=False)
    runs = cleanable(store, statuses or CLEANED_BY_DEFAULT, age, task, sweep)
    what = (
        " or ".join(statuses or CLEANED_BY_DEFAULT) + " runs" + (f" that ended {older_than} ago or more" if age else "")
    )
    ids = [r.id for r in runs if r.id is not None]
    if not ids:
        typer.echo(f"nothing to clean: no {what}", err=True)
        return
    if dry_run:
        print_table(
            ("id", "status", "task", "dataset", "method", "seed", "ended", "name"),
            [
                [
                    str(r.id),
                    r.status,
                    r.task,
                    r.dataset,
                    r.method,
                    str(r.seed),
                    time.strftime("%Y-%m-%d %H:%M", time.localtime(r.finished_at or r.created_at)),
                    r.name,
                ]
                for r in runs
            ],
            right=("id", "seed"),
        )
        typer.echo(f"would clean {len(ids)} {what} (dry run: nothing changed)", err=True)
        return
    where = "for good" if no_trash else "into the trash"
    if len(ids) > CONFIRM_ABOVE and not yes:
        if not sys.stdin.isatty():
            raise ConfigError(
                f"this would clean {len(ids)} runs {where} (more than {CONFIRM_ABOVE}); check with --dry-run, "
                "then add -y"
            )
        if not typer.confirm(f"clean {len(ids)} {what} {where}?"):
            raise typer.Exit(1)
    delete_runs(store, ids, keep=not no_trash)
    typer.echo(
        f"cleaned {len(ids)} {what} {where}: {id_ranges(ids)}"
        + ("" if no_trash else f"; `pgg restore {id_ranges(ids)}` brings them back")
    )
