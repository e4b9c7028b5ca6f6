"""Rank a run's samples: one request at a time, its context and K candidates coloured by the reward model
of the time; the ranker's order goes to the store and the waiting run trains on it (preference=human).

Several people can rank at once from their own sessions: the next request is shown unclaimed and claimed
(engine.rankings.claim) on the ranker's first key, so nobody gets one another holds and a screen left open
holds nothing; when nothing is free the header says who holds what.

A prompt-task request also says what each prompt does (the task LM's verdict on the examples shown and the
automatic score), hidden until the ranker presses v: shown by default it would pull people's orders toward
the automatic one the run is grounding away from (docs/rankings.md).
"""

from __future__ import annotations

import os

import sqlalchemy as sa
from rich.console import Group
from rich.table import Table
from rich.markup import escape
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.geometry import Region
from textual.widgets import Static

from engine import rankings
from engine.errors import PggError
from engine.schema import Ranking
from pgg_tui.core.ranking import Auto, Candidate, Order, candidates, has_auto
from pgg_tui.render import legend, scale_bounds, token_text
from pgg_tui.screens.base import PggScreen, pgg
from pgg_tui.widgets.keybar import KeyBar

PLACES = ("1st", "2nd", "3rd") + tuple(f"{i}th" for i in range(4, 21))


