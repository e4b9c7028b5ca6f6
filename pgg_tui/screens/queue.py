"""The queue form: the same validation as `pgg queue`, run as you type, with the number of runs it makes."""

from __future__ import annotations

import shlex
from typing import Any

from rich.markup import escape
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import ModalScreen
from textual.widget import Widget
from textual.widgets import Button, Checkbox, Input, Label, Select, Static

from engine.config import parse_overrides
from engine.errors import ConfigError, PggError
from engine.registry import BUILTIN_DATASETS, TASKS, RunSpec, plan_errors, plan_runs
from pgg_tui.core.launch import ensure_worker
from pgg_tui.core.ops import queue_runs
from pgg_tui.screens.base import pgg
from pgg_tui.widgets.keybar import KeyBar

AGGS = ("", "avg", "sum", "min", "max")


def row(label: str, widget: Widget) -> Horizontal:
    """One labelled line of the form."""
    return Horizontal(Label(label, classes="label"), widget, classes="row")


def request_errors(v: dict[str, Any]) -> list[str]:
    """Every problem of a request at once. `plan_errors` checks the overrides only once the rest is fine, so a
    bad seed range hid a bad setting until it was fixed; here they are also checked on the request made fine
    (the task's built-in dataset, seeds 0, its default method and preset where those are wrong)."""
    errors = plan_errors(**v)
    if not errors or not v["overrides"]:
        return errors
    spec = TASKS[v["task"]]
    fine = dict(
        v,
        dataset=default_dataset(spec.name),
        data_dir="",
        seeds="0",
        dataset_seeds="0",
        method=v["method"] if v["method"] in spec.methods else spec.default_method,
        preset=v["preset"] if v["preset"] in spec.presets else "tiny",
    )
    return errors + [e for e in plan_errors(**fine) if e not in errors]


def form_title(prefill: dict[str, str], clone_of: int | None = None) -> str:
    """What the form is for: new runs, or a run's clone (`k`), named by its id and what it clones."""
    if not prefill:
        return "[b]Queue runs[/b]"
    p = prefill
    name = f" “{escape(p['name'])}”" if p.get("name") else ""
    rid = f" {clone_of}" if clone_of is not None else ""
    return f"[b]Clone run{rid}{name}[/b]: {p['task']} / {escape(p['dataset'])} / {p['method']}, seed {p['seeds']}"


def default_dataset(task: str) -> str:
    """The built-in dataset of a task: it runs offline."""
    return next((d for d in TASKS[task].datasets if d in BUILTIN_DATASETS), next(iter(TASKS[task].datasets)))


