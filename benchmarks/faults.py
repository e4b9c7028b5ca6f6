"""The fault campaign: kill, stop, swap the store, write from many processes, feed bad input; count what held.

    python benchmarks/faults.py [--kills 3] [--writers 8] [--seconds 20] [--only checkpoint_kill,full_disk,...]

Prints one Markdown table row per fault: trials, survived, and what was lost. Everything runs in a
temporary folder on tiny models or the tests' stand-in trainer (tests/standin.py), on the CPU. Some cases
need more of the machine: strace (checkpoint_kill, slow_fs), root (full_disk mounts a tmpfs; slurm_requeue
starts tests/slurm_cluster.py's cluster), PostgreSQL's binaries (pg_outage, tests/pg_server.py); without it
their row says "not tried". pg_outage waits out its outage (150 s by default).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlmodel import select

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from engine.errors import PggError  # noqa: E402
from engine.registry import plan_runs  # noqa: E402
from engine.store import Store  # noqa: E402
from engine.schema import Ranking  # noqa: E402

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


def worker(db: str, *extra: str, command: str = STANDIN, **env: str) -> subprocess.Popen[str]:
    argv = [sys.executable, "-m", "pgg_tui", "worker", "--db", db, "--command", command, "--poll", "0.1", *extra]
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


# The syscalls of one checkpoint write (engine/checkpoint.py: write <name>.tmp, fsync it, rename <name> to
# <name>.prev, rename <name>.tmp to <name>, fsync the folder), and the file strace's -P names to single each out
# (strace 6 matches a rename by its first path).
CKPT_STAGES = {
    "write": ("write", ".tmp"),  # inside torch.save: a torn <name>.tmp
    "fsync": ("fsync", ".tmp"),  # written, not yet fsync'ed
    "rename-old": ("rename", ""),  # fsync'ed, the old <name> not yet moved to <name>.prev
    "rename-new": ("rename", ".tmp"),  # the old one moved to .prev, the new one not renamed in: no <name> at all
    "fsync-folder": ("fsync", "/"),  # published, the folder not yet fsync'ed
}
CKPT_NAMES = ("last.pt", "best.pt")


def _traced(ckpt: Path, extra: list[str], run_id: int, db: str) -> subprocess.CompletedProcess[str]:
    """`python -m engine run` under strace, its checkpoint folder made first (strace -P resolves the paths then)."""
    ckpt.mkdir(parents=True, exist_ok=True)
    argv = ["strace", "-f", "-qq", *extra, sys.executable, "-m", "engine", "run", "--run-id"]
    return subprocess.run(
        [*argv, str(run_id)], cwd=ROOT, env=dict(os.environ, PGG_DB=db), capture_output=True, text=True, timeout=600
    )


def _ckpt_events(trace: str) -> list[tuple[str, str]]:
    """(syscall, file) of each checkpoint syscall in an strace -y log, in order; the folder's file is "/"."""
    import re

    events = []
    for line in trace.splitlines():
        m = re.search(r"(write|fsync)\(\d+<([^>]*)>", line) or re.search(r'(rename)\("([^"]*)"', line)
        if m:
            name = Path(m.group(2)).name
            events.append((m.group(1), name if name.startswith(CKPT_NAMES) else "/"))
    return events


def _resumed_step(st: Store, run_id: int) -> int | None:
    import re

    for line in st.logs(run_id):
        m = re.search(r"resumed from the checkpoint at step (\d+)", line.text)
        if m:
            return int(m.group(1))
    return None


