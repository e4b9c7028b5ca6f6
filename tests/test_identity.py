"""Run identity (issue: a new run resumed another run's checkpoint and was recorded done with its results):
ids never reused, a folder per run and attempt tied to the store, checkpoints only for their own lineage,
one table of status transitions, no double training next to a worker."""

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from engine import checkpoint, rankings
from engine.__main__ import execute
from engine.config import to_json
from engine.errors import ConfigError, EngineError, StoreError
from engine.identity import Identity, config_hash
from engine.registry import plan_runs
from engine.store import Store
from pgg_tui.core.aggregate import group_runs

TINY = [
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


def queue(store, seeds="0", method="pgg", extra=()):
    return store.queue(
        plan_runs("prompt", "toy-sentiment", method, seeds, "0", "tiny", overrides=TINY + list(extra)), to_json
    )


def test_ids_are_never_reused_and_folders_are_unique(db, tmp_path, monkeypatch):
    monkeypatch.delenv("PGG_RUNS_DIR")
    st = Store.open(db)
    a, b = queue(st, "0-1")
    st.delete([b])
    (c,) = queue(st)
    assert c == b + 1  # the deleted id is not handed out again
    ra, rc = st.get(a), st.get(c)
    assert ra.uid != rc.uid and len(ra.uid) == 32
    assert Path(ra.run_dir).parent == st.runs_root == Path(db).parent / "pgg-runs"
    assert Path(ra.run_dir).name == f"{a}-{ra.uid[:8]}"
    # a second store in the same folder: its run 1 gets a folder of its own
    other = Store.open(str(tmp_path / "fresh.db"))
    (o,) = queue(other)
    assert o == 1 and other.get(o).run_dir != ra.run_dir


def test_a_new_run_never_resumes_another_runs_checkpoint(db, tmp_path):
    st = Store.open(db)
    (a,) = queue(st)
    assert execute(st, a) == 0
    (b,) = queue(st, "1")
    # the old bug: run b's folder holding a's checkpoint (same integer id after a delete, or two stores)
    run_b = st.get(b)
    Path(run_b.run_dir).mkdir(parents=True)
    os.symlink(Path(st.get(a).run_dir) / "ckpt", Path(run_b.run_dir) / "ckpt")
    assert execute(st, b) == 1
    failed = st.get(b)
    assert failed.status == "failed" and "written by another run" in failed.error and failed.results is None


def test_checkpoint_identity_config_and_damage(tmp_path):
    ident = Identity("u1", ("u1",), "h1")
    path = tmp_path / "ckpt" / "last.pt"
    checkpoint.save(path, {"x": torch.ones(2), "rng": checkpoint.rng_state()}, ident)
    cpu = torch.device("cpu")
    assert torch.equal(checkpoint.load(path, ident, cpu)["x"], torch.ones(2))
    retried = checkpoint.load(path, Identity("u2", ("u2", "u1"), "h1"), cpu)  # a retry of u1 resumes u1's state
    assert torch.equal(retried["x"], torch.ones(2)) and retried["identity"] == {"uid": "u1", "config_hash": "h1"}
    with pytest.raises(EngineError, match="another run"):
        checkpoint.load(path, Identity("u3", ("u3",), "h1"), cpu)
    with pytest.raises(EngineError, match="another config"):
        checkpoint.load(path, Identity("u1", ("u1",), "h2"), cpu)
    checkpoint.save(path, {"x": torch.zeros(2)}, ident)  # the first one becomes last.pt.prev
    path.write_bytes(path.read_bytes()[:40])  # torn write
    logged = []
    assert torch.equal(checkpoint.load(path, ident, cpu, logged.append)["x"], torch.ones(2))  # the fallback
    assert "damaged" in logged[0]
    path.with_name("last.pt.prev").unlink()
    with pytest.raises(EngineError, match="damaged") as err:
        checkpoint.load(path, ident, cpu)
    assert "\n" not in str(err.value)
    # weights_only: a pickle that would run code is refused
    evil = tmp_path / "evil.pt"
    torch.save({"x": os.system}, evil)
    with pytest.raises(EngineError, match="damaged"):
        checkpoint.load(evil, None, cpu)
    assert config_hash('{"a": 1, "b": 2}') == config_hash('{"b":2,"a":1}') != config_hash('{"a": 2, "b": 2}')


def test_status_transitions_are_enforced(db):
    st = Store.open(db)
    (a,) = queue(st)
    assert st.claim_next("w", None).id == a
    assert st.end(a, "lost", "no heartbeat")
    assert not st.finish(a, {"test/accuracy": 99.0})  # a lost run never comes back as done
    assert st.get(a).status == "lost" and st.get(a).results is None
    assert not st.end(a, "cancelled", "later")
    with pytest.raises(ValueError):
        st.end(a, "done", "x")


def test_retry_attaches_to_the_newest_attempt_in_a_folder_of_its_own(db):
    st = Store.open(db)
    (a,) = queue(st)
    st.claim_next("w", None)
    st.fail(a, "boom")
    (b,) = st.retry([a])
    with pytest.raises(ConfigError, match=rf"newest attempt is run {b}\) is queued"):
        st.retry([a])
    st.claim_next("w", None)
    st.fail(b, "boom again")
    (c,) = st.retry([a])  # through the newest attempt
    runs = {r.id: r for r in st.runs()}
    assert (runs[c].parent_id, runs[c].attempt) == (b, 3)
    assert len({runs[a].run_dir, runs[b].run_dir, runs[c].run_dir}) == 3
    assert [r.id for r in st.lineage(c)] == [c, b, a]
    (d,) = queue(st, "1")
    st.claim_next("w", None)
    st.claim_next("w", None)
    st.finish(d, {"test/accuracy": 50.0})
    with pytest.raises(ConfigError, match="is done; only failed"):
        st.retry([d])


def test_a_resumed_attempt_reads_its_parents_checkpoint_from_a_copy(db):
    st = Store.open(db)
    (a,) = queue(st, extra=["max_steps=9"])
    (ref,) = queue(st, extra=["max_steps=9"])
    st.claim_next("w", None)
    code = subprocess.run(
        [
            sys.executable,
            "-c",
            f"""
import os, signal
from engine.store import Store
from engine.__main__ import execute
from engine.report import StoreReporter
st = Store.open({db!r})
orig = StoreReporter.progress
def progress(self, step, total=None):
    orig(self, step, total)
    if step == 4:
        self.flush(); os.kill(os.getpid(), signal.SIGKILL)
StoreReporter.progress = progress
execute(st, {a})
""",
        ],
        env=dict(os.environ, PYTHONPATH=str(Path(__file__).parents[1])),
    ).returncode
    assert code == -9
    st.end(a, "lost", "killed")
    (b,) = st.retry([a])
    assert execute(st, b) == 0 and execute(st, ref) == 0
    rb, rr = st.get(b), st.get(ref)
    assert "resumed from the checkpoint at step 3" in "\n".join(line.text for line in st.logs(b))
    assert json.loads(rb.results)["top_prompts"] == json.loads(rr.results)["top_prompts"]
    assert (Path(rb.run_dir) / "ckpt" / "last.pt").exists() and Path(rb.run_dir) != Path(st.get(a).run_dir)


def test_seeds_are_counted_once_per_lineage(db):
    st = Store.open(db)
    (a,) = queue(st)
    st.claim_next("w", None)
    st.finish(a, {"test/accuracy": 80.0})
    # an older store may hold two done attempts of one seed: only the newest counts
    with st.write() as s:
        s.connection().exec_driver_sql("UPDATE run SET status='failed' WHERE id=?", (a,))
    (b,) = st.retry([a])
    st.claim_next("w", None)
    st.finish(b, {"test/accuracy": 90.0})
    with st.write() as s:
        s.connection().exec_driver_sql("UPDATE run SET status='done' WHERE id=?", (a,))
    (g,) = group_runs(st.runs())
    assert g.run_ids == [b] and g.stats["test/accuracy"].values == [90.0]


def test_foreground_runs_are_never_claimed_by_a_worker(db):
    st = Store.open(db)
    (a,) = st.queue(
        plan_runs("prompt", "toy-sentiment", "pgg", "0", "0", "tiny", overrides=TINY), to_json, started_by=os.getpid()
    )
    assert st.get(a).status == "running" and st.claim_next("w", None) is None
    assert execute(st, a) == 0 and st.get(a).status == "done"
    results = json.loads(st.get(a).results)  # what produced the numbers travels with them
    assert results["env/git"] and results["env/torch"] == torch.__version__
    assert any(line.text.startswith("environment: git ") for line in st.logs(a))


def test_git_state_says_commit_and_dirt(tmp_path):
    from engine.provenance import git_state

    assert git_state(tmp_path) == ""  # not a checkout

    def git(*a):
        return subprocess.run(
            ["git", "-c", "user.name=t", "-c", "user.email=t@t", *a],
            cwd=tmp_path,  # noqa: E731
            check=True,
            capture_output=True,
        )

    git("init", "-q")
    (tmp_path / "f").write_text("1")
    git("add", "f")
    git("commit", "-qm", "x")
    head = subprocess.run(
        ["git", "rev-parse", "--short=12", "HEAD"], cwd=tmp_path, capture_output=True, text=True
    ).stdout.strip()
    assert git_state(tmp_path) == head
    (tmp_path / "f").write_text("2")
    assert git_state(tmp_path) == head + "+dirty"


def test_run_folders_outside_the_runs_root_are_refused(db):
    st = Store.open(db)
    (a,) = queue(st)
    with st.write() as s:
        s.connection().exec_driver_sql("UPDATE run SET run_dir='/etc/pgg-evil' WHERE id=?", (a,))
    with pytest.raises(StoreError, match="outside the runs root"):
        st.confined_run_dir(st.get(a))
    assert execute(st, a) == 1 and "outside the runs root" in st.get(a).error
    assert not Path("/etc/pgg-evil").exists()


def test_schema_1_store_is_migrated_with_uids(db):
    st = Store.open(db)
    a, b = queue(st, "0-1")
    st.close()
    con = sqlite3.connect(db)  # back to schema 1: no uid, no id high-water mark
    con.executescript("""ALTER TABLE run DROP COLUMN uid; DELETE FROM pgg_meta WHERE key = 'last_run_id';
                         ALTER TABLE run DROP COLUMN phase_step; ALTER TABLE run DROP COLUMN phase_total;
                         ALTER TABLE run DROP COLUMN name; ALTER TABLE run DROP COLUMN tags;
                         ALTER TABLE run DROP COLUMN notes; ALTER TABLE run DROP COLUMN priority;
                         ALTER TABLE run DROP COLUMN eta_at; ALTER TABLE run DROP COLUMN job_id;
                         ALTER TABLE run DROP COLUMN waiting_for; DROP TABLE ranking; DROP TABLE sweep;
                         UPDATE pgg_meta SET value = '1' WHERE key = 'schema_version';""")
    con.close()
    st = Store.open(db)
    assert st.schema_version() == 10  # through 2 (uids), 3 (progress in a phase), 4 (labels, priority, ETA), 5 (a
    # lease per host), 6 (rankings by people), 7 (sweeps, ranking hashes), 8 (the latest-metric index), 9 (resources),
    # 10 (the runs a queued run waits for)
    assert rankings.open_count(st) == 0 and [r.waiting_for for r in st.runs()] == [0, 0]
    assert [(r.name, r.tags, r.priority, r.eta_at, r.resources) for r in st.runs()] == [("", "[]", 0, None, None)] * 2
    uids = [r.uid for r in st.runs()]
    assert len(set(uids)) == 2 and all(len(u) == 32 for u in uids)
    st.delete([b])
    assert queue(st) == [b + 1]
