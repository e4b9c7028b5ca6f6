"""Pilot tests of the diff screen (pgg_tui/screens/diff.py)."""

from textual.widgets import DataTable, Static

from pgg_tui.app import PggApp
from support.pilot import settle, table_keys


async def test_diff_two_runs(store):
    app = PggApp(store, poll=0.2)
    async with app.run_test(size=(120, 30)) as pilot:
        await settle(pilot)
        await pilot.press("d")
        await settle(pilot)
        assert app.screen.id != "diff" and len(app.screen_stack) == 2  # nothing selected: a hint, no screen
        table = app.screen.query_one(DataTable)
        table.move_cursor(row=table_keys(app).index("1"))
        await pilot.press("space")
        table.move_cursor(row=table_keys(app).index("6"))
        await pilot.press("d")
        await settle(pilot)
        diff = app.screen.query_one("#diff", DataTable)
        rows = [[str(c) for c in diff.get_row_at(i)] for i in range(diff.row_count)]
        assert ["config", "agg", "avg", "max"] in rows  # run 6 is pgg agg=max
        assert ["result", "test/accuracy", "91.50%", "90.80%"] in rows  # with its unit, as everywhere
        assert "1 setting differs" in str(app.screen.query_one("#diff-header", Static).render())
