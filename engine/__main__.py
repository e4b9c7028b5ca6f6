"""`python -m engine run --db URL --run-id N`: the one entry a worker launches.

It takes the run (claimed by a worker, or still queued), rebuilds its config from the store, trains
through a StoreReporter, and records the end: done with results, cancelled, or failed with the
traceback in the Run row (exit code 1). SIGTERM asks for a graceful stop at the next step boundary.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
from pathlib import Path

from engine.config import from_json
from engine.errors import Cancelled, PggError
from engine.registry import get_task
from engine.report import StoreReporter
from engine.scheduler import default_runs_root
from engine.store import Store


def execute(store: Store, run_id: int, echo: bool = False, on_reporter=None) -> int:  # type: ignore[no-untyped-def]
    """Train one run recorded in `store`; returns the process exit code. Used by `pgg run` too."""
    root = default_runs_root(store.url)
    run = store.attach(run_id, os.getpid(), lambda rid: str(root / str(rid)))
    reporter = StoreReporter(store, run_id, echo=echo)
    previous = signal.signal(signal.SIGTERM, lambda *_: reporter.request_stop())
    if on_reporter is not None:
        on_reporter(reporter)
    try:
        spec = get_task(run.task)
        cfg = from_json(spec.config_cls, run.config)
        module, fn = spec.trainer.split(":")
        train = getattr(importlib.import_module(module), fn)
        run_dir = Path(run.run_dir)  # type: ignore[arg-type]
        run_dir.mkdir(parents=True, exist_ok=True)
        results = train(cfg, reporter, run_dir)
    except Cancelled:
        reporter.log("cancelled: checkpoint saved; `pgg retry` resumes from it")
        reporter.close()
        store.fail(run_id, "cancelled by request", exit_code=0, status="cancelled")
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
        store.fail_with_traceback(run_id, err)
        if isinstance(err, KeyboardInterrupt):
            return 130
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)
    reporter.close()
    store.finish(run_id, results)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("run", help="train one queued run")
    p.add_argument("--db", default=None, help="store URL (default: PGG_DB or sqlite:///experiments.db)")
    p.add_argument("--run-id", type=int, required=True)
    args = parser.parse_args(argv)
    try:
        store = Store.open(args.db)
        return execute(store, args.run_id)
    except PggError as err:
        print(f"pgg: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
