"""One run: live plots that grow while it trains (against steps or wall time, smoothed or not, on a linear
or log y axis), the phase timeline with its time axis, the log tail, config and results."""

from __future__ import annotations

import json

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, VerticalScroll
from textual.lazy import Lazy
from textual.widgets import Log, Static, TabbedContent, TabPane
from textual_plotext import PlotextPlot

from engine.errors import PggError
from pgg_tui.core.curves import X_AXES, clock_axis, timed_metrics
from pgg_tui.core.report import RunReport, build_report
from pgg_tui.core.smoothing import step_smoothing
from pgg_tui.core.views import RunDetail, poll_detail
from pgg_tui.core.present import duration, last_line, run_label
from pgg_tui.render import status_text, tau_cell
from pgg_tui.core.ops import cancel_runs
from pgg_tui.screens.base import PggScreen, pgg
from pgg_tui.widgets.chart import COLORS, Line, draw
from pgg_tui.widgets.keybar import KeyBar

REWARD_PHASES_SHOWN = 3
KIND_STYLE = {"reward": "black on color(110)", "policy": "black on color(150)", "eval": "black on color(222)"}
Series = dict[str, list[tuple[str, float, float]]]  # name -> (phase, x, value): x a step, or seconds of wall time


class RunScreen(PggScreen):
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("s", "samples", "Samples"),
        Binding("c", "cancel", "Cancel run"),
        Binding("a", "label", "Label"),
        Binding("1", "tab('plots')", "Plots"),
        Binding("2", "tab('timeline')", "Timeline"),
        Binding("3", "tab('log')", "Log"),
        Binding("4", "tab('config')", "Config"),
        Binding("5", "tab('results')", "Results"),
        Binding("x", "x_axis", "step / time"),
        Binding("right_square_bracket", "smooth(1)", "smooth", key_display="[ ]"),
        Binding("left_square_bracket", "smooth(-1)", "less smoothing", show=False),
        Binding("l", "log_y", "log y"),
    ]

    def __init__(self, run_id: int):
        super().__init__()
        self.run_id = run_id
        self.detail = RunDetail()
        self._pending_logs = False
        self._shown_once = False
        self.report: RunReport | None = None
        self.x = "step"
        self.smoothing = 0.0  # the EMA weight of the plots: 0 draws the points as recorded
        self.log_y = False
        self._say_log = False  # the plots that refuse a log y are named once, when it is asked for
        self._timed: Series = {}  # read only once the time axis is asked for, then incrementally
        self._timed_last = 0
        self._started: float | None = None

    def compose(self) -> ComposeResult:
        yield Static(id="run-header")
        with TabbedContent(initial="plots"):
            with TabPane("Plots", id="plots"), Grid(id="plot-grid"):
                yield PlotextPlot(id="plot-reward")
                yield PlotextPlot(id="plot-policy")
                yield PlotextPlot(id="plot-score")
                yield PlotextPlot(id="plot-lr")
            # the hidden tabs mount after the first paint: the plots show sooner
            with TabPane("Timeline", id="timeline"):
                yield Lazy(VerticalScroll(Static(id="timeline-body")))
            with TabPane("Log", id="log"):
                yield Lazy(Log(id="log-body", max_lines=5000, auto_scroll=True))
            with TabPane("Config", id="config"):
                yield Lazy(VerticalScroll(Static(id="config-body")))
            with TabPane("Results", id="results"):
                yield Lazy(VerticalScroll(Static(id="results-body")))
        yield KeyBar()

    def on_mount(self) -> None:
        self.refresh_detail()
        self.set_interval(1.0, self.refresh_detail)

    @work(thread=True, exclusive=True, group="run-detail", name="reading the run", exit_on_error=False)
    def refresh_detail(self) -> None:
        try:
            detail, new_logs = poll_detail(self.store, self.run_id, self.detail)
        except PggError as err:
            self.app.call_from_thread(self.notify, str(err), severity="error")
            return
        series = {k: list(v) for k, v in detail.metrics.items()}
        timed = None
        try:
            started = self.store.get(self.run_id).started_at
            if self.x == "time":
                for mid, name, phase, t, value in timed_metrics(self.store, self.run_id, self._timed_last):
                    self._timed.setdefault(name, []).append((phase, t, value))
                    self._timed_last = mid
                timed = {k: list(v) for k, v in self._timed.items()}
        except PggError as err:
            self.app.call_from_thread(self.notify, str(err), severity="error")
            return
        self.app.call_from_thread(self._show, series, new_logs, started, timed)

    def _show(
        self,
        series: dict[str, list[tuple[str, int, float]]],
        new_logs: list[str],
        started: float | None = None,
        timed: Series | None = None,
    ) -> None:
        if self.detail.run is None:
            return
        self._started = started
        report = self.report = build_report(self.detail.run, self.detail.phases, series)
        run = report.run
        header = Text.assemble(f"run {run.id} · ", status_text(run.status))
        label = run_label(run.name, list(run.tags))
        if label:
            header.append(f" · {label}", "bold")
        if any(t is not None for t in report.grounding_tau.values()):
            # the grounding quality of the last reward phase: does the reward model rank as the truth does?
            last = report.last_grounding_tau
            header.append_text(Text.assemble(" · τ ", tau_cell(last) if last is not None else Text("n/a", "dim")))
        if report.people_tau:  # and as people do, on their held-out rankings
            header.append_text(Text.assemble(" · τ people ", tau_cell(report.people_tau[-1])))
        header.append(
            f" · {run.task} / {run.dataset} / {run.variant} · seed {run.seed} · dataset seed "
            f"{run.dataset_seed}" + (f" · {report.progress}" if report.progress else "")
        )
        if report.place:  # where it trains: several hosts may share the store
            header.append(f" · on {report.place}", "dim")
        if report.usage and run.status == "running":  # what it uses now: a slow run explains itself
            header.append(f" · {report.usage}", "dim")
        if run.status in ("failed", "lost") and run.error:  # the reason first, before any plot
            header.append(f"\n{run.status}: {last_line(run.error)}", "red")
            if not self._shown_once:
                self.query_one(TabbedContent).active = "results"
        if run.notes.strip():
            header.append(f"\nnotes: {run.notes.strip().splitlines()[0]}", "italic")
        self._shown_once = True
        self.query_one("#run-header", Static).update(header)
        self._plots(series, timed)
        self._fill_tabs(new_logs)

    def _fill_tabs(self, new_logs: list[str] | None = None) -> None:
        """Timeline, log, config and results: as soon as their lazily mounted widgets exist."""
        if not self.query("#results-body") or not self.query("#log-body"):
            self._pending_logs = True
            self.set_timer(0.05, self._fill_tabs)  # mounted right after the first paint
            return
        self._timeline()
        log = self.query_one("#log-body", Log)
        if self._pending_logs:
            log.write_lines(self.detail.logs)  # everything so far, once
            self._pending_logs = False
        elif new_logs:
            log.write_lines(new_logs)
        self._config()
        self._results()

    def origin(self) -> float | None:
        """Time zero of the plots against wall time and of the timeline: when the run started (or its first
        phase, if that was recorded earlier)."""
        starts = [t for t in (self._started, self.detail.phases[0].started_at if self.detail.phases else None) if t]
        return min(starts) if starts else None

    def _plot(
        self,
        wid: str,
        title: str,
        lines: list[Line],
        hline: float | None = None,
        ylim: tuple[float, float] | None = None,
        int_x: bool = False,
        xlabel: str = "step",
        fixed: bool = False,
    ) -> bool:
        """Draw one plot with the screen's smoothing and y scale (`fixed`: neither, as for τ in [-1, 1]);
        False when it refused a log y."""
        return draw(
            self.query_one(f"#{wid}", PlotextPlot),
            title,
            lines,
            hline,
            ylim,
            int_x,
            xlabel,
            0.0 if fixed else self.smoothing,
            self.log_y and not fixed,
        )

    def _plots(self, series: dict[str, list[tuple[str, int, float]]], timed: Series | None = None) -> None:
        """The four plots, against the step, or with `timed` (the metrics with their times) against the
        minutes since the run started."""
        origin = self.origin() or 0.0
        xlabel = "step" if timed is None else "minutes"
        refused: list[str] = []

        def pts(name: str, phase: str | None = None) -> list[tuple[float, float]]:
            if timed is None:
                return [(s, v) for p, s, v in series.get(name, []) if phase is None or p == phase]
            return [((t - origin) / 60.0, v) for p, t, v in timed.get(name, []) if phase is None or p == phase]

        phases = sorted({p for p, _, _ in series.get("reward/loss", [])}, key=lambda p: int(p.split()[-1]))
        shown = phases[-REWARD_PHASES_SHOWN:]  # a legend of five phases covered the data
        reward_lines: list[Line] = []
        for p in shown:  # a phase's training and validation share its colour; validation is dotted
            color = COLORS[(int(p.split()[-1]) - 1) % len(COLORS)]
            reward_lines += [
                Line(p, pts("reward/loss", p), color=color),
                Line(f"val {p.split()[-1]}", pts("reward/val_loss", p), color=color, marker="dot"),
            ]
        chance = series.get("reward/chance_loss")
        older = f" · last {len(shown)} of {len(phases)} phases" if len(phases) > len(shown) else ""
        if not self._plot(
            "plot-reward",
            "reward ListMLE" + (" · ── chance ln K!" if chance else "") + older,
            reward_lines,
            chance[-1][2] if chance else None,
            xlabel=xlabel,
        ):
            refused.append("reward")
        policy = "policy/loss"
        second = "policy/entropy" if "policy/entropy" in series else "policy/nll"
        if not self._plot(
            "plot-policy",
            f"{policy} · {second} (right)",
            [Line(policy, pts(policy)), Line(second, pts(second), side="right")],
            xlabel=xlabel,
        ):
            refused.append("policy")
        scores = [n for n in ("train/score", "dev/score", "val/score", "dev/greedy_score") if n in series]
        if not self._plot("plot-score", "scores", [Line(n, pts(n)) for n in scores], xlabel=xlabel):
            refused.append("scores")
        taus = series.get("reward/tau")
        if taus:  # one point per reward phase, against the phase's number
            lines = [Line("τ", [(int(p.split()[-1]), v) for p, _, v in taus])]
            people = series.get("reward/human_tau")
            if people:  # preference=human / mixed: the same on held-out rankings by people
                lines.append(Line("τ people", [(int(p.split()[-1]), v) for p, _, v in people]))
            self._plot(
                "plot-lr",
                "grounding τ per phase" + (" · vs people" if people else "") + " · ── chance",
                lines,
                0.0,
                (-1.0, 1.0),
                int_x=True,
                xlabel="reward phase",
                fixed=True,  # one point per phase, in [-1, 1]: neither smoothed nor on a log scale
            )
        elif not self._plot("plot-lr", "learning rate", [Line("lr", pts("lr"))], xlabel=xlabel):
            refused.append("learning rate")
        if self._say_log and refused:
            self.notify(f"{', '.join(refused)}: values ≤ 0, the y axis stays linear", title="log y refused")
        self._say_log = False

    def _timeline(self) -> None:
        phases = self.detail.phases
        run = self.detail.run
        body = self.query_one("#timeline-body", Static)
        if not phases:
            body.update("no phases yet")
            return
        end = run.finished_at if run and run.finished_at else max((p.ended_at or p.started_at) for p in phases)
        start = self.origin() or phases[0].started_at
        total = max(1e-6, (end or start) - start)
        width = max(20, self.size.width - 4)
        bar = Text()
        used = 0  # cells drawn so far; a phase starts at its own time's column (a wait shows as a gap)
        for p in phases:
            first = max(used, round((p.started_at - start) / total * width))
            last = round(((p.ended_at or end or p.started_at) - start) / total * width)
            if first >= width:
                break
            bar.append(" " * (first - used))
            cells = max(1, min(width, last) - first)
            used = first + cells
            label = p.label
            if cells >= 2:  # a divider keeps neighbouring segments apart
                bar.append(label[: cells - 1].ljust(cells - 1), KIND_STYLE.get(p.kind, ""))
                bar.append("▏", KIND_STYLE.get(p.kind, ""))
            else:
                bar.append(" ", KIND_STYLE.get(p.kind, ""))
        rule, ticks = clock_axis(total, width)
        lines = Text("wall time since the run started ▸\n")
        lines.append_text(bar)
        lines.append(f"\n{rule}\n{ticks}\n\n", "dim")
        for p in phases:
            label = p.label
            took = duration((p.ended_at or end or p.started_at) - p.started_at)
            steps = f"step {p.start_step}" + (
                f"–{p.end_step}" if p.end_step is not None and p.end_step != p.start_step else ""
            )
            lines.append(f"{label:10} ", KIND_STYLE.get(p.kind, ""))
            lines.append(f" {steps:18} {took}\n")
        body.update(lines)

    def _config(self) -> None:
        if self.report is None:
            return
        text = Text()
        for row in self.report.config:
            text.append(f"{row.name:24} ", "bold" if row.changed else "dim")
            text.append(f"{row.value!s:20} ", "yellow" if row.changed else "")
            text.append(f"{row.help}\n", "dim")
        self.query_one("#config-body", Static).update(text)

    def _results(self) -> None:
        run = self.detail.run
        body = self.query_one("#results-body", Static)
        if run is None:
            return
        if run.error and run.status != "done":
            body.update(Text(run.error, "red"))
            return
        if not run.results:
            body.update("no results yet")
            return
        text = Text()
        for k, v in run.results.items():
            if isinstance(v, float):
                text.append(f"{k:28} {v:.4f}\n")
            elif isinstance(v, list):
                text.append(f"{k}\n", "bold")
                for item in v[:16]:
                    text.append(f"  {json.dumps(item)}\n")
            else:
                text.append(f"{k:28} {v}\n")
        body.update(text)

    def action_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab

    def _replot(self) -> None:
        """A plot key shows the plots, redrawn at once (a time axis first reads the metrics' times)."""
        self.action_tab("plots")
        self.refresh_detail()

    def action_x_axis(self) -> None:
        self.x = X_AXES[(X_AXES.index(self.x) + 1) % len(X_AXES)]
        self._replot()

    def action_smooth(self, by: int) -> None:
        self.smoothing = step_smoothing(self.smoothing, by)
        self._replot()

    def action_log_y(self) -> None:
        self.log_y = not self.log_y
        self._say_log = self.log_y
        self._replot()

    def action_samples(self) -> None:
        from pgg_tui.screens.samples import SamplesScreen

        self.app.push_screen(SamplesScreen(self.run_id))

    def action_cancel(self) -> None:
        pgg(self).act(lambda: cancel_runs(self.store, [self.run_id]))

    def action_label(self) -> None:
        from pgg_tui.screens.label import LabelScreen

        if self.detail.run is not None:
            self.app.push_screen(LabelScreen(self.detail.run))
