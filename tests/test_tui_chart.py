"""Pilot tests of the chart screen (pgg_tui/screens/chart.py): one metric across chosen runs."""

import math

import pytest
from textual.widgets import DataTable, Static

from pgg_tui.app import PggApp
from pgg_tui.core.smoothing import ema
from support.pilot import settle, table_keys


async def test_chart_of_one_metric_across_the_chosen_runs(store):
    """v charts the selection; m picks the metric, g folds seeds into mean ± std, x switches to wall time."""
    app = PggApp(store, poll=0.2)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot)
        table = app.screen.query_one(DataTable)
        for key in ("1", "2", "4"):
            table.move_cursor(row=table_keys(app).index(key))
            await pilot.press("space")
        await pilot.press("v")
        await settle(pilot, 6)
        chart = app.screen
        assert chart.ids == [1, 2, 4] and not chart.grouped
        header = lambda: str(chart.query_one("#chart-header", Static).render())  # noqa: E731
        assert header().startswith("dev/score 1/") and "3 runs · each run" in header()
        await pilot.press("m")
        await settle(pilot)
        assert chart.metric == chart.metrics[1]
        await pilot.press("M", "g")
        await settle(pilot)
        assert chart.metric == "dev/score" and "mean ± std" in header()
        await pilot.press("x")
        await settle(pilot)
        assert "each run" in header() and "minutes since start" in header()  # seeds share no clock


async def test_chart_smoothing_and_log_y(store):
    """] smooths each run's line (its points as recorded faint behind it); l puts y on a log scale, refused
    with a note for a metric with a value <= 0."""
    store.append(1, [dict(step=61, phase="policy", name="policy/loss", value=-1.0)], [], [], None)
    app = PggApp(store, poll=0.2)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot)
        table = app.screen.query_one(DataTable)
        for key in ("1", "2"):
            table.move_cursor(row=table_keys(app).index(key))
            await pilot.press("space")
        await pilot.press("v")
        await settle(pilot, 6)
        chart = app.screen
        header = lambda: str(chart.query_one("#chart-header", Static).render())  # noqa: E731
        monitor = lambda: chart.query_one("#chart").plt.monitor  # noqa: E731
        assert chart.metric == "dev/score" and header().endswith("x step · raw")
        recorded = [list(ys) for ys in monitor().y]  # a run a line: 10/6 ... 60/6
        assert recorded[0] == pytest.approx([s / 6 for s in range(10, 61, 10)]) and len(recorded) == 2
        await pilot.press("]")
        await settle(pilot)
        assert header().endswith("EMA 0.6")
        m = monitor()
        assert [st[0] for st in m.style] == ["dim", "dim", "default", "default"] and m.y[:2] == recorded
        assert [m.y[2], m.y[3]] == [pytest.approx(ema(ys, 0.6)) for ys in recorded]
        await pilot.press("[", "l")
        await settle(pilot)
        assert header().endswith("raw · log y")
        assert [list(ys) for ys in monitor().y] == [pytest.approx([math.log10(v) for v in ys]) for ys in recorded]
        await pilot.press("m", "m")
        await settle(pilot)
        assert chart.metric == "policy/loss" and header().endswith("log y refused (values ≤ 0)")
        assert min(monitor().y[0]) == -1.0  # drawn as recorded, on the linear axis
