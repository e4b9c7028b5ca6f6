"""The app and what there is: `pgg tui`, `tasks`, `options`."""

from __future__ import annotations

from typing import Annotated

import typer
from engine.config import field_help
from engine.errors import ConfigError
from engine.registry import TASKS, get_task

from pgg_tui.cli import _common
from pgg_tui.cli._common import DbOpt, JsonOpt, TaskArg, app, boundary, examples, print_json


@app.command()
@boundary
def tui(
    annotator: Annotated[
        str | None,
        typer.Option(
            "--annotator",
            metavar="NAME",
            help="the name on the rankings you make [env: PGG_ANNOTATOR; default: your login name]",
            show_default=False,
        ),
    ] = None,
    db: DbOpt = None,
) -> None:
    """Open the terminal app (same as `pgg-tui`)."""
    from pgg_tui.app import run_app

    run_app(db or _common.GLOBAL_DB, annotator)


# ---------------------------------------------------------------------------------------------------
# what there is


@app.command()
@boundary
def tasks(json_: JsonOpt = False) -> None:
    """List tasks with their datasets, methods and presets."""
    if json_:
        print_json(
            [
                dict(
                    name=t.name,
                    help=t.help,
                    datasets=list(t.datasets),
                    dataset_paths=t.dataset_paths,
                    methods=dict(t.methods),
                    presets=list(t.presets),
                    result_metric=t.result_metric,
                )
                for t in TASKS.values()
            ]
        )
        return
    for spec in TASKS.values():
        typer.echo(f"{spec.name}: {spec.help}")
        typer.echo(
            f"  datasets: {', '.join(spec.datasets)}" + (" (or a .jsonl/.csv path)" if spec.dataset_paths else "")
        )
        typer.echo("  methods:  " + "; ".join(f"{k} ({v})" for k, v in spec.methods.items()))
        typer.echo(f"  presets:  {', '.join(spec.presets)}")


@app.command(epilog=examples("pgg options prompt", "pgg options summarize -p tiny --json"))
@boundary
def options(
    task: TaskArg,
    preset: Annotated[
        str, typer.Option("--preset", "-p", metavar="PRESET", help="show this preset's values")
    ] = "paper",
    json_: JsonOpt = False,
) -> None:
    """List a task's settings for --set, with their defaults."""
    spec = get_task(task)
    if preset not in spec.presets:
        raise ConfigError(f"unknown preset {preset!r}; choose one of: {', '.join(spec.presets)}")
    fields = [
        (name, spec.presets[preset].get(name, default), default, text)
        for name, (default, text) in field_help(spec.config_cls).items()
    ]
    if json_:
        print_json([dict(name=n, value=v, default=d, help=t) for n, v, d, t in fields])
        return
    for name, value, _, text in fields:
        typer.echo(f"{name:24} {value!s:16} {text}")