def checkpoint_kills(db: str, trials: int) -> tuple[int, int, str]:
    """SIGKILL a tiny run at one syscall of one of its checkpoint writes (strace's fault injection, on the
    real code: no hook), cycling through the stages of CKPT_STAGES and both checkpoints (last.pt, best.pt),
    at a random write of each. The retry must resume from the newest checkpoint whose write completed (the
    one before, or the new one once renamed in), never a torn one, and equal the uninterrupted run: same
    final prompts and every metric value."""
    import random

    import torch

    from engine.__main__ import execute

    if shutil.which("strace") is None:
        return 0, 0, "not tried: no strace"
    st = Store.open(db)
    plan = plan_runs("prompt", "toy-sentiment", "pgg", "0", preset="tiny", overrides=FAST)
    (ref,) = st.queue(plan)
    ckpt = Path(st.run_dir(st.get(ref))) / "ckpt"
    paths = [f"-P{ckpt / n}{sfx}" for n in CKPT_NAMES for sfx in ("", ".tmp")] + [f"-P{ckpt}"]
    trace = ckpt.parent / "strace.log"
    done = _traced(ckpt, ["-y", "-o", str(trace), "-e", "trace=write,fsync,rename", *paths], ref, db)
    assert done.returncode == 0 and st.get(ref).status == "done", done.stderr[-2000:]
    events = _ckpt_events(trace.read_text())
    want = [(m.name, m.step, m.value) for m in st.metrics(ref)]
    ref_top = json.loads(st.get(ref).results or "{}").get("top_prompts")
    held, fallbacks, new_ones = 0, 0, 0
    for trial in range(trials):
        rng = random.Random(trial)
        stage = list(CKPT_STAGES)[trial % len(CKPT_STAGES)]
        call, suffix = CKPT_STAGES[stage]
        name = CKPT_NAMES[trial % 2]  # 10 trials: each stage of each file once
        target = "/" if suffix == "/" else name + suffix
        at = [i for i, e in enumerate(events) if e == (call, target)]
        if stage == "fsync-folder":  # the folder's fsync after a write of `name`
            at = [i for i in at if events[i - 1] == ("rename", name + ".tmp")]
        if not at:
            continue
        i = rng.choice(at)
        when = sum(1 for e in events[: i + 1] if e == (call, target))  # the when-th such call
        (victim,) = st.queue(plan)
        vdir = Path(st.run_dir(st.get(victim))) / "ckpt"
        path = vdir if target == "/" else vdir / target
        inject = [
            "-o",
            "/dev/null",
            f"-P{path}",
            "-e",
            f"trace={call}",
            "-e",
            f"inject={call}:signal=SIGKILL:when={when}",
        ]
        killed = _traced(vdir, inject, victim, db)
        if killed.returncode not in (-signal.SIGKILL, 128 + signal.SIGKILL) or st.get(victim).status != "running":
            print(f"checkpoint_kill trial {trial}: the kill did not land ({killed.returncode})", file=sys.stderr)
            continue
        st.end(victim, "lost", "killed by the campaign")
        newest = vdir / "last.pt" if (vdir / "last.pt").exists() else vdir / "last.pt.prev"
        expect = torch.load(newest, weights_only=True)["state"]["step"] if newest.exists() else None
        (retry,) = st.retry([victim])
        execute(st, retry)
        got = [(m.name, m.step, m.value) for m in st.metrics(retry)]
        top = json.loads(st.get(retry).results or "{}").get("top_prompts")
        step = _resumed_step(st, retry)
        fell_back = any("resuming from the checkpoint before it" in x.text for x in st.logs(retry))
        ok = st.get(retry).status == "done" and top == ref_top and sorted(got) == sorted(want) and step == expect
        fallbacks += fell_back
        new_ones += stage == "fsync-folder" and name == "last.pt"
        print(
            f"checkpoint_kill trial {trial}: {stage} of {name} (call {when}), resumed at step {step} "
            f"(newest complete {expect}){', from .prev' if fell_back else ''}: {'held' if ok else 'NOT held'}",
            file=sys.stderr,
        )
        held += ok
    return trials, held, f"{new_ones} resumed from the new checkpoint, {fallbacks} from the .prev fallback"


def _mount_tmpfs(folder: Path, size: str) -> bool:
    """A small tmpfs at `folder` (root only): a disk that fills up for real."""
    folder.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True)
    return done.returncode == 0


def _fill(folder: Path) -> Path:
    """Write a file in `folder` until its filesystem is full; the file, to delete to free the space."""
    filler = folder / "filler"
    with open(filler, "wb", buffering=0) as f:
        try:
            while f.write(b"\0" * 4096):
                pass
        except OSError:
            pass
    return filler


def _one_line(text: str | None) -> bool:
    return bool(text) and "\n" not in (text or "").strip() and "Traceback" not in (text or "")


