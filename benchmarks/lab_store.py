"""A lab's year in one store: 5,000 runs and 20 million metric rows, and how long what people do takes on it.

    python benchmarks/lab_store.py                    # SQLite, full size (~3 GB, a few minutes to build)
    python benchmarks/lab_store.py --runs 500 --rows-per-run 4000    # smaller
    python benchmarks/lab_store.py --postgres          # the same on a throwaway PostgreSQL server (Debian's)
    python benchmarks/lab_store.py --db PATH --reuse   # measure a store built before

Measured (median of 3 after one warm-up, except the app's start): `pgg runs`, `pgg table`, `pgg show` as a
user runs them (a new process each, to a pipe), the app's start until its runs table is filled, one refresh
of the runs table (`fetch_rows`, what the app does every second), opening one run's plots (`poll_detail` from
nothing), and one live run's write rate (metric rows/s through the StoreReporter) alone and while an app-like
reader refreshes the runs table every second. Goals (issue 25): every read under 1 s, the refresh under
100 ms, writes unaffected. The app re-reads only its queued and running runs each second and everything
every tenth time (pgg_tui/app.py), so both are timed.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import sqlalchemy as sa  # noqa: E402

from engine.config import to_json  # noqa: E402
from engine.registry import plan_runs  # noqa: E402
from engine.schema import Metric, Phase, Run, table_of  # noqa: E402
from engine.store import Store  # noqa: E402

METRICS = ("policy/loss", "policy/entropy", "train/score", "lr")


def build(store: Store, runs: int, rows_per_run: int, seed: int = 0) -> None:
    """`runs` runs of every task and status, each with `rows_per_run` metric rows and its phases."""
    rng = random.Random(seed)
    configs = {
        t: to_json(plan_runs(t, d, preset="tiny")[0].config)
        for t, d in (("prompt", "toy-sentiment"), ("summarize", "toy-news"))
    }
    statuses = ["done"] * 80 + ["failed"] * 8 + ["cancelled"] * 4 + ["queued"] * 6 + ["running"] * 2
    steps = rows_per_run // len(METRICS)
    t0 = time.time() - 365 * 86400
    run_t, metric_t, phase_t = table_of(Run), table_of(Metric), table_of(Phase)
    for first in range(0, runs, 100):
        batch = range(first, min(runs, first + 100))
        run_rows, phase_rows, metric_rows = [], [], []
        for i in batch:
            task = "prompt" if i % 3 else "summarize"
            status = rng.choice(statuses)
            started = t0 + i * 6000
            method = rng.choice(["pgg", "seq-reinforce", "rlprompt"] if task == "prompt" else ["pgg", "mle"])
            res = (
                {
                    "test/accuracy": rng.uniform(50, 95),
                    "reward/tau": rng.uniform(-0.2, 0.8),
                    "dev/top_score": rng.uniform(0, 3),
                }
                if task == "prompt"
                else {"test/rouge1": rng.uniform(20, 45), "val/score": rng.uniform(50, 130)}
            )
            run_rows.append(
                dict(
                    id=i + 1,
                    uid=f"{rng.getrandbits(128):032x}",
                    task=task,
                    dataset="toy-sentiment" if task == "prompt" else "toy-news",
                    method=method,
                    seed=i % 10,
                    dataset_seed=0,
                    preset="tiny",
                    config=configs[task],
                    overrides=json.dumps({"agg": rng.choice(["avg", "max"])} if method == "pgg" else {}),
                    status=status,
                    group_id=f"sweep-{i // 40}",
                    created_at=started - 60,
                    started_at=None if status == "queued" else started,
                    finished_at=started + 5000 if status in ("done", "failed", "cancelled") else None,
                    heartbeat_at=time.time() if status == "running" else None,
                    results=json.dumps(res) if status == "done" else None,
                    step=steps if status == "done" else steps // 2,
                    total_steps=steps,
                    phase="policy" if status != "queued" else None,
                    attempt=1,
                )
            )
            if status == "queued":
                continue
            phase_rows += [
                dict(
                    run_id=i + 1,
                    kind="reward",
                    index=1,
                    start_step=0,
                    end_step=0,
                    started_at=started,
                    ended_at=started + 100,
                ),
                dict(
                    run_id=i + 1,
                    kind="policy",
                    index=0,
                    start_step=0,
                    end_step=steps,
                    started_at=started + 100,
                    ended_at=started + 5000,
                ),
            ]
            for step in range(steps):
                for name in METRICS:
                    metric_rows.append(
                        dict(
                            run_id=i + 1, step=step, phase="policy", name=name, value=rng.random(), time=started + step
                        )
                    )
        with store.write() as s:
            conn = s.connection()
            conn.execute(run_t.insert(), run_rows)
            if phase_rows:
                conn.execute(phase_t.insert(), phase_rows)
            for j in range(0, len(metric_rows), 50000):
                conn.execute(metric_t.insert(), metric_rows[j : j + 50000])
        print(f"  built {min(runs, first + 100):,} runs", end="\r", file=sys.stderr, flush=True)
    print(file=sys.stderr)


def timed(fn, repeat: int = 3) -> float:
    fn()  # warm-up: the first read fills the page cache
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def cli(db: str, *args: str) -> None:
    r = subprocess.run([sys.executable, "-m", "pgg_tui.cli", "--db", db, *args], capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"pgg {' '.join(args)} failed: {r.stderr[-500:]}")


def app_start(db: str) -> float:
    """Seconds from launch until the app's runs table holds every run (headless)."""
    code = f"""
import asyncio, time, sys
t = time.perf_counter()
from pgg_tui.app import make_app
from textual.widgets import DataTable
app = make_app({db!r})
async def main():
    async with app.run_test(size=(160, 48)) as pilot:
        while True:
            await pilot.pause(0.05)
            tables = app.screen.query(DataTable)
            if tables and tables.first().row_count >= {{n}}:
                break
    print(time.perf_counter() - t)
asyncio.run(main())
"""
    n = len(Store.open(db).runs())
    r = subprocess.run([sys.executable, "-c", code.replace("{n}", str(n))], capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        raise SystemExit(f"app start failed: {r.stderr[-800:]}")
    return float(r.stdout.strip().splitlines()[-1])


def write_rate(store: Store, seconds: float = 5.0, reader: bool = False) -> float:
    """Metric rows/s one live run records through its reporter (flushed as in training), optionally while an
    app-like reader refreshes the runs table every second."""
    from engine.report import StoreReporter
    from pgg_tui.core.views import fetch_rows

    (rid,) = store.queue(plan_runs("prompt", "toy-sentiment", preset="tiny"))
    store.claim_next("bench", None)
    stop = threading.Event()

    def read() -> None:
        while not stop.wait(1.0):
            fetch_rows(store)

    t_reader = threading.Thread(target=read, daemon=True)
    if reader:
        t_reader.start()
    rep = StoreReporter(store, rid, interval=0.5)
    n, t = 0, time.perf_counter()
    while time.perf_counter() - t < seconds:
        rep.metrics(n, dict.fromkeys(METRICS, 1.0))
        n += 1
        if n % 200 == 0:
            time.sleep(0.001)  # a training step is never free
    rep.close()
    took = time.perf_counter() - t
    stop.set()
    store.end(rid, "cancelled", "benchmark", exit_code=0)
    return n * len(METRICS) / took


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=5000)
    p.add_argument("--rows-per-run", type=int, default=4000)
    p.add_argument("--db", default=None, help="the store (a SQLite path or URL); default: a new temporary one")
    p.add_argument("--reuse", action="store_true", help="measure the store at --db as it is")
    p.add_argument("--postgres", action="store_true", help="on a throwaway PostgreSQL server")
    p.add_argument("--build-only", action="store_true", help="build the store at --db and stop (measure later)")
    args = p.parse_args()
    server = None
    if args.postgres:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
        from pg_server import PgServer

        server = PgServer()
        db = server.url()
    else:
        db = args.db or str(Path(tempfile.mkdtemp(prefix="pgg-lab-")) / "lab.db")
    store = Store.open(db)
    if not args.reuse:
        t = time.perf_counter()
        build(store, args.runs, args.rows_per_run)
        print(
            f"built {args.runs:,} runs, {args.runs * args.rows_per_run:,} metric rows (less the queued runs') "
            f"in {time.perf_counter() - t:.0f}s: {db}",
            file=sys.stderr,
        )
        if args.build_only:
            return
    with store.read() as s:
        rows = s.connection().execute(sa.select(sa.func.count()).select_from(table_of(Metric))).scalar_one()
    runs = store.runs()
    done = next(r.id for r in reversed(runs) if r.status == "done")
    live = [r.id for r in runs if r.status in ("queued", "running") and r.id is not None]  # what the app re-reads
    last = max(r.id or 0 for r in runs)
    from pgg_tui.core.views import RunDetail, fetch_rows, poll_detail

    results = [
        ("pgg runs (a pipe)", timed(lambda: cli(db, "runs")), 1.0),
        ("pgg table", timed(lambda: cli(db, "table")), 1.0),
        (f"pgg show {done}", timed(lambda: cli(db, "show", str(done))), 1.0),
        ("app start, runs table filled", app_start(db), 1.0),
        (
            "runs table refresh, each second (its live runs)",
            timed(lambda: fetch_rows(store, ids=live, after_id=last)),
            0.1,
        ),
        ("runs table full reload, every 10th refresh", timed(lambda: fetch_rows(store)), 1.0),
        ("pgg runs -n 20", timed(lambda: cli(db, "runs", "-n", "20")), 1.0),
        ("open a run's plots (poll_detail)", timed(lambda: poll_detail(store, done, RunDetail())), 1.0),
    ]
    alone = write_rate(store)
    watched = write_rate(store, reader=True)
    kind = "PostgreSQL" if args.postgres else "SQLite"
    print(f"\n{kind} store: {len(runs):,} runs, {rows:,} metric rows\n")
    print("| what | seconds | goal |")
    print("|---|---:|---:|")
    for what, secs, goal in results:
        print(f"| {what} | {secs:.3f} | < {goal:g} {'✓' if secs < goal else '✗'} |")
    print(f"| one live run's writes, alone | {alone:,.0f} rows/s | |")
    print(
        f"| the same while the runs table refreshes every second | {watched:,.0f} rows/s "
        f"({watched / alone:.0%}) | unaffected |"
    )
    if server is not None:
        server.stop()


if __name__ == "__main__":
    main()
