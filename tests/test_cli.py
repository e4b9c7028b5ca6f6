"""`pgg` as a careless user meets it: every bad input is one line, a non-zero exit, and nothing written."""

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from support.cli import one_clear_line, pgg


def count_runs(db):
    if not os.path.exists(db):
        return None
    return sqlite3.connect(db).execute("select count(*) from run").fetchone()[0]


def test_version_and_help():
    assert pgg("--version").output.strip().startswith("pgg ")
    for cmd in ("queue", "run", "runs", "show", "logs", "cancel", "retry", "export", "table", "worker", "tui"):
        r = pgg(cmd, "--help")
        assert r.exit_code == 0 and "--db" in r.output, (cmd, r.output)


def test_queue_prints_ids_and_show_lists_them(db):
    r = pgg(
        "queue",
        "prompt",
        "--dataset",
        "toy-sentiment",
        "--seeds",
        "0-2",
        "--preset",
        "tiny",
        "--set",
        "agg=min",
        "--db",
        db,
    )
    assert r.exit_code == 0, r.output
    assert r.stdout.split() == ["1", "2", "3"]
    out = json.loads(pgg("runs", "--json", "--db", db).stdout)
    assert [(x["seed"], x["status"], x["overrides"]) for x in out] == [(s, "queued", {"agg": "min"}) for s in range(3)]
    shown = json.loads(pgg("show", "2", "--json", "--db", db).stdout)
    assert shown["config"]["agg"] == "min" and shown["config"]["seed"] == 1
    assert "queued" in pgg("show", "2", "--db", db).stdout
    assert pgg("runs", "--db", db).exit_code == 0


@pytest.mark.parametrize(
    "args,match",
    [
        (["queue", "translate", "--dataset", "sst-2"], "unknown task"),
        (["queue", "prompt", "--dataset", "imdb"], "unknown dataset"),
        (["queue", "prompt", "--dataset", "sst-2", "--method", "ppo"], "unknown method"),
        (["queue", "prompt", "--dataset", "sst-2", "--preset", "huge"], "unknown preset"),
        (["queue", "prompt", "--dataset", "sst-2", "--seeds", "3-1"], "bad seeds"),
        (["queue", "prompt", "--dataset", "sst-2", "--seeds", "a"], "bad seeds"),
        (["queue", "prompt", "--dataset", "sst-2", "--dataset-seeds", "7"], "no 16-shot folder"),
        (["queue", "prompt", "--dataset", "sst-2", "--set", "agg"], "malformed"),
        (["queue", "prompt", "--dataset", "sst-2", "--set", "agg=median"], "choose one of"),
        (["queue", "prompt", "--dataset", "sst-2", "--set", "topk=3"], "unknown setting"),
        (["queue", "prompt", "--dataset", "sst-2", "--data-dir", "/no/such/dir"], "does not exist"),
        (["run", "prompt", "--dataset", "imdb"], "unknown dataset"),
    ],
)
def test_bad_queue_input_writes_nothing(db, args, match):
    if "--dataset-seeds" in args:
        os.makedirs("data/sst-2")
        args = args + ["--data-dir", "data"]
    pgg("queue", "prompt", "--dataset", "toy-sentiment", "--db", db)  # a store with one run in it
    line = one_clear_line(pgg(*args, "--db", db))
    assert match in line
    assert count_runs(db) == 1


@pytest.mark.parametrize(
    "args,match",
    [
        (["show", "99"], "no run 99"),
        (["logs", "99"], "no run 99"),
        (["cancel", "1", "99"], "no run 99"),
        (["retry", "99"], "no run 99"),
        (["runs", "--status", "weird"], "unknown status"),
        (["export", "--format", "xml"], "unknown format"),
    ],
)
def test_bad_run_references(db, args, match):
    pgg("queue", "prompt", "--dataset", "toy-sentiment", "--db", db)
    assert match in one_clear_line(pgg(*args, "--db", db))
    assert json.loads(pgg("runs", "--json", "--db", db).stdout)[0]["status"] == "queued"


def test_cancel_finished_and_retry_queued(db):
    pgg("queue", "prompt", "--dataset", "toy-sentiment", "--seeds", "0-1", "--db", db)
    assert "cancelled" in pgg("cancel", "1", "--db", db).stdout
    assert "already cancelled" in one_clear_line(pgg("cancel", "1", "--db", db))
    assert "only failed, cancelled or lost" in one_clear_line(pgg("retry", "2", "--db", db))
    assert "retried as run 3" in pgg("retry", "1", "--db", db).stdout


@pytest.mark.parametrize(
    "kind,match",
    [
        ("text", "not a SQLite database"),
        ("foreign", "another program"),
        ("empty-dir", "no store"),
        ("newer", "newer pgg"),
    ],
)
def test_bad_store_files(tmp_path, kind, match):
    db = str(tmp_path / "x.db")
    if kind == "text":
        Path(db).write_text("not a database\n")
    elif kind == "foreign":
        con = sqlite3.connect(db)
        con.execute("create table t (x)")
        con.commit()
        con.close()
    elif kind == "newer":
        pgg("queue", "prompt", "--dataset", "toy-sentiment", "--db", db)
        con = sqlite3.connect(db)
        con.execute("update pgg_meta set value='99' where key='schema_version'")
        con.commit()
        con.close()
    if kind == "newer":  # settle the file: the in-process store of the first `pgg queue` checkpoints the WAL
        import gc  # when the garbage collector closes its connections, at a moment of its choosing

        gc.collect()
        sqlite3.connect(db).execute("PRAGMA wal_checkpoint(TRUNCATE)").connection.close()
    before = Path(db).read_bytes() if os.path.exists(db) else None
    assert match in one_clear_line(pgg("runs", "--db", db))
    if kind != "empty-dir":  # queueing into a missing store creates it, as it should
        assert match in one_clear_line(pgg("queue", "prompt", "--dataset", "toy-sentiment", "--db", db))
    if before is not None:
        assert Path(db).read_bytes() == before


