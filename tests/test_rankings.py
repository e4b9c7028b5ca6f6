"""Rankings by people: requests and claims in the store (SQLite and PostgreSQL), ranking files, and the
pool a run waits on (engine.preferences)."""

import json
import threading
import time

import pytest

from engine import rankings
from engine.config import to_json
from engine.errors import Cancelled, ConfigError, EngineError
from engine.preferences import Pool, Ranked, human_count, is_heldout
from engine.registry import plan_runs
from engine.report import StoreReporter
from engine.store import Store
from pgg_tui.core.ranking import Order


def request(i, k=3):
    return rankings.Request(
        context=f"article {i}",
        payload={"n": i},
        candidates=[dict(text=f"summary {i}.{c}", tokens=[f"s{c}"], rewards=[0.5]) for c in range(k)],
    )


def running_run(st, **overrides):
    sets = [f"{k}={v}" for k, v in overrides.items()]
    (rid,) = st.queue(plan_runs("summarize", "toy-news", "pgg", preset="tiny", overrides=sets), to_json)
    st.claim_next("w", None)
    return rid


def test_two_rankers_never_get_the_same_request(store_url):
    st = Store.open(store_url)
    rid = running_run(st)
    ids = rankings.ask(st, rid, 1, "summarize", [request(i) for i in range(12)])
    a, b = rankings.claim(st, "ana"), rankings.claim(st, "bob")
    assert a.id != b.id and {a.id, b.id} <= set(ids)
    assert rankings.claim(st, "ana").id == a.id  # one's own claim comes back, not a second one

    got: dict[str, list[int]] = {}

    def rank(name):  # four people at once, each ranking until nothing is left
        st_ = Store.open(store_url)
        while (r := rankings.claim(st_, name)) is not None:
            rankings.submit(st_, r.id, [2, 0, 1], name)
            got.setdefault(name, []).append(r.id)

    threads = [threading.Thread(target=rank, args=(n,)) for n in ("ana", "bob", "cy", "dee")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    done = [i for ids_ in got.values() for i in ids_]
    assert sorted(done) == sorted(ids) and len(set(done)) == len(done)  # each ranked once, none twice
    assert rankings.answers(st, ids) == {i: [2, 0, 1] for i in ids}
    assert rankings.open_count(st) == 0


def test_submit_checks_the_order_and_whose_request_it_is(store_url):
    st = Store.open(store_url)
    rid = running_run(st)
    (i,) = rankings.ask(st, rid, 1, "summarize", [request(0)])
    assert rankings.claim(st, "ana").id == i
    for bad in ([0, 1], [0, 1, 1], [0, 1, 3]):
        with pytest.raises(ConfigError, match="is not an ordering of the 3 candidates"):
            rankings.submit(st, i, bad, "ana")
    with pytest.raises(ConfigError, match="is held by ana"):
        rankings.submit(st, i, [0, 1, 2], "bob")
    rankings.submit(st, i, [1, 0, 2], "ana")
    with pytest.raises(ConfigError, match="was already ranked"):
        rankings.submit(st, i, [0, 1, 2], "ana")
    (rec,) = rankings.export(st)
    assert rec["order"] == [1, 0, 2] and rec["annotator"] == "ana" and rec["run"] == rid
    assert rec["candidates"] == ["summary 0.0", "summary 0.1", "summary 0.2"]


def test_skip_release_and_a_lapsed_claim(store_url):
    st = Store.open(store_url)
    rid = running_run(st)
    first, second = rankings.ask(st, rid, 1, "summarize", [request(0), request(1)])
    assert rankings.claim(st, "ana").id == first
    rankings.skip(st, first, "ana")
    assert rankings.claim(st, "ana").id == second  # not offered the skipped one again
    assert rankings.claim(st, "bob").id == first  # someone else is
    rankings.release(st, first, "bob")
    assert rankings.claim(st, "cy").id == first
    # a closed terminal never releases: its claim lapses
    assert rankings.claim(st, "dee") is None
    assert rankings.claim(st, "dee", stale_after=0.0).id == first


def test_a_resumed_run_gets_back_the_requests_it_asked(store_url):
    st = Store.open(store_url)
    rid = running_run(st)
    ids = rankings.ask(st, rid, 1, "summarize", [request(i) for i in range(3)])
    rankings.expire(st, rid)  # the first process was killed while waiting
    assert rankings.asked(st, rid, 1) == ids
    assert rankings.ask(st, rid, 1, "summarize", [request(9)]) == ids  # nothing asked twice
    assert rankings.open_count(st, rid) == 3  # and they are open again
    assert rankings.ask(st, rid, 2, "summarize", [request(9)]) != ids  # the next training asks anew


def test_an_ended_run_withdraws_its_requests_and_deleting_it_keeps_the_answers(store_url):
    st = Store.open(store_url)
    rid = running_run(st)
    a, _ = rankings.ask(st, rid, 1, "summarize", [request(0), request(1)])
    rankings.claim(st, "ana")
    rankings.submit(st, a, [0, 1, 2], "ana")
    st.end(rid, "cancelled")
    assert rankings.open_count(st) == 0 and rankings.claim(st, "bob") is None
    assert st.get(rid).waiting_for == 0
    st.delete([rid])
    (rec,) = rankings.export(st)
    assert rec["run"] is None and rec["order"] == [0, 1, 2]  # rankings are data: they outlive the run


# ---------------------------------------------------------------------------------------------------
# files


def write(path, lines):
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines))
    return path


