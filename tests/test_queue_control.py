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
