"""The Slurm executor on a real one-node cluster (tests/slurm_cluster.py): jobs run, cancel, a killed job,
and a preemption that checkpoints, requeues and resumes. Stand-in runs (tests/standin.py) keep it quick."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.config import to_json
from engine.registry import plan_runs
from engine.slurm import SlurmOptions, SlurmWorker, job_state, scancel
from engine.store import Store
from support.paths import STANDIN
from support.waiting import wait_for

pytestmark = pytest.mark.slow


@pytest.fixture
def worker(slurm_cluster, db, monkeypatch, tmp_path):
    monkeypatch.setenv("STANDIN_SLEEP", "0.05")
    saved = {k: os.environ.get(k) for k in ("PGG_DB", "PGG_RUNS_DIR")}
    st = Store.open(db)
    w = SlurmWorker(
        st,
        SlurmOptions(max_jobs=2, time_min=10, gpus_per_run=0, cpus_per_run=1),
        command=STANDIN,
        poll=0.1,
        grace=10,
        log=lambda m: None,
    )
    w.acquire()
    yield st, w
    for child in list(w.children.values()):
        scancel(child.job_id)
    w.release()
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def serve_until(w, pred, timeout=120, what="condition"):
    wait_for(lambda: (w.tick(), pred())[1], timeout=timeout, what=what)


def test_runs_become_jobs_and_finish(worker, monkeypatch):
    st, w = worker
    monkeypatch.setenv("STANDIN_STEPS", "6")
    ids = st.queue(plan_runs("prompt", "toy-sentiment", seeds="0-2"), to_json)
    serve_until(w, lambda: all(r.status == "done" for r in st.runs()) and not w.children, what="three jobs")
    runs = st.runs()
    assert [r.id for r in runs] == ids
    assert all(r.job_id and r.job_id.isdigit() for r in runs) and len({r.job_id for r in runs}) == 3
    for r in runs:
        text = "\n".join(line.text for line in st.logs(r.id))
        assert "standin done" in text  # the job's output reached the store
        assert job_state(r.job_id)[0] == "COMPLETED"


def test_cancel_and_a_job_killed_by_slurm(worker, monkeypatch):
    st, w = worker
    monkeypatch.setenv("STANDIN_STEPS", "2000")
    a, b = st.queue(plan_runs("prompt", "toy-sentiment", seeds="0-1"), to_json)
    serve_until(w, lambda: st.get(a).step > 0 and st.get(b).step > 0, what="both jobs to train")
    st.request_cancel([a])
    scancel(st.get(b).job_id, "KILL")
    serve_until(w, lambda: not w.children, what="both jobs to end")
    assert st.get(a).status == "cancelled"
    lost = st.get(b)
    assert lost.status == "lost" and f"Slurm job {lost.job_id} ended" in lost.error and "pgg retry" in lost.error


def test_preemption_checkpoints_requeues_and_resumes_the_same_run(worker, monkeypatch):
    st, w = worker
    monkeypatch.setenv("STANDIN_STEPS", "120")
    (rid,) = st.queue(plan_runs("prompt", "toy-sentiment", seeds="0"), to_json)
    serve_until(w, lambda: st.get(rid).step > 3, what="the job to train")
    job = st.get(rid).job_id
    scancel(job, "USR2")  # submitit's preemption signal, as Slurm sends it before a preemption or time limit
    serve_until(w, lambda: job_state(job)[0] == "PENDING", what="the requeue")
    # Slurm holds a requeued job for a while (BeginTime) so that the old step is gone before it starts again;
    # once that step's processes have ended, start it now
    wait_for(
        lambda: (
            subprocess.run(["pgrep", "-f", "submitit.core._submit|standin.py run"], capture_output=True).returncode == 1
        ),
        timeout=60,
        what="the preempted step to end",
    )
    time.sleep(2)
    subprocess.run(["scontrol", "update", f"JobId={job}", "StartTime=now"], check=True, timeout=30)
    try:
        serve_until(w, lambda: st.get(rid).status == "done" and not w.children, timeout=120, what="the requeued job")
    except AssertionError:
        r = st.get(rid)
        tail = [line.text for line in st.logs(rid)][-12:]
        raise AssertionError(f"run {r.status} {r.error}; job {job_state(job)}; log: {tail}") from None
    run = st.get(rid)
    assert run.job_id == job and run.attempt == 1  # the same job and run, requeued by Slurm
    text = "\n".join(line.text for line in st.logs(rid))
    assert "stopped by Slurm" in text and text.count("standin start") == 2


def test_jobs_on_a_postgresql_store(slurm_cluster, pg_server, db, monkeypatch):
    """The lab's setup: a Slurm worker and its jobs on a shared PostgreSQL store."""
    monkeypatch.setenv("STANDIN_STEPS", "6")
    monkeypatch.setenv("STANDIN_SLEEP", "0.02")
    for k in ("PGG_DB", "PGG_RUNS_DIR"):
        monkeypatch.setenv(k, os.environ.get(k, ""))  # restored after the test: the worker sets them
    st = Store.open(pg_server.fresh_database())
    w = SlurmWorker(
        st,
        SlurmOptions(max_jobs=2, time_min=10, gpus_per_run=0, cpus_per_run=1),
        command=STANDIN,
        poll=0.1,
        log=lambda m: None,
    )
    w.acquire()
    try:
        ids = st.queue(plan_runs("prompt", "toy-sentiment", seeds="0-1"), to_json)
        serve_until(w, lambda: all(r.status == "done" for r in st.runs()) and not w.children, what="two jobs")
        assert [r.id for r in st.runs()] == ids and all(r.job_id for r in st.runs())
        assert os.environ["PGG_DB"] == st.url  # what the jobs were given, by environment
    finally:
        w.release()