def test_import_then_export_round_trips(db, tmp_path):
    st = Store.open(db)
    src = write(
        tmp_path / "in.jsonl",
        [
            dict(
                context="a", candidates=["x", "y", "z"], order=[2, 0, 1], annotator="ana", time=1.5e9, task="summarize"
            ),
            dict(context="b ünïcode", candidates=["p", "q"], order=[1, 0]),
        ],
    )
    assert rankings.import_records(st, rankings.read_file(src)) == 2
    first = rankings.export(st)
    assert [(r["context"], r["candidates"], r["order"]) for r in first] == [
        ("a", ["x", "y", "z"], [2, 0, 1]),
        ("b ünïcode", ["p", "q"], [1, 0]),
    ]
    assert first[0]["annotator"] == "ana" and first[0]["time"] == 1.5e9
    out = tmp_path / "out.jsonl"
    rankings.write_file(first, out)
    again = Store.open(str(tmp_path / "other.db"))
    rankings.import_records(again, rankings.read_file(out))
    assert rankings.export(again) == first


@pytest.mark.parametrize(
    "line,message",
    [
        ("not json", "in.jsonl:1: not JSON"),
        ("[1, 2]", "in.jsonl:1: expected a JSON object"),
        ('{"candidates": ["a"], "order": [0]}', "candidates must be a list of at least 2 texts"),
        ('{"candidates": ["a", "b"], "order": [0, 0]}', "order must list every candidate index once"),
        ('{"candidates": ["a", "b"], "order": [1]}', "order must list every candidate index once"),
        ('{"context": 3, "candidates": ["a", "b"], "order": [1, 0]}', "context must be text"),
    ],
)
def test_a_bad_ranking_file_is_one_line_naming_where(tmp_path, line, message):
    with pytest.raises(ConfigError, match=message):
        rankings.read_file(write(tmp_path / "in.jsonl", [line]))


def test_a_ranking_file_must_match_the_runs_k(tmp_path):
    path = write(tmp_path / "in.jsonl", [dict(candidates=["a", "b"], order=[1, 0])])
    with pytest.raises(ConfigError, match="2 candidates, but the run ranks lists of reward_k=3"):
        rankings.read_file(path, 3)
    with pytest.raises(ConfigError, match="is empty"):
        rankings.read_file(write(tmp_path / "empty.jsonl", [""]))


def test_pairwise_preferences_become_lists_of_two_chosen_first(tmp_path):
    lines = rankings.read_jsonl(write(tmp_path / "p.jsonl", [dict(prompt="q", chosen="good", rejected="bad")]))
    assert rankings.from_pairs(lines) == [
        dict(context="q", candidates=["good", "bad"], order=[0, 1], annotator="pairs")
    ]
    with pytest.raises(ConfigError, match="p.jsonl:1: expected chosen and rejected"):
        rankings.from_pairs(rankings.read_jsonl(write(tmp_path / "p.jsonl", [dict(prompt="q", chosen="good")])))


# ---------------------------------------------------------------------------------------------------
# the pool a run trains on


def test_a_ranking_becomes_listmle_targets_best_highest():
    r = Ranked("c", ["a", "b", "c", "d"], order=[2, 0, 3, 1])
    assert r.scores() == [3.0, 1.0, 4.0, 2.0]  # candidate 2 first: K; candidate 1 last: 1


def test_held_out_lists_are_every_nth_so_any_prefix_holds_its_share():
    assert [i for i in range(12) if is_heldout(i, 0.25)] == [3, 7, 11]
    assert [i for i in range(5) if is_heldout(i, 0.5)] == [1, 3]
    assert not any(is_heldout(i, 0.0) for i in range(10))


def test_how_many_of_an_updates_lists_come_from_people():
    class C:
        preference, human_share = "mixed", 0.25

    assert human_count(C, 32) == 8 and human_count(C, 2) == 1  # at least one
    C.preference = "human"
    assert human_count(C, 32) == 32
    C.preference = "auto"
    assert human_count(C, 32) == 0