def test_pgg_db_env_is_used(db, monkeypatch):
    monkeypatch.setenv("PGG_DB", db)
    pgg("queue", "prompt", "--dataset", "toy-sentiment")
    assert count_runs(db) == 1


def test_export_and_table(db):
    from engine.store import Store

    pgg("queue", "prompt", "--dataset", "toy-sentiment", "--seeds", "0-2", "--db", db)
    pgg("queue", "prompt", "--dataset", "toy-sentiment", "--seeds", "0-1", "--method", "rlprompt", "--db", db)
    st = Store.open(db)
    for rid, acc in [(1, 90.0), (2, 92.0), (3, 94.0), (4, 80.0), (5, 82.0)]:
        st.claim_next("w", None)
        st.finish(rid, {"test/accuracy": acc})
    table = json.loads(pgg("table", "--json", "--db", db).stdout)
    by = {row["method"]: row["test/accuracy"] for row in table}
    assert by["pgg"]["mean"] == pytest.approx(92.0) and by["pgg"]["std"] == pytest.approx(2.0) and by["pgg"]["n"] == 3
    assert by["rlprompt"]["mean"] == pytest.approx(81.0) and by["rlprompt"]["n"] == 2
    assert "92.00 ± 2.00 (3)" in pgg("table", "--db", db).stdout
    csv_text = pgg("export", "--db", db).stdout
    assert csv_text.splitlines()[0].startswith("id,") and "result.test/accuracy" in csv_text.splitlines()[0]
    assert len(csv_text.splitlines()) == 6
    pgg("export", "--format", "json", "-o", "out.json", "--db", db)
    assert len(json.loads(Path("out.json").read_text())) == 5


