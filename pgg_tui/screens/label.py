"""A run's name, tags and notes, edited in a modal (the same change as `pgg annotate`)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Static, TextArea

from engine.errors import ConfigError

from pgg_tui.core.tags import parse_tags
from pgg_tui.core.views import RunView
from pgg_tui.screens.base import pgg
from pgg_tui.widgets.keybar import KeyBar


class LabelScreen(ModalScreen[None]):
    AUTO_FOCUS = "#label-name"
    BINDINGS = [Binding("escape", "close", "Close", priority=True), Binding("ctrl+s", "save", "Save", priority=True)]

    def __init__(self, run: RunView):
        super().__init__()
        self.run = run

    def compose(self) -> ComposeResult:
        yield KeyBar()
        with Vertical(id="label-form"):
            yield Static(f"[b]Run {self.run.id}[/b] · {self.run.dataset} / {self.run.variant} · seed {self.run.seed}")
            with Horizontal(classes="row"):
                yield Label("name", classes="label")
                yield Input(self.run.name, id="label-name", placeholder="a few words", compact=True)
            with Horizontal(classes="row"):
                yield Label("tags", classes="label")
                yield Input(
                    " ".join(self.run.tags), id="label-tags", placeholder="space- or comma-separated", compact=True
                )
            yield Label("notes", classes="label")
            yield TextArea(self.run.notes, id="label-notes", compact=True)

    def action_save(self) -> None:
        name = self.query_one("#label-name", Input).value
        try:  # `#keep, rl` is keep and rl, as `pgg annotate --tag` reads it
            tags = parse_tags([self.query_one("#label-tags", Input).value])
        except ConfigError as err:
            self.notify(str(err), severity="error")
            return
        notes = self.query_one("#label-notes", TextArea).text
        store, rid, old = pgg(self).store, self.run.id, list(self.run.tags)

        def save() -> list[str]:
            store.annotate(rid, name=name, add_tags=tags, remove_tags=[t for t in old if t not in tags], notes=notes)
            return [f"run {rid}: labels saved"]

        pgg(self).act(save)
        self.dismiss(None)

    def action_close(self) -> None:
        self.dismiss(None)
