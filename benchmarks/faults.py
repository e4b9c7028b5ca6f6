"""The fault campaign: kill, stop, swap the store, write from many processes, feed bad input; count what held.

    python benchmarks/faults.py [--kills 3] [--writers 8] [--seconds 20]

Prints one Markdown table row per fault: trials, survived, and what was lost. Everything runs in a
temporary folder on tiny models or the tests' stand-in trainer (tests/standin.py), on the CPU.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from engine.errors import PggError  # noqa: E402
from engine.registry import plan_runs  # noqa: E402
from engine.store import Store  # noqa: E402

STANDIN = f"{sys.executable} {ROOT / 'tests' / 'standin.py'} run --run-id {{run_id}}"
FAST = [
    "max_steps=30",
    "eval_every=10",
    "reward_retrain_every=10",
    "reward_max_steps=10",
    "reward_epochs=2",
    "checkpoint_every=5",
    "greedy_every=5",
    "max_test_examples=16",
]

BAD_SETTINGS = [
    "policy_lr=nan",
    "policy_lr=inf",
    "policy_lr=-1",
    "policy_lr=0",
    "reward_lr=nan",
    "grad_clip=0",
    "agg_temp=0",
    "agg=median",
    "squash=tanh",
    "top_k=0",
    "top_k=-5",
    "prompt_length=0",
    "policy_batch=0",
    "max_steps=0",
    "eval_every=0",
    "reward_k=1",
    "reward_k=0",
    "reward_subset=0",
    "reward_subset=1.5",
    "reward_subset=nan",
    "lr_decay=0",
    "lr_decay=2",
    "reward_epochs=0",
    "reward_max_steps=0",
    "val_draws=0",
    "final_top=0",
    "tau_candidates=0",
    "device=gpu",
    "device=cuda:x",
    "policy_model=",
    "task_model=",
    "scorer=nosuch:f",
    "scorer=bad spec",
    "max_steps=1e3",
    "max_steps=ten",
    "use_q=maybe",
    "seed=1",
    "unknown_key=1",
    "top_k",
    "time_limit=-1",
    "max_steps=99999999999999999999",
    "entropy_coeff=nan",
    "correct_coeff=inf",
    "score_batch=0",
    "adaptor_hidden=0",
    "=1",
]


def bad_input() -> tuple[int, int]:
    refused = 0
    for setting in BAD_SETTINGS:
        try:
            plan_runs("prompt", "toy-sentiment", preset="tiny", overrides=[setting])
        except PggError as err:
            refused += "\n" not in str(err)
    return len(BAD_SETTINGS), refused


def kill_and_retry(db: str, trials: int) -> tuple[int, int]:
    """SIGKILL a tiny run at a random step, retry it: the resumed run must equal an uninterrupted one."""
    import random

    from engine.__main__ import execute

    st = Store.open(db)
    same = 0
    for trial in range(trials):
        overrides = FAST
        (ref,) = st.queue(plan_runs("prompt", "toy-sentiment", "pgg", str(trial), preset="tiny", overrides=overrides))
        (victim,) = st.queue(
            plan_runs("prompt", "toy-sentiment", "pgg", str(trial), preset="tiny", overrides=overrides)
        )
        step = random.Random(trial).randint(6, 25)
        proc = subprocess.Popen(
            [sys.executable, "-m", "engine", "run", "--run-id", str(victim)],
            cwd=ROOT,
            env=dict(os.environ, PGG_DB=db),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        while st.get(victim).step < step and proc.poll() is None:
            time.sleep(0.05)
        proc.kill()
        proc.wait()
        st.end(victim, "lost", "killed by the campaign")
        (retry,) = st.retry([victim])
        execute(st, retry)
        execute(st, ref)
        a, b = json.loads(st.get(ref).results or "{}"), json.loads(st.get(retry).results or "{}")
        same += bool(a) and a.get("top_prompts") == b.get("top_prompts")
    return trials, same


def worker(db: str, *extra: str, **env: str) -> subprocess.Popen[str]:
    argv = [sys.executable, "-m", "pgg_tui", "worker", "--db", db, "--command", STANDIN, "--poll", "0.1", *extra]
    return subprocess.Popen(
        argv,
        env=dict(os.environ, **env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def wait(pred, timeout: float = 30.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.1)
    return False


def stopped_runs(db: str, trials: int) -> tuple[int, int]:
    """SIGSTOP a running run: its own worker must find it hung, mark it lost and kill it."""
    st = Store.open(db)
    found = 0
    w = worker(db, "--lost-after", "2", STANDIN_STEPS="2000", STANDIN_SLEEP="0.05")
    try:
        for _ in range(trials):
            (rid,) = st.queue(plan_runs("prompt", "toy-sentiment"))
            if not wait(lambda: st.get(rid).status == "running" and st.get(rid).step > 1):
                continue
            os.kill(st.get(rid).pid, signal.SIGSTOP)  # type: ignore[arg-type]
            found += wait(lambda: st.get(rid).status == "lost", 20)
    finally:
        w.send_signal(signal.SIGTERM)
        w.wait(timeout=30)
    return trials, found


def swapped_store(folder: Path) -> tuple[int, int]:
    """Delete, then replace, the store file under a worker: it must stop with one line each time."""
    held = 0
    for how in ("delete", "replace"):
        db = str(folder / f"swap-{how}.db")
        st = Store.open(db)
        st.queue(plan_runs("prompt", "toy-sentiment"))
        w = worker(db, STANDIN_STEPS="2000", STANDIN_SLEEP="0.05")
        wait(lambda: st.get(1).status == "running")
        os.unlink(db)
        if how == "replace":
            for side in ("-wal", "-shm"):
                Path(db + side).unlink(missing_ok=True)
            Store.open(db).close()
        code = w.wait(timeout=30)
        held += code != 0 and "deleted or replaced" in w.stderr.read()
    return 2, held


def cut_logs(folder: Path, trials: int) -> tuple[int, int]:
    """A run's process dies with its last commits in the -wal; the -wal then loses its tail (a careless copy
    or restore). Opening the store must refuse with one line rather than open short of those rows."""
    held = 0
    for i in range(trials):
        db = folder / f"cut-{i}.db"
        code = (
            "import os\nfrom engine.store import Store\nfrom engine.registry import plan_runs\n"
            f"st = Store.open({str(db)!r})\n(rid,) = st.queue(plan_runs('prompt', 'toy-sentiment'))\n"
            f"for i in range({20 + 10 * i}):\n"
            "    st.append(rid, [dict(step=i, phase='policy', name='policy/loss', value=1.0)], [], [], None)\n"
            "os._exit(0)\n"
        )
        subprocess.run([sys.executable, "-c", code], check=True)
        wal = Path(f"{db}-wal")
        os.truncate(wal, wal.stat().st_size - 1000 * (i + 1))
        opened = subprocess.run(
            [sys.executable, "-m", "pgg_tui.cli", "--db", str(db), "runs"], capture_output=True, text=True
        )
        held += (
            opened.returncode != 0
            and "would be silently dropped" in opened.stderr
            and len(opened.stderr.strip().splitlines()) == 1
        )
    return trials, held


def _writer(db: str, rid: int, seconds: float, counts: mp.Queue) -> None:
    from engine.report import StoreReporter

    st = Store.open(db)
    rep = StoreReporter(st, rid)
    n, end = 0, time.monotonic() + seconds
    while time.monotonic() < end:
        rep.metrics(n, {"policy/loss": 1.0, "lr": 1e-3})
        n += 1
        time.sleep(0.0005)
    rep.close()
    counts.put(2 * n)


def many_writers(db: str, writers: int, seconds: float) -> tuple[int, int]:
    st = Store.open(db)
    ids = st.queue(plan_runs("prompt", "toy-sentiment", seeds=f"0-{writers - 1}"))
    counts: mp.Queue = mp.Queue()
    procs = [mp.Process(target=_writer, args=(db, rid, seconds, counts)) for rid in ids]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    sent = sum(counts.get() for _ in procs)
    stored = sum(len(st.metric_tuples(rid)) for rid in ids)
    return sent, stored


def retry_race(db: str, trials: int) -> tuple[int, int]:
    """Two `pgg retry` of the same failed run at once: exactly one new attempt, the other refused in one line."""
    st = Store.open(db)
    held = 0
    for _ in range(trials):
        (rid,) = st.queue(plan_runs("prompt", "toy-sentiment"))
        st.claim_next("w", None)
        st.fail(rid, "failed on purpose")
        argv = [sys.executable, "-m", "pgg_tui", "--db", db, "retry", str(rid)]
        procs = [subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
        outs = [(p.wait(timeout=60), p.stderr.read() if p.stderr else "") for p in procs]
        attempts = [r for r in st.runs() if r.parent_id == rid]
        refused = [err for code, err in outs if code != 0]
        held += len(attempts) == 1 and len(refused) == 1 and len(refused[0].strip().splitlines()) == 1
        st.request_cancel([a.id for a in attempts if a.id is not None])  # queued: cancelled at once, claims none
    return trials, held


def long_output(db: str) -> tuple[int, int]:
    """A run printing one 3 MB line and a 10,000-line burst at its end: every byte reaches the store."""
    st = Store.open(db)
    (rid,) = st.queue(plan_runs("prompt", "toy-sentiment"))
    w = worker(
        db,
        "--exit-when-idle",
        STANDIN_STEPS="4",
        STANDIN_SLEEP="0.01",
        STANDIN_LONG_LINE="3000000",
        STANDIN_BURST="10000",
    )
    w.wait(timeout=120)
    text = [line.text for line in st.logs(rid)]
    long_bytes = sum(t.count("x") for t in text if set(t) <= {"x"})
    burst = sum(t.startswith("burst line") for t in text)
    return 1, int(st.get(rid).status == "done" and long_bytes == 3_000_000 and burst == 10_000)


def migration_race(folder: Path, processes: int) -> tuple[int, int]:
    """A schema-1 store opened by several processes at once: each migrates or waits, none fails, rows kept."""
    import sqlite3

    db = str(folder / "old.db")
    st = Store.open(db)
    st.queue(plan_runs("prompt", "toy-sentiment", seeds="0-2"))
    st.close()
    con = sqlite3.connect(db)  # back to schema 1, as tests/test_identity.py makes it
    con.executescript("""ALTER TABLE run DROP COLUMN uid; DELETE FROM pgg_meta WHERE key = 'last_run_id';
                         ALTER TABLE run DROP COLUMN phase_step; ALTER TABLE run DROP COLUMN phase_total;
                         ALTER TABLE run DROP COLUMN name; ALTER TABLE run DROP COLUMN tags;
                         ALTER TABLE run DROP COLUMN notes; ALTER TABLE run DROP COLUMN priority;
                         ALTER TABLE run DROP COLUMN eta_at; ALTER TABLE run DROP COLUMN job_id;
                         ALTER TABLE run DROP COLUMN waiting_for; DROP TABLE ranking; DROP TABLE sweep;
                         UPDATE pgg_meta SET value = '1' WHERE key = 'schema_version';""")
    con.close()
    argv = [sys.executable, "-m", "pgg_tui", "--db", db, "runs", "-q"]
    procs = [
        subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(processes)
    ]
    ok = sum(
        p.wait(timeout=120) == 0 and (p.stdout.read() if p.stdout else "").split() == ["1", "2", "3"] for p in procs
    )
    final = Store.open(db)
    return processes, ok if len(final.runs()) == 3 and len({r.uid for r in final.runs()}) == 3 else 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kills", type=int, default=3)
    ap.add_argument("--stops", type=int, default=3)
    ap.add_argument("--writers", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=20.0)
    args = ap.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="pgg-faults-"))
    os.environ["PGG_RUNS_DIR"] = str(folder / "runs")
    print("| fault | trials | held | lost |")
    print("|---|---|---|---|")
    n, ok = bad_input()
    print(f"| bad settings at queue time: refused with one line | {n} | {ok} | nothing queued |", flush=True)
    sent, stored = many_writers(str(folder / "writers.db"), args.writers, args.seconds)
    print(
        f"| {args.writers} writer processes x {args.seconds:.0f} s, metric rows | {sent:,} | {stored:,} | "
        f"{sent - stored:,} rows |",
        flush=True,
    )
    n, ok = kill_and_retry(str(folder / "kills.db"), args.kills)
    print(f"| SIGKILL mid-run, then retry: equals the uninterrupted run | {n} | {ok} | — |", flush=True)
    n, ok = stopped_runs(str(folder / "stops.db"), args.stops)
    print(f"| SIGSTOP of a running run: its worker marks it lost and kills it | {n} | {ok} | — |", flush=True)
    n, ok = swapped_store(folder)
    print(f"| store file deleted / replaced under a worker: it stops with one line | {n} | {ok} | — |", flush=True)
    n, ok = cut_logs(folder, args.kills)
    print(f"| a crashed store's -wal cut short: opening refuses with one line | {n} | {ok} | — |", flush=True)
    n, ok = retry_race(str(folder / "retries.db"), args.kills)
    print(
        f"| two `pgg retry` of one failed run at once: one attempt, one refusal in one line | {n} | {ok} | — |",
        flush=True,
    )
    n, ok = long_output(str(folder / "output.db"))
    print(
        f"| a 3 MB output line and a 10,000-line burst at the end: every byte in the store | {n} | {ok} | — |",
        flush=True,
    )
    n, ok = migration_race(folder, 4)
    print(
        f"| a schema-1 store opened by 4 processes at once: all migrate or wait, rows kept | {n} | {ok} | — |",
        flush=True,
    )


if __name__ == "__main__":
    main()
