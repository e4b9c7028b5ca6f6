"""Bad input and faults: one clear line, nothing recorded as done, no row lost but the bad one."""

import sqlite3
import threading
import time

import pytest
import sqlalchemy as sa

from engine.config import to_json
from engine.errors import ConfigError, EngineError, StoreError
from engine.prompt.data import Example
from engine.prompt.scorer import UserScorer
from engine.registry import plan_runs
from engine.report import StoreReporter
from engine.scheduler import DEFAULT_COMMAND
from engine.store import Store, display_url
from support.runs import engine_run


@pytest.mark.parametrize(
    "setting, message",
    [
        ("policy_lr=nan", "finite"),
        ("reward_lr=inf", "finite"),
        ("top_k=0", "positive"),
        ("reward_subset=1.5", r"\(0, 1\]"),
        ("lr_decay=0", r"\(0, 1\]"),
        ("device=gpu", "auto, cpu, cuda"),
        ("policy_model=", "empty"),
        ("task_model= ", "empty"),
        ("scorer=no_such_module:f", "no module"),
        ("scorer=not a spec", "package.module:function"),
        ("max_steps=99999999999999999999", "out of range"),
        ("time_limit=-1", "negative"),
    ],
)
def test_queue_refuses_what_can_be_known_then(setting, message):
    with pytest.raises(ConfigError, match=message) as err:
        plan_runs("prompt", "toy-sentiment", preset="tiny", overrides=[setting])
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    "fn, message",
    [("not_a_number", "finite"), ("not_numbers", "other than numbers"), ("wrong_length", "returned 1 scores")],
)
def test_a_user_scorer_breaking_its_contract_fails_with_one_line(fn, message):
    with pytest.raises(EngineError, match=message):
        UserScorer(f"support.synthetic_scorer:{fn}").score(["a", "b"], [Example("x", 0)])


def test_only_the_rejected_row_is_dropped(db, capfd):
    st = Store.open(db)
    (rid,) = st.queue(plan_runs("prompt", "toy-sentiment"), to_json)
    rep = StoreReporter(st, rid, interval=3600)
    for step in range(75):
        rep.metrics(step, {"policy/loss": 1.0})
    with rep._lock:  # a value the integer column cannot hold: the old flush lost all 75 rows with it
        rep._metrics.append(dict(step=2**70, phase="policy", name="bad", value=1.0, time=time.time()))
    rep.log("text with a NUL \x00 byte")
    rep.close()
    names = [m.name for m in st.metrics(rid)]
    assert names.count("policy/loss") == 75 and "bad" not in names
    assert "\x00" not in st.logs(rid)[0].text
    assert "rejected 1 row(s)" in capfd.readouterr().err


def test_flush_returns_only_after_earlier_rows_are_stored(db):
    st = Store.open(db)
    (rid,) = st.queue(plan_runs("prompt", "toy-sentiment"), to_json)
    rep = StoreReporter(st, rid, interval=3600)
    real = st.append
    entered = threading.Event()

    def slow(*a, **k):  # the writer thread's flush is mid-transaction when the checkpoint's flush starts
        entered.set()
        time.sleep(0.5)
        return real(*a, **k)

    st.append = slow
    for step in range(50):
        rep.metrics(step, {"policy/loss": 1.0})
    t = threading.Thread(target=rep.flush)
    t.start()
    entered.wait(5)
    rep.flush()  # returned before the rows were in, with the old lock
    assert len(st.metrics(rid)) == 50
    t.join()
    rep.close()


def test_store_without_a_schema_version_is_refused_with_one_line(db):
    Store.open(db).close()
    con = sqlite3.connect(db)
    con.execute("DELETE FROM pgg_meta WHERE key = 'schema_version'")
    con.commit()
    con.close()
    with pytest.raises(StoreError, match="no readable schema version"):
        Store.open(db)


