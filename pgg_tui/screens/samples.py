"""The samples browser: prompts or summaries with every token on the colour of its learned reward.

The table lists the run's samples; the panel below shows the highlighted one token by token. Left and
right move a cursor across its tokens and show that token's exact reward next to the sequence's true
score and the reward model's aggregated score.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import DataTable, Input, Static

from pgg_tui.core.views import SampleView, fetch_samples
from pgg_tui.render import legend, scale_bounds, token_cell, token_text
from pgg_tui.widgets.cursor import move_to_key
from pgg_tui.screens.base import PggScreen
from pgg_tui.widgets.keybar import KeyBar

KINDS = ("all", "reward", "policy", "greedy", "eval", "final")


@dataclass
class View:
    kind: str = "all"
    step_filter: str = ""
    sort_true: bool = False
    follow: str | None = None  # a context followed across steps


class SampleTable(DataTable[object]):
    """The samples list. Home and End go to the first and last sample (the screen's keys): DataTable's own
    scrolled the row sideways, which is not what anyone browsing a list means."""

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("scroll_home", "scroll_end"):
            return False  # the key goes on to the screen
        return super().check_action(action, parameters)


class SamplesScreen(PggScreen):
    BINDINGS = [
        Binding("escape", "back", "Back"),
        Binding("left,h", "token(-1)", "◀ token"),
        Binding("right,l", "token(1)", "token ▶"),
        Binding("t", "sort", "Sort by true score"),
        Binding("k", "kind", "Kind"),
        Binding("slash", "steps", "Step/phase"),
        Binding("f", "follow", "Follow context"),
        Binding("home", "first", "First"),
        Binding("end", "last", "Last"),
    ]

    def __init__(self, run_id: int):
        super().__init__()
        self.run_id = run_id
        self.samples: list[SampleView] = []
        self.shown: list[SampleView] = []
        self.view = View()
        self.cursor = 0
        self.lo, self.hi = 0.0, 1.0
        self.markers = bool(os.environ.get("NO_COLOR"))

    def compose(self) -> ComposeResult:
        yield Static(id="samples-header")
        yield Input(
            placeholder="steps (N, A-B, >=N) or a phase (reward 2, policy); Enter applies, Esc clears", id="steps"
        )
        with Vertical(id="samples-body"):
            # the tokens keep their own foreground on the cursor row: the cursor's would be grey on grey (NO_COLOR)
            yield SampleTable(
                id="samples", cursor_type="row", zebra_stripes=True, cursor_foreground_priority="renderable"
            )
            yield Static(id="token-view")
            yield Static(id="legend")
        yield KeyBar()

    def on_mount(self) -> None:
        box = self.query_one("#steps", Input)
        box.display, box.disabled = False, True
        table = self.query_one("#samples", DataTable)
        table.focus()
        for c in ("step", "phase", "kind", "true", "model", "text"):  # step: r12 = a reward training's 12th
            table.add_column(c, key=c)
        self.load()
        self.set_interval(2.0, self.load)

    @work(thread=True, exclusive=True, group="samples", name="reading samples", exit_on_error=False)
    def load(self) -> None:
        after = self.samples[-1].id if self.samples else 0
        new = fetch_samples(self.store, self.run_id, after_id=after)
        if new or not self.samples:
            self.app.call_from_thread(self._add, new)

    def _add(self, new: list[SampleView]) -> None:
        self.samples += new
        rewards = [r for s in self.samples for r in s.rewards]
        self.lo, self.hi = scale_bounds(rewards)
        self._refilter()

    def _keep(self, s: SampleView) -> bool:
        v = self.view
        if v.kind != "all" and s.kind != v.kind:
            return False
        if v.follow is not None and s.context != v.follow:
            return False
        f = v.step_filter.replace(" ", "")
        if f:
            try:
                if f.startswith(">="):
                    return s.step >= int(f[2:])
                lo, sep, hi = f.partition("-")
                return int(lo) <= s.step <= (int(hi) if sep else int(lo))
            except ValueError:  # not steps: a phase, e.g. "reward 2" or "policy"
                return v.step_filter.strip().lower() in s.phase.lower()
        return True

    def _refilter(self) -> None:
        shown = [s for s in self.samples if self._keep(s)]
        if self.view.sort_true:
            shown.sort(key=lambda s: -(s.true_score if s.true_score is not None else float("-inf")))
        table = self.query_one("#samples", DataTable)
        if [s.id for s in shown] != [s.id for s in self.shown]:
            key = self._current_key()
            table.clear()
            for s in shown:
                table.add_row(
                    step_label(s),
                    s.phase,
                    s.kind,
                    _fmt(s.true_score),
                    _fmt(s.model_score),
                    token_cell(s.tokens, s.rewards, self.lo, self.hi, 120, self.markers, segment_ends(s))
                    if s.rewards
                    else s.text.replace("\n", " ")[:120],
                    key=str(s.id),
                )
            self.shown = shown
            if key is not None:
                move_to_key(table, key)
        self._header()
        self._show_current()

    def _header(self) -> None:
        v = self.view
        parts = [f"run {self.run_id} · {len(self.shown)}/{len(self.samples)} samples", f"kind {v.kind}"]
        if v.step_filter:
            parts.append(f"filter {v.step_filter}")
        if v.sort_true:
            parts.append("sorted by true score")
        if v.follow is not None:
            parts.append(f"following: {v.follow[:40]}")
        self.query_one("#samples-header", Static).update(" · ".join(parts))
        self.query_one("#legend", Static).update(legend(self.lo, self.hi, self.markers))

    def _current_key(self) -> str | None:
        table = self.query_one("#samples", DataTable)
        if table.row_count == 0:
            return None
        return str(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value)

    def current(self) -> SampleView | None:
        key = self._current_key()
        return next((s for s in self.shown if str(s.id) == key), None)

    def _show_current(self) -> None:
        s = self.current()
        view = self.query_one("#token-view", Static)
        if s is None:
            view.update("no samples yet" if not self.samples else "no sample matches the filter")
            return
        tokens, rewards = s.tokens, s.rewards
        self.cursor = min(self.cursor, max(0, len(tokens) - 1))
        text = Text()
        if s.context:
            text.append("context  ", "dim")
            text.append(s.context[:300].replace("\n", " ") + "\n")
        ends = segment_ends(s)
        text.append_text(token_text(tokens, rewards, self.lo, self.hi, self.cursor, self.markers, ends))
        text.append("\n")
        if tokens:
            tok = tokens[self.cursor]
            r = f"{rewards[self.cursor]:.4f}" if self.cursor < len(rewards) else "–"
            text.append(f"token {self.cursor + 1}/{len(tokens)} {tok!r}: reward {r}", "bold")
        text.append(f"   true score {_fmt(s.true_score)}   model score {_fmt(s.model_score)}")
        extra = s.extra
        if extra.get("reference"):
            text.append("\nreference  ", "dim")
            text.append(str(extra["reference"])[:300])
        if ends:
            text.append(f"\n{len(ends)} segment(s), each │ ends one: its tokens share the segment's reward", "dim")
        other = {k: v for k, v in extra.items() if k not in ("reference", "segment_ends")}
        if other:
            text.append("\n" + " · ".join(f"{k} {v}" for k, v in other.items()), "dim")
        view.update(text)

    @on(DataTable.RowHighlighted)
    def _highlighted(self) -> None:
        self.cursor = 0
        self._show_current()

    def action_token(self, delta: int) -> None:
        s = self.current()
        if s is None:
            return
        n = len(s.tokens)
        self.cursor = max(0, min(n - 1, self.cursor + delta))
        self._show_current()

    def action_first(self) -> None:
        self.query_one("#samples", DataTable).move_cursor(row=0)

    def action_last(self) -> None:
        table = self.query_one("#samples", DataTable)
        table.move_cursor(row=table.row_count - 1)

    def action_sort(self) -> None:
        self.view.sort_true = not self.view.sort_true
        self._refilter()
        self.query_one("#samples", DataTable).move_cursor(row=0)  # the best first, in view

    def action_kind(self) -> None:
        self.view.kind = KINDS[(KINDS.index(self.view.kind) + 1) % len(KINDS)]
        self._refilter()

    def action_follow(self) -> None:
        s = self.current()
        self.view.follow = None if self.view.follow is not None or s is None else s.context
        self._refilter()

    def action_steps(self) -> None:
        box = self.query_one("#steps", Input)
        box.display, box.disabled = True, False
        box.focus()

    @on(Input.Submitted, "#steps")
    def _steps(self, event: Input.Submitted) -> None:
        text = event.value.strip()
        if (
            text
            and not re.fullmatch(r"(>=)?\d+|\d+-\d+", text.replace(" ", ""))
            and not any(text.lower() in smp.phase.lower() for smp in self.samples)
        ):  # neither steps nor a phase this run has: said, not shown as an empty list
            phases = ", ".join(dict.fromkeys(smp.phase for smp in self.samples)) or "none yet"
            what = f"{text!r} is no step range (N, A-B, >=N) and no phase of this run ({phases})"
            self.notify(what, severity="warning")
            return
        self.view.step_filter = text
        self.query_one("#samples").focus()
        self._refilter()

    def action_back(self) -> None:
        box = self.query_one("#steps", Input)
        if box.display:
            box.value, box.display, box.disabled = "", False, True
            self.view.step_filter = ""
            self.query_one("#samples").focus()
            self._refilter()
            return
        self.app.pop_screen()


def step_label(s: SampleView) -> str:
    """A reward training counts its own steps: 'r12' is its 12th, '12' the policy's 12th."""
    return f"r{s.step}" if s.phase.startswith("reward") else str(s.step)


def segment_ends(s: SampleView) -> set[int]:
    """Token indices that end a segment (rlhf samples record them in extra["segment_ends"])."""
    ends = s.extra.get("segment_ends")
    return {int(i) for i in ends if isinstance(i, int)} if isinstance(ends, list) else set()


def _fmt(x: float | None) -> str:
    return "" if x is None else f"{x:.3f}"
