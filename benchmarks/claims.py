"""Claim latency across workers, and Slurm jobs in flight: the numbers behind "many hosts, one store".

    python benchmarks/claims.py [--runs 400] [--claimers 4] [--jobs 8]

Claimers are processes that each play a host's worker and claim queued runs as fast as they can (no
training), against a SQLite file and against a throwaway PostgreSQL server (tests/pg_server.py). Every
run must be claimed exactly once; prints claims per second and the median / p99 latency of one claim.
With Slurm available (tests/slurm_cluster.py, root), it also submits --jobs stand-in runs through the
Slurm executor and reports the submission time per job and how many were in flight at once.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from engine.registry import plan_runs  # noqa: E402
from engine.store import Store  # noqa: E402


def claimer(url: str, host: str, out: mp.Queue) -> None:
    st = Store.open(url)
    got, lat = [], []
    while True:
        t0 = time.perf_counter()
        run = st.claim_next(f"{host}:{os.getpid()}", None, host=host)
        lat.append(time.perf_counter() - t0)
        if run is None:
            break
        got.append(run.id)
    out.put((got, lat[:-1]))


def bench_claims(url: str, runs: int, claimers: int) -> str:
    st = Store.open(url)
    st.queue(plan_runs("prompt", "toy-sentiment", seeds=f"0-{runs - 1}"))
    q: mp.Queue = mp.Queue()
    procs = [mp.Process(target=claimer, args=(url, f"host-{i}", q)) for i in range(claimers)]
    t0 = time.perf_counter()
    for p in procs:
        p.start()
    results = [q.get() for _ in procs]
    wall = time.perf_counter() - t0
    for p in procs:
        p.join()
    ids = [i for got, _ in results for i in got]
    lat = sorted(x for _, ls in results for x in ls)
    assert len(ids) == len(set(ids)) == runs, f"claimed {len(ids)} ({len(set(ids))} distinct) of {runs}"
    p99 = lat[int(0.99 * (len(lat) - 1))]
    backend = "postgresql" if url.startswith("postgresql") else "sqlite"
    return (
        f"| {backend} | {claimers} | {runs} | {runs / wall:.0f} | {statistics.median(lat) * 1e3:.1f} ms "
        f"| {p99 * 1e3:.1f} ms | exactly once |"
    )


def bench_slurm(jobs: int) -> str:
    from conftest import STANDIN
    from engine.slurm import SlurmOptions, SlurmWorker
    from slurm_cluster import SlurmCluster

    cluster = SlurmCluster()
    os.environ["SLURM_CONF"] = str(cluster.conf)
    try:
        tmp = Path(tempfile.mkdtemp())
        os.environ.update(PGG_RUNS_DIR=str(tmp / "runs"), STANDIN_STEPS="4", STANDIN_SLEEP="0.01")
        st = Store.open(str(tmp / "s.db"))
        st.queue(plan_runs("prompt", "toy-sentiment", seeds=f"0-{jobs - 1}"))
        w = SlurmWorker(
            st,
            SlurmOptions(max_jobs=jobs, time_min=10, gpus_per_run=0, cpus_per_run=1),
            command=STANDIN,
            log=lambda m: None,
        )
        w.acquire()
        t0 = time.perf_counter()
        w.tick()  # submits every job
        submit = (time.perf_counter() - t0) / jobs
        in_flight = len(w.children)
        while w.children:
            w.tick()
            time.sleep(0.2)
        wall = time.perf_counter() - t0
        done = sum(r.status == "done" for r in st.runs())
        w.release()
        return (
            f"Slurm: {jobs} stand-in runs submitted at {submit * 1e3:.0f} ms per job, {in_flight} in flight "
            f"at once, {done}/{jobs} done in {wall:.1f} s on a one-node cluster ({os.cpu_count()} cores)"
        )
    finally:
        cluster.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=400)
    ap.add_argument("--claimers", type=int, default=4)
    ap.add_argument("--jobs", type=int, default=8)
    args = ap.parse_args()
    print("| store | claimers | runs | claims/s | median claim | p99 claim | each run |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        print(bench_claims(str(Path(tmp) / "claims.db"), args.runs, args.claimers))
    from pg_server import PgServer

    try:
        server = PgServer()
    except (FileNotFoundError, RuntimeError) as err:
        print(f"(PostgreSQL skipped: {err})")
    else:
        try:
            print(bench_claims(server.fresh_database(), args.runs, args.claimers))
        finally:
            server.stop()
    try:
        print(bench_slurm(args.jobs))
    except (FileNotFoundError, PermissionError, RuntimeError) as err:
        print(f"(Slurm skipped: {err})")


if __name__ == "__main__":
    main()
