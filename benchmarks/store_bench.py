"""Cost of recording through the reporter: per call (the training loop's side) and per flush (the writer thread).

python benchmarks/store_bench.py
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.registry import plan_runs  # noqa: E402
from engine.report import StoreReporter  # noqa: E402
from engine.store import Store  # noqa: E402


def main() -> None:
    st = Store.open(str(Path(tempfile.mkdtemp()) / "bench.db"))
    (rid,) = st.queue(plan_runs("prompt", "toy-sentiment"))
    rep = StoreReporter(st, rid, interval=3600)  # flushed by hand below, to time each flush alone
    n = 20000
    t = time.perf_counter()
    for step in range(n):
        rep.metrics(step, {"policy/loss": 1.0, "policy/entropy": 2.0, "lr": 5e-5, "train/score": 3.0})
    per_call = (time.perf_counter() - t) / n
    sample = dict(
        text="Rated CinemaScore Grade film",
        tokens=["Rated", " Cinema", "Score", " Grade", " film"],
        rewards=[0.5] * 5,
        model_score=2.5,
        true_score=90.0,
    )
    t = time.perf_counter()
    for step in range(2000):
        rep.samples(step, [sample] * 8)
    per_sample_call = (time.perf_counter() - t) / 2000
    rep.flush()
    flushes = {}
    for rows in (4, 100, 1000, 10000):
        times = []
        for _ in range(5):
            for step in range(rows // 4):
                rep.metrics(step, {"a": 1.0, "b": 2.0, "c": 3.0, "d": 4.0})
            t = time.perf_counter()
            rep.flush()
            times.append(time.perf_counter() - t)
        flushes[rows] = statistics.median(times)
    rep.close()
    print("| what | time |")
    print("|---|---|")
    print(f"| `reporter.metrics(step, 4 values)` (training thread) | {per_call * 1e6:.1f} µs |")
    print(f"| `reporter.samples(step, 8 sequences of 5 tokens)` | {per_sample_call * 1e6:.1f} µs |")
    for rows, s in flushes.items():
        print(f"| flush of {rows:,} metric rows (writer thread, one transaction + heartbeat) | {s * 1e3:.2f} ms |")


if __name__ == "__main__":
    main()
