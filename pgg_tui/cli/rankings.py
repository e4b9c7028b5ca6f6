"""`pgg rankings`: what waits for people, and rankings out and in as JSON Lines."""

from __future__ import annotations

import sys

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from engine.errors import ConfigError

from pgg_tui.cli._common import DbOpt, JsonOpt, PggTyper, app, boundary, examples, open_store, print_json, print_table

rankings_app = PggTyper(
    help="Rankings of runs' samples by people: what waits, export, import.",
    epilog=examples("pgg rankings                 # what waits to be ranked, per run", "pgg rankings --json"),
    no_args_is_help=False,
    invoke_without_command=True,
)
app.add_typer(rankings_app, name="rankings")


@rankings_app.callback()
@boundary
def rankings_status(ctx: typer.Context, json_: JsonOpt = False, db: DbOpt = None) -> None:
    """What waits for rankers, per run, and how many rankings the store holds.

    `pgg rankings export` writes them out, `pgg rankings import` reads a file in."""
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
        print_table(
            ("run", "to rank", "ranked"),
            [[str(p.run_id), str(p.open), str(p.done)] for p in waiting],
            right=("run", "to rank", "ranked"),
        )
    else:
        typer.echo("nothing waits to be ranked", err=True)
    sys.stdout.flush()  # the table first, then the footer, also where stdout is a pipe and stderr is not
    # under 80 columns, so it never wraps a lone ` onto a line of its own (issue 24 item 14)
    typer.echo(f"{total} ranking(s) stored; rank in pgg-tui (R), export: pgg rankings export", err=True)


def write_rankings(records: Iterable[dict[str, Any]], output: Path) -> int:
    from engine import rankings

    try:
        return rankings.write_file(records, output)
    except OSError as err:
        raise ConfigError(f"cannot write {output}: {err.strerror}") from None


@rankings_app.command(
    "export",
    epilog=examples(
        "pgg rankings export -o rankings.jsonl",
        "pgg rankings export 7 > run7.jsonl       # one run's",
    ),
)
@boundary
def rankings_export(
    run_ids: Annotated[
        list[int] | None,
        typer.Argument(
            metavar="RUN...",
            help="only these runs' rankings (default: all, imported ones included)",
            show_default=False,
        ),
    ] = None,
    output: Annotated[
        Path | None, typer.Option("-o", "--output", metavar="FILE", help="file (default: stdout)")
    ] = None,
    db: DbOpt = None,
) -> None:
    """Write rankings as JSON Lines.

    Each line: context, candidates, order (best first), annotator, time."""
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


@rankings_app.command(
    "import",
    epilog=examples(
        "pgg rankings import rankings.jsonl --db sqlite:///other.db   # into another store",
        "pgg rankings import pairs.jsonl --pairs -o ranked.jsonl       # then --set rankings_file=ranked.jsonl",
    ),
)
@boundary
def rankings_import(
    path: Annotated[
        Path, typer.Argument(metavar="FILE", help="JSON Lines of ranked lists (as export writes)", show_default=False)
    ],
    pairs: Annotated[
        bool,
        typer.Option(
            "--pairs",
            help="the file is a pairwise preference set "
            "({prompt, chosen, rejected} per line): lists of two, "
            "chosen first",
        ),
    ] = False,
    output: Annotated[
        Path | None,
        typer.Option(
            "-o",
            "--output",
            metavar="FILE",
            help="write the ranked lists to this file instead of the store (a rankings_file for runs)",
            show_default=False,
        ),
    ] = None,
    db: DbOpt = None,
) -> None:
    """Add ranked lists to the store, or convert them to a ranking file.

    With --output the lists go to a file a run can ground on (rankings_file), not into the store."""
    from engine import rankings

    def records() -> Iterator[dict[str, Any]]:  # read as it goes: a multi-GB file in bounded memory
        return rankings.iter_pairs(rankings.iter_jsonl(path)) if pairs else rankings.iter_file(path)

    for _ in records():  # every line checked before anything is written
        pass
    if output is not None:
        typer.echo(
            f"wrote {write_rankings(records(), output)} ranked list(s) to {output}; ground a run on it: "
            f"--set preference=human rankings_file={output}",
            err=True,
        )
        return
    done = rankings.import_stream(open_store(db), records())
    typer.echo(
        f"imported {done.added} ranked list(s)"
        + (f"; skipped {done.skipped} already in the store" if done.skipped else ""),
        err=True,
    )
