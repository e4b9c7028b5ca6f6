"""What every `pgg` command shares: the one typer app, its options, the store it opens, and how it prints.

Each command is a thin skin over pgg_tui.core, the same functions the app calls. Errors meant for
people (engine.errors.PggError, usage errors) become one line on stderr and a non-zero exit. A listing
printed to a pipe is whole tab-separated rows; `--json` gives every listing as data. Importing this
module loads neither torch, textual nor the store's ORM: `pgg --help` is instant.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption

import engine
from engine.errors import ConfigError, PggError
from engine.lifecycle import STATUSES
from engine.registry import TASKS, get_task

if TYPE_CHECKING:
    from engine.store import Store

    from pgg_tui.core.views import RunQuery


F = TypeVar("F", bound=Callable[..., Any])


def _arg_name(param: TyperArgument) -> str:
    """An argument as usage lines name it: TASK, RUN, IDS..., [IDS]... when it may be left out."""
    name = param.metavar or (param.name or "arg").upper()
    if param.nargs != 1 and not name.endswith("..."):
        name += "..."
    return name if param.required or name.startswith("[") else f"[{name}]"


def _plain_metavars(params: Sequence[Any]) -> None:
    """Every value option shows what it takes in capitals (`--db URL`); a flag shows nothing. The modules give
    each option its own word; one left without gets its name (`--poll POLL`), never typer's `<str>`."""
    for param in params:
        if isinstance(param, TyperArgument) and param.metavar is None:
            param.metavar = (param.name or "arg").upper()
        elif isinstance(param, TyperOption) and not param.is_flag and not param.count and param.metavar is None:
            param.metavar = (param.name or "value").upper()


def _format_params(cmd: Any, ctx: Any, formatter: Any) -> None:
    """The Arguments and Options sections: an argument by its metavar alone (typer adds `<str>`)."""
    args, opts = [], []
    for param in cmd.get_params(ctx):
        record = param.get_help_record(ctx)
        if record is None:
            continue
        if isinstance(param, TyperArgument):
            args.append((_arg_name(param), record[1]))
        else:
            opts.append(record)
    for title, rows in (("Arguments", args), ("Options", opts)):
        if rows:
            with formatter.section(title):
                formatter.write_dl(rows)


class PggCommand(TyperCommand):
    """A command whose help reads like a classic CLI's: `Usage: pgg show [OPTIONS] RUN`, `--db URL`, flags
    bare, and its examples kept line for line."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _plain_metavars(self.params)

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        return pieces + [_arg_name(p) for p in self.get_params(ctx) if isinstance(p, TyperArgument)]

    def format_options(self, ctx: Any, formatter: Any) -> None:
        _format_params(self, ctx, formatter)


class PggGroup(TyperGroup):
    """`pgg` and `pgg rankings`: their own options as PggCommand shows them, then the commands."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _plain_metavars(self.params)

    def format_options(self, ctx: Any, formatter: Any) -> None:
        _format_params(self, ctx, formatter)
        self.format_commands(ctx, formatter)


class PggTyper(typer.Typer):
    """typer.Typer whose commands are PggCommands and whose help is plain text (rich markup would eat every
    `[default: ...]` and `[key=value ...]` in the help)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("cls", PggGroup)
        kwargs.setdefault("rich_markup_mode", None)
        super().__init__(**kwargs)

    def command(
        self, name: str | None = None, *, cls: type[TyperCommand] | None = None, **kwargs: Any
    ) -> Callable[[F], F]:
        return super().command(name, cls=cls or PggCommand, **kwargs)


def examples(*lines: str) -> str:
    """A command's help epilog: real command lines, printed as written (`\\b` keeps click from rewrapping)."""
    return "\b\nExamples:\n" + "\n".join(f"  {line}" for line in lines)


