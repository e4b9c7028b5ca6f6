"""One metric across the chosen runs on one chart: a line per run, or mean ± std over seeds per experiment."""

from __future__ import annotations

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Static
from textual_plotext import PlotextPlot

from pgg_tui.core.curves import X_AXES, Curve, chart_metrics, fetch_curves
from pgg_tui.core.smoothing import smoothing_label, step_smoothing
from pgg_tui.screens.base import PggScreen
from pgg_tui.widgets.chart import COLORS, Line, draw
from pgg_tui.widgets.keybar import KeyBar

PER_RUN_LINES = 8  # more runs than this start grouped: a legend of twenty runs covers the data


class ChartScreen(PggScreen):
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("m", "metric(1)", "Next metric"),
        Binding("M", "metric(-1)", "Previous"),
        Binding("g", "grouped", "Seeds: mean ± std / each"),
        Binding("x", "x_axis", "step / time"),
        Binding("right_square_bracket", "smooth(1)", "smooth", key_display="[ ]"),
        Binding("left_square_bracket", "smooth(-1)", "less smoothing", show=False),
        Binding("l", "log_y", "log y"),
    ]

    def __init__(self, ids: list[int], metric: str | None = None):
        super().__init__()
        self.ids = ids
        self.metric = metric
        self.metrics: list[str] = []
        self.grouped = len(ids) > PER_RUN_LINES
        self.x = "step"
        self.smoothing = 0.0  # the EMA weight: 0 draws the points as recorded
        self.log_y = False
        self._say_log = False  # a refused log y gets a toast once, when asked for

    def compose(self) -> ComposeResult:
        yield Static(id="chart-header")
        yield PlotextPlot(id="chart")
        yield KeyBar()

    def on_mount(self) -> None:
        self.load()

    def show_rows(self, _rows: object) -> None:  # live runs add points with the app's poll
        self.load()

    @work(thread=True, exclusive=True, group="chart", name="reading the curves", exit_on_error=False)
    def load(self) -> None:
        metrics = chart_metrics(self.store, self.ids)
        metric = self.metric if self.metric in metrics else (metrics[0] if metrics else None)
        curves = fetch_curves(self.store, self.ids, metric, self.x, self.grouped) if metric else []
        self.app.call_from_thread(self._show, metrics, metric, curves)

    def _show(self, metrics: list[str], metric: str | None, curves: list[Curve]) -> None:
        self.metrics, self.metric = metrics, metric
        mode = "mean ± std of seeds (dotted)" if self.grouped and self.x == "step" else "each run"
        where = f"{metrics.index(metric) + 1}/{len(metrics)}" if metric else "0/0"
        lines: list[Line] = []
        for i, c in enumerate(curves):
            color = COLORS[i % len(COLORS)]
            lines.append(Line(c.label, list(zip(c.xs, c.ys)), color=color))
            if c.lower is not None and c.upper is not None:  # plotext has no fill: the band's edges, dotted
                lines.append(Line("", list(zip(c.xs, c.lower)), color=color, marker="dot"))
                lines.append(Line("", list(zip(c.xs, c.upper)), color=color, marker="dot"))
        drawn = draw(
            self.query_one("#chart", PlotextPlot),
            metric or "",
            lines,
            xlabel="step" if self.x == "step" else "minutes",
            smoothing=self.smoothing,
            log_y=self.log_y,
        )
        if self._say_log and not drawn:
            self.notify(f"{metric} has values ≤ 0: the y axis stays linear", title="log y refused")
        self._say_log = False
        scale = "" if not self.log_y else " · log y" if drawn else " · log y refused (values ≤ 0)"
        self.query_one("#chart-header", Static).update(
            f"[b]{metric or 'no metrics recorded yet'}[/b] {where} · {len(self.ids)} runs · {mode} · "
            f"x {'step' if self.x == 'step' else 'minutes since start'} · {smoothing_label(self.smoothing)}{scale}"
        )

    def action_metric(self, by: int) -> None:
        if self.metrics:
            i = self.metrics.index(self.metric) if self.metric in self.metrics else 0
            self.metric = self.metrics[(i + by) % len(self.metrics)]
            self.load()

    def action_grouped(self) -> None:
        self.grouped = not self.grouped
        self.load()

    def action_x_axis(self) -> None:
        self.x = X_AXES[(X_AXES.index(self.x) + 1) % len(X_AXES)]
        self.load()

    def action_smooth(self, by: int) -> None:
        self.smoothing = step_smoothing(self.smoothing, by)
        self.load()

    def action_log_y(self) -> None:
        self.log_y = not self.log_y
        self._say_log = self.log_y
        self.load()
