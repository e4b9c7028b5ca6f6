"""A footer that never hides an action: the screen's keys, wrapped onto a second line when narrow."""

from __future__ import annotations

from rich.text import Text
from textual.binding import Binding
from textual.screen import ModalScreen
from textual.widgets import Static

KEY_NAMES = {
    "enter": "⏎",
    "escape": "esc",
    "slash": "/",
    "space": "␣",
    "left": "←",
    "right": "→",
    "question_mark": "?",
    "ctrl+s": "^s",
    "ctrl+p": "^p",
    "plus": "+",
    "minus": "-",
    "up": "↑",
    "down": "↓",
    "shift+up": "⇧↑",
    "shift+down": "⇧↓",
}


def key_label(key: str) -> str:
    first = key.split(",")[0]
    return KEY_NAMES.get(first, first)


def layout_keys(bindings: list[tuple[str, str]], width: int) -> Text:
    """`key label` pairs separated by two spaces, wrapped at `width`."""
    text = Text()
    used = 0
    for key, label in bindings:
        piece = len(key) + 1 + len(label)
        if used and used + 2 + piece > width:
            text.append("\n")
            used = 0
        elif used:
            text.append("  ")
            used += 2
        text.append(key, "bold reverse")
        text.append(" " + label)
        used += piece
    return text


class KeyBar(Static):
    DEFAULT_CSS = """
    KeyBar {
        dock: bottom;
        height: auto;
        max-height: 4;  /* every key, q quit included, at 80 columns */
        background: $panel;
        padding: 0 1;
    }
    """

    def on_mount(self) -> None:
        self.update_keys()

    def on_resize(self) -> None:
        self.update_keys()

    def update_keys(self) -> None:
        pairs: list[tuple[str, str]] = []
        app_keys = [Binding("ctrl+p", "command_palette", "palette"), Binding("q", "quit", "quit")]
        # in a modal (a form) q types a letter: only the modal's own keys
        for b in list(self.screen.BINDINGS) + ([] if isinstance(self.screen, ModalScreen) else app_keys):
            if isinstance(b, Binding) and b.show and b.description:
                pairs.append((b.key_display or key_label(b.key), b.description))
        self.update(layout_keys(pairs, max(20, self.size.width - 2 or self.app.size.width - 2)))