@pytest.mark.parametrize(
    "state, reason, says",
    [
        ("TIMEOUT", "TimeLimit", "ended TIMEOUT (TimeLimit)"),
        ("NODE_FAIL", "None", "ended NODE_FAIL before"),
        ("OUT_OF_MEMORY", "OutOfMemory", "ended OUT_OF_MEMORY (OutOfMemory)"),
        ("", "", "ended gone from Slurm"),
    ],
)
def test_a_job_slurm_ended_is_recorded_lost_with_slurms_reason(db, monkeypatch, state, reason, says):
    """Slurm's own record decides; the run stays retryable from its checkpoint. (The real cluster shows a
    killed job above; a time limit or a node failure cannot be staged on it in seconds.)"""
    from engine import slurm as slurm_mod
    from engine.scheduler import Child, Slot

    monkeypatch.setattr(slurm_mod, "job_state", lambda job: (state, reason))
    monkeypatch.setattr(SlurmWorker, "__init__", lambda self, store: setattr(self, "store", store))
    st = Store.open(db)
    (rid,) = st.queue(plan_runs("prompt", "toy-sentiment"), to_json)
    st.claim_next("w", None)
    w = SlurmWorker(st)
    child = Child(rid, Slot("slurm/0", None), 0, None, (Path("o"), Path("e")), job_id="42")
    assert w._exit_status(child) == (state not in slurm_mod.ALIVE, None)
    assert w._record_end(child, st.get(rid))
    run = st.get(rid)
    assert run.status == "lost" and f"Slurm job 42 {says}" in run.error and f"pgg retry {rid}" in run.error


def test_a_restarted_worker_adopts_its_hosts_jobs_and_no_password_reaches_the_job(
    slurm_cluster, pg_server, db, monkeypatch
):
    monkeypatch.setenv("STANDIN_STEPS", "400")
    monkeypatch.setenv("STANDIN_SLEEP", "0.05")
    for k in ("PGG_DB", "PGG_RUNS_DIR"):
        monkeypatch.setenv(k, os.environ.get(k, ""))
    url = pg_server.fresh_database().replace("postgres@", "postgres:s3cret@")  # trust auth: any password works
    st = Store.open(url)
    command = f"{sys.executable} {Path(__file__).parent / 'standin.py'} run --run-id {{run_id}}"  # the URL: env only
    first = SlurmWorker(
        st,
        SlurmOptions(max_jobs=2, time_min=10, gpus_per_run=0, cpus_per_run=1),
        command=command,
        poll=0.1,
        log=lambda m: None,
    )
    first.acquire()
    (rid,) = st.queue(plan_runs("prompt", "toy-sentiment"), to_json)
    serve_until(first, lambda: st.get(rid).step > 2, what="the job to train")
    job = st.get(rid).job_id
    first.release()  # the worker stops; its job goes on
    again = SlurmWorker(
        st,
        SlurmOptions(max_jobs=2, time_min=10, gpus_per_run=0, cpus_per_run=1),
        command=command,
        poll=0.1,
        log=lambda m: None,
    )
    again.pid += 1  # another process on this host
    again.name = f"{again.host}:{again.pid}"
    again.acquire()
    try:
        again._adopt()
        assert [c.job_id for c in again.children.values()] == [job]
        script = (again.folder / job / f"{job}_submission.sh").read_text()
        assert "s3cret" not in script and "s3cret" not in " ".join(first.command.split())
        st.request_cancel([rid])
        serve_until(again, lambda: not again.children, what="the adopted job to stop")
        assert st.get(rid).status == "cancelled"
    finally:
        again.release()


def test_a_tiny_run_preempted_under_slurm_resumes_its_checkpoint(slurm_cluster, db, monkeypatch):
    """The real trainer, not the stand-in: preempted mid-policy, requeued, resumed from its own checkpoint
    with its records rewound to it, and finished."""
    for k in ("PGG_DB", "PGG_RUNS_DIR"):
        monkeypatch.setenv(k, os.environ.get(k, ""))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    st = Store.open(db)
    w = SlurmWorker(
        st, SlurmOptions(max_jobs=1, time_min=10, gpus_per_run=0, cpus_per_run=1), poll=0.2, log=lambda m: None
    )
    w.acquire()
    try:
        (rid,) = st.queue(
            plan_runs(
                "prompt",
                "toy-sentiment",
                "seq-reinforce",
                preset="tiny",
                overrides=["max_steps=40", "checkpoint_every=10"],
            ),
            to_json,
        )
        serve_until(w, lambda: st.get(rid).step >= 13, timeout=180, what="the run to pass its checkpoint at 10")
        job = st.get(rid).job_id
        scancel(job, "USR2")
        serve_until(w, lambda: job_state(job)[0] == "PENDING", what="the requeue")
        wait_for(
            lambda: (
                subprocess.run(["pgrep", "-f", "submitit.core._submit|engine run"], capture_output=True).returncode == 1
            ),
            timeout=60,
            what="the step to end",
        )
        time.sleep(2)
        subprocess.run(["scontrol", "update", f"JobId={job}", "StartTime=now"], check=True, timeout=30)
        serve_until(w, lambda: st.get(rid).status == "done" and not w.children, timeout=240, what="the resumed run")
    finally:
        w.release()
    text = "\n".join(line.text for line in st.logs(rid))
    assert "stopped by Slurm" in text and "resumed from the checkpoint at step" in text
    steps = [m.step for m in st.metrics(rid, names=["policy/loss"])]
    assert steps == sorted(steps) and len(steps) == len(set(steps))  # rewound: no step recorded twice
    assert st.get(rid).job_id == job
