"""Deletes have a way back (issue 24 item 1): `pgg delete` moves runs into the trash with every row they
recorded, `pgg restore` brings them back, `pgg trash` lists, `pgg trash empty` deletes for good; the app's u
undoes its last delete."""

import json
import time

from engine import rankings, trash
from engine.store import Store
from pgg_tui.app import PggApp
from support import seed_store
from support.pilot import settle, table_keys
from support.cli import one_clear_line, pgg


def _rows(store, rid):
    return (len(store.metrics(rid)), len(store.samples(rid)), len(store.logs(rid)), len(store.phases(rid)))


def test_delete_restore_round_trip_keeps_every_row_and_links_rankings_back(store):
    ids = seed_store.seed_rankings(store, 7, 2)
    rid = 7
    r = rankings.claim(store, "ana", rid)
    rankings.submit(store, r.id, [1, 0, 2], "ana")
    store.end(rid, "cancelled", "cancelled by request", exit_code=0)  # a running run cannot be deleted
    before, run_before = _rows(store, rid), store.get(rid)
    assert before[0] > 0 and before[1] > 0
    [path] = trash.save(store, [rid])
    store.delete([rid])
    assert [e.run_id for e in trash.entries(store)] == [rid] and path.exists()
    assert trash.restore(store, rid) == rid
    after = store.get(rid)
    assert _rows(store, rid) == before and not path.exists()
    assert (after.uid, after.status, after.config, after.results) == (
        run_before.uid,
        run_before.status,
        run_before.config,
        run_before.results,
    )
    assert [x["order"] for x in rankings.answered(store, [rid])] == [[1, 0, 2]]  # linked back
    assert len(ids) == 2


def test_a_trashed_run_whose_id_was_taken_comes_back_under_a_new_one(db):
    assert pgg("queue", "prompt", "-d", "toy-sentiment", "-p", "tiny", "-s", "0-1", "--db", db).exit_code == 0
    r = pgg("delete", "2", "-y", "--db", db)
    assert r.exit_code == 0 and "pgg restore 2" in r.output
    assert pgg("queue", "prompt", "-d", "toy-sentiment", "-p", "tiny", "-s", "5", "--db", db).exit_code == 0
    st = Store.open(db)
    taken = {x.id for x in st.runs()}
    r = pgg("restore", "2", "--db", db)
    assert r.exit_code == 0, r.output
    back = [x for x in st.runs() if x.seed == 1]
    assert len(back) == 1 and (back[0].id == 2) == (2 not in taken)
    assert "is not in the trash" in one_clear_line(pgg("restore", "2", "--db", db))


def test_trash_lists_and_empties_for_good(db):
    pgg("queue", "prompt", "-d", "toy-sentiment", "-p", "tiny", "-s", "0-2", "--db", db)
    pgg("delete", "1", "3", "-y", "--db", db)
    listed = json.loads(pgg("trash", "--json", "--db", db).stdout)
    assert [e["run"] for e in listed] == [1, 3]
    assert pgg("trash", "empty", "3", "-y", "--db", db).exit_code == 0
    assert [e["run"] for e in json.loads(pgg("trash", "--json", "--db", db).stdout)] == [1]
    assert pgg("delete", "2", "-y", "--no-trash", "--db", db).exit_code == 0
    assert [e["run"] for e in json.loads(pgg("trash", "--json", "--db", db).stdout)] == [1]
    assert "unknown trash action" in one_clear_line(pgg("trash", "burn", "--db", db))
    assert Store.open(db).runs() == []


def test_a_refused_delete_leaves_nothing_in_the_trash(db):
    pgg("queue", "prompt", "-d", "toy-sentiment", "-p", "tiny", "-s", "0-1", "--db", db)
    st = Store.open(db)
    st.claim_next("w", None)  # run 1 is running
    assert "is running" in one_clear_line(pgg("delete", "1", "2", "-y", "--db", db))
    assert trash.entries(st) == [] and len(st.runs()) == 2


