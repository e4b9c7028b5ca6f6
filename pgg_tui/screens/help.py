"""`?`: every key of the screen beneath, the ones the footer leaves out included, and the keys that work
everywhere. A modal that scrolls, so it reads at 80x24; Esc (or `?` again) closes it."""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Static

from pgg_tui.widgets.keybar import KEY_NAMES, KeyBar


def key_names(app: App[object], binding: Binding) -> str:
    """All the keys of a binding (`← / h`), or its own display (`1-9`) where it has one."""
    if binding.key_display:
        return binding.key_display
    keys = [k.strip() for k in binding.key.split(",")]
    return " / ".join(KEY_NAMES.get(k) or app.get_key_display(Binding(k, binding.action)) for k in keys)


def key_rows(app: App[object], bindings: list[BindingType]) -> list[tuple[str, str]]:
    """(keys, what they do) for every binding with a description, hidden or shown, in the screen's order."""
    rows: list[tuple[str, str]] = []
    for b in bindings:
        if isinstance(b, Binding) and b.description and not b.system:
            row = (key_names(app, b), b.description)
            if row not in rows:
                rows.append(row)
    return rows


def app_rows(app: App[object]) -> list[tuple[str, str]]:
    """The app's own keys (this app's first, then Textual's), and the command palette."""
    bindings: list[BindingType] = [b for cls in type(app).__mro__ for b in cls.__dict__.get("BINDINGS", [])]
    palette = Binding(app.COMMAND_PALETTE_BINDING, "command_palette", "Command palette")
    rows, seen = [], set()
    for keys, what in key_rows(app, [*bindings, palette]):
        if keys not in seen:  # a key once, with this app's meaning
            rows.append((keys, what))
            seen.add(keys)
    return rows


def keys_table(rows: list[tuple[str, str]], key_width: int, columns: int) -> Table:
    """The rows in `columns` side by side, read down each column first, keys bold in a column of their own."""
    table = Table.grid(padding=(0, 2), expand=True)
    for _ in range(columns):
        table.add_column(style="bold", no_wrap=True, min_width=key_width)
        table.add_column(ratio=1)
    per = -(-len(rows) // columns)
    for i in range(per):
        cells: list[str] = []
        for c in range(columns):
            cells += rows[c * per + i] if c * per + i < len(rows) else ("", "")
        table.add_row(*cells)
    return table


def screen_name(screen: Screen[object]) -> str:
    return type(screen).__name__.removesuffix("Screen") or "this screen"


class HelpScreen(ModalScreen[None]):
    AUTO_FOCUS = "#help"  # the scrolling list: ↑/↓ and PgUp/PgDn read a long one at 80x24
    BINDINGS = [Binding("escape,question_mark", "dismiss", "Close")]

    def __init__(self, screen: Screen[object]) -> None:
        super().__init__()
        self.about = screen

    def compose(self) -> ComposeResult:
        own = key_rows(self.app, list(self.about.BINDINGS))
        # a form types q and ? into its fields: the app's keys are not its keys (the footer says so too)
        everywhere = [] if isinstance(self.about, ModalScreen) else app_rows(self.app)
        width = max((len(k) for k, _ in own + everywhere), default=1)
        columns = 2 if self.app.size.width >= 60 and len(own) > 6 else 1  # a long list fits 80x24 in two
        title = Text.assemble((f"Keys · {screen_name(self.about)}", "bold"), ("   esc or ? closes, ↑/↓ scroll", "dim"))
        parts: list[RenderableType] = [title]
        parts.append(keys_table(own, width, columns) if own else Text("no keys of its own", "dim"))
        if everywhere:
            parts += [Text(), Text("Everywhere", "bold"), keys_table(everywhere, width, columns)]
        yield KeyBar()
        with VerticalScroll(id="help"):
            yield Static(Group(*parts), id="help-keys")
