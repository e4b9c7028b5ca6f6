"""Queue control as pueue users expect it: pause and resume, priorities, runs at once changed live;
and the researcher's own labels on runs (name, tags, notes). On SQLite and on PostgreSQL."""

import json

import pytest

from engine.errors import ConfigError
from engine.scheduler import Worker, make_slots
from engine.store import Store
from support.paths import STANDIN
from support.runs import queue_seeds as queue
from support.waiting import wait_for


def test_claims_follow_priority_then_queue_order(store_url):
    st = Store.open(store_url)
    ids = queue(st, 4)
    st.set_priority([ids[2]], 5)
    st.set_priority([ids[3]], -1)
    order = [st.claim_next("w", None).id for _ in ids]
    assert order == [ids[2], ids[0], ids[1], ids[3]]
    assert st.claim_next("w", None) is None


def test_priority_is_refused_for_runs_that_left_the_queue_and_changes_none(store_url):
    st = Store.open(store_url)
    ids = queue(st, 2)
    st.claim_next("w", None)
    with pytest.raises(ConfigError, match="running; priority orders only queued runs"):
        st.set_priority(ids, 3)
    assert [r.priority for r in st.runs()] == [0, 0]  # checked before changing any


def test_a_paused_queue_claims_nothing_until_resumed(store_url):
    st = Store.open(store_url)
    queue(st, 1)
    assert st.set_queue_control(paused=True).paused
    assert st.claim_next("w", None) is None
    st.set_queue_control(paused=False)
    assert st.claim_next("w", None) is not None


def test_parallel_below_one_is_refused(store_url):
    with pytest.raises(ConfigError, match="at least 1"):
        Store.open(store_url).set_queue_control(parallel=0)


def test_the_worker_obeys_pause_and_parallel_live(store_url, monkeypatch):
    monkeypatch.setenv("STANDIN_STEPS", "400")
    monkeypatch.setenv("STANDIN_SLEEP", "0.05")
    st = Store.open(store_url)
    ids = queue(st, 4)
    st.set_queue_control(parallel=1)
    lines = []
    w = Worker(st, make_slots([], cpu_slots=3), STANDIN, poll=0.05, log=lines.append)
    w.acquire()
    try:
        w.tick()
        assert len(w.children) == 1  # three slots, one at a time
        st.set_queue_control(parallel=2)
        w.tick()
        assert len(w.children) == 2
        st.set_queue_control(paused=True, parallel=None)
        w.tick()
        assert len(w.children) == 2  # paused: nothing new starts, nothing running stops
        assert [r.status for r in st.runs()].count("queued") == 2
        assert any("queue paused" in line for line in lines)
        st.set_queue_control(paused=False)
        w.tick()
        assert len(w.children) == 3  # one per slot again
        assert {c.run_id for c in w.children.values()} == set(ids[:3])
    finally:
        st.request_cancel(list(w.children))
        wait_for(lambda: (w.tick(), not w.children)[1], timeout=60, what="runs to stop")
        w.release()


def test_names_tags_and_notes(store_url):
    st = Store.open(store_url)
    a, b = queue(st, 2, name="lr sweep", tags=["lr", " lr", "base,", ""], priority=2)
    run = st.get(a)
    assert (run.name, json.loads(run.tags), run.priority) == ("lr sweep", ["lr", "base"], 2)
    run = st.annotate(a, name="  lr 3e-4 ", add_tags=["keep"], remove_tags=["base"], notes="diverged at 400")
    assert (run.name, json.loads(run.tags), run.notes) == ("lr 3e-4", ["lr", "keep"], "diverged at 400")
    st.claim_next("w", None)
    st.end(a, "failed", "boom")
    (c,) = st.retry([a])
    again = st.get(c)  # a retry is the same experiment: it keeps the labels
    assert (again.name, again.tags, again.notes, again.priority) == (run.name, run.tags, run.notes, 2)
    with pytest.raises(ConfigError, match="no run 99"):
        st.annotate(99, name="x")


def test_cli_queue_control_and_labels(db, capsys):
    from pgg_tui.cli import main

    def pgg(*argv):
        with pytest.raises(SystemExit) as exit_:
            main([*argv, "--db", db])
        out = capsys.readouterr()
        return exit_.value.code or 0, out.out, out.err

    code, out, _ = pgg("queue", "prompt", "-d", "toy-sentiment", "-s", "0-1", "--name", "abl", "--tag", "x")
    assert code == 0 and out.split() == ["1", "2"]
    assert pgg("annotate", "2", "--tag", "y", "--note", "look")[1] == "run 2: abl #x #y · notes saved\n"
    assert pgg("priority", "3", "2")[1] == "run 2: priority 3\n"
    assert pgg("pause")[1].startswith("queue paused")
    assert pgg("parallel", "2")[1].startswith("queue paused · 2 at once")
    code, _, err = pgg("parallel", "two")
    assert code == 1 and err.count("\n") == 1 and "whole number" in err
    assert pgg("resume")[1].startswith("queue open · 2 at once")
    code, out, _ = pgg("runs", "--tag", "y", "-q")
    assert out.split() == ["2"]
    code, out, _ = pgg("runs", "--json")
    rows = json.loads(out)
    assert [r["tags"] for r in rows] == [["x"], ["x", "y"]] and rows[1]["priority"] == 3
    assert "notes     look" in pgg("show", "2")[1]


