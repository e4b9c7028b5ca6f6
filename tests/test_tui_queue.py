"""Pilot tests of the queue form (pgg_tui/screens/queue.py): validation as you type, clone prefill."""

import json

from textual.widgets import DataTable, Input, Static

from pgg_tui.app import PggApp
from support.pilot import open_queue_form, settle


async def test_queue_form_validates_as_you_type(store):
    app = PggApp(store, poll=0.2)
    async with app.run_test(size=(100, 30)) as pilot:
        form = await open_queue_form(pilot)
        seeds = form.query_one("#seeds", Input)
        seeds.value = "3-1"
        await settle(pilot)
        assert "bad seeds" in str(form.query_one("#verdict", Static).render())
        assert form.query_one("#queue").disabled
        seeds.value = "0-4"
        form.query_one("#overrides", Input).value = "agg=min top_k=32"
        await settle(pilot)
        assert "5 runs" in str(form.query_one("#verdict", Static).render())
        before = len(store.runs())
        await pilot.press("ctrl+s")
        await settle(pilot)
        runs = store.runs()
        assert len(runs) == before + 5
        assert json.loads(runs[-1].overrides) == {"agg": "min", "top_k": "32"}


async def test_clone_keeps_the_method_and_preset_of_the_run(store):
    """`k` on an rlprompt run opened a form saying pgg / tiny: cloning queued another method."""
    app = PggApp(store, poll=0.2)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        table = app.screen.query_one(DataTable)
        table.move_cursor(row=table.get_row_index("4"))  # rlprompt, preset paper in the seeded store
        await pilot.press("k")
        await settle(pilot)
        run = store.get(4)
        form = app.screen
        assert form.query_one("#method").value == "rlprompt" == run.method
        assert form.query_one("#preset").value == run.preset
        assert [s.method for s in form.specs] == ["rlprompt"]


async def test_queue_form_refuses_two_aggregations(store):
    app = PggApp(store, poll=0.2)
    async with app.run_test(size=(100, 30)) as pilot:
        form = await open_queue_form(pilot)
        form.query_one("#overrides", Input).value = "agg=min"
        form.query_one("#agg").value = "max"
        await settle(pilot)
        assert form.specs == [] and "disagree" in str(form.query_one("#verdict").render())
        form.query_one("#agg").value = "min"
        await settle(pilot)
        assert [s.overrides["agg"] for s in form.specs] == ["min"] * 3


async def test_queue_form_shows_every_error_its_own_keys_and_where_focus_is(store):
    app = PggApp(store, poll=0.2)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        await pilot.press("n")
        await settle(pilot)
        form = app.screen
        form.query_one("#dataset", Input).value = "imdb"
        form.query_one("#seeds", Input).value = "3-1"
        await settle(pilot)
        verdict = str(form.query_one("#verdict").render())
        assert "unknown dataset" in verdict and "bad seeds" in verdict  # both, not the first only
        keys = str(form.query_one("KeyBar").render())
        assert "Close" in keys and "Queue" in keys and "quit" not in keys and "Cancel" not in keys
        seeds, dataset = form.query_one("#seeds", Input), form.query_one("#dataset", Input)
        seeds.focus()
        await settle(pilot)
        assert seeds.styles.background != dataset.styles.background  # focus was invisible (234 vs 235)
