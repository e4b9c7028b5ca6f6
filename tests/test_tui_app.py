"""Pilot tests of the app itself: the command palette, the welcome and demo, a failing background
task, and the news of failed runs and finished sweeps. Each screen's tests are in test_tui_<screen>.py."""

from engine.store import Store
from pgg_tui.app import PggApp, RunCommands
from support.pilot import settle, table_keys


async def test_palette_offers_runs_and_failed_sweeps(store):
    app = PggApp(store, poll=0.2)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        provider = RunCommands(app.screen)
        hits = [h async for h in provider.search("open run 7")]
        assert any("open run 7" in str(h.match_display) for h in hits)
        hits = [h async for h in provider.search("requeue failed") if str(h.text).startswith("requeue")]
        assert len(hits) == 1 and "sweep" in str(hits[0].text)
        hits[0].command()
        await settle(pilot)
        assert store.get(10).parent_id == 8


async def test_welcome_and_demo_on_an_empty_store(db, monkeypatch):
    started = []
    monkeypatch.setattr("pgg_tui.app.ensure_worker", lambda st, *args: started.append(args) or "worker started (test)")
    monkeypatch.setattr("os.cpu_count", lambda: 6)
    store = Store.open("experiments.db")
    app = PggApp(store, poll=0.2)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        assert app.screen.query_one("#welcome").display
        await pilot.press("D")
        await settle(pilot, 5)
        runs = store.runs()
        assert {(r.task, r.method) for r in runs} == {
            ("prompt", "pgg"),
            ("prompt", "seq-reinforce"),
            ("summarize", "pgg"),
            ("summarize", "mle"),
        }
        assert all(r.preset == "tiny" for r in runs)
        assert started == [(["--cpu-slots", "6"],)]  # a slot per core: the demo's runs use one thread each
        assert not app.screen.query_one("#welcome").display
        assert len(table_keys(app)) == len(runs)
        await pilot.press("D")  # again, on a store that has runs: it asks first (Enter means no)
        await settle(pilot, 3)
        assert [str(b.label) for b in app.screen.query("Button")] == ["Yes (y)", "No (n)"]
        await pilot.press("enter")
        await settle(pilot, 3)
        assert len(store.runs()) == len(runs)
        await pilot.press("D", "y")
        await settle(pilot, 5)
        assert len(store.runs()) == 2 * len(runs)


async def test_a_failing_background_task_says_so_once(store):
    app = PggApp(store, poll=0.2)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)

        def broken(run_id):
            raise RuntimeError("disk I/O error")

        store.get = broken
        for _ in range(2):
            await pilot.press("k")
            await settle(pilot)
        said = [n.message for n in app._notifications]
        assert said == ["opening the clone form failed: disk I/O error"]


async def test_a_failed_run_and_a_finished_sweep_are_announced(store):
    app = PggApp(store, poll=0.2)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        bells = []
        app.bell = lambda: bells.append(1)
        store.end(7, "failed", error="Traceback ...\nRuntimeError: NaN in the reward loss")
        app.poll_now(True)  # each write is read at once, not at the next timed poll (late on a loaded machine)
        await settle(pilot, 6)
        said = [n.message for n in app._notifications]
        assert "run 7 failed: RuntimeError: NaN in the reward loss" in said and bells
        store.request_cancel([9])
        app.poll_now(True)
        await settle(pilot, 6)
        assert not any("sweep" in m for m in [n.message for n in app._notifications])  # a sweep of one: no news
        (a, b) = store.queue(store_specs(), to_json_)
        app.poll_now(True)
        await settle(pilot, 6)
        for rid in (a, b):
            store.claim_next("w", None)
            store.finish(rid, {"test/accuracy": 50.0})
        app.poll_now(True)
        await settle(pilot, 6)
        assert f"sweep {store.get(a).group_id} finished: 2 done" in [n.message for n in app._notifications]


def store_specs():
    from engine.registry import plan_runs

    return plan_runs("prompt", "toy-sentiment", "pgg", "0-1", "0", "tiny")


def to_json_(cfg):
    from engine.config import to_json

    return to_json(cfg)


def shown_text(widget) -> str:
    """What a widget draws, line by line, as plain text."""
    return "\n".join("".join(seg.text for seg in widget.render_line(y)) for y in range(widget.size.height))


async def test_question_mark_opens_every_key_of_the_screen_and_esc_closes_it(store):
    """Issue 24: `?` only said "keys are in the footer" in a toast; the footer leaves some keys out."""
    from pgg_tui.screens.help import HelpScreen
    from pgg_tui.screens.runs import RunsScreen

    app = PggApp(store, poll=0.2)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("question_mark")
        await settle(pilot)
        assert isinstance(app.screen, HelpScreen)
        text = shown_text(app.screen.query_one("#help-keys"))
        for line in (
            "Keys · Runs",
            "⏎      Open",
            "u      Undo delete",
            "+ / =  Prio+",
            "q      Quit",
            "Command palette",
        ):
            assert line in text, line  # the footer's keys, a hidden one, every key of a binding, the app's
        box = app.screen.query_one("#help")
        assert box.region.bottom <= 24 - 3 and box.region.width <= 80  # above its own footer, at 80x24
        assert box.max_scroll_y == 0  # the runs screen's keys fit whole at 80x24, in two columns
        await pilot.press("escape")
        await settle(pilot)
        assert isinstance(app.screen, RunsScreen)
        await pilot.press("s")
        await settle(pilot, 4)
        await pilot.press("question_mark")
        await settle(pilot)
        text = shown_text(app.screen.query_one("#help-keys"))
        assert "Keys · Samples" in text and "← / h  ◀ token" in text and "end    Last" in text
        await pilot.press("question_mark")  # ? again closes it
        await settle(pilot)
        assert type(app.screen).__name__ == "SamplesScreen"


async def test_help_scrolls_where_it_does_not_fit(store):
    from pgg_tui.screens.help import HelpScreen

    app = PggApp(store, poll=0.2)
    async with app.run_test(size=(50, 16)) as pilot:  # one column, below 60 columns
        await settle(pilot)
        await pilot.press("question_mark")
        await settle(pilot)
        assert isinstance(app.screen, HelpScreen)
        box = app.screen.query_one("#help")
        assert box.max_scroll_y > 0 and app.focused is box
        await pilot.press("end")
        await settle(pilot)
        assert box.scroll_y == box.max_scroll_y