async def test_u_in_the_app_undoes_the_last_delete(store):
    app = PggApp(store, poll=0.2)
    async with app.run_test(size=(120, 30)) as pilot:
        await settle(pilot)
        keys = table_keys(app)
        victim = next(k for k in keys if store.get(int(k)).status != "running")
        app.screen.query_one("DataTable").move_cursor(row=keys.index(victim))
        await pilot.press("x", "y")
        await settle(pilot)
        assert victim not in table_keys(app)
        await pilot.press("u")
        await settle(pilot)
        assert victim in table_keys(app)


def _ended(st, n, how):
    """n queued runs, each brought to an end: failed, cancelled, lost or done."""
    from support.runs import queue_seeds

    ids = queue_seeds(st, n)
    for rid in ids:
        if how == "cancelled":
            st.request_cancel([rid])
            continue
        st.claim_next("w", None)
        if how == "done":
            st.finish(rid, {"test/accuracy": 90.0})
        else:
            st.end(rid, how, f"{how} on purpose")
    return ids


def test_clean_moves_failed_and_cancelled_runs_into_the_trash_and_never_done_ones_unless_asked(db):
    """`pgg clean` as `pueue clean`: ended runs out of the listing; failed and cancelled by default, done and
    lost only when named; --dry-run changes nothing; --older-than keeps recent ones; pgg restore undoes it."""
    import sqlalchemy as sa

    from engine.schema import Run
    from support.runs import queue_seeds

    st = Store.open(db)
    failed, cancelled = _ended(st, 2, "failed"), _ended(st, 1, "cancelled")
    done, lost = _ended(st, 1, "done"), _ended(st, 1, "lost")
    queued = queue_seeds(st, 1)
    r = pgg("clean", "--dry-run", "--db", db)
    assert r.exit_code == 0 and "would clean 3 failed or cancelled runs (dry run" in r.stderr, r.output
    assert [line.split("\t")[0] for line in r.stdout.splitlines()[1:]] == [str(i) for i in failed + cancelled]
    assert len(st.runs()) == 6 and trash.entries(st) == []
    r = pgg("clean", "--db", db)
    assert r.exit_code == 0 and "cleaned 3 failed or cancelled runs into the trash: 1-3" in r.stdout, r.output
    assert "`pgg restore 1-3` brings them back" in r.stdout
    assert [x.id for x in st.runs()] == done + lost + queued
    assert sorted(e.run_id for e in trash.entries(st)) == failed + cancelled
    assert "nothing to clean: no failed or cancelled runs" in pgg("clean", "--db", db).stderr
    with st.write() as s:  # the lost run ended eight days ago
        s.execute(sa.update(Run).where(Run.id == lost[0]).values(finished_at=time.time() - 8 * 86400))
    assert "nothing to clean" in pgg("clean", "--status", "done,lost", "--older-than", "9d", "--db", db).stderr
    r = pgg("clean", "--status", "done,lost", "--older-than", "1w", "--db", db)
    assert (
        r.exit_code == 0
        and f"cleaned 1 done or lost runs that ended 1w ago or more into the trash: {lost[0]}" in r.stdout
    )
    assert pgg("restore", "1-3", "--db", db).exit_code == 0
    assert sorted(x.id for x in st.runs()) == sorted(failed + cancelled + done + queued)
    assert pgg("clean", "--status", "done", "--no-trash", "--db", db).exit_code == 0
    assert done[0] not in {x.id for x in st.runs()} and done[0] not in {e.run_id for e in trash.entries(st)}


def test_clean_refuses_bad_input_and_a_large_clean_without_a_yes(db):
    st = Store.open(db)
    _ended(st, 21, "failed")
    for args, says in (
        (["--status", "queued"], "clean takes runs that ended"),
        (["--status", "failed,running"], "not running ones"),
        (["--status", "burnt"], "not burnt ones"),
        (["--older-than", "7x"], "bad age '7x'"),
        (["--task", "translate"], "unknown task"),
        ([], "this would clean 21 runs into the trash (more than 20); check with --dry-run, then add -y"),
    ):
        assert says in one_clear_line(pgg("clean", *args, "--db", db)), args
    assert len(st.runs()) == 21 and trash.entries(st) == []  # nothing changed
    r = pgg("clean", "-y", "--db", db)
    assert r.exit_code == 0 and "cleaned 21 failed or cancelled runs into the trash: 1-21" in r.stdout
    assert st.runs() == []
