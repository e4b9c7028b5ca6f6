"""Pilot tests of the chart screen (pgg_tui/screens/chart.py): one metric across chosen runs."""

from textual.widgets import DataTable, Static

from pgg_tui.app import PggApp
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
