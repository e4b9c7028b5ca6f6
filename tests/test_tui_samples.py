"""Pilot tests of the samples browser (pgg_tui/screens/samples.py)."""


from textual.widgets import DataTable, Static

from pgg_tui.app import PggApp
from support.pilot import settle, table_keys


async def test_samples_browser(store):
    app = PggApp(store, poll=0.2)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        table = app.screen.query_one(DataTable)
        table.move_cursor(row=table.get_row_index("2"))
        await pilot.press("s")
        await settle(pilot, 5)
        screen = app.screen
        assert len(table_keys(app)) == 6
        steps = [str(app.screen.query_one(DataTable).get_cell(k, "step")) for k in table_keys(app)]
        assert steps == ["r0", "r10", "r20", "30", "40", "50"]  # reward and policy steps told apart
        view = lambda: str(screen.query_one("#token-view", Static).render())  # noqa: E731
        assert "token 1/5 'Rated'" in view()
        await pilot.press("right", "right")
        assert "token 3/5 'Score'" in view() and "reward 0.6000" in view()
        await pilot.press("down", "down", "down", "t")  # sort by true score: 10.0 first, and in view
        await settle(pilot)
        assert screen.shown[0].true_score == 10.0 and screen.current() is screen.shown[0]
        await pilot.press("k")  # kind: reward only
        await settle(pilot)
        assert {s.kind for s in screen.shown} == {"reward"} and len(screen.shown) == 3
        await pilot.press("slash", *"20", "enter")
        await settle(pilot)
        assert [s.step for s in screen.shown] == [20]
        await pilot.press("escape")
        await settle(pilot)
        assert len(screen.shown) == 3
        await pilot.press("k", "k", "k", "k", "k")  # kind back to all
        await pilot.press("slash", *"policy", "enter")
        await settle(pilot)
        assert {s.phase for s in screen.shown} == {"policy"} and len(screen.shown) == 3
        await pilot.press("escape")
        await settle(pilot)
        await pilot.press("f")
        await settle(pilot)
        assert screen.view.follow == "toy-sentiment"