def full_store(folder: Path) -> tuple[int, int, str]:
    """The store's disk (a SQLite store on a 16 MB tmpfs) fills up for 15 s while a run trains under a worker,
    then is freed: the run goes on, every metric row it sent is stored, the worker serves the next run."""
    mnt = folder / "full-store"
    if not _mount_tmpfs(mnt, "16m"):
        return 0, 0, "not tried: mounting a tmpfs needs root"
    db = str(mnt / "store.db")
    st = Store.open(db)
    steps = 300
    (rid,) = st.queue(plan_runs("prompt", "toy-sentiment"))
    w = worker(db, STANDIN_STEPS=str(steps), STANDIN_SLEEP="0.05")
    try:
        wait(lambda: st.get(rid).step > 20 or st.get(rid).status != "queued" and st.get(rid).status != "running")
        before = len(st.metric_tuples(rid))
        filler = _fill(mnt)
        time.sleep(15)
        during = (st.get(rid).status, len(st.metric_tuples(rid)))
        filler.unlink()
        wait(lambda: st.get(rid).status != "running", 120)
        (nxt,) = st.queue(plan_runs("prompt", "toy-sentiment", seeds="1"))
        served = wait(lambda: st.get(nxt).status == "done", 60)
        rows = len(st.metric_tuples(rid))
        alive = w.poll() is None
    finally:
        w.send_signal(signal.SIGTERM)
        _, out = w.communicate(timeout=30)  # the worker logs on stderr
        subprocess.run(["umount", "-l", str(mnt)], check=False)
    retries = sum("store error" in line for line in out.splitlines())
    kept = sum("store write failed, will retry" in line.text for line in st.logs(rid))
    held = during[0] == "running" and during[1] >= before and st.get(rid).status == "done"
    held = held and rows == 2 * steps and served and alive
    print(
        f"full_store: {before} rows before, {during} during, {rows} of {2 * steps} after; the run kept its rows "
        f"{kept} times, the worker retried {retries} ticks; next run served: {served}",
        file=sys.stderr,
    )
    return 1, int(held), f"{2 * steps - rows} rows"


def full_runs_dir(folder: Path) -> tuple[int, int, str]:
    """The run folder's disk (an 8 MB tmpfs) fills up under a tiny run: its next checkpoint write fails. The run
    must fail with one line, keep its earlier checkpoints and rows, the worker serve on, and a retry once
    the space is freed resume and equal the uninterrupted run."""
    mnt = folder / "full-runs"
    if not _mount_tmpfs(mnt, "8m"):  # the run's checkpoints, then its retry's copies of them
        return 0, 0, "not tried: mounting a tmpfs needs root"
    from engine.__main__ import execute

    db = str(folder / "full-runs.db")
    st = Store.open(db)
    plan = plan_runs("prompt", "toy-sentiment", "pgg", "0", preset="tiny", overrides=FAST)
    (ref,) = st.queue(plan)
    execute(st, ref)  # the uninterrupted run, its folder on the ordinary disk
    runs_root = os.environ["PGG_RUNS_DIR"]
    os.environ["PGG_RUNS_DIR"] = str(mnt)  # the run, its retry and the worker's
    (rid,) = st.queue(plan)
    w = worker(db, command=f"{sys.executable} -m engine run --run-id {{run_id}}")
    try:
        wait(lambda: st.get(rid).step >= 7 or st.get(rid).status not in ("queued", "running"), 120)  # past step 5
        before = len(st.metric_tuples(rid))
        filler = _fill(mnt)
        ended = wait(lambda: st.get(rid).status != "running", 120)
        run = st.get(rid)
        rows = len(st.metric_tuples(rid))
        torn = [p.name for p in mnt.rglob("*.tmp")]
        filler.unlink()
        (retry,) = st.retry([rid])
        wait(lambda: st.get(retry).status not in ("queued", "running"), 120)
        alive = w.poll() is None
    finally:
        w.send_signal(signal.SIGTERM)
        _, out = w.communicate(timeout=30)  # the worker logs on stderr
        subprocess.run(["umount", "-l", str(mnt)], check=False)
        os.environ["PGG_RUNS_DIR"] = runs_root
    said = [line for line in out.splitlines() if f"run {rid}: " in line and run.status in line]
    same = json.loads(st.get(ref).results or "{}").get("top_prompts") == json.loads(st.get(retry).results or "{}").get(
        "top_prompts"
    )
    print(
        f"full_runs_dir: run {run.status}: {run.error!r}; worker said {said}; rows {before} before the fill, "
        f"{rows} after; torn files left {torn}; retry {st.get(retry).status}, equal: {same}",
        file=sys.stderr,
    )
    held = ended and run.status == "failed" and _one_line(run.error) and "No space left" in (run.error or "")
    held = held and rows >= before and not torn and alive and st.get(retry).status == "done" and same
    return 1, int(held), "0 rows; output lines printed while full"


