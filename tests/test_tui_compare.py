"""Pilot tests of the compare screen (pgg_tui/screens/compare.py)."""

from textual.widgets import DataTable, Static

from pgg_tui.app import PggApp
from support.pilot import settle


async def test_compare_table(store):
    app = PggApp(store, poll=0.2)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("m")
        await settle(pilot, 4)
        table = app.screen.query_one(DataTable)
        rows = {str(table.get_row(k)[0]): table.get_row(k)[1] for k in table.rows}
        assert set(rows) == {"pgg · tiny", "pgg agg=max · tiny", "rlprompt · tiny"}
        assert rows["pgg · tiny"].plain == "92.4 (0.8) n=3" and rows["pgg · tiny"].style == "bold green"
        assert rows["rlprompt · tiny"].style == ""
        await pilot.press("v")  # each method's configuration chosen on validation: one row per method
        await settle(pilot, 4)
        rows = {str(table.get_row(k)[0]): table.get_row(k)[1] for k in table.rows}
        assert set(rows) == {"pgg", "rlprompt"}
        note = str(app.screen.query_one("#compare-note", Static).render())
        assert "pgg: " in note and "best of 2" in note and "unequal tuning" in note
        await pilot.press("v", "t")  # summarization: nothing done yet
        await settle(pilot, 4)
        assert "no done summarize runs" in str(app.screen.query_one("#compare-note", Static).render())


async def test_compare_and_groups_follow_the_selection_and_the_filter(store):
    app = PggApp(store, poll=0.2)
    async with app.run_test(size=(120, 30)) as pilot:
        await settle(pilot)
        await pilot.press("slash", *"done rlprompt", "enter", "g")  # words of runs, not of groups
        await settle(pilot, 5)
        table = app.screen.query_one(DataTable)
        rows = [[str(c) for c in table.get_row(k)] for k in table.rows]
        assert [r[2] for r in rows] == ["rlprompt"]  # grouping with a filter showed an empty table
        await pilot.press("escape", "g")
        await settle(pilot)
        table = app.screen.query_one(DataTable)
        for rid in ("1", "2", "6"):
            table.move_cursor(row=table.get_row_index(rid))
            await pilot.press("space")
        await pilot.press("m")
        await settle(pilot, 5)
        compare = app.screen.query_one(DataTable)
        cells = {str(compare.get_row(k)[0]): str(compare.get_row(k)[1]) for k in compare.rows}
        assert set(cells) == {"pgg · tiny", "pgg agg=max · tiny"}  # the chosen runs, not rlprompt's
        assert cells["pgg · tiny"].startswith("92.0 (0.8) n=2") and cells["pgg agg=max · tiny"] == "90.8 n=1"


async def test_compare_opens_on_the_task_of_the_filtered_runs(store):
    """Issue 24: `m` with the runs table filtered to `summarize` opened Compare on prompt ("no done prompt
    runs"), whatever the filter showed."""
    app = PggApp(store, poll=0.2)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("slash", *"summarize", "enter", "m")
        await settle(pilot, 4)
        assert app.screen.task_name == "summarize"
        assert str(app.screen.query_one("#compare-header", Static).render()).startswith("summarize · ")
        await pilot.press("escape", "escape")  # back, and the filter cleared: all runs, most of them prompt's
        await settle(pilot)
        await pilot.press("m")
        await settle(pilot, 4)
        assert app.screen.task_name == "prompt"


def test_compare_leaves_out_the_settings_every_row_holds(db):
    """A sweep's fixed part (max_queries=... scorer=...) made every method name too long to read at 80 columns;
    it is said once under the table instead."""
    import json

    import sqlalchemy as sa

    from engine.config import to_json
    from engine.registry import plan_runs
    from engine.schema import Run
    from engine.store import Store
    from pgg_tui.core.views import fetch_compare

    st = Store.open(db)
    for method, extra in (("pgg", ["agg=max"]), ("seq-reinforce", [])):
        for rid in st.queue(
            plan_runs("prompt", "toy-sentiment", method, "0-1", "0", "tiny", "", ["max_steps=7", *extra]), to_json
        ):
            with st.write() as s:
                s.execute(
                    sa.update(Run)
                    .where(Run.id == rid)
                    .values(status="done", results=json.dumps({"test/accuracy": 90.0 + rid}))
                )
    table = fetch_compare(st, "prompt", "test/accuracy")
    assert table.methods == ["pgg agg=max · tiny", "seq-reinforce · tiny"] and table.shared == {"max_steps": "7"}
