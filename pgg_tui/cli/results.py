"""What runs produced: `pgg export`, `backup`, `table`, `compare`."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Annotated

import typer
from engine.errors import ConfigError
from engine.registry import TASKS, get_task

from pgg_tui.cli import _common
from pgg_tui.cli._common import (
    DatasetFilter,
    DbOpt,
    JsonOpt,
    LimitOpt,
    MethodFilter,
    StatusOpt,
    SweepOpt,
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
from pgg_tui.core.present import TAU, shared_overrides, variant_label


@app.command(
    epilog=examples(
        "pgg export --status done -o runs.csv",
        "pgg export 1 2 3 --what metrics --format jsonl -o metrics.jsonl",
        "pgg export --task prompt --what samples --format json",
    )
)
@boundary
def export(
    what: Annotated[
        str,
        typer.Option(
            "--what",
            metavar="KIND",
            help="runs (with config and results), metrics, or samples (with their tokens and token rewards)",
        ),
    ] = "runs",
    fmt: Annotated[str, typer.Option("--format", metavar="FORMAT", help="csv, json or jsonl")] = "csv",
    output: Annotated[
        Path | None, typer.Option("-o", "--output", metavar="FILE", help="file (default: stdout)")
    ] = None,
    run_ids: Annotated[
        list[int] | None,
        typer.Argument(
            metavar="RUN...", help="only these runs (default: all that match the filters)", show_default=False
        ),
    ] = None,
    status: StatusOpt = None,
    task: TaskOpt = None,
    dataset: DatasetFilter = None,
    method: MethodFilter = None,
    sweep: SweepOpt = None,
    limit: LimitOpt = None,
    db: DbOpt = None,
) -> None:
    """Export runs, metrics or samples as CSV, JSON or JSON lines."""
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


@app.command(epilog=examples("pgg backup backup.db", "pgg backup saved.db --as-is   # a store that will not open"))
@boundary
def backup(
    dest: Annotated[Path, typer.Argument(metavar="FILE", help="the new file", show_default=False)],
    as_is: Annotated[
        bool,
        typer.Option(
            "--as-is",
            help="copy the file and its -wal/-shm byte for byte, without "
            "opening it: a store that refuses to open (a cut WAL), kept before "
            "anyone accepts a loss",
        ),
    ] = False,
    db: DbOpt = None,
) -> None:
    """Copy the store to a new file, safe while runs write.

    A plain cp of a SQLite store that runs write to can lose rows."""
    if as_is:
        from engine import sqlite_file
        from engine.store import resolve_url

        path = sqlite_file.path_of(resolve_url(db or _common.GLOBAL_DB))
        if path is None:
            raise ConfigError("pgg backup --as-is copies SQLite store files; for PostgreSQL use pg_dump")
        files = sqlite_file.copy_as_is(path, dest.expanduser())
        typer.echo(f"copied {', '.join(f.name for f in files)} as they are, next to {dest}")
        return
    store = open_store(db, create=False)
    runs = store.backup(dest)
    typer.echo(f"backed up {store.location} to {dest} ({runs} runs)")


@app.command(epilog=examples("pgg table", "pgg table --task prompt --json"))
@boundary
def table(task: TaskOpt = None, json_: JsonOpt = False, db: DbOpt = None) -> None:
    """Final results of done runs: mean ± std (n) over seeds.

    Runs are grouped by everything but the seed."""
    from pgg_tui.core.aggregate import group_runs, metric_names

    if task is not None:
        get_task(task)
    store = open_store(db, create=False)
    groups = [g for g in group_runs(store.runs()) if task is None or g.task == task]
    if json_:
        print_json(
            [
                dict(
                    task=g.task,
                    dataset=g.dataset,
                    method=g.variant,
                    preset=g.key[3],
                    runs=g.run_ids,
                    **{k: dict(mean=s.mean, std=s.std, n=s.n) for k, s in g.stats.items()},
                )
                for g in groups
            ]
        )
        return
    if not groups:
        typer.echo("no finished runs yet", err=True)
        return
    names = [n for n in metric_names(groups) if n.startswith(("test/", "dev/")) or n == TAU] or metric_names(groups)
    width = shutil.get_terminal_size().columns
    narrow = narrow_terminal()
    if narrow:  # the tasks' headline results and tau first, as many as leave the method 24 columns
        first = [n for n in dict.fromkeys([TASKS[g.task].result_metric for g in groups] + [TAU]) if n in names]
        names = (first + [n for n in names if n not in first])[: max(1, (width - 60) // 19)]
    shared = shared_overrides(g.key[4] for g in groups) if narrow and len(groups) > 1 else {}
    print_table(
        ("task", "dataset", "method", "preset", *names),
        [
            [
                g.task,
                g.dataset,
                variant_label(g.method, g.key[4], shared),
                g.key[3],
                *[g.stats[n].format() if n in g.stats else "–" for n in names],
            ]
            for g in groups
        ],
        squeeze=("method", "dataset") if narrow else (),
    )
    if shared:
        typer.echo("every row: " + " ".join(f"{k}={v}" for k, v in sorted(shared.items())), err=True)


@app.command(
    epilog=examples(
        "pgg compare                        # prompt runs: each method at its best configuration",
        "pgg compare -d toy-sentiment --metric test/accuracy --json",
        "pgg compare --sweep 3f2a9c1e       # one sweep's runs only",
    )
)
@boundary
def compare(
    task: Annotated[str, typer.Option("--task", metavar="TASK", help="the task compared")] = "prompt",
    dataset: DatasetFilter = None,
    sweep: SweepOpt = None,
    metric: Annotated[
        str | None,
        typer.Option(
            "--metric",
            metavar="NAME",
            help="the test number reported (default: the task's, e.g. test/accuracy)",
            show_default=False,
        ),
    ] = None,
    json_: JsonOpt = False,
    db: DbOpt = None,
) -> None:
    """Methods compared without peeking at test results.

    Each method's best configuration is chosen on validation; then its test mean ± std and 95% t interval
    over seeds, the configurations tried, the queries and policy samples spent."""
    from pgg_tui.core.compare import COMPARISON_HEADER, comparison_rows
    from pgg_tui.core.compare import compare as compare_runs

    get_task(task)
    store = open_store(db, create=False)
    runs = [r for r in store.runs() if sweep is None or r.group_id == sweep]
    found = compare_runs(runs, task, dataset, metric)
    if json_:
        print_json(
            [
                dict(
                    task=c.task,
                    dataset=c.dataset,
                    selected_by=c.select_metric,
                    test_metric=c.test_metric,
                    unequal_tuning=c.unequal_tuning,
                    methods=[
                        dict(
                            method=m.method,
                            config=m.config,
                            runs=m.best.run_ids,
                            validation=m.select.mean,
                            test=dict(
                                mean=m.test.mean if m.test.values else None, std=m.test.std, n=m.test.n, ci95=m.interval
                            ),
                            configs_tried=m.tried,
                            spent={k: v.mean for k, v in m.spent.items()},
                        )
                        for m in c.methods
                    ],
                )
                for c in found
            ]
        )
        return
    if not found:
        raise ConfigError(
            f"no done {task} runs with a validation result to compare" + (f" in sweep {sweep}" if sweep else "")
        )
    for i, c in enumerate(found):
        if i:
            typer.echo("")
        typer.echo(
            f"{c.task} / {c.dataset}: best configuration per method by {c.select_metric} (validation); "
            f"{c.test_metric} over its seeds"
        )
        print_table(COMPARISON_HEADER, comparison_rows(c))
        if c.unequal_tuning:
            tried = ", ".join(f"{m.method} {m.tried}" for m in c.methods)
            typer.echo(
                f"unequal tuning: the methods tried different numbers of configurations ({tried}); "
                "the one searched more has the better chance at its best",
                err=True,
            )
