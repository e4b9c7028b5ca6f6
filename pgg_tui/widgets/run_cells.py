"""How a run looks in the runs table: its columns, which a narrow terminal keeps, and its cells' widths and text
(no rendering for the widths: they are read for every row on every poll)."""

from __future__ import annotations

from rich.text import Text

from pgg_tui.core.present import duration, run_label, short_metric
from pgg_tui.core.views import RunRow
from pgg_tui.render import progress_cell

COLUMNS = (
    "",
    "id",
    "status",
    "task",
    "dataset",
    "method",
    "seed",
    "dseed",
    "phase",
    "progress",
    "result",
    "τ",
    "elapsed",
    "eta",
    "name",
    "sweep",
)
# Which columns a narrow terminal keeps: the run, its state, what it reached, how far and how long to go.
PRIORITY = (
    "id",
    "status",
    "method",
    "result",
    "progress",
    "",
    "seed",
    "eta",
    "dataset",
    "τ",
    "name",
    "phase",
    "task",
    "elapsed",
    "dseed",
    "sweep",
)


def cell_widths(r: RunRow) -> dict[str, int]:
    """The width of a run's cell in each column, from the row alone (no rendering: it runs every poll)."""
    running = r.status == "running"
    return {
        "": 1,
        "id": len(str(r.id)),
        "status": len(r.shown_status),
        "task": len(r.task),
        "dataset": len(r.dataset),
        "method": len(r.variant),
        "seed": len(str(r.seed)),
        "dseed": len(str(r.dataset_seed)),
        "phase": len(r.phase) if running else 0,
        "progress": len(running_progress(r).plain)
        if running or r.status == "queued"
        else len(f"{r.step}/{r.total}")
        if r.total
        else 0,
        "result": len(short_metric(r.score_name)) + 1 + len(f"{r.score:.2f}") if r.score is not None else 0,
        "τ": 5 if r.tau is not None else 0,
        "elapsed": len(duration(r.elapsed)),
        "eta": len(duration(r.eta)),
        "name": len(run_label(r.name, r.tags)),
        "sweep": len(r.group_id),
    }


def running_progress(r: RunRow) -> Text:
    """A reward training's own steps while it runs (most of a pgg run's time), else the policy's."""
    if r.status == "queued":
        return Text(f"prio {r.priority:+d}" if r.priority else "", "dim")
    if r.waiting_for:
        return Text(f"rank {r.waiting_for} (R)", "bold yellow")
    if r.phase.startswith("reward") and r.phase_total:
        return progress_cell(r.phase_step, r.phase_total, label="R ")
    return progress_cell(r.step, r.total)


def result_cell(r: RunRow) -> Text:
    """'acc 92.40' when done; a live score, dimmed, while it trains: one cell never mixes two metrics unnamed."""
    if r.score is None:
        return Text("")
    return Text(f"{short_metric(r.score_name)} {r.score:.2f}", "" if r.status == "done" else "dim")
