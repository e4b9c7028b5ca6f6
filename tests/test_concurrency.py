"""Eight processes queueing and reporting into one SQLite store while a reader polls: nothing locks, nothing is lost."""

import subprocess
import sys
import textwrap
import time

import sqlalchemy as sa

from engine.store import Metric, Store

WRITER = textwrap.dedent("""
    import sys, time, os
    from engine.config import to_json
    from engine.registry import plan_runs
    from engine.report import StoreReporter
    from engine.store import Store
    st = Store.open(sys.argv[1])
    (rid,) = st.queue(plan_runs("prompt", "toy-sentiment"), to_json)
    st.attach(rid, os.getpid())
    rep = StoreReporter(st, rid, interval=0.02)
    rep.begin_phase("reward", 0)
    for step in range(300):
        rep.metrics(step, {"policy/loss": step * 1.0})
        if step % 10 == 0:
            rep.samples(step, [dict(text="x", tokens=["x"], rewards=[0.5], true_score=1.0)])
            rep.log(f"step {step}")
        rep.progress(step, 300)
        time.sleep(0.003)
    rep.close()
    st.finish(rid, {"test/accuracy": 1.0})
""")


def test_eight_writers_one_reader(db):
    Store.open(db).close()
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, db], stderr=subprocess.PIPE, text=True) for _ in range(8)]
    reader = Store.open(db, create=False)
    seen, polls = 0, 0
    while any(p.poll() is None for p in procs):
        with reader.read() as s:
            n = s.exec(sa.select(sa.func.count()).select_from(Metric)).one()[0]
        assert n >= seen  # counts only grow
        seen, polls = n, polls + 1
        time.sleep(0.01)
    errors = [p.stderr.read() for p in procs]
    assert all(p.returncode == 0 for p in procs), errors
    assert not any("locked" in e or "retry" in e for e in errors), errors
    runs = reader.runs()
    assert len(runs) == 8 and all(r.status == "done" for r in runs)
    for r in runs:
        assert [m.step for m in reader.metrics(r.id)] == list(range(300))
        assert len(reader.samples(r.id)) == 30 and len(reader.logs(r.id)) == 30
    assert polls > 5


def test_reporter_skips_non_finite_values_and_keeps_the_rest(db):
    import math

    from engine.config import to_json
    from engine.registry import plan_runs
    from engine.report import StoreReporter

    st = Store.open(db)
    (rid,) = st.queue(plan_runs("prompt", "toy-sentiment"), to_json)
    rep = StoreReporter(st, rid, interval=3600)
    for step in range(3):
        rep.metrics(step, {"good": 1.0, "bad": math.nan, "worse": math.inf})
    rep.close()
    assert [(m.step, m.name) for m in st.metrics(rid)] == [(0, "good"), (1, "good"), (2, "good")]
    warned = [line.text for line in st.logs(rid)]
    assert len(warned) == 2 and "bad is nan" in warned[0] and "worse is inf" in warned[1]