def pool_for(st, **overrides):
    rid = running_run(st, preference="human", **overrides)
    cfg = plan_runs(
        "summarize",
        "toy-news",
        "pgg",
        preset="tiny",
        overrides=["preference=human"] + [f"{k}={v}" for k, v in overrides.items()],
    )[0].config
    rep = StoreReporter(st, rid, interval=0.1)
    return rid, rep, Pool(cfg, rep, "summarize")


def test_the_run_waits_for_its_rankings_with_its_heartbeat_alive_then_trains_on_them(db, monkeypatch):
    monkeypatch.setattr("engine.preferences.POLL", 0.05)
    st = Store.open(db)
    rid, rep, pool = pool_for(st, rank_lists=4, rank_heldout=0.25)
    waited = threading.Thread(target=pool.collect, args=(1, lambda n: [request(i) for i in range(n)], None))
    waited.start()
    deadline = time.monotonic() + 20
    while st.get(rid).waiting_for != 4:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    beat = st.get(rid).heartbeat_at
    deadline = time.monotonic() + 10  # the reporter beats every 0.1 s; a loaded machine may be slower
    while st.get(rid).heartbeat_at <= beat and time.monotonic() < deadline:
        time.sleep(0.05)
    assert st.get(rid).heartbeat_at > beat and waited.is_alive()  # alive, and still waiting
    while (r := rankings.claim(st, "ana")) is not None:
        rankings.submit(st, r.id, [1, 2, 0], "ana")
    waited.join(20)
    assert not waited.is_alive()
    rep.close()
    assert st.get(rid).waiting_for == 0
    assert len(pool.train) == 3 and len(pool.heldout) == 1  # the 4th list of 4 is held out
    assert all(r.order == [1, 2, 0] and r.annotator == "ana" for r in pool.lists)
    assert [r.payload["n"] for r in pool.lists] == [0, 1, 2, 3]  # the engine's own data comes back

    # the next training's lists continue the count: with 2 per training and 1 in 4 held out, the 4th is
    waited = threading.Thread(target=pool.collect, args=(2, lambda n: [request(i) for i in range(4, 4 + n)], None))
    rep = StoreReporter(st, rid, interval=0.1)
    pool.reporter = rep
    waited.start()
    while len(rankings.asked(st, rid, 2)) < 4:
        time.sleep(0.05)
    while (r := rankings.claim(st, "bob")) is not None:
        rankings.submit(st, r.id, [0, 1, 2], "bob")
    waited.join(20)
    rep.close()
    assert [r.payload["n"] for r in pool.heldout] == [3, 7]


def test_cancel_while_waiting_stops_the_run_and_withdraws_its_requests(db, monkeypatch):
    monkeypatch.setattr("engine.preferences.POLL", 0.05)
    st = Store.open(db)
    rid, rep, pool = pool_for(st, rank_lists=2)
    errors = []

    def collect():
        try:
            pool.collect(1, lambda n: [request(i) for i in range(n)], None)
        except Cancelled as err:
            errors.append(err)

    t = threading.Thread(target=collect)
    t.start()
    while st.get(rid).waiting_for != 2:
        time.sleep(0.05)
    st.request_cancel([rid])
    t.join(20)
    rep.close()
    assert errors and rankings.open_count(st) == 0


@pytest.mark.parametrize("fallback", ["auto", "fail"])
def test_a_time_limit_falls_back_to_the_automatic_score_or_fails(db, monkeypatch, fallback):
    monkeypatch.setattr("engine.preferences.POLL", 0.05)
    st = Store.open(db)
    rid, rep, pool = pool_for(st, rank_lists=3, rank_heldout=0.0, rank_timeout=0.005, rank_fallback=fallback)
    ids = []
    # the limit passes once one list is ranked, however loaded the machine (a wall clock raced the helper)
    monkeypatch.setattr("engine.preferences.clock", lambda: 1e9 if ids else 0.0)

    def make(n):
        return [request(i) for i in range(n)]

    def answer_one():
        while not rankings.asked(st, rid, 1):
            time.sleep(0.02)
        r = rankings.claim(st, "ana")
        rankings.submit(st, r.id, [0, 1, 2], "ana")
        ids.append(r.id)

    helper = threading.Thread(target=answer_one)
    helper.start()
    auto_calls = []

    def auto_order(lists):
        auto_calls.append([r.payload["n"] for r in lists])
        return [[2, 1, 0] for _ in lists]

    if fallback == "fail":
        with pytest.raises(EngineError, match="2 of 3 rankings still missing after rank_timeout"):
            pool.collect(1, make, auto_order)
    else:
        pool.collect(1, make, auto_order)
        assert auto_calls == [[1, 2]]  # the two nobody ranked, by the automatic score
        assert [(r.order, r.annotator) for r in pool.lists] == [
            ([0, 1, 2], "ana"),
            ([2, 1, 0], "auto (timeout)"),
            ([2, 1, 0], "auto (timeout)"),
        ]
    helper.join(10)
    rep.close()
    assert rankings.open_count(st) == 0  # withdrawn either way


