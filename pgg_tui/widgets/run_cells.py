"""How a run looks in the runs table: its columns, which a narrow terminal keeps, and its cells' widths and text
(no rendering for the widths: they are read for every row on every poll)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rich.text import Text

from pgg_tui.core.present import (
    fmt_metric,
    run_label,
    short_metric,
    usage_of,
    usage_text,
    variant_label,
)
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
    "use",
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
    "eta",
    "τ",
    "seed",
    "dataset",
    "name",
    "phase",
    "task",
    "elapsed",
    "use",
    "dseed",
    "sweep",
)
# Widths that do not follow the cells: a column keeps its width while its runs train (a τ arriving, a
# status turning `cancelling…`, a result appearing), so no column comes and goes with the polls.
FIXED = {"": 1, "status": 11, "phase": 9, "result": 10, "τ": 5, "elapsed": 7, "eta": 6, "use": 10}
CAPS = {"task": 9, "dataset": 14, "name": 24, "sweep": 8}  # longer text is cut with …
METHOD_MAX = 48  # and at most this much: the preview pane shows it whole
METHOD_MIN = 11  # the method takes the room the other columns leave, at least this much ("seq-reinfo…")


def bar_width(width: int) -> int:
    """The progress bar's cells: none at 80 columns, where the numbers matter more than the bar."""
    return 8 if width >= 120 else 5 if width >= 100 else 0


def plan_columns(rows: Sequence[RunRow], width: int, methods: Sequence[str]) -> dict[str, int]:
    """Column -> width, in COLUMNS order: as many columns as `width` holds, the most telling first. Widths
    come from what does not change while runs train (ids, seeds, step totals, names), never from live
    cells. `methods`: the method cells as shown (shared settings left out)."""
    bar = bar_width(width)
    totals = [max(r.total, r.phase_total) for r in rows]
    need = {
        "id": max((len(str(r.id)) for r in rows), default=2),
        "seed": max((len(str(r.seed)) for r in rows), default=1),
        "dseed": max((len(str(r.dataset_seed)) for r in rows), default=1),
        "task": min(CAPS["task"], max((len(r.task) for r in rows), default=0)),
        "dataset": min(CAPS["dataset"], max((len(r.dataset) for r in rows), default=0)),
        "name": min(CAPS["name"], max((len(run_label(r.name, r.tags)) for r in rows), default=0)),
        "sweep": CAPS["sweep"],
        "progress": (bar + 1 if bar else 0) + max((2 * len(str(t)) + 3 for t in totals), default=7),
        **FIXED,
    }
    if any(usage_of(r.resources).get("gpu_gb") is not None for r in rows):
        need["use"] = 17  # `100% 12.3G g40.1G`
    widths = {c: max(len(c), need.get(c, 0)) for c in COLUMNS}
    widths["method"] = max(len("method"), max((len(m) for m in methods), default=0))
    return choose(widths, PRIORITY, COLUMNS, "dataset", width)


GROUP_PRIORITY = ("dataset", "method", "result (mean ± std (n))", "τ", "done", "also", "preset", "task")


def plan_group_columns(rows: Sequence[Mapping[str, str]], width: int) -> dict[str, int]:
    """The grouped table's columns: its result before the method's whole text, the method before the rest."""
    order = list(rows[0]) if rows else list(GROUP_PRIORITY)
    widths = {c: max([len(c)] + [len(r[c]) for r in rows]) for c in order}
    return choose(widths, GROUP_PRIORITY, order, "done", width)


def choose(
    widths: Mapping[str, int], priority: Sequence[str], order: Sequence[str], grow_at: str, width: int
) -> dict[str, int]:
    """Column -> width in `order`: the method at its least, then the columns by priority while they fit; at
    `grow_at` the method widens (to METHOD_MAX) before the columns from there on get a place."""
    least = min(widths["method"], max(len("method"), METHOD_MIN))
    room = width - 2 - (least + 2)  # the scrollbar; the method's least, DataTable's padding
    chosen = {"method": least}
    for col in priority:
        if col == "method":
            continue
        if col == grow_at:  # the columns before this one beat a wider method; the method beats those after
            grow = min(max(0, min(widths["method"], METHOD_MAX) - least), room)
            chosen["method"] += grow
            room -= grow
        if widths[col] + 2 <= room:  # DataTable pads a cell by one each side
            chosen[col] = widths[col]
            room -= widths[col] + 2
    return {c: chosen[c] for c in order if c in chosen}


def fit(text: str | Text, width: int) -> Text:
    """A cell cut to its column with …: DataTable would cut it without saying so."""
    t = text.copy() if isinstance(text, Text) else Text(text)
    if t.cell_len > width:
        t.truncate(max(1, width), overflow="ellipsis")
    return t


def method_cell(r: RunRow, shared: Mapping[str, Any]) -> str:
    """The method and the settings this run changed, less those every shown run shares (said below)."""
    return variant_label(r.method, r.overrides, shared) if r.method else r.variant


def running_progress(r: RunRow, bar: int = 8) -> Text:
    """A reward training's own steps while it runs (most of a pgg run's time), else the policy's."""
    if r.status == "queued":  # what it waits for (`--after`) and its place in the queue
        after = f"after {','.join(map(str, r.after))}" if r.after else ""
        return Text(" · ".join(x for x in (after, f"prio {r.priority:+d}" if r.priority else "") if x), "dim")
    if r.waiting_for:
        return Text(f"rank {r.waiting_for} (R)", "bold yellow")
    if r.phase.startswith("reward") and r.phase_total:
        return progress_cell(r.phase_step, r.phase_total, label="R ", width=bar)
    return progress_cell(r.step, r.total, width=bar)


def result_cell(r: RunRow) -> Text:
    """'acc 92.40' when done; a live score, dimmed, while it trains: one cell never mixes two metrics unnamed."""
    if r.score is None:
        return Text("")
    return Text(f"{short_metric(r.score_name)} {r.score:.2f}", "" if r.status == "done" else "dim")


def preview(r: RunRow, shared: Mapping[str, Any]) -> Text:
    """The selected run in full, for the pane under the table: its whole method and settings (the cell
    cuts them), where it stands, what it reached and what it uses."""
    t = Text()
    t.append(f"run {r.id} ", "bold")
    t.append(f"{r.shown_status} · {r.task} / {r.dataset} / {r.variant} · seed {r.seed} · dataset seed {r.dataset_seed}")
    if r.name or r.tags:
        t.append(f" · {run_label(r.name, r.tags)}", "italic")
    where = []
    if r.status in ("running", "queued") and (r.phase or r.total):
        where.append(f"{r.phase} {r.step}/{r.total}".strip())
    if r.score is not None:
        where.append(f"{r.score_name or 'score'} {fmt_metric(r.score_name, r.score)}")
    if r.tau is not None:
        where.append(f"τ {r.tau:+.2f}")
    if r.resources:
        where.append(usage_text(r.resources))
    if r.parent_id:
        where.append(f"retries run {r.parent_id}")
    where.append(f"sweep {r.group_id}")
    t.append("\n" + " · ".join(where), "dim")
    if r.error:
        t.append(f"\n{r.error}", "red")
    if shared:
        t.append("\nevery run shown: " + " ".join(f"{k}={v}" for k, v in sorted(shared.items())), "dim")
    return t
