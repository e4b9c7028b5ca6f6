"""`pgg` in process, as a careless user meets it."""

from typer.testing import CliRunner

from pgg_tui.cli import app

runner = CliRunner()


def pgg(*args):
    """The CLI's result for one command line (exit_code, output, stderr); nothing leaves the process."""
    return runner.invoke(app, list(args))


def one_clear_line(result):
    """A refused command: non-zero exit, no traceback, and exactly one `pgg: error:` line on stderr (returned)."""
    assert result.exit_code != 0, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("pgg: error:"), result.stderr
    return lines[0]