def slow_checkpoints(db: str, fsync_delay: float = 9.0, lost_after: float = 3.0) -> tuple[int, int, str]:
    """A tiny run whose checkpoint writes are slow (strace delays each write(2) into a checkpoint by 0.1 s and
    its fsync by `fsync_delay` s, the file a stalled network filesystem holds up) under a worker that marks a
    run lost after `lost_after` s without a heartbeat: the heartbeat must go on while a write blocks, the run
    never be marked lost, and finish equal to an unhindered run."""
    from engine.__main__ import execute

    if shutil.which("strace") is None:
        return 0, 0, "not tried: no strace"
    st = Store.open(db)
    plan = plan_runs("prompt", "toy-sentiment", "pgg", "0", preset="tiny", overrides=[*FAST, "checkpoint_every=10"])
    (ref,) = st.queue(plan)
    execute(st, ref)
    (rid,) = st.queue(plan)
    ckpt = Path(st.run_dir(st.get(rid))) / "ckpt"
    ckpt.mkdir(parents=True)  # strace -P resolves the paths when it starts
    slow = " ".join(f"-P {ckpt / n}.tmp" for n in CKPT_NAMES)
    command = (
        f"strace -f -qq -o /dev/null {slow} -e trace=write,fsync -e inject=write:delay_enter=100ms "
        f"-e inject=fsync:delay_enter={fsync_delay:g}s {sys.executable} -m engine run --run-id {{run_id}}"
    )
    w = worker(db, "--lost-after", f"{lost_after:g}", "--exit-when-idle", command=command)
    gap, statuses, t0 = 0.0, set(), time.monotonic()
    while w.poll() is None and time.monotonic() - t0 < 600:
        run = st.get(rid)
        statuses.add(run.status)
        if run.status == "running" and run.heartbeat_at:
            gap = max(gap, time.time() - run.heartbeat_at)
        time.sleep(0.1)
    took = time.monotonic() - t0
    w.communicate(timeout=30)
    same = json.loads(st.get(ref).results or "{}").get("top_prompts") == json.loads(st.get(rid).results or "{}").get(
        "top_prompts"
    )
    unhindered = (st.get(ref).finished_at or 0) - (st.get(ref).started_at or 0)
    print(
        f"slow_checkpoints: {took:.0f} s (unhindered: {unhindered:.0f} s), statuses seen {sorted(statuses)}, "
        f"longest heartbeat gap {gap:.1f} s, equal: {same}",
        file=sys.stderr,
    )
    held = "lost" not in statuses and st.get(rid).status == "done" and same and gap < lost_after
    return 1, int(held), f"longest heartbeat gap {gap:.1f} s under fsyncs of {fsync_delay:g} s, run took {took:.0f} s"


def _pg_ctl(server: Any, action: str) -> None:
    """Stop (fast: clients are cut off) or start tests/pg_server.py's server again, its data kept."""
    opts = f"-p {server.port} -k {server.dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
    argv = [str(server.bin / "pg_ctl"), "-D", str(server.data), "-w", "-t", "60"]
    if action == "start":
        argv += ["-l", str(server.dir / "log"), "-o", opts, "start"]
    else:
        argv += ["-m", "fast", "stop"]
    subprocess.run([*server.as_user, *argv], check=True, capture_output=True, timeout=120)


