"""`pgg`: queue, run, watch and compare pgg experiments from scripts.

Each command is a thin skin over pgg_tui.core, the same functions the app calls; one module per command group
(queue, runs, control, results, rankings, worker, info) registers on the one typer app of `_common`, so the
commands stay flat (`pgg runs`). Errors meant for people (engine.errors.PggError, usage errors) become one line
on stderr and a non-zero exit. Importing this package loads neither torch, textual nor the store's ORM.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

import typer

try:  # typer >= 0.25 carries its own copy of click
    from typer._click.exceptions import UsageError
except ImportError:  # pragma: no cover
    from click.exceptions import UsageError  # type: ignore[assignment, no-redef, unused-ignore]

# importing a group registers its commands; `pgg --help` lists them in this order
from pgg_tui.cli import queue, runs, control, results, rankings, worker, info  # noqa: F401
from pgg_tui.cli._common import COMPLETE_VAR, app, init_completion, quiet_pipe

__all__ = ["app", "main"]


def main(argv: Sequence[str] | None = None) -> None:
    """The console script: click's usage errors become one line, like every other error."""
    if os.environ.get(COMPLETE_VAR):  # the completion script asks what may follow the words typed
        init_completion()
    try:
        code = app(args=argv, prog_name="pgg", standalone_mode=False)
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
        quiet_pipe()
    sys.exit(code if isinstance(code, int) else 0)


def _usage_line(err: UsageError) -> str:
    text = err.format_message().strip().splitlines()
    return text[0][0].lower() + text[0][1:] if text and text[0] else "bad usage"
