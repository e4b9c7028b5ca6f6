"""Pilot tests of the rank screen (pgg_tui/screens/rank.py): people rank a waiting run's requests."""

from textual.widgets import DataTable, Static

from pgg_tui.app import PggApp
from support import seed_store
from support.pilot import settle, table_keys


async def test_rank_through_the_app_and_the_waiting_run_goes_on(store, monkeypatch):
    """R on a run waiting for rankings opens its requests; number keys order, Enter records; the run's
    reward phase, waiting in its own thread, continues once both are ranked; s skips; Esc puts back."""
    import threading

    from engine import rankings
    from engine.preferences import Pool
    from engine.registry import plan_runs
    from engine.report import StoreReporter

    monkeypatch.setattr("engine.preferences.POLL", 0.05)
    ids = seed_store.seed_rankings(store, 7, 3)
    cfg = plan_runs(
        "summarize", "toy-news", "pgg", preset="tiny", overrides=["preference=human", "rank_lists=3", "rank_heldout=0"]
    )[0].config
    reporter = StoreReporter(store, 7, interval=0.1)
    pool = Pool(cfg, reporter, "summarize")
    waiting = threading.Thread(target=pool.collect, args=(1, None, None), daemon=True)  # asked already: resumes
    waiting.start()
    app = PggApp(store, poll=0.2, annotator="ana")
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        table = app.screen.query_one(DataTable)
        table.move_cursor(row=table_keys(app).index("7"))
        assert "rank 3 (R)" in str(table.get_row("7"))
        await pilot.press("R")
        await settle(pilot)
        header = str(app.screen.query_one("#rank-header", Static).render())
        assert f"request {ids[0]}" in header and "as ana" in header and "3 left" in header
        await pilot.press("2", "enter")  # the second summary best, then the first, then the third
        await settle(pilot)
        assert rankings.answers(store, ids) == {ids[0]: [1, 0, 2]}
        assert f"request {ids[1]}" in str(app.screen.query_one("#rank-header", Static).render())
        await pilot.press("s")  # skipped: not offered to ana again; nothing else is left for her
        await settle(pilot)
        assert f"request {ids[2]}" in str(app.screen.query_one("#rank-header", Static).render())
        await pilot.press("down", "shift+down", "enter")  # moved the 2nd candidate down: 0, 2, 1
        await settle(pilot)
        assert rankings.answers(store, ids)[ids[2]] == [0, 2, 1]
        assert "nothing to rank" in str(app.screen.query_one("#rank-header", Static).render())
        await pilot.press("escape")
        await settle(pilot)
    assert waiting.is_alive()  # one request (skipped by ana) is still unranked
    r = rankings.claim(store, "bob")
    assert r.id == ids[1]
    rankings.submit(store, r.id, [2, 1, 0], "bob")
    waiting.join(10)
    reporter.close()
    assert not waiting.is_alive() and store.get(7).waiting_for == 0
    assert sorted((tuple(x.order), x.annotator) for x in pool.lists) == [
        ((0, 2, 1), "ana"),
        ((1, 0, 2), "ana"),
        ((2, 1, 0), "bob"),
    ]


async def test_a_number_key_above_k_says_why_it_did_nothing(store):
    seed_store.seed_rankings(store, 7, 3)
    app = PggApp(store, poll=0.2, annotator="ana")
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        await pilot.press("R")
        await settle(pilot)
        await pilot.press("7", "1", "1")
        await settle(pilot)
        said = [n.message for n in app._notifications]
        assert any("there is no candidate 7: this list has 3 (1-3)" in m for m in said)
        assert any("candidate 1 is placed already" in m for m in said)
