"""Queueing runs and training them in a process of their own."""

import signal
import subprocess
import sys
import time

from engine.config import to_json
from engine.registry import plan_runs


def queue_seeds(store, n=1, preset="paper", **labels):
    """Queue seeds 0..n-1 of the prompt task on toy-sentiment (pgg) at `preset`; `labels` (name, tags,
    priority) go to Store.queue. Returns the run ids."""
    return store.queue(plan_runs("prompt", "toy-sentiment", seeds=f"0-{n - 1}", preset=preset), to_json, **labels)


def engine_run(db: str, run_id: int) -> subprocess.Popen:
    """`python -m engine run` for one run, as a worker starts it: stdout dropped, stderr kept (text)."""
    return subprocess.Popen(
        [sys.executable, "-m", "engine", "run", "--db", db, "--run-id", str(run_id)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def kill_at_step(store, db: str, run_id: int, step: int) -> int:
    """Train run_id in a process of its own, SIGKILL it once it reports `step`, and queue its retry.

    Returns the id of the retry, which resumes from the killed run's last checkpoint.
    """
    proc = engine_run(db, run_id)
    deadline = time.monotonic() + 120
    while store.get(run_id).step < step:
        assert proc.poll() is None, proc.stderr.read()
        assert time.monotonic() < deadline, "the run never reached the step"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    store.end(run_id, "lost", "killed by the test")
    (retry,) = store.retry([run_id])
    return retry