class RankScreen(PggScreen):
    BINDINGS = [
        Binding("1", "pick(1)", "Next best", key_display="1-9"),
        *(Binding(str(i), f"pick({i})", show=False) for i in range(2, 10)),
        Binding("up", "go(-1)", "", show=False),
        Binding("down", "go(1)", "", show=False),
        Binding("shift+up,K", "move(-1)", "Up", key_display="⇧↑"),
        Binding("shift+down,J", "move(1)", "Down", key_display="⇧↓"),
        Binding("enter", "submit", "Submit"),
        Binding("s", "skip", "Skip"),
        Binding("u", "reset", "Reset"),
        Binding("v", "verdicts", "Verdicts", show=False),  # prompt-task requests only: the hint line names it
        Binding("escape", "leave", "Back"),
    ]

    def __init__(self, run_id: int | None = None):
        super().__init__()
        self.run_id = run_id  # rank this run's requests only; None: any run's
        self.request: Ranking | None = None
        self.cands: list[Candidate] = []
        self.order = Order(0)
        self.left = 0  # requests still open (the one shown included)
        self.done = 0  # submitted in this visit
        self.claimed = False  # the request shown is held by this ranker (claimed on the first key)
        self.held: dict[str, int] = {}  # who else holds requests (annotator -> count), when none is free
        self.show_auto = False  # v: what each prompt does, under it (off on every visit: docs/rankings.md)

    def compose(self) -> ComposeResult:
        yield Static(id="rank-header")
        with VerticalScroll(id="rank-context"):
            yield Static(id="rank-context-text")
        with VerticalScroll(id="rank-body"):
            yield Static(id="rank-candidates")
        yield Static(id="rank-legend")
        yield KeyBar()

    def on_mount(self) -> None:
        self.fetch()
        self.set_interval(2.0, self._look_again)

    @property
    def annotator(self) -> str:
        return pgg(self).annotator

    # -- the store, off the event loop
    @work(thread=True, exclusive=True, group="rank", name="claiming a ranking request", exit_on_error=False)
    def fetch(self) -> None:
        if self.claimed:  # renew the claim: the same request comes back
            row = rankings.claim(self.store, self.annotator, self.run_id)
        else:
            row = rankings.peek(self.store, self.annotator, self.run_id)
        left = rankings.open_count(self.store, self.run_id)
        held = rankings.holders(self.store, self.annotator, self.run_id) if row is None else {}
        self.app.call_from_thread(self._show_request, row, left, held)

    def _look_again(self) -> None:
        """Nothing shown: a run may be sampling its next lists, look again; a request shown: renew its
        claim if this ranker holds it, and the count of those left."""
        self.fetch()

    def _claim_now(self) -> None:
        """The ranker's first key on a request: claim it (in the background; the key acts at once)."""
        if self.request is not None and self.request.id is not None and not self.claimed:
            self.claimed = True
            self._claim(self.request.id)

    @work(thread=True, exclusive=True, group="rank", name="claiming a ranking request", exit_on_error=False)
    def _claim(self, request_id: int) -> None:
        row = rankings.claim(self.store, self.annotator, request_id=request_id)
        if row is None:  # someone took it between the look and the key
            self.app.call_from_thread(self._taken, request_id)

    def _taken(self, request_id: int) -> None:
        self.notify(f"request {request_id} was taken by another ranker; here is the next", severity="warning")
        self.claimed = False
        self.request = None
        self.fetch()

    @work(thread=True, exclusive=True, group="rank", name="saving a ranking", exit_on_error=False)
    def _save(self, request_id: int, order: list[int], skip: bool) -> None:
        try:
            if skip:
                rankings.skip(self.store, request_id, self.annotator)
            else:
                rankings.submit(self.store, request_id, order, self.annotator)
        except PggError as err:
            self.app.call_from_thread(self.notify, str(err), severity="error")
        row = rankings.peek(self.store, self.annotator, self.run_id)
        left = rankings.open_count(self.store, self.run_id)
        held = rankings.holders(self.store, self.annotator, self.run_id) if row is None else {}
        self.app.call_from_thread(self._show_request, row, left, held)
        self.app.call_from_thread(pgg(self).poll_now, True)

    # -- what is shown
    def _show_request(self, row: Ranking | None, left: int, held: dict[str, int] | None = None) -> None:
        self.held = held or {}
        if row is not None and self.request is not None and row.id == self.request.id:
            self.left = left
            self._render_header()
            return  # the same request again (a periodic look): keep the ranker's order
        self.request, self.left = row, left
        self.claimed = (
            row is not None and row.status == "claimed" and row.claimed_by == rankings.clean_annotator(self.annotator)
        )
        self.cands = candidates(row) if row is not None else []
        self.order = Order(len(self.cands))
        self.query_one("#rank-context-text", Static).update(Text(row.context) if row is not None else Text(""))
        self.query_one("#rank-context", VerticalScroll).scroll_home(animate=False)
        self.query_one("#rank-context", VerticalScroll).display = row is not None
        self._draw()

    def _render_header(self) -> None:
        who = f"as [b]{self.annotator}[/b]"
        scope = f"run {self.run_id}" if self.run_id is not None else "all runs"
        if self.request is None:
            text = f"[b]Rank[/b] · {scope} · {who} · nothing to rank" + (f" · {self.done} ranked" if self.done else "")
            if self.held:  # a second ranker: the requests are not gone, someone holds them
                text += " · held: " + ", ".join(f"{n} by {escape(who_)}" for who_, n in sorted(self.held.items()))
        else:
            text = (
                f"[b]Rank[/b] · run {self.request.run_id} · {self.request.task} · request {self.request.id} · "
                f"{who} · {self.left} left" + (f" · {self.done} ranked" if self.done else "")
            )
        self.query_one("#rank-header", Static).update(text)

    def _draw(self) -> None:
        self._render_header()
        body = self.query_one("#rank-candidates", Static)
        leg = self.query_one("#rank-legend", Static)
        if self.request is None:
            body.update(
                Text.from_markup(
                    (
                        "Nothing free to rank: "
                        + ", ".join(f"{n} request(s) held by {escape(w)}" for w, n in sorted(self.held.items()))
                        + f" (a claim lapses after {rankings.STALE_CLAIM / 60:.0f} minutes without a key).\n\n"
                        if self.held
                        else "Nothing waits to be ranked"
                        + (" for this run" if self.run_id is not None else "")
                        + ".\n\n"
                    )
                    + "A run asks when it is queued with [b]--set preference=human[/b] (or mixed) and reaches a reward "
                    "training; its requests appear here by themselves. Esc goes back."
                )
            )
            leg.update("")
            return
        rewards = [x for c in self.cands for x in c.rewards]
        lo, hi = scale_bounds(rewards)
        markers = bool(os.environ.get("NO_COLOR"))
        grid = Table.grid(padding=(0, 1), expand=True)
        grid.add_column(width=5, no_wrap=True)
        grid.add_column(width=3, no_wrap=True)
        grid.add_column(ratio=1)
        for pos, c in enumerate(self.order.order):
            cand, here = self.cands[c], pos == self.order.cursor
            place = Text(("▶" if here else " ") + f"{PLACES[pos]:>4}", "bold" if pos < self.order.placed else "dim")
            label = Text(f"[{cand.label}]", "bold reverse" if here else "bold")
            shown = token_text(cand.tokens, cand.rewards, lo, hi, markers=markers) if cand.rewards else Text(cand.text)
            grid.add_row(place, label, shown)
            if self.show_auto and cand.auto is not None:
                grid.add_row("", "", auto_lines(cand.auto, markers))
            grid.add_row("", "", "")
        hint = Text(
            "press the numbers best first, or move one with ⇧↑/⇧↓; ⏎ records the order shown"
            if not self.order.complete
            else "⏎ records this order",
            "dim italic",
        )
        if has_auto(self.cands):
            hint.append("\n")
            hint.append("v", "bold")
            hint.append(
                " hides the verdicts (✓ the task LM picks the gold label, ✗ another) and scores"
                if self.show_auto
                else " shows what each prompt does (the task LM's verdicts, the automatic score)",
                "dim italic",
            )
        body.update(Group(grid, hint))
        leg.update(legend(lo, hi, markers) if rewards else Text("no token rewards with these candidates", "dim"))
        self.call_after_refresh(self._follow_cursor, grid)

    def _follow_cursor(self, grid: Table) -> None:
        """Scroll the list so the candidate under the cursor is in view (with v, a list outgrows 24 rows)."""
        scroller = self.query_one("#rank-body", VerticalScroll)
        width = self.query_one("#rank-candidates", Static).content_region.width
        if width <= 0 or self.request is None:
            return
        lines = self.app.console.render_lines(grid, self.app.console.options.update_width(width), pad=False)
        starts = [i for i, line in enumerate(lines) if "".join(seg.text for seg in line)[:5].strip()]
        here = next((i for i in starts if "".join(seg.text for seg in lines[i]).startswith("▶")), None)
        if here is None:
            return
        end = next((i for i in starts if i > here), None) or scroller.virtual_size.height  # the last: the hint too
        scroller.scroll_to_region(Region(0, here, width, end - here), animate=False, immediate=True)

    # -- keys
    def action_verdicts(self) -> None:
        """Show or hide, under each prompt, the task LM's verdicts on the shown examples and the automatic score."""
        if self.request is None:
            return
        if not has_auto(self.cands):
            self.notify(
                "nothing to show: this prompt-task request was asked before runs stored the task LM's verdicts"
                if self.request.task == "prompt"
                else f"nothing to show: v shows the task LM's verdicts and automatic scores of prompt-task "
                f"requests; this one is {self.request.task}'s",
                severity="information",
            )
            return
        self.show_auto = not self.show_auto
        self._draw()

    def action_pick(self, label: int) -> None:
        if self.request is None:
            return
        self._claim_now()
        if not self.order.pick(label):
            self.app.bell()
            k = self.order.k
            self.notify(
                f"there is no candidate {label}: this list has {k} (1-{k})"
                if label > k
                else f"candidate {label} is placed already (u starts over, ⇧↑/⇧↓ move it)",
                severity="warning",
            )
        self._draw()

    def action_go(self, delta: int) -> None:
        self.order.go(delta)
        self._draw()

    def action_move(self, delta: int) -> None:
        self._claim_now()
        self.order.move(delta)
        self._draw()

    def action_reset(self) -> None:
        self.order.reset()
        self._draw()

    def action_submit(self) -> None:
        if self.request is None or self.request.id is None:
            return
        self.done += 1
        self._save(self.request.id, list(self.order.order), False)

    def action_skip(self) -> None:
        if self.request is None or self.request.id is None:
            return
        self._save(self.request.id, [], True)

    def action_leave(self) -> None:
        # on_unmount puts a held request back, at once: a thread worker started here was cancelled with the
        # screen it belonged to, now and then before it ran, and the claim then held until it went stale
        self.app.pop_screen()

    def on_unmount(self) -> None:
        """Quitting the app with a request on screen puts it back at once (a closed terminal cannot: its
        claim lapses after engine.rankings.STALE_CLAIM)."""
        if self.request is not None and self.request.id is not None and self.claimed:
            try:
                rankings.release(self.store, self.request.id, self.annotator)
            except (PggError, sa.exc.SQLAlchemyError):  # the store is gone or busy: the claim lapses by itself
                self.log.warning("could not put the request back; its claim lapses by itself")


def auto_lines(auto: Auto, markers: bool = False) -> Group:
    """Under a prompt: its automatic score, then per shown example a ✓ or ✗ (green or red; without colour,
    NO_COLOR's `markers`, plain bold: the mark says it), the label word the task LM picks (and the gold one
    where it is wrong) and the example, cut to one line."""
    lines = [Text(auto.summary(), "italic")]
    said = [v.said if v.right else f"{v.said} (gold {v.gold})" for v in auto.verdicts]
    pad = max((len(x) for x in said), default=0)
    for v, word in zip(auto.verdicts, said):
        line = Text(no_wrap=True, overflow="ellipsis")
        line.append("✓ " if v.right else "✗ ", "bold" if markers else "bold green" if v.right else "bold red")
        line.append(f"{word:<{pad}}", "bold")
        line.append("  " + " ".join(v.text.split()), "dim")
        lines.append(line)
    return Group(*lines)