def pg_outage(folder: Path, outage: float = 150.0) -> tuple[int, int, str]:
    """Two tiny runs train on a PostgreSQL store (tests/pg_server.py) under a worker; the server stops for
    `outage` s (longer than the two minutes a run's direct writes wait), then comes back. Counted: the runs'
    ends, the metric rows missing against the same runs trained without an outage, the worker serving on."""
    from pg_server import PgServer

    from engine.__main__ import execute

    try:
        server = PgServer()
    except (FileNotFoundError, RuntimeError) as err:
        return 0, 0, f"not tried: {err}"
    try:
        url = server.fresh_database()
        ref_store = Store.open(str(folder / "pg-ref.db"))
        plans = [
            plan_runs("prompt", "toy-sentiment", "pgg", str(seed), preset="tiny", overrides=FAST) for seed in (0, 1)
        ]
        want = []
        for plan in plans:
            (ref,) = ref_store.queue(plan)
            execute(ref_store, ref)
            want.append(sorted((m.phase, m.step, m.name, m.value) for m in ref_store.metrics(ref)))
        st = Store.open(url)
        ids = [st.queue(plan)[0] for plan in plans]
        w = worker(url, "--cpu-slots", "2", command=f"{sys.executable} -m engine run --run-id {{run_id}}")
        try:
            wait(lambda: all(st.get(i).step >= 3 for i in ids), 120)
            at = [st.get(i).step for i in ids]
            st.engine.dispose()
            _pg_ctl(server, "stop")
            time.sleep(outage)
            _pg_ctl(server, "start")
            wait(lambda: all(st.get(i).status not in ("queued", "running") for i in ids), 300)
            (nxt,) = st.queue(plan_runs("prompt", "toy-sentiment", "pgg", "2", preset="tiny", overrides=FAST))
            served = wait(lambda: st.get(nxt).status == "done", 180)
            alive = w.poll() is None
        finally:
            w.send_signal(signal.SIGTERM)
            _, out = w.communicate(timeout=60)
        runs = [st.get(i) for i in ids]
        got = [sorted((m.phase, m.step, m.name, m.value) for m in st.metrics(i)) for i in ids]
    finally:
        server.stop()
    lost = sum(sum((Counter(a) - Counter(b)).values()) for a, b in zip(want, got))
    extra = sum(sum((Counter(b) - Counter(a)).values()) for a, b in zip(want, got))
    for r in runs:
        print(
            f"pg_outage: run {r.id} (step {at[ids.index(r.id)]} at the stop): {r.status} {r.error!r}", file=sys.stderr
        )
    print(
        f"pg_outage: rows lost {lost}, rows extra {extra}, worker alive {alive}, next run served {served}; "
        f"worker: {[line for line in out.splitlines() if 'run ' in line or 'store error' in line][-8:]}",
        file=sys.stderr,
    )
    done = sum(r.status == "done" for r in runs)
    held = done == len(runs) and lost == 0 and extra == 0 and alive and served
    return len(runs), int(held) * len(runs), f"{lost} rows"