def test_passwords_stay_out_of_argv_and_messages():
    url = "postgresql+psycopg://pgg:s3cret@db.example:5432/pgg"
    assert "s3cret" not in display_url(url) and "***" in display_url(url)
    assert "{db}" not in DEFAULT_COMMAND  # the run gets the URL through PGG_DB
    with pytest.raises(StoreError) as err:
        Store.open("postgresql+nosuchdriver://pgg:s3cret@localhost/pgg")
    assert "s3cret" not in str(err.value)


def test_the_app_says_where_its_store_is_and_that_it_made_it(tmp_path, monkeypatch):
    from pgg_tui.app import make_app

    monkeypatch.chdir(tmp_path)
    app = make_app()
    assert app.created and app.store.location == str(tmp_path / "experiments.db")
    again = make_app()
    assert not again.created


def test_an_unreachable_store_is_retried_then_reported(db, monkeypatch):
    import engine.store as store_mod

    st = Store.open(db)
    (rid,) = st.queue(plan_runs("prompt", "toy-sentiment"), to_json)
    st.claim_next("w", None)
    calls = {"n": 0}
    real = st._move

    def flaky(*a, **k):
        calls["n"] += 1
        if calls["n"] <= 2:
            raise sa.exc.OperationalError("UPDATE", {}, Exception("disk I/O error"))
        return real(*a, **k)

    monkeypatch.setattr(st, "_move", flaky)
    monkeypatch.setattr(store_mod.time, "sleep", lambda s: None)
    assert st.finish(rid, {"test/accuracy": 1.0}) and st.get(rid).status == "done"
    monkeypatch.setattr(store_mod, "OUTAGE_PATIENCE", 0.0)
    calls["n"] = -100
    with pytest.raises(StoreError, match="unreachable"):
        st.fail(rid, "x")


def test_a_store_that_cannot_be_written_is_still_read(db, monkeypatch):
    from engine import sqlite_file

    st = Store.open(db)
    st.queue(plan_runs("prompt", "toy-sentiment", seeds="0-1"), to_json)
    st.close()
    monkeypatch.setattr(sqlite_file, "writable", lambda path: False)  # read-only media, as seen by access(2)
    with pytest.raises(StoreError, match="read-only"):
        Store.open(db)  # a writer is told at once
    ro = Store.open(db, create=False, read_only_ok=True)
    assert [r.id for r in ro.runs()] == [1, 2] and ro.read_only
    with pytest.raises(StoreError, match="open read-only"):
        ro.request_cancel([1])


@pytest.mark.slow
def test_a_run_marked_lost_that_comes_back_stops_and_writes_nothing_more(db):
    """Fencing: a run whose worker marked it lost (it was stopped, or cut off from the store) and that then
    resumes must not train on to the end writing rows under the lost id while its retry trains the same seed."""
    st = Store.open(db)
    (rid,) = st.queue(
        plan_runs(
            "prompt", "toy-sentiment", "seq-reinforce", preset="tiny", overrides=["max_steps=100000", "eval_every=1000"]
        ),
        to_json,
    )
    proc = engine_run(db, rid)
    deadline = time.monotonic() + 120
    while st.get(rid).step < 5:
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.poll() else "slow"
        time.sleep(0.05)
    assert st.end(rid, "lost", "no heartbeat (the test)")
    with st.read() as s:
        rows_then = (
            s.connection().execute(sa.text("SELECT COUNT(*) FROM metric WHERE run_id = :r"), {"r": rid}).scalar()
        )
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1 and "was recorded lost while it trained" in err
    with st.read() as s:
        rows_now = s.connection().execute(sa.text("SELECT COUNT(*) FROM metric WHERE run_id = :r"), {"r": rid}).scalar()
    assert rows_now == rows_then  # nothing written after the mark
    run = st.get(rid)
    assert run.status == "lost" and run.step < 100000


