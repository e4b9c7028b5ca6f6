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
