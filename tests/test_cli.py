"""`pgg` as a careless user meets it: every bad input is one line, a non-zero exit, and nothing written."""

import json
import os
import sqlite3
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from pgg_tui.cli import app

runner = CliRunner()


def pgg(*args):
    return runner.invoke(app, list(args))


def one_clear_line(result):
    assert result.exit_code != 0, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("pgg: error:"), result.stderr
    return lines[0]


def count_runs(db):
    if not os.path.exists(db):
        return None
    return sqlite3.connect(db).execute("select count(*) from run").fetchone()[0]


def test_version_and_help():
    assert pgg("--version").output.strip().startswith("pgg ")
    for cmd in ("queue", "run", "runs", "show", "logs", "cancel", "retry", "export", "table", "worker", "tui"):
        r = pgg(cmd, "--help")
        assert r.exit_code == 0 and "--db" in r.output or cmd == "tui" and "--db" in r.output, (cmd, r.output)


def test_queue_prints_ids_and_show_lists_them(db):
    r = pgg("queue", "prompt", "--dataset", "toy-sentiment", "--seeds", "0-2", "--preset", "tiny",
            "--set", "agg=min", "--db", db)
    assert r.exit_code == 0, r.output
    assert r.stdout.split() == ["1", "2", "3"]
    out = json.loads(pgg("runs", "--json", "--db", db).stdout)
    assert [(x["seed"], x["status"], x["overrides"]) for x in out] == [(s, "queued", {"agg": "min"}) for s in range(3)]
    shown = json.loads(pgg("show", "2", "--json", "--db", db).stdout)
    assert shown["config"]["agg"] == "min" and shown["config"]["seed"] == 1
    assert "queued" in pgg("show", "2", "--db", db).stdout
    assert pgg("runs", "--db", db).exit_code == 0


@pytest.mark.parametrize("args,match", [
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
])
def test_bad_queue_input_writes_nothing(db, args, match):
    if "--dataset-seeds" in args:
        os.makedirs("data/sst-2")
        args = args + ["--data-dir", "data"]
    pgg("queue", "prompt", "--dataset", "toy-sentiment", "--db", db)  # a store with one run in it
    line = one_clear_line(pgg(*args, "--db", db))
    assert match in line
    assert count_runs(db) == 1


@pytest.mark.parametrize("args,match", [
    (["show", "99"], "no run 99"),
    (["logs", "99"], "no run 99"),
    (["cancel", "1", "99"], "no run 99"),
    (["retry", "99"], "no run 99"),
    (["runs", "--status", "weird"], "unknown status"),
    (["export", "--format", "xml"], "unknown format"),
])
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


@pytest.mark.parametrize("kind,match", [("text", "not a SQLite database"), ("foreign", "another program"),
                                        ("empty-dir", "no store"), ("newer", "newer pgg")])
def test_bad_store_files(tmp_path, kind, match):
    db = str(tmp_path / "x.db")
    if kind == "text":
        open(db, "w").write("not a database\n")
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
    before = open(db, "rb").read() if os.path.exists(db) else None
    assert match in one_clear_line(pgg("runs", "--db", db))
    if kind != "empty-dir":  # queueing into a missing store creates it, as it should
        assert match in one_clear_line(pgg("queue", "prompt", "--dataset", "toy-sentiment", "--db", db))
    if before is not None:
        assert open(db, "rb").read() == before


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
    assert len(json.load(open("out.json"))) == 5


def test_console_script_errors_without_traceback(db):
    r = subprocess.run([sys.executable, "-m", "pgg_tui", "queue", "prompt", "--dataset", "nope", "--db", db],
                       capture_output=True, text=True)
    assert r.returncode == 1 and r.stderr.strip().count("\n") == 0 and "unknown dataset" in r.stderr


def test_cli_imports_no_torch_or_textual():
    code = ("import sys, pgg_tui.cli, engine.store, engine.config, engine.scheduler, engine.registry, engine.report;"
            "bad = [m for m in ('torch', 'transformers', 'datasets', 'textual') if m in sys.modules];"
            "print(','.join(bad))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""


def test_engine_never_imports_the_app():
    import pathlib
    root = pathlib.Path(__file__).resolve().parents[1] / "engine"
    for path in root.rglob("*.py"):
        text = path.read_text()
        assert "pgg_tui" not in text and "import textual" not in text and "from textual" not in text, path


def test_cli_status_names_match_the_store():
    from engine.store import STATUSES
    from pgg_tui import cli

    assert cli.STATUSES == STATUSES


def test_a_run_that_needs_the_hub_fails_with_one_line(db):
    from conftest import SHARED_DATA

    r = pgg("run", "prompt", "--dataset", "sst-2", "--data-dir", str(SHARED_DATA), "--db", db)
    assert r.exit_code == 1 and "Traceback" not in r.output
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "cannot load the policy model 'distilgpt2'" in lines[0] and "--set policy_model=" in lines[0]
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
    proc = subprocess.run(f"{sys.executable} -m pgg_tui runs --db {db} | head -1", shell=True,
                          capture_output=True, text=True)
    assert proc.stdout.startswith("id\t") and proc.stderr == ""
