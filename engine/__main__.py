"""`python -m engine run --db URL --run-id N`: the one entry a worker launches.

It takes the run (claimed by a worker, or still queued), rebuilds its config from the store, trains
through a StoreReporter, and records the end: done with results, cancelled, or failed with the
traceback in the Run row (exit code 1). SIGTERM asks for a graceful stop at the next step boundary.
"""

from __future__ import annotations

import argparse
import importlib
import os
import shutil
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine.config import from_json
from engine.errors import Cancelled, PggError
from engine.identity import Identity, config_hash
from engine.provenance import environment
from engine.registry import get_task
from engine.report import Reporter, StoreReporter
from engine.store import Store

# A task's trainer, named by its TaskSpec: (config, reporter, run folder, identity) -> results
Trainer = Callable[[Any, Reporter, Path, Identity], dict[str, Any]]


STOPPED_BY_SLURM = 75  # EX_TEMPFAIL: checkpoint saved, the run's end left to the worker (or a requeue)


def execute(store: Store, run_id: int, echo: bool = False) -> int:
    """Train one run recorded in `store`; returns the process exit code (`pgg run` starts this too)."""
    run = store.attach(run_id, os.getpid())
    reporter = StoreReporter(store, run_id, echo=echo)
    previous = signal.signal(signal.SIGTERM, lambda *_: reporter.request_stop())
    # Under Slurm, USR1 (pgg's) and USR2 (submitit's, which Slurm sends to every process of the job before a
    # preemption or the time limit) are preemption notices (engine.slurm): checkpoint, exit, be requeued.
    # Left at their default, they would kill the run mid-step.
    previous_usr = {
        sig: signal.signal(sig, lambda *_: reporter.request_stop()) for sig in (signal.SIGUSR1, signal.SIGUSR2)
    }
    try:
        env = environment()  # what produced the numbers: in the log at once, in the results at the end
        reporter.log("environment: " + ", ".join(f"{k.removeprefix('env/')} {v}" for k, v in env.items()))
        spec = get_task(run.task)
        cfg = from_json(spec.config_cls, run.config)
        module, fn = spec.trainer.split(":")
        train: Trainer = getattr(importlib.import_module(module), fn)
        lineage = store.lineage(run_id)
        run_dir = store.confined_run_dir(run)
        run_dir.mkdir(parents=True, exist_ok=True)
        if len(lineage) > 1:
            inherit_checkpoints(store.confined_run_dir(lineage[1]), run_dir)
        identity = Identity(run.uid, tuple(r.uid for r in lineage), config_hash(run.config))
        results = {**train(cfg, reporter, run_dir, identity), **env}
    except Cancelled:
        now_run = store.get(run_id)
        if now_run.status == "lost":  # fenced: recorded lost (and maybe retried) while this process trained
            reporter.close()
            print(
                f"pgg: run {run_id} was recorded {now_run.status} while it trained; stopped, and nothing more "
                "is written under its id (`pgg retry` resumes it from its last checkpoint)",
                file=sys.stderr,
            )
            return 1
        if os.environ.get("SLURM_JOB_ID") and not now_run.cancel_requested:
            # Slurm stopped the job (preemption, time limit, scancel): the worker reads why from Slurm and
            # records it, or the requeued job resumes from this checkpoint
            reporter.log(f"stopped by Slurm (job {os.environ['SLURM_JOB_ID']}): checkpoint saved")
            reporter.close()
            return STOPPED_BY_SLURM
        reporter.log("cancelled: checkpoint saved; `pgg retry` resumes from it")
        reporter.close()
        store.end(run_id, "cancelled", "cancelled by request", exit_code=0)
        return 0
    except PggError as err:
        reporter.echo = False  # printed once, below
        reporter.log(f"error: {err}", "stderr")
        reporter.close()
        store.fail(run_id, str(err))
        print(f"pgg: run {run_id} failed: {err}", file=sys.stderr)
        return 1
    except BaseException as err:
        reporter.close()
        if out_of_memory(err):  # one line, not a traceback wall: what ran out, and what to change
            text = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
            store.fail(
                run_id,
                f"out of memory ({text}): lower the batch sizes or lengths; memory_budget_gb "
                "bounds them when a run is queued",
            )
            print(f"pgg: run {run_id} failed: out of memory ({text})", file=sys.stderr)
            return 1
        store.fail_with_traceback(run_id, err)
        if isinstance(err, KeyboardInterrupt):
            return 130
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)
        for sig, handler in previous_usr.items():
            signal.signal(sig, handler)
    reporter.close()
    if not store.finish(run_id, results) and (status := store.get(run_id).status) != "done":
        # (done already: a retried finish whose first try had committed)
        print(
            f"pgg: run {run_id} was recorded {status} while it trained; its results were not recorded", file=sys.stderr
        )
        return 1
    return 0


def out_of_memory(err: BaseException) -> bool:
    """A failed allocation: Python's MemoryError, torch's OutOfMemoryError (CUDA) or its CPU allocator's
    RuntimeError (read by name and message: this module imports no torch)."""
    if isinstance(err, MemoryError) or type(err).__name__ == "OutOfMemoryError":
        return True
    return isinstance(err, RuntimeError) and (
        "out of memory" in str(err) or "can't allocate memory" in str(err) or "DefaultCPUAllocator" in str(err)
    )


def inherit_checkpoints(parent_dir: Path, run_dir: Path) -> None:
    """A retry starts from the checkpoints of the attempt it retries, copied into its own folder (each
    attempt keeps its own folder; the copies are checked against the lineage when loaded)."""
    mine = run_dir / "ckpt"
    if (mine / "last.pt").exists() or not (parent_dir / "ckpt").is_dir():
        return
    mine.mkdir(parents=True, exist_ok=True)
    for f in (parent_dir / "ckpt").iterdir():
        if f.is_file() and not f.name.endswith(".tmp"):
            shutil.copy2(f, mine / f.name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("run", help="train one queued run")
    p.add_argument("--db", default=None, help="store URL (default: PGG_DB or sqlite:///experiments.db)")
    p.add_argument("--run-id", type=int, required=True)
    p.add_argument("--echo", action="store_true", help="also print the run's log lines (`pgg run` in a terminal)")
    args = parser.parse_args(argv)
    try:
        store = Store.open(args.db, create=False)  # a run never creates a store: its own was deleted
        return execute(store, args.run_id, echo=args.echo)
    except PggError as err:
        print(f"pgg: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