class QueueScreen(ModalScreen[None]):
    AUTO_FOCUS = "#task"  # the first field, not the scrolling container
    BINDINGS = [Binding("escape", "close", "Close", priority=True), Binding("ctrl+s", "submit", "Queue", priority=True)]

    def __init__(self, prefill: dict[str, str] | None = None, clone_of: int | None = None):
        super().__init__()
        self.prefill = prefill or {}
        self.clone_of = clone_of
        self.form_task = self.prefill.get("task", "prompt")
        self.specs: list[RunSpec] = []

    def compose(self) -> ComposeResult:
        p = self.prefill
        task = p.get("task", "prompt")
        spec = TASKS[task]
        yield KeyBar()
        with VerticalScroll(id="form"):
            yield Static(
                f"{form_title(p, self.clone_of)}  (validated as you type; Ctrl+S queues, Esc closes)", id="form-title"
            )
            yield row("task", Select([(t, t) for t in TASKS], value=task, allow_blank=False, id="task", compact=True))
            yield row(
                "dataset",
                Input(
                    p.get("dataset", default_dataset(task)),
                    id="dataset",
                    placeholder=", ".join(spec.datasets),
                    compact=True,
                ),
            )
            yield row(
                "method",
                Select(
                    [(m, m) for m in spec.methods],
                    value=p.get("method", "pgg"),
                    allow_blank=False,
                    id="method",
                    compact=True,
                ),
            )
            yield row(
                "aggregation",
                Select([(a or "(default)", a) for a in AGGS], value="", allow_blank=False, id="agg", compact=True),
            )
            yield row(
                "preset",
                Select(
                    [(x, x) for x in spec.presets],
                    value=p.get("preset", "tiny"),
                    allow_blank=False,
                    id="preset",
                    compact=True,
                ),
            )
            yield row("seeds", Input(p.get("seeds", "0-2"), id="seeds", placeholder="0-4 or 0,2,5", compact=True))
            yield row(
                "dataset seeds", Input(p.get("dataset_seeds", "0"), id="dataset_seeds", placeholder="0-4", compact=True)
            )
            yield row(
                "data dir",
                Input(
                    p.get("data_dir", ""),
                    id="data_dir",
                    placeholder="16-shot folder (prompt task); empty: built-in or hub",
                    compact=True,
                ),
            )
            yield row(
                "overrides",
                Input(
                    p.get("overrides", ""),
                    id="overrides",
                    placeholder="key=value ... (see `pgg options TASK`)",
                    compact=True,
                ),
            )
            yield row(
                "name",
                Input(p.get("name", ""), id="name", placeholder="optional: a few words for these runs", compact=True),
            )
            yield row(
                "tags", Input(p.get("tags", ""), id="tags", placeholder="optional: space-separated", compact=True)
            )
            yield Checkbox("start a worker if none is running", value=True, id="start-worker", compact=True)
            yield Static(id="verdict")
            with Horizontal(id="buttons"):
                yield Button("Queue (Ctrl+S)", variant="success", id="queue", compact=True)
                yield Button("Close (Esc)", id="close", compact=True)

    def on_mount(self) -> None:
        self.validate_form()

    def values(self) -> tuple[dict[str, Any], list[str]]:
        """The request the form describes, and what is wrong in the overrides as typed: a malformed pair or an
        aggregation the field contradicts is named and left out, so the rest is still checked."""

        def text(wid: str) -> str:
            return self.query_one(f"#{wid}", Input).value.strip()

        def choice(wid: str) -> str:
            value = self.query_one(f"#{wid}", Select).value
            return "" if value is Select.BLANK else str(value)

        problems: list[str] = []
        try:
            pairs = shlex.split(text("overrides"))
        except ValueError as err:  # an unclosed quote
            pairs, problems = [], [f"overrides: {err}"]
        overrides = []
        for pair in pairs:
            try:
                parse_overrides([pair])
                overrides.append(pair)
            except ConfigError as err:
                problems.append(str(err))
        agg = choice("agg")
        typed = [o.partition("=")[2] for o in overrides if o.startswith("agg=")]
        if agg and typed and typed[-1] != agg:  # never drop what was typed: say which one wins
            problems.append(f"aggregation {agg} and overrides agg={typed[-1]} disagree; clear one")
        if agg and not typed:
            overrides.append(f"agg={agg}")
        request = dict(
            task=choice("task"),
            dataset=text("dataset"),
            method=choice("method"),
            seeds=text("seeds"),
            dataset_seeds=text("dataset_seeds"),
            preset=choice("preset"),
            data_dir=text("data_dir"),
            overrides=overrides,
        )
        return request, problems

    @on(Select.Changed, "#task")
    def _task_changed(self, event: Select.Changed) -> None:
        task = str(event.value)
        if task == self.form_task:  # the Select announcing its first value: keep the prefilled method and preset
            return
        self.form_task = task
        spec = TASKS[task]
        method = self.query_one("#method", Select)
        keep = method.value if method.value in spec.methods else "pgg"
        method.set_options([(m, m) for m in spec.methods])
        method.value = keep
        preset = self.query_one("#preset", Select)
        keep = preset.value if preset.value in spec.presets else "tiny"
        preset.set_options([(x, x) for x in spec.presets])
        preset.value = keep
        dataset = self.query_one("#dataset", Input)
        if dataset.value not in spec.datasets:
            dataset.value = default_dataset(spec.name)
        dataset.placeholder = ", ".join(spec.datasets)

    @on(Input.Changed)
    @on(Select.Changed)
    def validate_form(self) -> None:
        verdict = self.query_one("#verdict", Static)
        try:
            v, errors = self.values()
            errors += [e for e in request_errors(v) if e not in errors]
            self.specs = [] if errors else plan_runs(**v)
        except PggError as err:
            errors = [str(err)]
        except Exception:  # a Select mid-update has no value yet
            return
        if errors:  # every problem at once, not the first of them
            self.specs = []
            verdict.update(Text("\n".join(f"✗ {e}" for e in errors), "red"))
            self.query_one("#queue", Button).disabled = True
            return
        n = len(self.specs)
        hub = v["dataset"] not in BUILTIN_DATASETS and not v["data_dir"] and "/" not in v["dataset"]
        note = "\n[yellow]loads the dataset from the Hugging Face hub (offline: set a data dir)[/yellow]" if hub else ""
        if v["preset"] == "paper":
            note += (
                "\n[yellow]paper preset: downloads the paper's models unless overrides point at local folders[/yellow]"
            )
        verdict.update(
            f"[green]✓ {n} run{'s' * (n != 1)}[/green]: {v['task']} / {v['dataset']} / {v['method']} · "
            f"seeds {v['seeds']} × dataset seeds {v['dataset_seeds']} · preset {v['preset']}{note}"
        )
        self.query_one("#queue", Button).disabled = False

    @on(Button.Pressed, "#queue")
    def action_submit(self) -> None:
        if not self.specs:
            self.notify("fix the form first", severity="warning")
            return
        specs, store, start = self.specs, pgg(self).store, self.query_one("#start-worker", Checkbox).value
        name = self.query_one("#name", Input).value.strip()
        tags = self.query_one("#tags", Input).value.replace(",", " ").split()

        def queue() -> list[str]:
            ids = queue_runs(store, specs, name=name, tags=tags)
            lines = [f"queued {len(ids)} run(s): {', '.join(map(str, ids[:10]))}{'…' if len(ids) > 10 else ''}"]
            return lines + ([ensure_worker(store)] if start else [])

        pgg(self).act(queue)
        self.dismiss(None)

    @on(Button.Pressed, "#close")
    def action_close(self) -> None:
        expanded = next((s for s in self.query(Select) if s.expanded), None)
        if expanded is not None:  # Esc closes the open list first, not the form and all that was typed
            expanded.expanded = False
            expanded.focus()
            return
        self.dismiss(None)