app = PggTyper(
    name="pgg",
    help="Preference-grounded token-level guidance: queue, run and compare experiments.",
    epilog=examples(
        "pgg queue prompt -d toy-sentiment -p tiny -s 0-2   # three seeds, minutes each on a CPU",
        "pgg worker --detach --exit-when-idle               # trains them in the background",
        "pgg runs -w 2                                      # watch; then `pgg table`, `pgg compare`",
    )
    + "\n\nEvery command has its own --help, with examples.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
EXTRA = {"allow_extra_args": True}  # `--set a=1 b=2`: the words after the first --set value

GLOBAL_DB: str | None = None  # --db given before the command

DbOpt = Annotated[
    str | None,
    typer.Option(
        "--db",
        metavar="URL",
        help="store URL or SQLite path [env: PGG_DB; default: sqlite:///experiments.db]",
        show_default=False,
    ),
]
# ---------------------------------------------------------------------------------------------------
# shell completion: `pgg --show-completion bash` prints the script, `pgg --install-completion bash` installs it;
# the script calls `pgg` back with _PGG_COMPLETE set (typer's machinery), and run ids, tasks and statuses complete

COMPLETE_VAR = "_PGG_COMPLETE"
SHELLS = ("bash", "zsh", "fish", "powershell", "pwsh")
COMPLETE_RUNS = 200  # the newest runs offered: a lab's store holds tens of thousands


def init_completion() -> None:
    """Register typer's completion classes (they read the words typed from its scripts' variables)."""
    from typer._completion_classes import completion_init

    completion_init()


def _completion_script(install: bool) -> Callable[[str | None], None]:
    def callback(shell: str | None) -> None:
        if shell is None:
            return
        if shell not in SHELLS:
            fail(f"unknown shell {shell!r}; choose one of: {', '.join(SHELLS)}", 2)
        from typer._completion_shared import get_completion_script
        from typer._completion_shared import install as install_script

        init_completion()
        if install:
            _, path = install_script(shell=shell, prog_name="pgg", complete_var=COMPLETE_VAR)
            typer.echo(f"{shell} completion for pgg installed in {path}; a new shell has it")
        else:
            typer.echo(get_completion_script(prog_name="pgg", complete_var=COMPLETE_VAR, shell=shell))
        raise typer.Exit()

    return callback


def _db_of(ctx: typer.Context) -> str | None:
    """The --db typed so far on the line being completed (the command's, else pgg's), else PGG_DB's."""
    c: Any = ctx
    while c is not None:
        if c.params.get("db"):
            return str(c.params["db"])
        c = c.parent
    return None


def complete_run_ids(ctx: typer.Context, incomplete: str) -> list[tuple[str, str]]:
    """The store's newest run ids that start with what is typed, each with its status and what it trains;
    after a comma, the next id of a list. Nothing when the store cannot be read: completion never errs."""
    head, comma, last = incomplete.rpartition(",")
    if last and not last.isdigit():
        return []
    try:
        import sqlalchemy as sa

        from engine.store import Run, Store

        store = Store.open(_db_of(ctx), create=False, read_only_ok=True)
        t = Run.__table__  # type: ignore[attr-defined]  # SQLModel's classes do not declare it
        with store.read() as s:
            rows = (
                s.connection()
                .execute(
                    sa.select(t.c.id, t.c.status, t.c.task, t.c.dataset, t.c.method)
                    .order_by(t.c.id.desc())
                    .limit(COMPLETE_RUNS)
                )
                .all()
            )
    except Exception:
        return []
    return [
        (f"{head}{comma}{r.id}", f"{r.status} · {r.task} {r.dataset} {r.method}")
        for r in rows
        if str(r.id).startswith(last)
    ]


def complete_tasks(incomplete: str) -> list[tuple[str, str]]:
    return [(name, spec.help) for name, spec in TASKS.items() if name.startswith(incomplete)]


def complete_statuses(incomplete: str) -> list[str]:
    head, comma, last = incomplete.rpartition(",")
    return [f"{head}{comma}{s}" for s in STATUSES if s.startswith(last)]


RunIdArg = Annotated[
    int,
    typer.Argument(metavar="RUN", help="run id (see `pgg runs`)", show_default=False, autocompletion=complete_run_ids),
]
RunIdsArg = Annotated[
    list[str],
    typer.Argument(
        help="run ids: N, ranges A-B and lists (3 5 7-9, 22-29)",
        metavar="IDS...",
        show_default=False,
        autocompletion=complete_run_ids,
    ),
]


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
            quiet_pipe()
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


def quiet_pipe() -> None:
    """Stop writing to a closed pipe without a traceback at interpreter exit."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    raise typer.Exit(0)


@app.callback()
def main_options(
    version: Annotated[
        bool, typer.Option("--version", callback=version_callback, is_eager=True, help="print the version and exit")
    ] = False,
    db: DbOpt = None,
    show_completion: Annotated[
        str | None,
        typer.Option(
            "--show-completion",
            metavar="SHELL",
            callback=_completion_script(install=False),
            is_eager=True,
            help=f"print the shell completion script for {', '.join(SHELLS)}",
            show_default=False,
        ),
    ] = None,
    install_completion: Annotated[
        str | None,
        typer.Option(
            "--install-completion",
            metavar="SHELL",
            callback=_completion_script(install=True),
            is_eager=True,
            help="install shell completion for pgg (a new shell has it)",
            show_default=False,
        ),
    ] = None,
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


def narrow_terminal(wide: bool = False) -> bool:
    """A terminal under 160 columns, where listings keep their telling columns whole (not a pipe, not -o wide)."""
    return not wide and not to_pipe() and shutil.get_terminal_size().columns < 160


def print_table(
    cols: Sequence[str],
    rows: Sequence[Sequence[str]],
    right: Sequence[str] = (),
    squeeze: Sequence[str] = (),
    whole_cells: bool = False,
) -> None:
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
    room = (
        shutil.get_terminal_size().columns - sum(w for i, w in enumerate(whole) if i not in cut) - 2 * (len(cols) - 1)
    )
    share = {}
    for n, i in enumerate(sorted(cut, key=lambda i: whole[i])):  # the narrowest first; what it leaves goes on
        share[i] = max(8, min(whole[i], room // (len(cut) - n)))
        room -= share[i]
    for i, col in enumerate(cols):
        if squeeze:  # the others whole; the squeezed ones share what is left, cut with …
            width = share.get(i, whole[i])
            table.add_column(
                col, justify="right" if col in right else "left", no_wrap=True, overflow="ellipsis", width=width
            )
        else:
            table.add_column(col, justify="right" if col in right else "left")
    for row in rows:
        table.add_row(*row)
    # whole_cells (-o wide): every cell in full, the rows as long as they need (the terminal wraps them)
    Console(width=sum(whole) + 2 * (len(cols) - 1) if whole_cells else None).print(table)


def print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=1))


TaskArg = Annotated[
    str,
    typer.Argument(metavar="TASK", help=f"task: {', '.join(TASKS)}", show_default=False, autocompletion=complete_tasks),
]
DatasetOpt = Annotated[
    str,
    typer.Option(
        "--dataset",
        "-d",
        metavar="DATASET",
        help="dataset name (`pgg tasks` lists them) or, for summarize, a .jsonl/.csv file",
        show_default=False,
    ),
]
MethodOpt = Annotated[
    str,
    typer.Option(
        "--method",
        "-m",
        metavar="METHOD",
        help="method (`pgg tasks` lists them) [default: the task's first: pgg, or token-ppo for rlhf]",
        show_default=False,
    ),
]
SeedsOpt = Annotated[str, typer.Option("--seeds", "-s", metavar="SEEDS", help="seeds: N, A-B or a list (0-4, 0,2,5)")]
DSeedsOpt = Annotated[str, typer.Option("--dataset-seeds", metavar="SEEDS", help="dataset seeds (few-shot splits 0-4)")]
PresetOpt = Annotated[
    str,
    typer.Option(
        "--preset",
        "-p",
        metavar="PRESET",
        help="paper (the paper's models and schedule) or tiny (tiny models, minutes on a CPU)",
    ),
]
DataDirOpt = Annotated[
    str, typer.Option("--data-dir", metavar="DIR", help="folder of local data (prompt: the 16-shot layout)")
]
SetOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        metavar="KEY=VALUE...",
        help="override settings: key=value [key=value ...] (`pgg options TASK` lists them)",
        show_default=False,
    ),
]


NameOpt = Annotated[
    str, typer.Option("--name", metavar="NAME", help="a name for the runs, shown in listings and the app")
]
TagOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--tag",
        "-t",
        metavar="TAG",
        help="a tag (repeatable, or comma-separated; a leading # is dropped: #keep is keep)",
        show_default=False,
    ),
]

StatusOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--status",
        metavar="STATUS",
        autocompletion=complete_statuses,
        help=f"only runs in these states (repeatable, or comma-separated): {', '.join(STATUSES)}",
        show_default=False,
    ),
]
TaskOpt = Annotated[
    str | None,
    typer.Option("--task", metavar="TASK", help="only this task", show_default=False, autocompletion=complete_tasks),
]
DatasetFilter = Annotated[
    str | None, typer.Option("--dataset", "-d", metavar="DATASET", help="only this dataset", show_default=False)
]
MethodFilter = Annotated[
    str | None, typer.Option("--method", "-m", metavar="METHOD", help="only this method", show_default=False)
]
SweepOpt = Annotated[
    str | None, typer.Option("--sweep", metavar="ID", help="only this sweep (its group id)", show_default=False)
]
LimitOpt = Annotated[
    int | None, typer.Option("--limit", "-n", min=1, metavar="N", help="only the newest N", show_default=False)
]


def run_query(
    status: list[str] | None,
    task: str | None,
    dataset: str | None,
    method: str | None,
    sweep: str | None,
    limit: int | None,
    ids: Sequence[int] = (),
    tags: Sequence[str] = (),
) -> RunQuery:
    from pgg_tui.core.tags import parse_tags
    from pgg_tui.core.views import RunQuery

    statuses = tuple(s.strip() for item in status or [] for s in item.split(",") if s.strip())
    for s in statuses:
        if s not in STATUSES:
            raise ConfigError(f"unknown status {s!r}; choose among: {', '.join(STATUSES)}")
    if task is not None:
        get_task(task)
    return RunQuery(statuses, task, dataset, method, sweep, tuple(ids), limit, tuple(parse_tags(tags)))
