"""Pilot tests of the samples browser (pgg_tui/screens/samples.py)."""

from textual.widgets import DataTable, Input, Static

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


async def test_tokens_on_the_cursor_row_keep_a_readable_foreground_with_and_without_colour(store, monkeypatch):
    """Issue 24 item 8: under NO_COLOR the cursor row drew its top-bucket tokens grey 254 on grey 254 (the
    cursor's foreground won over the token's own); in colour, light cyan on grey 249."""
    for no_color in (True, False):
        if no_color:
            monkeypatch.setenv("NO_COLOR", "1")
        else:
            monkeypatch.delenv("NO_COLOR", raising=False)
        app = PggApp(store, poll=0.2)
        async with app.run_test(size=(120, 40)) as pilot:
            await settle(pilot)
            app.screen.query_one(DataTable).move_cursor(row=app.screen.query_one(DataTable).get_row_index("2"))
            await pilot.press("s")
            await settle(pilot, 5)
            table = app.screen.query_one(DataTable)
            assert table.cursor_row == 0
            strip = table.render_line(1)  # the header is line 0, the cursor row line 1
            tokens = [
                seg
                for seg in strip
                if seg.text.strip()
                and seg.style
                and seg.style.bgcolor
                and any(t in seg.text for t in ("Rated", "Cinema", "Score", "Grade", "film"))
            ]
            assert len(tokens) == 5
            for seg in tokens:
                fg, bg = seg.style.color, seg.style.bgcolor
                assert fg is not None and fg != bg, (no_color, seg)
                # a foreground at least a third of the scale away from its background, in lightness
                lum = lambda c: sum(c.get_truecolor()) / 3  # noqa: E731
                assert abs(lum(fg) - lum(bg)) > 80, (no_color, seg.text, fg, bg)


async def test_a_steps_filter_that_is_neither_steps_nor_a_phase_is_refused_not_applied(store):
    """Issue 24 polish: the samples filter accepted `abc` and showed an empty list without a word."""
    app = PggApp(store, poll=0.2)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        table = app.screen.query_one(DataTable)
        table.move_cursor(row=table.get_row_index("2"))
        await pilot.press("s")
        await settle(pilot, 5)
        screen = app.screen
        before = len(screen.shown)
        screen.action_steps()
        await pilot.press(*"abc", "enter")
        await settle(pilot)
        assert screen.view.step_filter == "" and len(screen.shown) == before
        assert any("no step range" in str(n.message) for n in app._notifications)
        screen.query_one("#steps").value = ""
        await pilot.press(*"reward", "enter")
        await settle(pilot)
        assert screen.view.step_filter == "reward" and {s.kind for s in screen.shown} == {"reward"}


async def test_home_and_end_go_to_the_first_and_last_sample_and_are_in_the_footer(store):
    """Issue 24: End in the samples list scrolled the row sideways (DataTable's own End) instead of going to the
    last sample, and neither key was in the footer."""
    app = PggApp(store, poll=0.2)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("s")
        await settle(pilot, 5)
        screen, table = app.screen, app.screen.query_one(DataTable)
        assert table.row_count == 6 and table.cursor_row == 0
        await pilot.press("end")
        await settle(pilot)
        assert table.cursor_row == 5 and screen.current() is screen.shown[-1] and table.scroll_x == 0
        await pilot.press("home")
        await settle(pilot)
        assert table.cursor_row == 0 and screen.current() is screen.shown[0]
        keys = str(screen.query_one("KeyBar").render())
        assert "home First" in keys and "end Last" in keys and "q quit" in keys  # every key, at 80 columns
        await pilot.press("slash", *"12", "home")  # in the step box, Home and End stay the box's
        await settle(pilot)
        assert screen.query_one("#steps", Input).cursor_position == 0 and table.cursor_row == 0