# ---------------------------------------------------------------------------------------------------
# dependencies (`pgg queue --after`), as pueue's: a run waits until the runs it names are done


def test_a_run_queued_after_another_is_not_claimed_until_that_one_is_done(store_url):
    st = Store.open(store_url)
    (a,) = queue(st, 1)
    b = queue(st, 2, after=[a])
    (c,) = queue(st, 1)
    st.set_priority(b, 5)  # first in the queue, yet they wait
    assert st.claim_next("w", None).id == a
    assert st.claim_next("w", None).id == c  # waits for nothing: it goes meanwhile
    assert st.claim_next("w", None) is None
    assert [r.status for r in st.runs(ids=b)] == ["queued", "queued"]
    assert st.after_states([a]) == {a: (a, "running")}
    st.finish(a, {"test/accuracy": 90.0})
    assert [st.claim_next("w", None).id for _ in b] == b
    assert st.claim_next("w", None) is None


def test_runs_after_one_that_failed_are_cancelled_saying_why_and_retried_together_wait_in_order(store_url):
    st = Store.open(store_url)
    (a,) = queue(st, 1)
    (b,) = queue(st, 1, after=[a])
    (c,) = queue(st, 1, after=[b])
    assert st.claim_next("w", None).id == a
    st.fail(a, "boom")
    assert st.claim_next("w", None) is None
    run = st.get(b)
    assert run.status == "cancelled" and run.finished_at is not None
    assert f"run {a}, which it waits for (--after), ended failed; `pgg retry {a} {b}`" in run.error
    assert st.claim_next("w", None) is None  # c's run was cancelled: c goes too, at the next look
    assert st.get(c).status == "cancelled" and f"run {b}, which it waits for" in st.get(c).error
    a2, b2 = st.retry([a, b])
    assert json.loads(st.get(b2).after) == [a]  # a's newest attempt stands in for it
    assert st.after_states([a]) == {a: (a2, "queued")}
    assert st.claim_next("w", None).id == a2
    assert st.claim_next("w", None) is None
    st.finish(a2, {"test/accuracy": 90.0})
    assert st.claim_next("w", None).id == b2


def test_after_is_checked_when_queued_and_a_deleted_run_cancels_what_waits_for_it(store_url):
    st = Store.open(store_url)
    (a,) = queue(st, 1)
    with pytest.raises(ConfigError, match="no run 99 in this store"):
        queue(st, 1, after=[a, 99])
    st.request_cancel([a])
    with pytest.raises(ConfigError, match=f"run {a} ended cancelled: runs queued after it would never start"):
        queue(st, 1, after=[a])
    assert len(st.runs()) == 1  # nothing queued
    (a2,) = st.retry([a])
    (b,) = queue(st, 1, after=[a])  # its retry, queued, stands in for it
    (x,) = queue(st, 1)
    (y,) = queue(st, 1, after=[x])
    st.delete([x])
    assert st.claim_next("w", None).id == a2
    assert st.get(b).status == "queued"
    assert st.get(y).status == "cancelled" and f"run {x}, which it waits for (--after), was deleted" in st.get(y).error


def test_the_runs_table_pgg_runs_and_pgg_show_say_what_a_queued_run_waits_for(db):
    from pgg_tui.core.views import fetch_rows
    from pgg_tui.widgets.run_cells import running_progress
    from support.cli import one_clear_line
    from support.cli import pgg as cli

    st = Store.open(db)
    a, b = queue(st, 2)
    r = cli("queue", "prompt", "-d", "toy-sentiment", "--after", f"{a}-{b}", "--priority", "1", "--db", db)
    assert r.exit_code == 0, r.output
    c = int(r.stdout)
    rows = {row.id: row for row in fetch_rows(st)}
    assert running_progress(rows[c]).plain == f"after {a},{b} · prio +1"
    assert running_progress(rows[a]).plain == ""
    listed = cli("runs", "--db", db).stdout.splitlines()
    assert f"\tafter {a},{b}\t" in listed[-1]
    st.claim_next("w", None)
    shown = cli("show", str(c), "--db", db).stdout
    assert f"after     run {a} (running), run {b} (queued); it starts once all are done" in shown
    assert json.loads(cli("show", str(c), "--json", "--db", db).stdout)["waits_for"][0] == dict(
        run=a, attempt=a, status="running"
    )
    assert "no run 99 in this store (--after)" in one_clear_line(
        cli("queue", "prompt", "-d", "toy-sentiment", "--after", "99", "--db", db)
    )
    assert "bad run ids" in one_clear_line(cli("queue", "prompt", "-d", "toy-sentiment", "--after", "x", "--db", db))
    assert len(st.runs()) == 3


def test_a_schema_9_store_gains_the_after_column(db):
    import sqlite3

    st = Store.open(db)
    queue(st, 1)
    st.close()
    con = sqlite3.connect(db)
    con.executescript("""ALTER TABLE run DROP COLUMN "after";
                         UPDATE pgg_meta SET value = '9' WHERE key = 'schema_version';""")
    con.close()
    st = Store.open(db)
    assert st.schema_version() == 10 and st.get(1).after == "[]"
    assert queue(st, 1, after=[1]) == [2] and st.claim_next("w", None).id == 1
