"""`pgg worker --executor slurm`: each claimed run becomes one Slurm job, submitted through submitit.

The job runs `python -m engine run --run-id N` (the store URL travels in the environment, never in argv or
the job script). What Slurm does to a job is read from Slurm itself (`scontrol show job`, which keeps a
finished job for MinJobAge): a job that ended without the run recording its end is recorded with
Slurm's reason (TIMEOUT, NODE_FAIL, PREEMPTED, CANCELLED outside pgg, OUT_OF_MEMORY) and can be retried
from its last checkpoint. Preemption: Slurm (or `scancel --signal=USR2`) sends submitit's preemption
signal before the kill; the job asks the run to checkpoint (SIGUSR1 to the engine, which saves and exits
75), and submitit requeues the job: the same run resumes from that checkpoint under the same job id.
Cancel: the run's cancel flag reaches it through the store; `scancel` follows after the grace period.
The runs folder must be on a filesystem the compute nodes share (checkpoints and output live there).
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.errors import ConfigError
from engine.scheduler import Child, Slot, Worker
from engine.schema import Run
import contextlib

ALIVE = {
    "PENDING",
    "CONFIGURING",
    "RUNNING",
    "COMPLETING",
    "REQUEUED",
    "REQUEUE_HOLD",
    "REQUEUE_FED",
    "RESIZING",
    "SUSPENDED",
    "STAGE_OUT",
    "SIGNALING",
}
WAITING = {"PENDING", "CONFIGURING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "SUSPENDED"}
PREEMPT_GRACE = 60.0  # seconds a preempted run gets to save its checkpoint (submitit signals 90 s before the kill)


@dataclass
class SlurmOptions:
    """What a cluster user sets per run (`pgg worker --executor slurm --partition ...`)."""

    partition: str | None = None
    # the one set of defaults (`pgg worker --executor slurm` leaves what it is not given to these)
    gpus_per_run: int = 1
    cpus_per_run: int = 4
    mem_gb: float | None = None
    time_min: int = 60 * 24
    account: str | None = None
    qos: str | None = None
    setup: list[str] = field(default_factory=list)  # shell lines before the run, e.g. "module load cuda"
    max_jobs: int = 4  # jobs in flight at once

    def parameters(self) -> dict[str, Any]:
        """submitit's SlurmExecutor parameters."""
        extra: dict[str, Any] = {}
        if self.account:
            extra["account"] = self.account
        if self.qos:
            extra["qos"] = self.qos
        params: dict[str, Any] = dict(
            cpus_per_task=self.cpus_per_run,
            time=self.time_min,
            setup=list(self.setup),
            additional_parameters=extra,
            job_name="pgg",
            signal_delay_s=90,
        )
        if self.partition:
            params["partition"] = self.partition
        if self.gpus_per_run:
            params["gpus_per_node"] = self.gpus_per_run
        if self.mem_gb:
            params["mem"] = f"{int(self.mem_gb * 1024)}M"
        return params


class SlurmRun:
    """The function a job runs (pickled by submitit): the engine in a child process, so that a preemption
    notice can let it checkpoint at a step boundary rather than interrupt it mid-step."""

    def __init__(self, argv: list[str]) -> None:
        self.argv = argv  # the worker's command for this run (`python -m engine run --run-id N`)
        self.child: subprocess.Popen[bytes] | None = None

    def __call__(self, run_id: int) -> int:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.child = subprocess.Popen(self.argv, env=env)
        while (code := self.child.poll()) is None:  # not wait(): it would hold the lock checkpoint() needs
            time.sleep(0.5)
        if code not in (0, 75):
            raise RuntimeError(f"run {run_id} exited with code {code}")
        return code

    def checkpoint(self, run_id: int) -> Any:
        """submitit calls this on its preemption signal: let the run save a checkpoint and exit, then be
        requeued as the same job (it resumes from the checkpoint)."""
        import submitit

        if self.child is not None and self.child.poll() is None:
            self.child.send_signal(signal.SIGUSR1)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.child.wait(timeout=PREEMPT_GRACE)
        return submitit.helpers.DelayedSubmission(SlurmRun(self.argv), run_id)