def human_run(db: str) -> tuple[int, int, str]:
    """A tiny preference=human run under a worker, its rankings answered as the Rank screen answers them (claim,
    then submit). A ranker ("ghost") claims one request and walks away; the worker is SIGKILLed (the worker
    only: the run lives in a session of its own) while the run waits for its first rankings, and again in
    the middle of its policy phase; each time a new worker is started. The new worker must adopt the run, the
    ghost's claim, once stale, go back to the pool (its claimed_at is moved back by STALE_CLAIM: the two
    minutes are not waited out), every request be answered exactly once, and the run finish."""
    from engine import rankings
    from engine.errors import ConfigError

    st = Store.open(db)
    overrides = [*FAST, "preference=human", "rank_lists=4"]
    (rid,) = st.queue(plan_runs("prompt", "toy-sentiment", "pgg", "0", preset="tiny", overrides=overrides))
    engine = f"{sys.executable} -m engine run --run-id {{run_id}}"
    workers = [worker(db, command=engine)]
    answered: Counter[int] = Counter()
    ghost: int | None = None
    kills, refused, reoffered, t0, kill_at = 0, False, False, time.monotonic(), []
    try:
        while st.get(rid).status in ("queued", "running") and time.monotonic() - t0 < 300:
            run = st.get(rid)
            if kills == 0 and run.waiting_for > 0 or kills == 1 and run.step >= 5 and run.waiting_for == 0:
                workers[-1].kill()  # SIGKILL, the worker alone
                workers[-1].wait()
                kills += 1
                kill_at.append(f"step {run.step}, waiting for {run.waiting_for}")
                workers.append(worker(db, command=engine))
            if ghost is None:
                taken = rankings.claim(st, "ghost", run_id=rid)
                ghost = taken.id if taken is not None else None
            r = rankings.claim(st, "ana", run_id=rid)
            if r is None:
                if ghost is not None and not answered[ghost] and run.waiting_for == 1:  # the ghost's alone is left
                    with st.write() as s:
                        s.execute(
                            sa.update(Ranking)
                            .where(Ranking.id == ghost)
                            .values(claimed_at=Ranking.claimed_at - rankings.STALE_CLAIM - 1)
                        )
                time.sleep(0.2)
                continue
            reoffered = reoffered or r.id == ghost
            k = len(json.loads(r.candidates))
            rankings.submit(st, r.id, list(range(k)), "ana")
            answered[r.id] += 1
            if r.id == ghost:
                try:
                    rankings.submit(st, ghost, list(range(k)), "ghost")
                except ConfigError:
                    refused = True
    finally:
        for w in workers:
            w.send_signal(signal.SIGTERM)
        logs = [w.communicate(timeout=60)[1] for w in workers]
    adopted = sum(f"run {rid}: adopted" in log for log in logs[1:])
    with st.read() as s:
        rows = list(s.exec(select(Ranking).where(Ranking.run_id == rid)).all())
    results = json.loads(st.get(rid).results or "{}")
    once = all(r.status == "done" and r.annotator == "ana" for r in rows) and set(answered.values()) == {1}
    once = once and len(answered) == len(rows) == results.get("queries/human")
    print(
        f"human_run: run {st.get(rid).status} in {time.monotonic() - t0:.0f} s; worker killed at {kill_at}, adopted "
        f"{adopted} times; {len(rows)} requests, {sum(answered.values())} answers, queries/human "
        f"{results.get('queries/human')}; the ghost's claim re-offered {reoffered}, its late answer refused {refused}",
        file=sys.stderr,
    )
    held = st.get(rid).status == "done" and kills == adopted == 2 and once and reoffered and refused
    return 1, int(held), f"{len(rows) - len(answered)} of {len(rows)} rankings"


