"""`pgg worker` with stand-in runs: slots, output capture, cancel, and the faults it must survive."""

import os
import signal
import subprocess
import sys
from pathlib import Path
import time

import pytest

from engine.config import to_json
from engine.registry import plan_runs
from engine.store import Store
from support.paths import STANDIN
from support.runs import queue_seeds


def queue(db, n=1):
    return queue_seeds(Store.open(db), n)


def start_worker(db, *extra, **env):
    argv = [sys.executable, "-m", "pgg_tui", "worker", "--db", db, "--command", STANDIN, "--poll", "0.1", *extra]
    return subprocess.Popen(
        argv,
        env=dict(os.environ, **env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def wait_for(pred, timeout=30.0, what="condition"):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = pred()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def status(db, rid):
    return Store.open(db).get(rid).status


def log_text(db, rid):
    return "\n".join(line.text for line in Store.open(db).logs(rid))


def test_runs_go_to_the_right_slots(db):
    ids = queue(db, 4)
    w = start_worker(db, "--gpus", "0,1", "--exit-when-idle", STANDIN_STEPS="10", STANDIN_SLEEP="0.05")
    assert w.wait(timeout=60) == 0, w.stderr.read()
    st = Store.open(db)
    runs = st.runs()
    assert [r.status for r in runs] == ["done"] * 4
    assert {r.gpu for r in runs} == {"0", "1"}
    for r in runs:
        text = log_text(db, r.id)
        assert f"gpu={r.gpu!r}" in text  # CUDA_VISIBLE_DEVICES was the slot's GPU
        assert "standin stderr line" in text and "standin done" in text
        assert len(st.metrics(r.id)) == 20 and len(st.samples(r.id)) == 10
        assert [p.kind for p in st.phases(r.id)] == ["reward", "policy"]
    # never more than two at once: at any start, at most one other run is in flight
    for r in runs:
        overlapping = [o for o in runs if o.id != r.id and o.started_at <= r.started_at < o.finished_at]
        assert len(overlapping) <= 1
    assert ids == [r.id for r in runs]


def test_second_worker_is_refused(db):
    queue(db, 1)
    w = start_worker(db, STANDIN_STEPS="200", STANDIN_SLEEP="0.05")
    try:
        wait_for(lambda: status(db, 1) == "running", what="run to start")
        r = subprocess.run(
            [sys.executable, "-m", "pgg_tui", "worker", "--db", db], capture_output=True, text=True, timeout=30
        )
        assert r.returncode == 1 and "already running" in r.stderr and "Traceback" not in r.stderr
    finally:
        os.killpg(w.pid, signal.SIGTERM)
        w.wait(timeout=30)


def test_failure_records_traceback(db):
    queue(db, 1)
    w = start_worker(db, "--exit-when-idle", STANDIN_FAIL_AT="3")
    assert w.wait(timeout=60) == 0, w.stderr.read()  # a failed run does not take its worker down
    run = Store.open(db).get(1)
    assert run.status == "failed" and run.exit_code == 1
    # the whole traceback, down to the frame that raised, not only its last line
    assert run.error.startswith("Traceback (most recent call last):")
    assert 'standin.py", line' in run.error and ", in train\n" in run.error
    assert run.error.rstrip().endswith("RuntimeError: standin failure at step 3")


def test_run_killed_with_sigkill_is_failed(db):
    queue(db, 2)
    w = start_worker(db, "--exit-when-idle", STANDIN_STEPS="400", STANDIN_SLEEP="0.05")
    pid = wait_for(lambda: Store.open(db).get(1).pid, what="pid")
    wait_for(lambda: Store.open(db).get(1).step > 2, what="progress")
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: status(db, 1) == "failed", what="failed")
    assert "SIGKILL" in Store.open(db).get(1).error
    wait_for(lambda: status(db, 2) == "running", what="next run")  # the slot was freed
    Store.open(db).request_cancel([2])
    assert w.wait(timeout=60) == 0
    assert status(db, 2) == "cancelled"


def test_worker_killed_mid_run_then_restarted(db):
    queue(db, 2)
    w = start_worker(db, STANDIN_STEPS="60", STANDIN_SLEEP="0.05")
    wait_for(lambda: Store.open(db).get(1).step > 2, what="run 1 progress")
    os.kill(w.pid, signal.SIGKILL)  # the worker alone: the run lives in its own session
    w.wait(timeout=10)
    run_pid = Store.open(db).get(1).pid
    os.kill(run_pid, 0)  # the run survived its worker
    w2 = start_worker(db, "--exit-when-idle", STANDIN_STEPS="60", STANDIN_SLEEP="0.05")
    wait_for(lambda: status(db, 1) == "done", what="run 1 done")
    wait_for(lambda: status(db, 2) != "queued", what="run 2 to start")
    # one CPU slot: run 2 may only start once the adopted run 1 has finished
    assert Store.open(db).get(2).started_at >= Store.open(db).get(1).finished_at - 0.5
    assert w2.wait(timeout=60) == 0, w2.stderr.read()
    assert status(db, 2) == "done"
    assert "adopted" in w2.stderr.read()
    assert "standin done" in log_text(db, 1)  # output after the restart was captured too


def test_run_dead_while_worker_was_down_is_lost(db):
    queue(db, 1)
    w = start_worker(db, STANDIN_STEPS="400", STANDIN_SLEEP="0.05")
    wait_for(lambda: Store.open(db).get(1).step > 2, what="progress")
    os.kill(w.pid, signal.SIGKILL)
    w.wait(timeout=10)
    os.kill(Store.open(db).get(1).pid, signal.SIGKILL)
    time.sleep(0.3)
    w2 = start_worker(db, "--exit-when-idle")
    assert w2.wait(timeout=60) == 0
    run = Store.open(db).get(1)
    assert run.status == "lost" and "pgg retry 1" in run.error


@pytest.mark.parametrize("ignore", [False, True])
def test_cancel_running(db, ignore):
    queue(db, 1)
    env = dict(STANDIN_STEPS="600", STANDIN_SLEEP="0.05")
    if ignore:
        env["STANDIN_IGNORE_TERM"] = "1"
    w = start_worker(db, "--exit-when-idle", "--grace", "1", **env)
    wait_for(lambda: Store.open(db).get(1).step > 2, what="progress")
    t0 = time.monotonic()
    Store.open(db).request_cancel([1])
    assert w.wait(timeout=60) == 0
    assert status(db, 1) == "cancelled"
    assert time.monotonic() - t0 < 20
    if ignore:
        assert "killed" in w.stderr.read()


def test_a_stopped_run_of_the_workers_own_is_found_hung_and_killed(db):
    (rid,) = queue(db)
    w = start_worker(db, "--lost-after", "2", STANDIN_STEPS="400", STANDIN_SLEEP="0.05")
    try:
        pid = wait_for(lambda: Store.open(db).get(rid).pid if status(db, rid) == "running" else None, what="start")
        wait_for(lambda: Store.open(db).get(rid).step >= 2, what="progress")
        os.kill(pid, signal.SIGSTOP)
        wait_for(lambda: status(db, rid) == "lost", timeout=30, what="lost")
        assert "hung" in Store.open(db).get(rid).error
        wait_for(
            lambda: (
                not os.path.exists(f"/proc/{pid}")
                or Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"
            ),
            what="the hung process killed",
        )
    finally:
        w.send_signal(signal.SIGTERM)
        w.wait(timeout=30)


def test_time_limit_stops_a_run_and_records_why(db):
    (rid,) = Store.open(db).queue(plan_runs("prompt", "toy-sentiment", overrides=["time_limit=1"]), to_json)
    w = start_worker(db, "--exit-when-idle", "--grace", "5", STANDIN_STEPS="400", STANDIN_SLEEP="0.05")
    assert w.wait(timeout=60) == 0, w.stderr.read()
    run = Store.open(db).get(rid)
    assert run.status == "failed" and "time limit of 1s" in run.error


def test_output_is_captured_to_its_end_and_long_lines_do_not_stall(db):
    (rid,) = queue(db)
    w = start_worker(db, "--exit-when-idle", STANDIN_STEPS="4", STANDIN_BURST="25000", STANDIN_LONG_LINE=str(3 << 20))
    assert w.wait(timeout=120) == 0, w.stderr.read()
    lines = [line.text for line in Store.open(db).logs(rid)]
    assert "after the long line" in lines and "standin done" in lines
    assert sum(line.startswith("burst line") for line in lines) == 25000


def test_worker_stops_when_its_store_file_is_deleted(db):
    queue(db)
    w = start_worker(db, STANDIN_STEPS="400", STANDIN_SLEEP="0.05")
    wait_for(lambda: status(db, 1) == "running", what="start")
    os.unlink(db)
    assert w.wait(timeout=30) != 0
    err = w.stderr.read()
    assert "deleted or replaced" in err and "Traceback" not in err


def test_worker_serves_on_through_store_errors(db, monkeypatch):
    import sqlalchemy as sa

    from engine.scheduler import Worker, make_slots

    st = Store.open(db)
    (rid,) = queue(db)
    worker = Worker(st, make_slots(None, 1, 1), STANDIN, poll=0.05, log=lambda m: None)
    worker.acquire()
    real = st.claim_next
    fails = {"n": 0}

    def flaky(*a, **k):
        if fails["n"] < 3:
            fails["n"] += 1
            raise sa.exc.OperationalError("INSERT", {}, Exception("database or disk is full"))
        return real(*a, **k)

    monkeypatch.setattr(st, "claim_next", flaky)
    monkeypatch.setenv("STANDIN_STEPS", "3")
    worker.serve(exit_when_idle=True, max_seconds=60)
    assert fails["n"] == 3 and st.get(rid).status == "done"


def _ended_unwatched(db, monkeypatch):
    """A run launched by a worker that prints 400 lines at its end and ends before the worker's next tick."""
    from engine.scheduler import Worker, make_slots

    monkeypatch.setenv("STANDIN_STEPS", "2")
    monkeypatch.setenv("STANDIN_SLEEP", "0.01")
    monkeypatch.setenv("STANDIN_BURST", "400")
    [rid] = queue(db, 1)
    w = Worker(Store.open(db), make_slots(None, 1, 1), STANDIN, poll=0.1, log=lambda m: None)
    w.acquire()
    w.tick()  # launches it
    w.children[rid].popen.wait(timeout=60)
    assert status(db, rid) == "done"
    return w, rid


def test_a_worker_stopped_right_after_a_run_ends_copies_its_last_lines(db, monkeypatch):
    """Issue 25 item 7: stopped between a run's end and its next tick, the worker dropped the run's last lines."""
    w, rid = _ended_unwatched(db, monkeypatch)
    w._stopping = True
    w.serve()  # the stop path: no tick runs
    text = log_text(db, rid)
    assert text.count("burst line") == 400 and "standin done" in text


def test_a_worker_killed_after_a_run_ended_leaves_its_last_lines_to_the_next(db, monkeypatch):
    """Killed (no stop path at all), the next worker of the host copies what the run wrote after the last tick."""
    from engine.scheduler import Worker, make_slots

    w, rid = _ended_unwatched(db, monkeypatch)
    w._save_offsets()  # what the killed worker had recorded: its offsets, not the tail
    before = log_text(db, rid).count("burst line")
    w2 = Worker(Store.open(db), make_slots(None, 1, 1), STANDIN, poll=0.1, log=lambda m: None)
    w2._adopt()
    text = log_text(db, rid)
    assert before < 400 and text.count("burst line") == 400 and "standin done" in text
    w2._adopt()  # a second look copies nothing twice
    assert log_text(db, rid).count("burst line") == 400
