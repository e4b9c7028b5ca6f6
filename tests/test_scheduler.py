"""`pgg worker` with stand-in runs: slots, output capture, cancel, and the faults it must survive."""

import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import STANDIN
from engine.config import to_json
from engine.registry import plan_runs
from engine.store import Store


def queue(db, n=1):
    return Store.open(db).queue(plan_runs("prompt", "toy-sentiment", seeds=f"0-{n - 1}"), to_json)


def start_worker(db, *extra, **env):
    argv = [sys.executable, "-m", "pgg_tui", "worker", "--db", db, "--command", STANDIN, "--poll", "0.1", *extra]
    return subprocess.Popen(argv, env=dict(os.environ, **env), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)


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
        r = subprocess.run([sys.executable, "-m", "pgg_tui", "worker", "--db", db], capture_output=True, text=True,
                           timeout=30)
        assert r.returncode == 1 and "already running" in r.stderr and "Traceback" not in r.stderr
    finally:
        os.killpg(w.pid, signal.SIGTERM)
        w.wait(timeout=30)


def test_failure_records_traceback(db):
    queue(db, 1)
    w = start_worker(db, "--exit-when-idle", STANDIN_FAIL_AT="3")
    w.wait(timeout=60)
    run = Store.open(db).get(1)
    assert run.status == "failed" and "RuntimeError: standin failure at step 3" in run.error
    assert run.exit_code == 1


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
