"""What a queue request checks before anything is written, so a run does not fail seconds after it starts."""

import json
import os

from engine.store import Store
from support.cli import one_clear_line, pgg


def _ranked(path, sizes):
    with open(path, "w") as f:
        for k in sizes:
            f.write(json.dumps({"candidates": [f"text {i}" for i in range(k)], "order": list(range(k))[::-1]}) + "\n")


def test_a_rankings_file_is_checked_at_queue_time_and_stored_absolute(db, tmp_path, monkeypatch):
    """Issue 24 item 13: a wrong path, or a file mixing K=3 and K=5, failed the run 12 s after it started, and a
    relative path resolved against the worker's folder."""
    monkeypatch.chdir(tmp_path)
    _ranked(tmp_path / "mixed.jsonl", [3, 3, 5])
    _ranked(tmp_path / "good.jsonl", [3, 3])
    base = (
        "queue",
        "prompt",
        "-d",
        "toy-sentiment",
        "-p",
        "tiny",
        "--db",
        db,
        "--set",
        "preference=human",
        "reward_k=3",
    )
    r = pgg(*base, "rankings_file=mixed.jsonl", "--dry-run")
    assert "mixed.jsonl:3: 5 candidates, but the run ranks lists of reward_k=3" in one_clear_line(r)
    assert "does not exist" in one_clear_line(pgg(*base, "rankings_file=missing.jsonl"))
    assert Store.open(db).runs() == []  # nothing written by the refused requests
    r = pgg(*base, "rankings_file=good.jsonl")
    assert r.exit_code == 0, r.output
    [run] = Store.open(db).runs()
    assert json.loads(run.config)["rankings_file"] == os.path.join(str(tmp_path), "good.jsonl")


def test_a_refused_postgresql_port_is_one_line():
    """Issue 25 item 9: psycopg's message is two lines ("Connection refused" and "Is the server running")."""
    from pg_server import free_port

    r = pgg("--db", f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/x", "runs")
    line = one_clear_line(r)
    assert "Connection refused" in line and "Is the server running" in line


def test_an_rlhf_request_checks_its_file_names_its_method_and_stores_an_absolute_path(db, tmp_path, monkeypatch):
    """A request that names no method gets the task's first (pgg has none for rlhf); a local preference file is
    read row by row when queued, and its path stored absolute (a worker runs in another folder)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.jsonl").write_text(json.dumps({"prompt": "hi", "chosen": "a", "rejected": ""}) + "\n")
    good = [json.dumps({"prompt": f"p{i}", "chosen": "good answer", "rejected": "bad answer"}) for i in range(4)]
    (tmp_path / "good.jsonl").write_text("\n".join(good) + "\n")
    base = ("queue", "rlhf", "-p", "tiny", "--db", db)
    assert "bad.jsonl line 1: the rejected response is empty" in one_clear_line(pgg(*base, "-d", "bad.jsonl"))
    assert Store.open(db).runs() == []
    r = pgg(*base, "-d", "good.jsonl")
    assert r.exit_code == 0, r.output
    [run] = Store.open(db).runs()
    assert run.method == "token-ppo" and run.dataset == os.path.join(str(tmp_path), "good.jsonl")
    assert json.loads(run.config)["dataset"] == run.dataset


def test_settings_that_go_together_pass_together_and_every_bad_value_is_still_named():
    """reward_retrain_every and preference are each refused alone; checked one by one (to name every bad value at
    once), a request giving both was refused twice over."""
    from engine.registry import plan_errors

    both = ["reward_retrain_every=2", "preference=human"]
    assert plan_errors("rlhf", "toy-prefs", preset="tiny", overrides=both) == []
    errors = plan_errors("rlhf", "toy-prefs", preset="tiny", overrides=[*both, "rm_lr=-1", "kl_coef=-2"])
    assert len(errors) == 2 and "rm_lr" in errors[0] and "kl_coef" in errors[1]
    [alone] = plan_errors("rlhf", "toy-prefs", preset="tiny", overrides=["reward_retrain_every=2"])
    assert "go together" in alone
