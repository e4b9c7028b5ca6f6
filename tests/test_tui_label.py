"""Pilot tests of the label form (pgg_tui/screens/label.py): name, tags and notes of a run."""

import json

from textual.widgets import DataTable, Input, Static

from pgg_tui.app import PggApp
from support.pilot import settle, table_keys


async def test_label_a_run_with_name_tags_and_notes(store):
    app = PggApp(store, poll=0.2)
    async with app.run_test(size=(160, 40)) as pilot:
        await settle(pilot)
        table = app.screen.query_one(DataTable)
        table.move_cursor(row=table_keys(app).index("4"))
        await pilot.press("a")
        await settle(pilot)
        form = app.screen
        assert form.query_one("#label-name", Input).has_focus
        await pilot.press(*"rl base")
        form.query_one("#label-tags", Input).value = "keep, rl"
        form.query_one("#label-notes").text = "the RLPrompt baseline\nseed 0"
        await pilot.press("ctrl+s")
        await settle(pilot)
        run = store.get(4)
        assert (run.name, json.loads(run.tags), run.notes) == (
            "rl base",
            ["keep", "rl"],
            "the RLPrompt baseline\nseed 0",
        )
        app.poll_now(True)
        await settle(pilot)
        assert "rl base #keep #rl" in [str(c) for c in table.get_row("4")]  # the name column at this width
        await pilot.press("slash", *"#keep")
        await settle(pilot)
        assert table_keys(app) == ["4"]  # the filter finds tags
        await pilot.press("enter", "escape", "enter")
        await settle(pilot)
        header = str(app.screen.query_one("#run-header", Static).render())
        assert "rl base #keep #rl" in header and "notes: the RLPrompt baseline" in header
