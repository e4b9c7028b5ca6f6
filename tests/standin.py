"""A small stand-in for training, launched by the scheduler in tests through the real `engine` entry.

It swaps the prompt task's trainer for `train` below, so `execute()` (claiming, the reporter, SIGTERM,
recording done/failed/cancelled) is the production code. Behaviour comes from the environment:
STANDIN_STEPS (default 20), STANDIN_SLEEP (seconds per step, 0.05), STANDIN_FAIL_AT (raise at that
step), STANDIN_IGNORE_TERM=1 (ignore SIGTERM and cancel requests: tests the kill after the grace period),
STANDIN_BURST (lines of output printed just before the end), STANDIN_LONG_LINE (bytes of one line
without a newline, printed at the start).
"""

import dataclasses
import os
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine import registry  # noqa: E402
from engine.errors import Cancelled  # noqa: E402


def train(cfg, reporter, run_dir, identity=None):
    steps = int(os.environ.get("STANDIN_STEPS", "20"))
    pause = float(os.environ.get("STANDIN_SLEEP", "0.05"))
    fail_at = int(os.environ.get("STANDIN_FAIL_AT", "-1"))
    ignore = os.environ.get("STANDIN_IGNORE_TERM") == "1"
    if ignore:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    print(f"standin start gpu={os.environ.get('CUDA_VISIBLE_DEVICES')!r} pid={os.getpid()}", flush=True)
    print("standin stderr line", file=sys.stderr, flush=True)
    if os.environ.get("STANDIN_LONG_LINE"):
        print("x" * int(os.environ["STANDIN_LONG_LINE"]), flush=True)
        print("after the long line", flush=True)
    reporter.begin_phase("reward", 0)
    for step in range(1, steps + 1):
        if step == steps // 2:
            reporter.begin_phase("policy", step)
        if step == fail_at:
            raise RuntimeError(f"standin failure at step {step}")
        if reporter.should_stop() and not ignore:
            raise Cancelled()
        reporter.metrics(step, {"policy/loss": 1.0 / step, "dev/score": float(step)})
        reporter.samples(step, [dict(text="a b", tokens=["a", " b"], rewards=[0.1, 0.9], true_score=step)])
        reporter.progress(step, steps)
        time.sleep(pause)
    reporter.end_phase(steps)
    for i in range(int(os.environ.get("STANDIN_BURST", "0"))):
        print(f"burst line {i} " + "." * 180)
    print("standin done", flush=True)
    return {"test/accuracy": 50.0 + cfg.seed, "steps": steps}


spec = registry.TASKS["prompt"]
registry.TASKS["prompt"] = dataclasses.replace(spec, trainer="standin:train")
sys.path.insert(0, str(Path(__file__).resolve().parent))

if __name__ == "__main__":
    from engine.__main__ import main

    sys.exit(main(sys.argv[1:]))
