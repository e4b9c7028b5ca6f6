"""pgg-tui at scale: 1,000 runs and 1,000,000 metric rows; start, open a run, key presses while 8 writers append.

    python benchmarks/tui_bench.py [--runs 1000] [--metrics 1000000]

Measured headless (Textual's run_test) on this machine. "Stall" is the longest gap of a 10 ms timer on
the app's event loop: how long the UI could not react, polling included.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.registry import plan_runs  # noqa: E402
from engine.store import Metric, Run, Store  # noqa: E402

WRITER = textwrap.dedent("""
    import sys, time
    from engine.report import StoreReporter
    from engine.store import Store
    st = Store.open(sys.argv[1]); rid = int(sys.argv[2]); end = time.time() + float(sys.argv[3])
    rep = StoreReporter(st, rid, interval=0.5)
    step = 0
    while time.time() < end:
        step += 1
        rep.metrics(step, {"policy/loss": 1.0 / step, "policy/entropy": 5.0, "lr": 5e-5})
        rep.progress(step, 100000)
        time.sleep(0.002)
    rep.close()
""")


def seed(db: str, n_runs: int, n_metrics: int) -> None:
    st = Store.open(db)
    spec = plan_runs("prompt", "toy-sentiment", "pgg", preset="tiny")[0]
    ids = st.queue([spec] * n_runs)
    t0 = time.time()
    with st.write() as s:
        s.execute(
            sa.update(Run).values(
                status="done",
                started_at=t0 - 3600,
                finished_at=t0,
                results=json.dumps({"test/accuracy": 90.0}),
                step=1000,
                total_steps=1000,
            )
        )
        s.execute(sa.update(Run).where(Run.id.in_(ids[:8])).values(status="running", finished_at=None, results=None))
    per = n_metrics // n_runs
    names = ("policy/loss", "policy/entropy", "dev/score", "lr")
    table = Metric.__table__
    batch = []
    with st.engine.begin() as conn:
        for rid in ids:
            for i in range(per):
                batch.append(
                    dict(run_id=rid, step=i // 4, phase="policy", name=names[i % 4], value=1.0 / (i + 1), time=t0)
                )
            if len(batch) >= 200_000:
                conn.execute(table.insert(), batch)
                batch = []
        if batch:
            conn.execute(table.insert(), batch)
    st.close()


async def measure(db: str, seconds: float) -> dict[str, float]:
    from textual.widgets import DataTable

    from pgg_tui.app import PggApp

    out: dict[str, float] = {}
    handler: list[float] = []  # UI-thread time spent on each poll's result
    original = PggApp.on_runs_changed

    def timed(self, message):  # type: ignore[no-untyped-def]
        t0 = time.perf_counter()
        original(self, message)
        handler.append(time.perf_counter() - t0)

    PggApp.on_runs_changed = timed  # type: ignore[method-assign]
    t = time.perf_counter()
    app = PggApp(Store.open(db, create=False), poll=1.0)
    async with app.run_test(size=(160, 48)) as pilot:
        while app.screen.query(DataTable).first().row_count < len(app.rows) or not app.rows:
            await asyncio.sleep(0.005)
        out["start: app launched to 1,000-row table (s)"] = time.perf_counter() - t

        t = time.perf_counter()
        app.open_run(500)
        screen = app.screen
        while not screen.detail.metrics.get("policy/loss"):
            await asyncio.sleep(0.005)
        await pilot.pause()
        out["open a run (1,000 metric rows) and draw its plots (s)"] = time.perf_counter() - t
        await pilot.press("escape")

        # the loop's longest stall while 8 writers append and the app polls
        gaps: list[float] = []
        last = [time.perf_counter()]

        def tick() -> None:
            now = time.perf_counter()
            gaps.append(now - last[0])
            last[0] = now

        timer = app.set_interval(0.01, tick)
        writers = [
            subprocess.Popen([sys.executable, "-c", WRITER, db, str(rid), str(2 * seconds + 2)]) for rid in range(1, 9)
        ]
        for polling in (False, True):  # the same load, first with the app's polling paused: the baseline
            (app.poll_timer.resume if polling else app.poll_timer.pause)()
            await asyncio.sleep(1.0)
            gaps.clear()
            last[0] = time.perf_counter()
            lat = []
            end = time.perf_counter() + seconds
            while time.perf_counter() < end:
                t = time.perf_counter()
                await pilot.press("down")
                await pilot.pause()
                lat.append(time.perf_counter() - t)
                await asyncio.sleep(0.05)
            tag = "polling every 1 s" if polling else "polling paused"
            out[f"key press to repaint, 8 writers appending, {tag}: median / max (ms)"] = (
                statistics.median(lat) * 1e3,
                max(lat) * 1e3,
            )
            out[f"longest event-loop stall, 8 writers appending, {tag} (ms)"] = max(gaps[1:]) * 1e3 - 10
        for w in writers:
            w.wait()
        timer.stop()
        out["UI-thread time per poll, 8 writers appending: median / max (ms)"] = (
            statistics.median(handler[1:]) * 1e3,
            max(handler[1:]) * 1e3,
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=1000)
    ap.add_argument("--metrics", type=int, default=1_000_000)
    ap.add_argument("--seconds", type=float, default=10.0)
    args = ap.parse_args()
    db = str(Path(tempfile.mkdtemp()) / "bench.db")
    t = time.perf_counter()
    seed(db, args.runs, args.metrics)
    print(f"seeded {args.runs} runs and {args.metrics:,} metric rows in {time.perf_counter() - t:.1f}s")
    for k, v in asyncio.run(measure(db, args.seconds)).items():
        shown = " / ".join(f"{x:.0f}" for x in v) if isinstance(v, tuple) else f"{v:.3f}"
        print(f"| {k} | {shown} |")


if __name__ == "__main__":
    main()