def test_a_checkpoint_write_on_a_full_disk_fails_with_one_line_and_leaves_no_torn_file(tmp_path, monkeypatch):
    """torch.save turns the OSError of a failed write into "[enforce fail at inline_container.cc] unexpected
    pos" and the torn .tmp kept the space it took; now: one line naming the file and the cause, the .tmp
    gone, the checkpoint before it intact."""
    import errno
    import io

    import torch

    from engine import checkpoint

    path = tmp_path / "ckpt" / "last.pt"
    checkpoint.save(path, dict(step=1), None)

    class FullDisk(io.FileIO):
        def write(self, b):  # the first 1,000 bytes fit, then the disk is full
            if self.tell() + len(b) > 1000:
                raise OSError(errno.ENOSPC, "No space left on device")
            return super().write(b)

    monkeypatch.setattr(checkpoint, "open", lambda p, mode: FullDisk(p, mode), raising=False)
    with pytest.raises(EngineError, match="cannot write checkpoint .*last.pt: No space left on device") as err:
        checkpoint.save(path, dict(step=2, weights=torch.zeros(10_000)), None)
    assert "\n" not in str(err.value)
    assert not path.with_name("last.pt.tmp").exists()
    assert checkpoint.load(path, None, torch.device("cpu"))["step"] == 1


def test_a_worker_does_not_hold_a_store_outage_against_its_runs_heartbeats(db, tmp_path):
    """The store was down (a PostgreSQL restart): no run could write its heartbeat and the worker could not read
    one. Its first tick once the store is back marked every run lost and SIGKILLed its own (the runs were
    fine, waiting for the store); now heartbeats are judged from the store's return."""
    import subprocess
    import sys

    from engine.scheduler import Child, Worker, make_slots
    from engine.schema import Run

    st = Store.open(db)
    mine, elsewhere = st.queue(plan_runs("prompt", "toy-sentiment", seeds="0-1"), to_json)
    said: list[str] = []
    w = Worker(st, make_slots([], cpu_slots=2), poll=0.01, lost_after=60, log=said.append)
    w.acquire()
    st.claim_next(w.name, None, host=w.host)
    st.claim_next("other:1", None, host="other")
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    try:
        st.set_pid(mine, sleeper.pid)
        w.children[mine] = Child(mine, w.slots[0], sleeper.pid, None, (tmp_path / "o", tmp_path / "e"))
        real, calls = w._heartbeat, []

        def down_then_back():
            calls.append(1)
            if len(calls) == 1:  # 200 s of outage pass: the runs' last beats are that old when it ends
                with st.write() as s:
                    s.execute(sa.update(Run).values(heartbeat_at=time.time() - 200))
            if len(calls) <= 2:
                raise sa.exc.OperationalError("UPDATE", {}, Exception("connection refused"))
            real()

        w._heartbeat = down_then_back
        w.serve(max_seconds=0.3)
        assert st.get(mine).status == "running" and sleeper.poll() is None
        assert st.get(elsewhere).status == "running"
        assert len(calls) > 3 and any("store back" in m for m in said)
    finally:
        sleeper.kill()
        sleeper.wait()


def test_a_phase_boundary_outlasts_a_store_outage_of_five_minutes(db, monkeypatch):
    """A PostgreSQL restart or failover can take minutes: a run at a phase boundary gave up after two, failing
    and dropping every row it had buffered since the outage began (334 rows of two tiny runs in
    `benchmarks/faults.py --only pg_outage`). Measured on a fake clock."""
    import contextlib
    import types

    import engine.store as store_mod

    st = Store.open(db)
    (rid,) = st.queue(plan_runs("prompt", "toy-sentiment"), to_json)
    st.claim_next("w", None)
    clock = [0.0]
    fake = types.SimpleNamespace(monotonic=lambda: clock[0], sleep=lambda s: clock.__setitem__(0, clock[0] + s))
    monkeypatch.setattr(store_mod, "time", fake)
    real_write = st.write

    @contextlib.contextmanager
    def write():
        if clock[0] < 300:
            raise sa.exc.OperationalError("INSERT", {}, Exception("connection refused"))
        with real_write() as s:
            yield s

    monkeypatch.setattr(st, "write", write)
    assert st.start_phase(rid, "policy", 1, 0) > 0 and clock[0] >= 300
    assert [p.kind for p in st.phases(rid)] == ["policy"]
