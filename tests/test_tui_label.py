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


async def test_tags_read_as_pgg_annotate_reads_them_and_the_form_gives_back_what_it_shows(store):
    """`#x, a b` is the tags x, a and b (pgg_tui.core.tags), as on the command line; the form reopened shows
    `x a b`, which saved again changes nothing; the app's `#x` filter finds the run; a tag too long is one
    line and the form stays open, nothing saved."""
    from textual.widgets import Input as In

    from pgg_tui.screens.label import LabelScreen

    store.annotate(4, add_tags=["old"])
    app = PggApp(store, poll=0.2)
    async with app.run_test(size=(160, 40)) as pilot:
        await settle(pilot)
        table = app.screen.query_one(DataTable)
        table.move_cursor(row=table_keys(app).index("4"))
        await pilot.press("a")
        await settle(pilot)
        app.screen.query_one("#label-tags", In).value = "#x, a b ##old"
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert json.loads(store.get(4).tags) == ["old", "x", "a", "b"]
        app.poll_now(True)
        await settle(pilot)
        await pilot.press("a")
        await settle(pilot)
        assert app.screen.query_one("#label-tags", In).value == "old x a b"
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert json.loads(store.get(4).tags) == ["old", "x", "a", "b"]  # saved as shown: unchanged
        await pilot.press("a")
        await settle(pilot)
        app.screen.query_one("#label-tags", In).value = "x " + "y" * 33
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert isinstance(app.screen, LabelScreen)  # still open, to fix the tag
        assert json.loads(store.get(4).tags) == ["old", "x", "a", "b"]
        await pilot.press("escape")
        await settle(pilot)
        await pilot.press("slash", *"#x")
        await settle(pilot)
        assert table_keys(app) == ["4"]
