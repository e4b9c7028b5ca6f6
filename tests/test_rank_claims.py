"""Ranking that people can do (issue 24 items 9-10): a Rank screen left open holds nothing, and a second
ranker who finds nothing free is told who holds what."""

from textual.widgets import Static

from engine import rankings
from engine.schema import Ranking
from pgg_tui.app import PggApp
from pgg_tui.screens.rank import RankScreen
from support import seed_store
from support.pilot import settle


def _status(store, rid):
    with store.read() as s:
        r = s.get(Ranking, rid)
        return r.status, r.claimed_by


async def test_the_rank_screen_claims_a_request_on_the_first_key_not_on_sight(store):
    ids = seed_store.seed_rankings(store, 7, 3)
    app = PggApp(store, poll=0.2, annotator="ana")
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        app.push_screen(RankScreen(7))
        await settle(pilot)
        assert f"request {ids[0]}" in str(app.screen.query_one("#rank-header", Static).render())
        assert _status(store, ids[0]) == ("open", None)  # shown, not held: bob could take it
        assert rankings.claim(store, "bob", 7).id == ids[0]
        rankings.release(store, ids[0], "bob")
        await pilot.press("1")  # the first key claims it
        await settle(pilot)
        assert _status(store, ids[0]) == ("claimed", "ana")
        await pilot.press("escape")  # leaving puts it back (in a thread worker: a loaded machine takes a moment)
        for _ in range(100):
            await pilot.pause(0.05)
            if _status(store, ids[0]) == ("open", None):
                break
        assert _status(store, ids[0]) == ("open", None)


async def test_a_request_taken_between_sight_and_key_moves_on_to_the_next(store):
    ids = seed_store.seed_rankings(store, 7, 3)
    app = PggApp(store, poll=0.2, annotator="ana")
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        app.push_screen(RankScreen(7))
        await settle(pilot)
        assert rankings.claim(store, "bob", 7).id == ids[0]  # bob takes the one ana looks at
        await pilot.press("1")
        await settle(pilot)
        assert _status(store, ids[0]) == ("claimed", "bob")
        assert f"request {ids[1]}" in str(app.screen.query_one("#rank-header", Static).render())


async def test_a_second_ranker_is_told_who_holds_the_requests(store):
    seed_store.seed_rankings(store, 7, 2)
    rankings.claim(store, "bob")
    rankings.claim(store, "carol")
    assert rankings.holders(store, "ana") == {"bob": 1, "carol": 1} and rankings.holders(store, "bob") == {"carol": 1}
    app = PggApp(store, poll=0.2, annotator="ana")
    async with app.run_test(size=(120, 30)) as pilot:
        await settle(pilot)
        app.push_screen(RankScreen())
        await settle(pilot)
        header = str(app.screen.query_one("#rank-header", Static).render())
        assert "nothing to rank" in header and "held: 1 by bob, 1 by carol" in header
        assert "1 request(s) held by bob" in str(app.screen.query_one("#rank-candidates", Static).render())
