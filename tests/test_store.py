"""The store: opening safely, migrations, and the run lifecycle."""

import hashlib
import os
import sqlite3
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from engine import schema as schema_mod
from engine import sqlite_file
from engine import store as store_mod
from engine.config import to_json
from engine.errors import ConfigError, StoreError
from engine.registry import plan_runs
from engine.store import Store
from support.runs import queue_seeds


@pytest.fixture
def url(store_url):
    """The lifecycle tests run on SQLite and on a real PostgreSQL server (tests/pg_server.py)."""
    return store_url


def queue(st, n=1):
    return queue_seeds(st, n, preset="tiny")


def digest(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def test_creates_wal_store_with_version(db):
    st = Store.open(db)
    assert st.schema_version() == schema_mod.SCHEMA_VERSION
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert dict(con.execute("select key, value from pgg_meta").fetchall())["app"] == "pgg"


def test_reader_does_not_create(db):
    with pytest.raises(StoreError, match="no store"):
        Store.open(db, create=False)
    assert not os.path.exists(db)


@pytest.mark.parametrize(
    "content,match",
    [
        (b"hello, this is a text file\n" * 10, "not a SQLite database"),
        (None, "another program"),
        ("truncated", "damaged or truncated"),
        ("newer", "newer pgg"),
    ],
)
def test_refuses_files_it_does_not_own_and_leaves_them_alone(db, content, match):
    if content is None:
        con = sqlite3.connect(db)
        con.execute("create table users (id integer primary key, name text)")
        con.execute("insert into users values (1, 'ada')")
        con.commit()
        con.close()
    elif content == "truncated":
        st = Store.open(db)
        queue(st, 3)
        st.close()
        data = Path(db).read_bytes()
        if os.path.exists(db + "-wal"):
            os.remove(db + "-wal")
        Path(db).write_bytes(data[: len(data) // 2])
    elif content == "newer":
        Store.open(db).close()
        con = sqlite3.connect(db)
        con.execute("update pgg_meta set value='99' where key='schema_version'")
        con.commit()
        con.close()
    else:
        Path(db).write_bytes(content)
    before = digest(db)
    with pytest.raises(StoreError, match=match):
        Store.open(db)
    assert digest(db) == before
    assert not os.path.exists(db + "-wal") or content in ("newer",)


def test_read_only_location(tmp_path, monkeypatch):
    # os.access is what Store.open asks; make it say no (chmod does not stop root, which CI may be).
    monkeypatch.setattr(store_mod.os, "access", lambda *a, **k: False)
    with pytest.raises(StoreError, match="not writable"):
        Store.open(str(tmp_path / "x.db"))
    assert not (tmp_path / "x.db").exists()


def test_older_store_is_migrated(url, monkeypatch):
    st = Store.open(url)
    ids = queue(st, 2)
    st.close()

    def add_note(conn):
        conn.execute(sa.text("ALTER TABLE run ADD COLUMN note VARCHAR(200)"))

    future = schema_mod.SCHEMA_VERSION + 1
    monkeypatch.setattr(schema_mod, "SCHEMA_VERSION", future)
    monkeypatch.setitem(schema_mod.MIGRATIONS, future, add_note)
    st = Store.open(url)
    assert st.schema_version() == future
    cols = {c["name"] for c in sa.inspect(st.engine).get_columns("run")}
    assert "note" in cols
    assert [r.id for r in st.runs()] == ids  # no row lost


def test_lifecycle(url):
    st = Store.open(url)
    a, b, c = queue(st, 3)
    run = st.claim_next("w1", "0")
    assert (run.id, run.status, run.gpu, run.worker) == (a, "running", "0", "w1")
    st.finish(a, {"test/accuracy": 91.0})
    assert st.get(a).status == "done"
    with pytest.raises(ConfigError, match="already done"):
        st.request_cancel([a])
    assert st.request_cancel([b]) == [f"run {b}: cancelled"]
    st.claim_next("w1", None)
    assert "cancel requested" in st.request_cancel([c])[0]
    assert st.get(c).cancel_requested
    st.fail(c, "boom")
    (d,) = st.retry([c])
    new = st.get(d)
    assert (new.status, new.attempt, new.parent_id, new.config) == ("queued", 2, c, st.get(c).config)
    with pytest.raises(ConfigError, match="queued; only failed, cancelled or lost"):
        st.retry([d])
    with pytest.raises(ConfigError, match="no run 999"):
        st.retry([999])


def test_claim_is_atomic_across_threads(url):
    st = Store.open(url)
    ids = queue(st, 20)
    claimed, errors = [], []

    def claimer(name):
        s = Store.open(url)
        try:
            while (r := s.claim_next(name, None)) is not None:
                claimed.append(r.id)
        except Exception as err:  # pragma: no cover - the assertion below reports it
            errors.append(err)

    threads = [threading.Thread(target=claimer, args=(f"w{i}",)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sorted(claimed) == ids


def test_mark_lost_by_heartbeat_and_by_dead_pid(url):
    st = Store.open(url)
    a, b = queue(st, 2)
    st.claim_next("w", None)
    st.claim_next("w", None)
    st.set_pid(b, 2**22 + 12345)  # no such process
    import socket

    assert st.mark_lost(3600, host=socket.gethostname()) == [b]
    with st.write() as s:
        s.execute(sa.update(store_mod.Run).where(store_mod.Run.id == a).values(heartbeat_at=1.0))
    assert st.mark_lost(60) == [a]
    assert "pgg retry" in st.get(a).error


def test_delete_refuses_running(url):
    st = Store.open(url)
    a, b = queue(st, 2)
    st.claim_next("w", None)
    st.append(a, [dict(step=1, phase="policy", name="x", value=1.0)], [], [], None)
    with pytest.raises(ConfigError, match="running"):
        st.delete([a])
    st.delete([b])
    assert [r.id for r in st.runs()] == [a]
    assert len(st.metrics(a)) == 1


def test_append_is_incremental(url):
    st = Store.open(url)
    (a,) = queue(st)
    st.append(
        a,
        [dict(step=i, phase="policy", name="policy/loss", value=float(i)) for i in range(5)],
        [],
        [],
        {"step": 4, "total_steps": 10},
    )
    first = st.metrics(a)
    st.append(a, [dict(step=5, phase="policy", name="policy/loss", value=5.0)], [], [], None)
    assert [m.step for m in st.metrics(a, after_id=first[-1].id)] == [5]
    assert st.latest_metrics([a], ["policy/loss"]) == {(a, "policy/loss"): 5.0}
    assert (st.get(a).step, st.get(a).total_steps) == (4, 10)


def test_backup_is_one_consistent_file_while_a_run_writes(db, tmp_path):
    """`cp experiments.db` leaves behind what is still in experiments.db-wal: the copy silently lacks
    committed rows. `pgg backup` copies a snapshot holding every row committed before it began."""
    st = Store.open(db)
    (rid,) = st.queue(plan_runs("prompt", "toy-sentiment"), to_json)
    st.claim_next("w", None)
    stop = threading.Event()

    def writer():
        step = 0
        while not stop.is_set():
            st.append(rid, [dict(step=step, phase="policy", name="policy/loss", value=float(step))], [], [], None)
            step += 1

    t = threading.Thread(target=writer)
    t.start()
    try:
        while len(st.metrics(rid)) < 200:
            time.sleep(0.01)
        before = len(st.metrics(rid))
        assert st.backup(tmp_path / "copy.db") == 1
    finally:
        stop.set()
        t.join()
    assert not (tmp_path / "copy.db-wal").exists() and not (tmp_path / "copy.db.partial").exists()
    con = sqlite3.connect(tmp_path / "copy.db")
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    con.close()
    copy = Store.open(str(tmp_path / "copy.db"), create=False)
    values = [m.value for m in copy.metrics(rid)]
    assert len(values) >= before and values == [float(i) for i in range(len(values))]  # a prefix, no gaps
    with pytest.raises(ConfigError, match="exists"):
        st.backup(tmp_path / "copy.db")


def test_each_phase_leaves_one_log_line_with_what_it_reached(db):
    from engine.report import StoreReporter

    st = Store.open(db)
    (rid,) = st.queue(plan_runs("prompt", "toy-sentiment"), to_json)
    st.claim_next("w", None)
    rep = StoreReporter(st, rid, interval=3600)
    rep.begin_phase("reward", 0)
    rep.metrics(3, {"reward/loss": 4.0, "reward/best_val_loss": 3.25, "reward/tau": 0.5})
    rep.phase_progress(3, 120)
    rep.flush()
    assert (st.get(rid).phase, st.get(rid).phase_step, st.get(rid).phase_total) == ("reward 1", 3, 120)
    rep.begin_phase("policy", 0)  # ends reward 1
    rep.flush()
    assert (st.get(rid).phase, st.get(rid).phase_step, st.get(rid).phase_total) == ("policy", 0, 0)
    rep.metrics(10, {"policy/loss": 0.125, "dev/score": 61.0})
    rep.end_phase(10)
    rep.close()
    lines = [x.text for x in st.logs(rid)]
    reward = next(x for x in lines if x.startswith("reward 1 ended"))
    assert "steps 0–0" in reward and "reward/best_val_loss 3.25, reward/tau 0.5" in reward and "loss 4" not in reward
    policy = next(x for x in lines if x.startswith("policy ended"))
    assert "steps 0–10" in policy and "policy/loss 0.125, dev/score 61" in policy and "tau" not in policy


def test_a_second_open_in_one_process_keeps_its_locks(db):
    """Store.open read the file's header with open()/close(); closing any descriptor of a file drops all
    of this process's POSIX locks on it, SQLite's too. Another process then took itself for the last
    user, checkpointed and deleted the WAL, and this process's later commits were never seen (then lost)."""
    import subprocess
    import sys

    a = Store.open(db)
    a.queue(plan_runs("prompt", "toy-sentiment"), to_json)
    Store.open(db)  # a second store on the same file, as tests, benchmarks or a future code path do
    count = [
        sys.executable,
        "-c",
        f"from engine.store import Store; s = Store.open({db!r}, create=False); print(len(s.runs())); s.close()",
    ]
    assert subprocess.run(count, capture_output=True, text=True, check=True).stdout.strip() == "1"
    a.queue(plan_runs("prompt", "toy-sentiment"), to_json)
    assert subprocess.run(count, capture_output=True, text=True, check=True).stdout.strip() == "2"  # was 1


def _crash_after_writes(db, n):
    """A process that commits `n` metric rows and dies without closing: they stay in the -wal."""
    import subprocess
    import sys

    script = (
        f"import os\nfrom engine.store import Store\nfrom engine.registry import plan_runs\n"
        f"from engine.config import to_json\nst = Store.open({db!r})\n"
        f"(rid,) = st.queue(plan_runs('prompt', 'toy-sentiment'), to_json)\n"
        f"for i in range({n}):\n"
        f"    st.append(rid, [dict(step=i, phase='policy', name='policy/loss', value=float(i))], [], [], None)\n"
        f"os._exit(0)\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True)


def _frame(db):
    con = sqlite3.connect(f"file:{db}?mode=ro&immutable=1", uri=True)
    page = con.execute("PRAGMA page_size").fetchone()[0]
    con.close()
    return 24 + page


@pytest.mark.parametrize("cut", ["mid-frame", "whole commit", "missing", "another log"])
def test_a_wal_that_lost_committed_writes_is_refused_not_opened_short(tmp_path, cut):
    """SQLite replays a cut-short -wal up to its last complete commit and opens without a word, short of
    rows it had committed (the old code: 19 of 20 metrics, no error). The wal-index (-shm) still knows
    how many frames were committed: the store refuses, names the loss, and leaves the files as found."""
    import shutil

    db = str(tmp_path / "crashed.db")
    _crash_after_writes(db, 20)
    wal, shm = tmp_path / "crashed.db-wal", tmp_path / "crashed.db-shm"
    assert wal.exists() and shm.exists()
    for name in ("crashed.db", "crashed.db-wal", "crashed.db-shm"):  # an intact copy: no false alarm
        shutil.copy(tmp_path / name, tmp_path / name.replace("crashed", "intact"))
    frame, size = _frame(db), wal.stat().st_size
    if cut == "mid-frame":
        os.truncate(wal, size - frame // 2)
    elif cut == "whole commit":
        os.truncate(wal, size - frame)
    elif cut == "missing":
        wal.unlink()
    else:  # a -wal from another crashed store: valid frames, other salts
        other = str(tmp_path / "other.db")
        _crash_after_writes(other, 20)
        shutil.copy(tmp_path / "other.db-wal", wal)
    before = {p.name: digest(p) for p in (wal, shm) if p.exists()}
    with pytest.raises(
        StoreError,
        match=r"crashed.db-wal (is cut short|is missing|is not the log).*would be "
        r"silently dropped.*move crashed.db-shm away",
    ):
        Store.open(db, create=False)
    assert {p.name: digest(p) for p in (wal, shm) if p.exists()} == before

    intact = Store.open(str(tmp_path / "intact.db"), create=False)
    (run,) = intact.runs()
    assert len(intact.metrics(run.id)) == 20
    if cut == "whole commit":  # the message's way out: the user accepts the loss
        shm.rename(tmp_path / "aside.db-shm")
        st = Store.open(db, create=False)
        assert len(st.metrics(st.runs()[0].id)) < 20


def test_the_wal_check_raises_no_false_alarm_against_a_live_writer(tmp_path):
    """The check reads the index, the -wal, and the index again while another process appends and
    checkpoints (restarting the log): never a loss."""
    import subprocess
    import sys

    db = tmp_path / "live.db"
    Store.open(str(db)).close()
    script = (
        f"import time\nfrom engine.store import Store\nfrom engine.registry import plan_runs\n"
        f"from engine.config import to_json\nst = Store.open({str(db)!r})\n"
        f"(rid,) = st.queue(plan_runs('prompt', 'toy-sentiment'), to_json)\nend = time.time() + 4\ni = 0\n"
        f"while time.time() < end:\n"
        f"    st.append(rid, [dict(step=i, phase='policy', name='policy/loss', value=float(i))], [], [], None)\n"
        f"    i += 1\n"
        f"    if i % 200 == 0:\n"
        f"        with st.engine.connect() as c: c.exec_driver_sql('PRAGMA wal_checkpoint(RESTART)')\n"
    )
    writer = subprocess.Popen([sys.executable, "-c", script])
    from engine.sqlite_file import lost_writes

    checks = 0
    try:
        while writer.poll() is None:
            assert lost_writes(db) is None
            checks += 1
    finally:
        writer.wait()
    assert checks > 100


def test_a_read_only_store_with_writes_in_its_wal_is_refused_not_shown_stale(tmp_path, monkeypatch):
    """A read-only open (`immutable`, for read-only media) reads the main file alone: after a crash the
    run and its 20 metrics live only in the -wal, and the old code showed a store without them."""
    db = str(tmp_path / "crashed.db")
    _crash_after_writes(db, 20)
    monkeypatch.setattr(sqlite_file, "writable", lambda path: False)
    with pytest.raises(StoreError, match=r"read-only and its crashed.db-wal holds writes not yet in crashed.db"):
        Store.open(db, create=False, read_only_ok=True)
    monkeypatch.undo()
    st = Store.open(db, create=False)  # where it can be written, the log is replayed: all there
    assert len(st.metrics(st.runs()[0].id)) == 20
    st.close()
    monkeypatch.setattr(sqlite_file, "writable", lambda path: False)
    assert [r.id for r in Store.open(db, create=False, read_only_ok=True).runs()] == [1]  # merged on close


def test_opening_a_store_again_keeps_this_process_s_lock_on_its_shm(db):
    """The -wal check reads the -shm with open()/close(); closing any descriptor of a file drops this
    process's POSIX locks on it. It once ran on the second open of a store this process had created, so
    another process found the -shm unlocked, took itself for the only user and reset it under our
    mapping (a CI run died of SIGBUS). SQLite holds a shared lock on byte 128 of the -shm (the DMS lock)
    while a connection is open: another process must not be able to lock it exclusively."""
    import subprocess
    import sys

    a = Store.open(db)
    a.queue(plan_runs("prompt", "toy-sentiment"), to_json)
    Store.open(db)
    probe = (
        f"import fcntl, os\nfd = os.open({db + '-shm'!r}, os.O_RDWR)\n"
        f"fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, 128)\n"
    )
    assert subprocess.run([sys.executable, "-c", probe], capture_output=True).returncode != 0
    assert len(a.runs()) == 1


def test_a_running_runs_tau_is_its_last_reward_phases_or_none(url):
    """A reward phase with nothing to rank records its chance level but no tau: the runs table must not
    show the phase before's tau as the last one."""
    from pgg_tui.core.views import fetch_rows

    st = Store.open(url)
    (a,) = queue(st)
    st.claim_next("w", None)
    phase = [
        dict(step=120, phase="reward 1", name="reward/chance_loss", value=4.787),
        dict(step=120, phase="reward 1", name="reward/tau", value=0.42),
    ]
    st.append(a, phase, [], [], None)
    assert st.latest_metric_rows([a], ["reward/tau"]) == {(a, "reward/tau"): ("reward 1", 0.42)}
    assert [r.tau for r in fetch_rows(st) if r.id == a] == [0.42]
    st.append(a, [dict(step=80, phase="reward 2", name="reward/chance_loss", value=4.787)], [], [], None)
    assert [r.tau for r in fetch_rows(st) if r.id == a] == [None]


def test_a_schema_6_store_gains_sweeps_and_ranking_hashes(db):
    """Schema 7: the sweep table, and a content hash on every answered ranking (so imports skip repeats)."""
    from engine import rankings
    from engine.schema import content_hash

    st = Store.open(db)
    rankings.import_records(st, [dict(context="c", candidates=["x", "y"], order=[1, 0], annotator="ana")])
    with st.write() as s:  # back to what schema 6 had
        conn = s.connection()
        conn.execute(sa.text("DROP TABLE sweep"))
        conn.execute(sa.text("DROP INDEX ix_ranking_content_hash"))
        conn.execute(sa.text("ALTER TABLE ranking DROP COLUMN content_hash"))
        conn.execute(sa.text("UPDATE pgg_meta SET value = '6' WHERE key = 'schema_version'"))
    st.close()
    st = Store.open(db)
    assert st.schema_version() == schema_mod.SCHEMA_VERSION and st.sweep("none") is None
    with st.read() as s:
        (h,) = s.connection().execute(sa.text("SELECT content_hash FROM ranking")).one()
    assert h == content_hash("c", ["x", "y"], [1, 0], "ana")
    assert (
        rankings.import_stream(st, [dict(context="c", candidates=["x", "y"], order=[1, 0], annotator="ana")]).skipped
        == 1
    )
    assert rankings.export(st)[0]["candidates"] == ["x", "y"]