def test_console_script_errors_without_traceback(db):
    r = subprocess.run(
        [sys.executable, "-m", "pgg_tui", "queue", "prompt", "--dataset", "nope", "--db", db],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 1 and r.stderr.strip().count("\n") == 0 and "unknown dataset" in r.stderr


def test_a_run_that_needs_the_hub_fails_with_one_line(db):
    from support.paths import SHARED_DATA

    r = pgg("run", "prompt", "--dataset", "sst-2", "--data-dir", str(SHARED_DATA), "--db", db)
    assert r.exit_code == 1 and "Traceback" not in r.output
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert (
        len(lines) == 1
        and "cannot load the policy model 'distilgpt2'" in lines[0]
        and "--set policy_model=" in lines[0]
    )
    run = json.loads(pgg("show", "1", "--json", "--db", db).stdout)
    assert run["status"] == "failed" and run["error"].startswith("cannot load the policy model")


def test_piped_listing_is_whole_tab_separated_and_db_goes_anywhere(db, monkeypatch):
    monkeypatch.delenv("PGG_DB", raising=False)
    pgg("queue", "prompt", "--dataset", "toy-sentiment", "--seeds", "0-2", "--set", "agg=min", "--db", db)
    pgg("cancel", "2", "--db", db)
    out = pgg("--db", db, "runs").stdout.splitlines()  # --db before the command, as git users type it
    assert out[0].split("\t")[:3] == ["id", "status", "task"] and len(out) == 4
    assert sum(line.split("\t")[1] == "cancelled" for line in out[1:]) == 1  # was 0: cells read `cancell…`
    assert all(line.split("\t")[4] == "pgg agg=min" for line in out[1:])  # no wrapping, no ellipsis


def test_a_closed_pipe_ends_quietly(db):
    for _ in range(3):
        pgg("queue", "prompt", "--dataset", "toy-sentiment", "--seeds", "0-40", "--db", db)
    proc = subprocess.run(
        f"{sys.executable} -m pgg_tui runs --db {db} | head -1", shell=True, capture_output=True, text=True
    )
    assert proc.stdout.startswith("id\t") and proc.stderr == ""


# ---------------------------------------------------------------------------------------------------
# the CLI a scripter expects

TINY_RUN = [
    "max_steps=6",
    "eval_every=3",
    "reward_retrain_every=3",
    "reward_max_steps=2",
    "reward_epochs=1",
    "greedy_every=3",
    "checkpoint_every=3",
    "max_test_examples=8",
    "tau_candidates=4",
]


def cli(*args, db, **kw):
    """`pgg` as a console script: its own process, real stdout and stderr."""
    return subprocess.run([sys.executable, "-m", "pgg_tui", *args, "--db", db], capture_output=True, text=True, **kw)


def test_set_takes_several_words_and_strays_are_one_line(db):
    r = pgg("queue", "prompt", "-d", "toy-sentiment", "--set", "agg=min", "reward_k=4", "--db", db)
    assert r.exit_code == 0, r.output
    assert json.loads(pgg("runs", "--json", "--db", db).stdout)[0]["overrides"] == {"agg": "min", "reward_k": "4"}
    assert "unexpected argument 'agg=min'" in one_clear_line(
        pgg("queue", "prompt", "-d", "toy-sentiment", "agg=min", "--db", db)
    )
    assert "unexpected argument 'x'" in one_clear_line(
        pgg("queue", "prompt", "-d", "toy-sentiment", "--set", "agg=min", "x", "--db", db)
    )
    assert count_runs(db) == 1


@pytest.mark.parametrize(
    "args", [["queue", "prompt", "--bogus"], ["queue"], ["runs", "--limit", "0"], ["nosuchcommand"], ["show", "abc"]]
)
def test_usage_errors_are_one_line(db, args):
    r = cli(*args, db=db)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and lines[0].startswith("pgg: error: "), r.stderr
    assert "--help" in lines[0] and r.stdout == ""


def test_runs_filters_and_ids_only(db):
    from engine.store import Store

    pgg("queue", "prompt", "-d", "toy-sentiment", "-s", "0-2", "--db", db)  # 1-3
    pgg("queue", "prompt", "-d", "toy-sentiment", "-m", "seq-reinforce", "-s", "0-1", "--db", db)  # 4-5
    pgg("queue", "summarize", "-d", "toy-news", "-m", "mle", "--db", db)  # 6
    st = Store.open(db)
    st.claim_next("w", None)
    st.fail(1, "boom")
    pgg("cancel", "2", "--db", db)
    ids = lambda *a: pgg("runs", "-q", *a, "--db", db).stdout.split()  # noqa: E731
    assert ids() == ["1", "2", "3", "4", "5", "6"]
    assert ids("--status", "failed,cancelled") == ids("--status", "failed", "--status", "cancelled") == ["1", "2"]
    assert ids("--task", "summarize") == ["6"]
    assert ids("--method", "seq-reinforce") == ["4", "5"]
    assert ids("--dataset", "toy-news") == ["6"]
    assert ids("--sweep", st.get(4).group_id) == ["4", "5"]
    assert ids("--limit", "2") == ["5", "6"]
    assert ids("--status", "queued", "--task", "prompt", "-n", "1") == ["5"]
    assert [x["id"] for x in json.loads(pgg("runs", "--json", "--status", "failed", "--db", db).stdout)] == [1]
    assert "unknown task" in one_clear_line(pgg("runs", "--task", "nope", "--db", db))


def test_every_listing_has_json(db):
    tasks = json.loads(pgg("tasks", "--json").stdout)
    assert {t["name"] for t in tasks} == {"prompt", "summarize", "rlhf"} and "pgg" in tasks[0]["methods"]
    options = {o["name"]: o for o in json.loads(pgg("options", "prompt", "-p", "tiny", "--json").stdout)}
    assert options["policy_model"]["value"] == "tiny-gpt2" and options["policy_model"]["default"] == "distilgpt2"
    assert json.loads(pgg("queue", "prompt", "-d", "toy-sentiment", "-s", "0-1", "--json", "--db", db).stdout) == [1, 2]
    assert json.loads(pgg("table", "--json", "--db", db).stdout) == []  # nothing done yet
    status = json.loads(pgg("worker", "status", "--json", "--db", db).stdout)
    assert status["running"] is False and status["runs_queued"] == 2


def test_dry_run_queues_nothing(db):
    pgg("queue", "prompt", "-d", "toy-sentiment", "--db", db)
    r = pgg(
        "queue",
        "prompt",
        "-d",
        "toy-sentiment",
        "-s",
        "0-2",
        "--dataset-seeds",
        "0",
        "--dry-run",
        "--json",
        "--set",
        "agg=max",
        "--db",
        db,
    )
    assert r.exit_code == 0, r.output
    planned = json.loads(r.stdout)
    assert [p["seed"] for p in planned] == [0, 1, 2] and planned[0]["overrides"] == {"agg": "max"}
    assert count_runs(db) == 1
    assert "unknown method" in one_clear_line(
        pgg("queue", "prompt", "-d", "toy-sentiment", "-m", "ppo", "--dry-run", "--db", db)
    )


def test_export_filters_runs_and_brings_samples_with_token_rewards(db):
    from engine.store import Store

    pgg("queue", "prompt", "-d", "toy-sentiment", "-s", "0-2", "--db", db)
    st = Store.open(db)
    for rid in (1, 2):
        st.claim_next("w", None)
        st.append(
            rid,
            [dict(step=s, phase="policy", name="policy/loss", value=0.5 * s) for s in range(3)],
            [
                dict(
                    step=1,
                    phase="policy",
                    kind="policy",
                    text="a b",
                    tokens='["a", " b"]',
                    rewards="[0.25, -1.5]",
                    true_score=2.0,
                    model_score=0.1,
                )
            ],
            [],
            None,
        )
    st.finish(1, {"test/accuracy": 91.0})
    runs_csv = pgg("export", "--status", "done", "--db", db).stdout.splitlines()
    assert len(runs_csv) == 2 and runs_csv[1].startswith("1,done")
    metrics = [
        json.loads(x)
        for x in pgg("export", "--what", "metrics", "--format", "jsonl", "2", "--db", db).stdout.splitlines()
    ]
    assert [(m["run_id"], m["step"], m["value"]) for m in metrics] == [(2, 0, 0.0), (2, 1, 0.5), (2, 2, 1.0)]
    samples = json.loads(
        pgg("export", "--what", "samples", "--format", "json", "--status", "running", "--db", db).stdout
    )
    assert [(x["run_id"], x["tokens"], x["rewards"]) for x in samples] == [(2, ["a", " b"], [0.25, -1.5])]
    assert "no run 9" in one_clear_line(pgg("export", "9", "--db", db))
    assert "unknown --what" in one_clear_line(pgg("export", "--what", "logs", "--db", db))


def test_worker_status_and_stop(db):
    pgg("queue", "prompt", "-d", "toy-sentiment", "--db", db)
    r = cli("worker", "status", db=db)
    assert r.returncode == 3 and "no worker" in r.stdout
    env = dict(os.environ, PGG_DB=db)
    proc = subprocess.Popen(
        [sys.executable, "-m", "pgg_tui", "worker", "--command", "sleep 30"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while cli("worker", "status", db=db).returncode != 0:
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.2)
        assert f"pid {proc.pid}" in cli("worker", "status", db=db).stdout
        r = cli("worker", "stop", db=db)
        assert r.returncode == 0 and "worker stopped" in r.stdout, r.stdout + r.stderr
        assert proc.wait(timeout=15) == 0
        assert cli("worker", "status", db=db).returncode == 3
        assert "no worker serves this store on this host" in cli("worker", "stop", db=db).stdout
    finally:
        proc.kill()
        proc.wait()
    assert "unknown worker action" in one_clear_line(pgg("worker", "restart", "--db", db))


@pytest.mark.slow
def test_pgg_run_trains_in_a_process_of_its_own_and_ctrl_c_stops_it_gracefully(db):
    from engine.store import Store

    r = cli("run", "prompt", "-d", "toy-sentiment", "-p", "tiny", "--set", *TINY_RUN, db=db, timeout=300)
    assert r.returncode == 0 and "run 1: done" in r.stdout, r.stdout + r.stderr
    st = Store.open(db)
    assert st.get(1).status == "done" and st.get(1).worker == "foreground"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pgg_tui",
            "run",
            "prompt",
            "-d",
            "toy-sentiment",
            "-p",
            "tiny",
            "--set",
            *TINY_RUN[1:],
            "max_steps=400",
            "--db",
            db,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while len(st.runs()) < 2 or st.runs()[-1].step < 2:
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
        time.sleep(0.1)
    assert st.runs()[-1].pid != proc.pid  # trained by a child (`python -m engine run`), not by the CLI process
    proc.send_signal(signal.SIGINT)  # Ctrl-C: forwarded as SIGTERM, a graceful stop with a checkpoint
    out, err = proc.communicate(timeout=120)
    run = st.runs()[-1]
    assert proc.returncode == 130 and run.status == "cancelled", out + err
    assert "stopping at the next step" in err and "Traceback" not in err
    assert (Path(run.run_dir) / "ckpt" / "last.pt").exists()


def test_runs_watch_redraws_until_interrupted(db):
    pgg("queue", "prompt", "-d", "toy-sentiment", "--db", db)
    proc = subprocess.Popen(
        [sys.executable, "-m", "pgg_tui", "runs", "--watch", "0.2", "--db", db],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )
    headers = 0
    while headers < 2:  # drawn again and again, whole rows (stdout is a pipe); a loaded machine is slow to start
        line = proc.stdout.readline()
        assert line, proc.stderr.read()
        headers += line.startswith("id\tstatus")
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0 and "Traceback" not in err, err


def test_backup_command(db, tmp_path):
    pgg("queue", "prompt", "-d", "toy-sentiment", "-s", "0-1", "--db", db)
    r = pgg("backup", str(tmp_path / "b.db"), "--db", db)
    assert r.exit_code == 0 and "(2 runs)" in r.stdout
    assert pgg("runs", "-q", "--db", str(tmp_path / "b.db")).stdout.split() == ["1", "2"]
    assert "exists" in one_clear_line(pgg("backup", str(tmp_path / "b.db"), "--db", db))
    assert "does not exist" in one_clear_line(pgg("backup", "/no/such/dir/b.db", "--db", db))


def test_diff_names_the_settings_two_runs_differ_in(db):
    from engine.store import Store

    pgg("queue", "prompt", "-d", "toy-sentiment", "-p", "tiny", "--db", db)
    pgg("queue", "prompt", "-d", "toy-sentiment", "-p", "tiny", "-s", "1", "--set", "agg=min", "--db", db)
    st = Store.open(db)
    for rid, acc in ((1, 90.0), (2, 91.5)):
        st.claim_next("w", None)
        st.finish(rid, {"test/accuracy": acc})
    out = json.loads(pgg("diff", "1", "2", "--json", "--db", db).stdout)
    assert out["config"] == {"seed": [0, 1], "agg": ["avg", "min"]}
    assert out["results"] == {"test/accuracy": [90.0, 91.5]}
    lines = pgg("diff", "1", "2", "--db", db).stdout.splitlines()  # a pipe: whole tab-separated rows
    assert lines[0] == "setting\trun 1\trun 2" and "agg\tavg\tmin" in lines
    assert "same config" in pgg("diff", "1", "1", "--db", db).stdout
    assert "no run 9" in one_clear_line(pgg("diff", "1", "9", "--db", db))


def test_show_gives_each_number_its_unit(db):
    from engine.store import Store

    pgg("queue", "prompt", "-d", "toy-sentiment", "--db", db)
    st = Store.open(db)
    st.claim_next("w", None)
    st.finish(1, {"test/accuracy": 91.5, "reward/tau": 0.5893, "dev/score": 152.0, "env/git": "abc+dirty"})
    out = pgg("show", "1", "--db", db).stdout
    assert "test/accuracy 91.50%" in out and "reward/tau +0.59" in out and "dev/score 152" in out
    assert "made by   git abc+dirty" in out and "env/git" not in out
    assert "repeats" not in out  # a run that did not record where it computed makes no claim


@pytest.mark.parametrize(
    "device, says",
    [
        ("cpu (AVX2)", "bit for bit on a CPU with the same kernels, cpu (AVX2), at threads=1"),
        ("cuda (NVIDIA H200)", "approximately: trained on cuda (NVIDIA H200), whose kernels are not deterministic"),
    ],
)
def test_show_says_whether_a_seed_repeats_bit_for_bit(db, device, says):
    from engine.store import Store

    pgg("queue", "prompt", "-d", "toy-sentiment", "--db", db)
    st = Store.open(db)
    st.claim_next("w", None)
    st.finish(1, {"test/accuracy": 91.5, "env/device": device, "env/threads": 1})
    assert f"repeats   {says}" in pgg("show", "1", "--db", db).stdout


def test_wait_until_a_sweep_ends_for_scripts(db):
    import threading

    from engine.store import Store

    pgg("queue", "prompt", "-d", "toy-sentiment", "-s", "0-1", "--db", db)  # leaves a store open here: see
    # test_a_second_open_in_one_process_keeps_its_locks (this test found that bug)
    st = Store.open(db)
    sweep = st.get(1).group_id
    r = cli("wait", "--sweep", sweep, "--timeout", "0.5", "--poll", "0.1", db=db)
    assert r.returncode == 124 and "2 of 2 runs still going" in r.stderr

    def finish_later():
        time.sleep(1.0)
        st.claim_next("w", None)
        st.finish(1, {"test/accuracy": 91.5})
        st.claim_next("w", None)
        st.fail(2, "Traceback ...\nRuntimeError: out of memory")

    t = threading.Thread(target=finish_later)
    t.start()
    r = cli("wait", "--sweep", sweep, "--poll", "0.1", db=db, timeout=60)
    t.join()
    assert r.returncode == 1, r.stdout + r.stderr  # one of them failed
    assert r.stdout.splitlines() == ["run 1: done (test/accuracy 91.50%)", "run 2: failed: RuntimeError: out of memory"]
    assert cli("wait", "1", db=db).returncode == 0  # already done: at once
    assert "name the runs" in one_clear_line(pgg("wait", "--db", db))


def test_rankings_import_export_and_pairs(db, tmp_path):
    from support import seed_store

    st = seed_store.seed(db)
    seed_store.seed_rankings(st, 7, 2)
    res = pgg("rankings", "--db", db)
    assert res.exit_code == 0 and "7\t2\t0" in res.output  # run 7: 2 to rank, none ranked
    # the footer fits 80 columns: at 81 it wrapped a lone ` onto a line of its own (issue 24 item 14)
    assert res.stderr.strip().startswith("0 ranking(s) stored") and max(map(len, res.stderr.splitlines())) <= 80
    assert "waiting for 2 rankings" in pgg("show", "7", "--db", db).output
    assert "(waiting for 2 rankings)" in pgg("runs", "--db", db).output
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps(dict(context="c", candidates=["a", "b", "c"], order=[2, 0, 1], annotator="ana")) + "\n")
    res = pgg("rankings", "import", str(src), "--db", db)
    assert res.exit_code == 0 and "imported 1 ranked list(s)" in res.output
    out = tmp_path / "out.jsonl"
    res = pgg("rankings", "export", "-o", str(out), "--db", db)
    assert res.exit_code == 0 and "wrote 1 ranking(s)" in res.output  # requests nobody ranked are not rankings
    (rec,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert (rec["candidates"], rec["order"], rec["annotator"]) == (["a", "b", "c"], [2, 0, 1], "ana")
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(json.dumps(dict(prompt="q", chosen="yes", rejected="no")) + "\n")
    res = pgg("rankings", "import", "--pairs", str(pairs), "-o", str(tmp_path / "lists.jsonl"), "--db", db)
    assert res.exit_code == 0 and "rankings_file=" in res.output
    assert json.loads((tmp_path / "lists.jsonl").read_text())["order"] == [0, 1]


@pytest.mark.parametrize(
    "args,message",
    [
        (["rankings", "import", "missing.jsonl"], "no file"),
        (["rankings", "import", "."], "is a folder"),
        (["rankings", "export", "99"], "no run 99"),
    ],
)
def test_rankings_bad_input_is_one_line(db, args, message):
    from engine.store import Store

    Store.open(db)
    Path("missing.jsonl").unlink(missing_ok=True)
    res = pgg(*args, "--db", db)
    one_clear_line(res)
    assert message in res.output


def test_show_lists_tau_per_reward_phase_with_na_where_nothing_ranked(db):
    from engine.store import Store

    pgg("queue", "prompt", "-d", "toy-sentiment", "--db", db)
    st = Store.open(db)
    st.claim_next("w", None)
    rows = []
    for phase, tau in (("reward 1", 0.31), ("reward 2", None), ("reward 3", 0.58)):
        rows.append(dict(step=10, phase=phase, name="reward/chance_loss", value=4.787))
        if tau is not None:
            rows.append(dict(step=10, phase=phase, name="reward/tau", value=tau))
    st.append(1, rows, [], [], None)
    out = pgg("show", "1", "--db", db).stdout
    assert "grounding Kendall tau per reward phase +0.31, n/a, +0.58 (0 = chance)" in out


def test_terminal_escapes_a_run_printed_never_reach_the_reader(db):
    """OSC 0 (window title) and OSC 52 (clipboard write) from a run's output come out as visible text."""
    from engine.schema import LogLine
    from engine.store import Store
    from pgg_tui.core.views import RunDetail, poll_detail

    pgg("queue", "prompt", "-d", "toy-sentiment", "--db", db)
    st = Store.open(db)
    st.claim_next("w", None)
    evil = "\x1b]0;owned\x07\x1b]52;c;ZXZpbA==\x07 done\r"
    with st.write() as s:
        s.add(LogLine(run_id=1, stream="stdout", text=evil))
    st.fail(1, "boom " + evil)
    out = pgg("logs", "1", "--db", db).output + pgg("show", "1", "--db", db).output
    assert "\x1b" not in out and "\x07" not in out and "\r" not in out
    assert "\\x1b]0;owned\\x07" in out
    detail, _ = poll_detail(st, 1, RunDetail())
    assert not any("\x1b" in line for line in detail.logs) and "\x1b" not in detail.run.error


def test_counts_print_whole_with_separators():
    from pgg_tui.core.present import fmt_metric

    assert fmt_metric("queries/signal", 51584.0) == "51,584" and fmt_metric("updates", 3000.0) == "3,000"
    assert fmt_metric("reward/loss", 2.7712) == "2.771" and fmt_metric("time/train_s", 12345.6) == "12,346"
    assert fmt_metric("budget_spent", True) == "true"


def test_run_ids_take_ranges_and_lists(db):
    from engine.store import Store

    pgg("queue", "prompt", "-d", "toy-sentiment", "-s", "0-5", "--db", db)
    r = pgg("cancel", "2-4", "6", "--db", db)
    assert r.exit_code == 0, r.output
    st = Store.open(db)
    assert [x.id for x in st.runs() if x.status == "cancelled"] == [2, 3, 4, 6]
    assert pgg("delete", "2-3,6", "-y", "--db", db).exit_code == 0
    assert sorted(x.id for x in Store.open(db).runs()) == [1, 4, 5]
    assert "bad run ids" in one_clear_line(pgg("cancel", "4-2", "--db", db))


def test_runs_and_table_stay_legible_on_an_80_column_terminal(db, monkeypatch):
    """Every cell was cut to 3-4 characters and rows wrapped (issue 24): now the telling columns stay whole,
    the method gives up width (cut with …), and what every row shares is said once below."""
    import os

    from engine.store import Store

    monkeypatch.setattr("pgg_tui.cli._common.to_pipe", lambda: False)
    monkeypatch.setattr("shutil.get_terminal_size", lambda *a: os.terminal_size((80, 24)))
    monkeypatch.setenv("COLUMNS", "80")
    pgg(
        "queue",
        "prompt",
        "-d",
        "toy-sentiment",
        "-p",
        "tiny",
        "-s",
        "0-11",
        "--set",
        "agg=avg,max",
        "reward_lr=0.001",
        "reward_retrain_every=60",
        "scorer=engine.prompt.example_scorers:vowel_fraction",
        "--db",
        db,
    )
    st = Store.open(db)
    for rid in range(1, 14):  # both configurations have done seeds
        st.claim_next("w", None)
        st.finish(rid, {"test/accuracy": 90.0 + rid, "reward/tau": 0.5})
    r = pgg("runs", "--db", db)
    lines = r.stdout.splitlines()
    assert lines and all(len(line) <= 80 for line in lines), r.stdout
    assert lines[0].split() == ["id", "status", "method", "seed", "step", "metric", "result", "tau"]
    assert any(line.split()[:3] == ["24", "queued", "pgg"] for line in lines)  # ids whole
    assert "every run: reward_lr=0.001 reward_retrain_every=60 scorer=" in r.stderr
    assert "agg=max" in r.stdout  # what differs stays in the cell
    wide = pgg("runs", "-o", "--db", db).stdout
    assert "reward_retrain_every=60" in wide
    t = pgg("table", "--db", db)
    assert all(len(line) <= 80 for line in t.stdout.splitlines()) and "test/accuracy" in t.stdout.splitlines()[0]
    assert "every row: reward_lr=0.001" in t.stderr


def test_csv_export_writes_times_as_iso_8601(db):
    """Issue 24 item 16: CSV cells held epoch floats (1764750000.123) a spreadsheet shows as a number."""
    import csv
    import io
    import re

    pgg("queue", "prompt", "-d", "toy-sentiment", "-p", "tiny", "--db", db)
    rows = list(csv.DictReader(io.StringIO(pgg("export", "--format", "csv", "--db", db).stdout)))
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", rows[0]["created_at"]), rows[0]["created_at"]
    assert rows[0]["started_at"] == ""
    data = json.loads(pgg("export", "--format", "json", "--db", db).stdout)
    assert isinstance(data[0]["created_at"], float)  # JSON keeps the epoch seconds


def test_diff_says_when_two_runs_wrote_identical_test_outputs(db):
    """Issue 24 item 15: a pgg run bit-identical to mle (the same headline on every test article) looked like a
    result; the summaries' hash is recorded and pgg diff says so first."""
    from engine.store import Store

    pgg("queue", "summarize", "-d", "toy-news", "-p", "tiny", "-s", "0-2", "--db", db)
    st = Store.open(db)
    for rid, sha in ((1, "abc"), (2, "abc"), (3, "def")):
        st.claim_next("w", None)
        st.finish(rid, {"test/rouge1": 40.0 + rid, "test_outputs_sha": sha})
    same = pgg("diff", "1", "2", "--db", db).stdout
    assert "test outputs" in same and "identical to the other run's" in same
    assert "identical" not in pgg("diff", "1", "3", "--db", db).stdout


# ---------------------------------------------------------------------------------------------------
# the help reads like a good CLI's (issue 24): what each option takes, bare flags, examples that work


def _command_paths():
    """Every command as typed: (), ("queue",), ..., ("rankings", "export")."""
    from typer.main import get_command

    from pgg_tui.cli import app

    paths = []

    def walk(cmd, path):
        paths.append(path)
        for name, sub in (getattr(cmd, "commands", None) or {}).items():
            walk(sub, (*path, name))

    walk(get_command(app), ())
    return paths


def _examples(help_text):
    """The command lines under "Examples:" in a help text."""
    lines = help_text.split("Examples:", 1)[1].splitlines() if "Examples:" in help_text else []
    return [line.strip() for line in lines if line.strip().startswith("pgg ")]


def test_help_names_what_options_take_and_flags_take_nothing():
    import re

    for path in _command_paths():
        out = pgg(*path, "--help").output
        usage = out.splitlines()[0]
        assert usage.startswith(" ".join(("Usage: pgg", *path))) and "{" not in usage, (path, usage)
        # typer's type labels (<str>, <bool>, <int range>, <list[str]>) nowhere
        assert not re.search(r"<(str|bool|int|float|path|list|Path)\b", out), (path, out)
        for line in out.splitlines():  # a flag's line: the flag, then its help, no word it takes
            m = re.match(r"\s+(?:-\w, )?(--(?:dry-run|yes|json|quiet|wide|follow|no-trash|detach|pairs))\s+(\S+)", line)
            assert m is None or m.group(2).islower(), (path, line)
    q = pgg("queue", "--help").output
    assert q.splitlines()[0] == "Usage: pgg queue [OPTIONS] TASK"
    for shown in (
        "--db URL",
        "-s, --seeds SEEDS",
        "--set KEY=VALUE...",
        "--sweep FILE",
        "-t, --tag TAG",
        "--priority N",
    ):
        assert shown in q, shown
    assert "--sweep ID" in pgg("runs", "--help").output and "--watch SECONDS" in pgg("runs", "--help").output
    assert pgg("cancel", "--help").output.splitlines()[0] == "Usage: pgg cancel [OPTIONS] IDS..."
    # not eaten as rich markup
    assert "[env: PGG_DB; default: sqlite:///experiments.db]" in " ".join(pgg("--help").output.split())
    for main in (
        (),
        ("queue",),
        ("runs",),
        ("show",),
        ("compare",),
        ("worker",),
        ("rankings", "export"),
        ("rankings", "import"),
    ):
        assert 1 <= len(_examples(pgg(*main, "--help").output)) <= 3, main


def _parses(argv):
    """Parse a command line as pgg would, without running it (a worker, a training, the app)."""
    from typer.main import get_command

    from pgg_tui.cli import app

    cmd, name, parent = get_command(app), "pgg", None
    while True:
        ctx = cmd.make_context(name, list(argv), parent=parent)
        subs = getattr(cmd, "commands", None)
        rest = [*getattr(ctx, "_protected_args", getattr(ctx, "protected_args", [])), *ctx.args]
        if not subs or not rest:
            return
        name, cmd, argv = rest[0], subs[rest[0]], rest[1:]
        parent = ctx


def test_every_example_in_the_help_works(seeded, monkeypatch):
    """Each example line runs as printed against the app tests' store (runs 1-9 in every state, a ranking,
    runs 10-25 queued), a fresh copy of it per command, in the order its help shows them; lines that train
    or serve (run, worker, tui, -f, -w) are parsed only."""
    import shlex

    from engine import rankings
    from support import seed_store

    seed_store.seed_rankings(seeded, 7, 2)
    asked = rankings.claim(seeded, "ana", 7)
    rankings.submit(seeded, asked.id, [1, 0, 2], "ana")
    assert pgg("queue", "prompt", "-d", "toy-sentiment", "-p", "tiny", "-s", "0-15").stdout.split()[0] == "10"
    seeded.backup(Path("pristine.db"))
    Path("pairs.jsonl").write_text(json.dumps(dict(prompt="Say hi.", chosen="Hi!", rejected="Go away.")) + "\n")
    ran = parsed = 0
    for n, path in enumerate(_command_paths()):
        copy = f"store-{n}.db"
        shutil.copy("pristine.db", copy)
        monkeypatch.setenv("PGG_DB", copy)
        for line in _examples(pgg(*path, "--help").output):
            words = shlex.split(line.replace("3f2a9c1e", "sweep00"), comments=True)  # a sweep of this store
            while words:
                cut = words.index("&&") if "&&" in words else len(words)
                argv, words = words[1:cut], words[cut + 1 :]
                if ">" in argv:  # `> FILE`: the output goes to the file
                    argv = argv[: argv.index(">")]
                if argv[0] in ("run", "worker", "tui") or {"-f", "-w"} & set(argv):
                    _parses(argv)
                    parsed += 1
                    continue
                r = pgg(*argv)
                assert r.exit_code == 0, (line, r.output)
                ran += 1
    assert ran >= 30 and parsed >= 6, (ran, parsed)


def _complete(words, **env):
    """What pgg offers bash for the word being typed at the end of `words` (typer's completion protocol)."""
    cword = len(words.split()) - (not words.endswith(" "))
    env = {**os.environ, "_PGG_COMPLETE": "complete_bash", "COMP_WORDS": words, "COMP_CWORD": str(cword), **env}
    r = subprocess.run([sys.executable, "-m", "pgg_tui"], capture_output=True, text=True, env=env)
    assert r.returncode == 0 and not r.stderr, r.stderr
    return sorted(r.stdout.split())


def test_shell_completion_scripts_and_what_completes(db):
    for shell, mark in (("bash", "complete -o default -F _pgg_completion pgg"), ("zsh", "#compdef pgg"), ("fish", "")):
        r = subprocess.run(
            [sys.executable, "-m", "pgg_tui", "--show-completion", shell], capture_output=True, text=True
        )
        assert r.returncode == 0 and "_PGG_COMPLETE" in r.stdout and mark in r.stdout, (shell, r.stdout, r.stderr)
    assert "unknown shell 'tcsh'" in one_clear_line(pgg("--show-completion", "tcsh"))
    assert _complete("pgg show ", PGG_DB=db) == []  # no store yet: nothing offered, nothing created
    assert not os.path.exists(db)
    pgg("queue", "prompt", "-d", "toy-sentiment", "-p", "tiny", "-s", "0-2", "--db", db)
    pgg("cancel", "3", "--db", db)
    assert _complete("pgg show ", PGG_DB=db) == ["1", "2", "3"]
    assert _complete(f"pgg cancel --db {db} 1,", PGG_DB="") == ["1,1", "1,2", "1,3"]  # the --db on the line
    assert _complete("pgg queue ") == ["prompt", "rlhf", "summarize"]
    assert _complete("pgg runs --status ca") == ["cancelled"]
    assert _complete("pgg runs --status done,f") == ["done,failed"]


def test_tags_read_as_typed_a_leading_hash_dropped_and_spaces_separating(db):
    """One rule (pgg_tui.core.tags): `--tag '#x'` is the tag x, which listings show as #x and the app's #x
    filter finds; `--tag 'a b'` is two tags; the same for queue, annotate, --untag and the runs filter."""
    from engine.store import Store
    from pgg_tui.core.views import fetch_rows

    assert (
        pgg("queue", "prompt", "-d", "toy-sentiment", "-p", "tiny", "-s", "0-1", "-t", "#paper", "--db", db).exit_code
        == 0
    )
    st = Store.open(db)
    assert json.loads(st.get(1).tags) == ["paper"]
    r = pgg("annotate", "2", "--tag", "#x", "--tag", "a b,c", "--db", db)
    assert r.exit_code == 0 and "#paper #x #a #b #c" in r.stdout, r.output
    assert json.loads(st.get(2).tags) == ["paper", "x", "a", "b", "c"]
    for typed in ("#x", "x", "##x"):
        assert pgg("runs", "--tag", typed, "-q", "--db", db).stdout.split() == ["2"]
    assert [r.id for r in fetch_rows(st) if r.matches("#x")] == [2]  # the app's filter
    assert pgg("annotate", "2", "--untag", "#x a", "--db", db).exit_code == 0
    assert json.loads(st.get(2).tags) == ["paper", "b", "c"]
    assert "longer than 32 characters" in one_clear_line(pgg("annotate", "2", "--tag", "y" * 33, "--db", db))
    assert "control character" in one_clear_line(pgg("annotate", "2", "--tag", "a\x1b[31m", "--db", db))
    assert json.loads(st.get(2).tags) == ["paper", "b", "c"]


def test_diff_prints_counts_as_counts():
    """Issue 24 item 16: `pgg diff` and the app's diff printed a query count as 2.118e+04."""
    from pgg_tui.core.present import run_diff

    rows = run_diff(
        {},
        {},
        {"queries/logging": 21180.0, "test/accuracy": 91.25},
        {"queries/logging": 21250.0, "test/accuracy": 90.5},
    )
    assert ("result", "queries/logging", "21,180", "21,250") in rows
    assert ("result", "test/accuracy", "91.25%", "90.50%") in rows