def job_state(job_id: str) -> tuple[str, str]:
    """(JobState, Reason) as Slurm reports them; ("", "") when Slurm no longer knows the job."""
    try:
        out = subprocess.run(["scontrol", "show", "job", "-o", job_id], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "UNKNOWN", "scontrol did not answer"  # not "ended": the job is left alone until Slurm answers
    if out.returncode != 0:
        return ("", "") if "Invalid job id" in out.stderr else ("UNKNOWN", out.stderr.strip()[:200])
    fields = dict(f.split("=", 1) for f in out.stdout.split() if "=" in f)
    return fields.get("JobState", "UNKNOWN"), fields.get("Reason", "")


def scancel(job_id: str, sig: str | None = None) -> None:
    """Cancel a job, or send `sig` to its steps only (as Slurm's own `--signal` notices do: the batch shell
    would die of a USR signal)."""
    argv = ["scancel", *([f"--signal={sig}"] if sig else []), job_id]
    subprocess.run(argv, capture_output=True, timeout=30, check=False)


class SlurmWorker(Worker):
    """The scheduler with Slurm as its executor: slots are jobs in flight; Slurm places them on nodes."""

    def __init__(self, store: Any, options: SlurmOptions, folder: Path | None = None, **kw: Any):
        slots = [Slot(f"slurm/{i}", None) for i in range(max(1, options.max_jobs))]
        super().__init__(store, slots, **kw)
        self.options = options
        self.folder = folder or self.runs_root / "slurm"
        try:
            import submitit  # noqa: F401  (pgg[slurm])
        except ImportError:
            raise ConfigError("the slurm executor needs submitit: pip install 'pgg[slurm]'") from None
        # sbatch passes the submitting environment on (--export=ALL): the URL reaches the job without
        # appearing in argv or in the job script
        os.environ.update(PGG_DB=store.url, PGG_RUNS_DIR=str(self.runs_root))
        os.environ.pop("PGG_HOST", None)  # a job records the node it runs on

    def _launch(self, run: Run, slot: Slot) -> None:
        import submitit

        assert run.id is not None  # a claimed run is a stored row
        executor = submitit.SlurmExecutor(folder=str(self.folder / "%j"))
        executor.update_parameters(**self.options.parameters())
        argv = shlex.split(
            self.command.format(python=shlex.quote(sys.executable), db=shlex.quote(self.store.url), run_id=run.id)
        )
        try:
            job = executor.submit(SlurmRun(argv), run.id)
        except Exception as err:  # sbatch refused: a bad partition, account or QOS
            reason = str(err).strip().splitlines()[-1][:300] if str(err).strip() else type(err).__name__
            self.store.fail(run.id, f"sbatch refused the job: {reason}")
            self.log(f"run {run.id}: sbatch refused the job: {reason}")
            return
        self.store.set_job(run.id, str(job.job_id))
        paths = (Path(job.paths.stdout), Path(job.paths.stderr))
        self.children[run.id] = Child(run.id, slot, 0, None, paths, [0, 0], job_id=str(job.job_id))
        self.log(f"run {run.id}: submitted as Slurm job {job.job_id}")

    def _adopt(self) -> None:
        """After a restart: take back this host's jobs that Slurm still runs or holds."""
        free = self._free_slots()
        for run in self.store.runs(status="running"):
            if not run.job_id or not (run.worker or "").startswith(f"{self.host}:") or not free:
                continue
            state, _ = job_state(run.job_id)
            if state not in ALIVE:
                continue  # the next _reap of a lost run is mark_lost's, by heartbeat
            assert run.id is not None  # a stored row has its id
            out = self.folder / run.job_id / f"{run.job_id}_0_log.out"
            self.children[run.id] = Child(
                run.id, free.pop(0), 0, None, (out, out.with_suffix(".err")), [0, 0], job_id=run.job_id
            )
            self.log(f"run {run.id}: adopted (Slurm job {run.job_id}, {state.lower()})")

    def _exit_status(self, child: Child) -> tuple[bool, int | None]:
        assert child.job_id is not None  # every child of this worker is a job
        state, _ = job_state(child.job_id)
        if state in WAITING:  # queued, or requeued after a preemption: alive, though it cannot beat
            self.store.touch(child.run_id)
        return state not in ALIVE and state != "UNKNOWN", None

    def _record_end(self, child: Child, run: Run) -> bool:
        assert child.job_id is not None and run.id is not None
        state, reason = job_state(child.job_id)
        why = state or "gone from Slurm"
        if run.cancel_requested:
            return self.store.end(run.id, "cancelled", f"cancelled (Slurm job {child.job_id} {why.lower()})")
        detail = f"Slurm job {child.job_id} ended {why}" + (f" ({reason})" if reason and reason != "None" else "")
        return self.store.end(
            run.id,
            "lost",
            f"lost: {detail} before the run recorded its end; `pgg retry {run.id}` resumes it from its last checkpoint",
        )

    def _signal(self, child: Child, sig: int) -> None:
        assert child.job_id is not None
        if sig == signal.SIGKILL:
            scancel(child.job_id)
        else:  # a stop: the run also reads its cancel flag from the store
            scancel(child.job_id, signal.Signals(sig).name.removeprefix("SIG"))

    def threads_per_run(self) -> int:
        return self.options.cpus_per_run


def wait_gone(job_id: str, timeout: float = 30.0) -> bool:
    """For tests and scripts: wait until Slurm reports the job ended."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if job_state(job_id)[0] not in ALIVE:
            return True
        time.sleep(0.2)
    return False