def slurm_requeue(folder: Path, requeues: int = 2) -> tuple[int, int, str]:
    """A tiny run as a Slurm job on a one-node cluster (tests/slurm_cluster.py, root only) under `pgg worker
    --executor slurm`, requeued `requeues` times with `scontrol requeue` (what a preemption with
    PreemptMode=REQUEUE does: SIGTERM, KillWait, SIGKILL, back to pending). Each time the requeued job must
    resume the same run from its checkpoint, and the run finish equal to an uninterrupted one: same final
    prompts and every metric value (rows after the checkpoint rewound, none twice)."""
    from slurm_cluster import SlurmCluster

    from engine.__main__ import execute
    from engine.procs import pid_alive
    from engine.slurm import job_state

    try:
        cluster = SlurmCluster()
    except (FileNotFoundError, PermissionError, RuntimeError, subprocess.CalledProcessError) as err:
        return 0, 0, f"not tried: {err}"
    db = str(folder / "slurm.db")
    st = Store.open(db)
    plan = plan_runs("prompt", "toy-sentiment", "pgg", "0", preset="tiny", overrides=FAST)
    (ref,) = st.queue(plan)
    execute(st, ref)
    (rid,) = st.queue(plan)
    argv = [sys.executable, "-m", "pgg_tui", "worker", "--db", db, "--executor", "slurm", "--gpus-per-run", "0"]
    argv += ["--cpus-per-run", "1", "--max-jobs", "1", "--time-min", "30", "--poll", "0.2", "--exit-when-idle"]
    os.environ["SLURM_CONF"] = str(cluster.conf)  # engine.slurm.job_state's scontrol, here too
    env = dict(os.environ, OMP_NUM_THREADS="1")
    w = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    done, job, t0, at = 0, "", time.monotonic(), []
    scontrol = dict(env=env, capture_output=True, text=True, timeout=30)
    try:
        for n in range(requeues):
            if not wait(lambda: st.get(rid).step >= 8 + 10 * n, 240):  # past a checkpoint (every 5 steps)
                break
            job, pid = st.get(rid).job_id or "", st.get(rid).pid
            at.append(st.get(rid).step)
            subprocess.run(["scontrol", "requeue", job], check=True, **scontrol)
            # Slurm holds a requeued job (BeginTime) until the old step is gone; once the run's process has
            # ended, start it now rather than in two minutes
            if not wait(lambda: not pid_alive(pid) and job_state(job)[0] == "PENDING", 60):
                break
            time.sleep(2)
            subprocess.run(["scontrol", "update", f"JobId={job}", "StartTime=now"], check=True, **scontrol)
            done += 1
        w.wait(timeout=300)
    finally:
        if w.poll() is None:
            w.send_signal(signal.SIGTERM)
        _, log = w.communicate(timeout=60)
        if job:
            subprocess.run(["scancel", job], **scontrol)
        cluster.stop()
        os.environ.pop("SLURM_CONF", None)
    run = st.get(rid)
    text = [line.text for line in st.logs(rid)]
    resumed = [t for t in text if "resumed from the checkpoint at step" in t]
    stopped = sum("stopped by Slurm" in t for t in text)
    want = sorted((m.phase, m.step, m.name, m.value) for m in st.metrics(ref))
    got = sorted((m.phase, m.step, m.name, m.value) for m in st.metrics(rid))
    top = [json.loads(st.get(i).results or "{}").get("top_prompts") for i in (ref, rid)]
    print(
        f"slurm_requeue: {done} requeues of job {job} (at steps {at}) in {time.monotonic() - t0:.0f} s; run "
        f"{run.status} {run.error or ''} (job {run.job_id}, attempt {run.attempt}); {stopped} stopped on the signal, "
        f"{resumed}; metric rows {len(got)} of {len(want)}, equal: {got == want}, prompts equal: {top[0] == top[1]}; "
        f"worker: {[line for line in log.splitlines() if 'run ' in line][-6:]}",
        file=sys.stderr,
    )
    held = run.status == "done" and run.job_id == job and len(resumed) == done == requeues and got == want
    return done, done if held and top[0] == top[1] else 0, f"{len(want) - len(got)} rows"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kills", type=int, default=3)
    ap.add_argument("--stops", type=int, default=3)
    ap.add_argument("--writers", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--ckpt-kills", type=int, default=5, help="checkpoint_kill: trials (needs strace)")
    ap.add_argument("--outage", type=float, default=150.0, help="pg_outage: seconds the server is down")
    ap.add_argument("--only", default="", help=f"comma-separated cases to run, of: {', '.join(CASES)}")
    args = ap.parse_args()
    only = [c.strip() for c in args.only.split(",") if c.strip()]
    unknown = [c for c in only if c not in CASES]
    if unknown:
        ap.error(f"unknown case(s) {', '.join(unknown)}; choose from {', '.join(CASES)}")
    folder = Path(tempfile.mkdtemp(prefix="pgg-faults-"))
    os.environ["PGG_RUNS_DIR"] = str(folder / "runs")
    print("| fault | trials | held | lost |")
    print("|---|---|---|---|")
    for name, case in CASES.items():
        if not only or name in only:
            print(case(args, folder), flush=True)


def _row_bad_input(args: argparse.Namespace, folder: Path) -> str:
    n, ok = bad_input()
    return f"| bad settings at queue time: refused with one line | {n} | {ok} | nothing queued |"


def _row_many_writers(args: argparse.Namespace, folder: Path) -> str:
    sent, stored = many_writers(str(folder / "writers.db"), args.writers, args.seconds)
    return (
        f"| {args.writers} writer processes x {args.seconds:.0f} s, metric rows | {sent:,} | {stored:,} | "
        f"{sent - stored:,} rows |"
    )


def _row_kill(args: argparse.Namespace, folder: Path) -> str:
    n, ok = kill_and_retry(str(folder / "kills.db"), args.kills)
    return f"| SIGKILL mid-run, then retry: equals the uninterrupted run | {n} | {ok} | — |"


def _row_stop(args: argparse.Namespace, folder: Path) -> str:
    n, ok = stopped_runs(str(folder / "stops.db"), args.stops)
    return f"| SIGSTOP of a running run: its worker marks it lost and kills it | {n} | {ok} | — |"


def _row_swap(args: argparse.Namespace, folder: Path) -> str:
    n, ok = swapped_store(folder)
    return f"| store file deleted / replaced under a worker: it stops with one line | {n} | {ok} | — |"


def _row_cut_logs(args: argparse.Namespace, folder: Path) -> str:
    n, ok = cut_logs(folder, args.kills)
    return f"| a crashed store's -wal cut short: opening refuses with one line | {n} | {ok} | — |"


def _row_retry_race(args: argparse.Namespace, folder: Path) -> str:
    n, ok = retry_race(str(folder / "retries.db"), args.kills)
    return f"| two `pgg retry` of one failed run at once: one attempt, one refusal in one line | {n} | {ok} | — |"


def _row_long_output(args: argparse.Namespace, folder: Path) -> str:
    n, ok = long_output(str(folder / "output.db"))
    return f"| a 3 MB output line and a 10,000-line burst at the end: every byte in the store | {n} | {ok} | — |"


def _row_migration(args: argparse.Namespace, folder: Path) -> str:
    n, ok = migration_race(folder, 4)
    return f"| a schema-1 store opened by 4 processes at once: all migrate or wait, rows kept | {n} | {ok} | — |"


def _row_checkpoint_kill(args: argparse.Namespace, folder: Path) -> str:
    n, ok, note = checkpoint_kills(str(folder / "ckpt-kills.db"), args.ckpt_kills)
    return f"| SIGKILL inside a checkpoint write ({note}), then retry: equals the uninterrupted run | {n} | {ok} | — |"


def _row_full_disk(args: argparse.Namespace, folder: Path) -> str:
    n, ok, lost = full_store(folder)
    m, ok2, lost2 = full_runs_dir(folder)
    return (
        f"| disk full under the store (15 s, then freed): the run goes on, the worker serves on | {n} | {ok} | "
        f"{lost} |\n| disk full under the run folder: the run fails with one line, a retry equals the "
        f"uninterrupted run | {m} | {ok2} | {lost2} |"
    )


def _row_slow_fs(args: argparse.Namespace, folder: Path) -> str:
    n, ok, note = slow_checkpoints(str(folder / "slow.db"))
    return (
        f"| slow checkpoint writes (each fsync 9 s, --lost-after 3): heartbeats go on, never marked lost ({note}) "
        f"| {n} | {ok} | — |"
    )


def _row_pg_outage(args: argparse.Namespace, folder: Path) -> str:
    n, ok, lost = pg_outage(folder, args.outage)
    return (
        f"| PostgreSQL stopped {args.outage:.0f} s under two tiny runs: they finish, no row lost, the worker serves on "
        f"| {n} | {ok} | {lost} |"
    )


def _row_human(args: argparse.Namespace, folder: Path) -> str:
    n, ok, lost = human_run(str(folder / "human.db"))
    return (
        f"| a `preference=human` run, its worker SIGKILLed twice and a claim abandoned: adopted, every request "
        f"answered once | {n} | {ok} | {lost} |"
    )


def _row_slurm(args: argparse.Namespace, folder: Path) -> str:
    n, ok, lost = slurm_requeue(folder)
    return (
        f"| a Slurm job requeued (`scontrol requeue`) mid-run: the same run resumes from its checkpoint, equals "
        f"the uninterrupted run | {n} | {ok} | {lost} |"
    )


CASES = {
    "bad_input": _row_bad_input,
    "many_writers": _row_many_writers,
    "kill": _row_kill,
    "stop": _row_stop,
    "swap": _row_swap,
    "cut_logs": _row_cut_logs,
    "retry_race": _row_retry_race,
    "long_output": _row_long_output,
    "migration": _row_migration,
    "checkpoint_kill": _row_checkpoint_kill,
    "full_disk": _row_full_disk,
    "slow_fs": _row_slow_fs,
    "pg_outage": _row_pg_outage,
    "human": _row_human,
    "slurm_requeue": _row_slurm,
}


if __name__ == "__main__":
    main()
