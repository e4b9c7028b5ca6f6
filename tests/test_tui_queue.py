"""Pilot tests of the queue form (pgg_tui/screens/queue.py): validation as you type, clone prefill."""

import json

from textual.widgets import DataTable, Input, Select, Static

from engine.registry import TASKS

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


async def test_queue_form_shows_every_override_problem_with_the_others(store):
    """Issue 24: the form showed one override problem at a time. A malformed pair hid every other line, two
    aggregations hid the rest, and bad settings waited until the seeds were fixed."""
    app = PggApp(store, poll=0.2)
    async with app.run_test(size=(100, 30)) as pilot:
        form = await open_queue_form(pilot)
        form.query_one("#seeds", Input).value = "3-1"
        form.query_one("#overrides", Input).value = "foo lr=x top_k=-1 bar"
        await settle(pilot)
        verdict = str(form.query_one("#verdict", Static).render())
        for line in ("bad seeds", "malformed --set 'foo'", "malformed --set 'bar'", "'lr'", "top_k=-1"):
            assert line in verdict, line
        assert form.specs == [] and form.query_one("#queue").disabled
        form.query_one("#seeds", Input).value = "0"
        form.query_one("#overrides", Input).value = "agg=min top_k=-1"
        form.query_one("#agg").value = "max"
        await settle(pilot)
        verdict = str(form.query_one("#verdict", Static).render())
        assert "disagree" in verdict and "top_k=-1" in verdict
        form.query_one("#overrides", Input).value = "agg=max top_k=32"
        await settle(pilot)
        assert len(form.specs) == 1 and not form.query_one("#queue").disabled


async def test_an_open_list_is_framed_over_the_form_and_esc_closes_it_first(store):
    """Issue 24: the task list opened over the next rows without a frame, reading as their values ("dataset
    prompt", "method summarize"), and Esc with it open closed the whole form and what was typed in it."""
    app = PggApp(store, poll=0.2)
    async with app.run_test(size=(80, 24)) as pilot:
        form = await open_queue_form(pilot)
        form.query_one("#seeds", Input).value = "0-4"
        task = form.query_one("#task", Select)
        await pilot.press("enter")
        await settle(pilot)
        overlay = task.query_one("SelectOverlay")
        assert task.expanded and overlay.region.height == len(TASKS) + 2  # the options and a frame around them
        assert overlay.content_region.width == overlay.region.width - 2
        lines = app.export_screenshot()
        assert "╭" in lines and "╰" in lines
        await pilot.press("escape")
        await settle(pilot)
        assert app.screen is form and not task.expanded and app.focused is task
        assert form.query_one("#seeds", Input).value == "0-4"
        await pilot.press("escape")
        await settle(pilot)
        assert app.screen is not form


async def test_a_clone_form_says_which_run_it_clones(store):
    """Issue 24: the form said "Queue runs" when `k` opened it on a run's settings."""
    app = PggApp(store, poll=0.2)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("k")  # run 1, named baseline
        await settle(pilot)
        title = str(app.screen.query_one("#form-title", Static).render())
        assert title.startswith("Clone run 1 “baseline”: prompt / toy-sentiment / pgg, seed 0")
        await pilot.press("escape")
        await settle(pilot)
        table = app.screen.query_one(DataTable)
        table.move_cursor(row=table.get_row_index("4"))
        await pilot.press("k")
        await settle(pilot)
        assert str(app.screen.query_one("#form-title", Static).render()).startswith(
            "Clone run 4: prompt / toy-sentiment / rlprompt, seed 0"
        )
        await pilot.press("escape", "n")
        await settle(pilot)
        assert str(app.screen.query_one("#form-title", Static).render()).startswith("Queue runs")