def test_the_rank_screens_order_keys():
    o = Order(4)
    assert o.pick(3) and o.order == [2, 0, 1, 3] and o.placed == 1
    assert not o.pick(3)  # already placed
    assert not o.pick(7)  # no such candidate
    assert o.pick(4) and o.pick(2)  # the last one needs no key
    assert o.order == [2, 3, 1, 0] and o.complete
    o.reset()
    o.go(2)
    o.move(-1)
    assert o.order == [0, 2, 1, 3] and o.cursor == 1
    o.move(-1)
    o.move(-1)  # at the top already
    assert o.order == [2, 0, 1, 3] and o.cursor == 0


@pytest.mark.parametrize(
    "line,message",
    [
        ('{"candidates": ["a", "b"], "order": [true, false]}', "as whole numbers"),
        ('{"candidates": ["a", "b"], "order": [1.0, 0.0]}', "as whole numbers"),
        ('{"candidates": ["a", "b"], "order": [1, 0], "time": "yesterday"}', "time must be seconds since 1970"),
        ('{"candidates": ["a", "b"], "order": [1, 0], "time": [1]}', "time must be seconds since 1970"),
        ('{"candidates": ["a", "b"], "order": [1, 0], "time": 1e400}', "time must be seconds since 1970"),
        ('{"candidates": ["a", "b"], "order": [1, 0], "time": NaN}', "time must be seconds since 1970"),
        ('{"candidates": ["a", "b"], "order": [1, 0], "heldout": "no"}', "heldout must be true or false"),
        ('{"candidates": ["a", "b"], "order": [1, 0], "annotator": {"x": 1}}', "annotator must be text"),
        ('{"candidates": ["a\\u0000", "b"], "order": [1, 0]}', "a candidate holds a NUL character"),
        ('{"context": "x": 1}', "not JSON"),
        ("[" * 200000 + "]" * 200000, "nested too deeply|expected a JSON object"),
    ],
)
def test_ranking_fields_are_checked_one_by_one(tmp_path, line, message):
    """Each passed the old checks (or broke them with a traceback) and was stored wrongly or not at all."""
    with pytest.raises(ConfigError, match=message):
        rankings.read_file(write(tmp_path / "in.jsonl", [line]))


def test_importing_twice_or_an_export_into_its_own_store_adds_nothing_twice(db, tmp_path):
    st = Store.open(db)
    src = write(
        tmp_path / "in.jsonl",
        [dict(context=f"c{i}", candidates=["x", "y"], order=[i % 2, 1 - i % 2], annotator="ana") for i in range(7)]
        + [dict(context="c0", candidates=["x", "y"], order=[0, 1], annotator="ana")],
    )
    first = rankings.import_stream(st, rankings.iter_file(src), batch=3)  # a repeat inside the file, across batches
    assert (first.added, first.skipped) == (7, 1)
    again = rankings.import_stream(st, rankings.iter_file(src), batch=3)
    assert (again.added, again.skipped) == (0, 8)
    out = tmp_path / "out.jsonl"
    rankings.write_file(rankings.export(st), out)
    assert rankings.import_stream(st, rankings.iter_file(out)).added == 0
    assert rankings.answered_count(st) == 7


def test_a_bad_line_at_the_end_of_a_file_imports_nothing(db, tmp_path):
    from support.cli import one_clear_line, pgg

    good = [dict(context=f"c{i}", candidates=["x", "y"], order=[0, 1]) for i in range(5)]
    src = write(tmp_path / "in.jsonl", good + ['{"candidates": ["a", "b"], "order": [true, false]}'])
    assert "in.jsonl:6: order must list" in one_clear_line(pgg("rankings", "import", str(src), "--db", db))
    assert rankings.answered_count(Store.open(db)) == 0
    fine = write(tmp_path / "ok.jsonl", good)
    r = pgg("rankings", "import", str(fine), "--db", db)
    assert r.exit_code == 0 and "imported 5 ranked list(s)" in r.stderr
    r = pgg("rankings", "import", str(fine), "--db", db)
    assert "imported 0 ranked list(s); skipped 5 already in the store" in r.stderr
