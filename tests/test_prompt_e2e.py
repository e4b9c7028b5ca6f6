"""Tiny end-to-end runs of the prompt task through the store: every method, kill and resume, learning."""

import os
import sys
from pathlib import Path

import pytest
import torch

from engine.__main__ import execute
from engine.config import from_json, to_json
from engine.prompt.train import setup
from engine.registry import plan_runs
from engine.report import NullReporter
from engine.store import Store
from support.paths import SHARED_DATA
from support.runs import kill_at_step

pytestmark = pytest.mark.slow  # end-to-end runs of the tiny presets

sys.path.insert(0, str(Path(__file__).parent))


def queue(store, method="pgg", overrides=(), dataset="sst-2", data_dir=str(SHARED_DATA), seeds="0"):
    return store.queue(plan_runs("prompt", dataset, method, seeds, "0", "tiny", data_dir, list(overrides)), to_json)


def initial_params(cfg, tmp_path):
    ctx = setup(cfg, NullReporter(), tmp_path / "fresh")
    params = {f"mlp.{k}": v.clone() for k, v in ctx.policy.mlp.state_dict().items()}
    if ctx.reward_model is not None:
        params.update({f"rm.{k}": v.clone() for k, v in ctx.reward_model.named_parameters()})
    return params


@pytest.mark.parametrize("method", ["pgg", "seq-reinforce", "rlprompt"])
def test_tiny_run_records_everything_and_changes_every_parameter(db, tmp_path, method):
    store = Store.open(db)
    (rid,) = queue(store, method)
    assert execute(store, rid) == 0
    run = store.get(rid)
    assert run.status == "done", run.error
    results = __import__("json").loads(run.results)
    assert 0 <= results["test/accuracy"] <= 100 and results["prompt"]
    names = {m.name for m in store.metrics(rid)}
    assert {"policy/loss", "policy/entropy", "train/score", "dev/score", "lr", "test/accuracy"} <= names
    kinds = [p.kind for p in store.phases(rid)]
    samples = store.samples(rid)
    assert {s.kind for s in samples} >= {"policy", "greedy", "final"}
    if method == "pgg":
        assert {"reward/loss", "reward/val_loss"} <= names
        assert kinds == ["reward", "policy", "reward", "policy", "eval"]  # 60 steps: reward at 0 and 20 (<= 30)
        tokened = [s for s in samples if s.kind == "reward"]
        assert tokened and all(len(__import__("json").loads(s.rewards)) == 5 for s in tokened)
        assert all(s.true_score is not None and s.model_score is not None for s in tokened)
    else:
        assert kinds == ["policy", "eval"]
    # every trainable parameter moved
    cfg = from_json(__import__("engine.config", fromlist=["PromptConfig"]).PromptConfig, run.config)
    before = initial_params(cfg, tmp_path)
    ckpt = torch.load(Path(run.run_dir) / "ckpt" / "last.pt", weights_only=False)
    after = {f"mlp.{k}": v for k, v in ckpt["mlp"].items()}
    if ckpt["reward_model"] is not None:
        after.update({f"rm.{k}": v for k, v in ckpt["reward_model"].items() if f"rm.{k}" in before})
    assert before.keys() == after.keys()
    unchanged = [k for k in before if torch.equal(before[k], after[k])]
    assert unchanged == []


def test_kill_and_resume_continues_the_same_schedule(db):
    store = Store.open(db)
    overrides = [
        "max_steps=100",
        "checkpoint_every=20",
        "eval_every=20",
        "reward_retrain_every=20",
        "reward_max_steps=20",
        "reward_epochs=2",
    ]
    (ref,) = queue(store, "pgg", overrides, dataset="toy-sentiment", data_dir="")
    (victim,) = queue(store, "pgg", overrides, dataset="toy-sentiment", data_dir="")
    resumed = kill_at_step(store, db, victim, 50)
    assert execute(store, resumed) == 0
    assert execute(store, ref) == 0
    a, b = store.get(ref), store.get(resumed)
    assert b.status == "done"
    assert "resumed from the checkpoint at step" in "\n".join(line.text for line in store.logs(resumed))
    ra, rb = __import__("json").loads(a.results), __import__("json").loads(b.results)
    assert ra["top_prompts"] == rb["top_prompts"] and ra["test/accuracy"] == rb["test/accuracy"]
    ma = [(m.phase, m.step, m.name, m.value) for m in store.metrics(ref)]
    mb = [(m.phase, m.step, m.name, m.value) for m in store.metrics(resumed)]
    assert ma == mb  # the copied history plus the resumed steps equal the uninterrupted run, value for value
    pa = [(p.kind, p.index, p.start_step, p.end_step) for p in store.phases(ref)]
    pb = [(p.kind, p.index, p.start_step, p.end_step) for p in store.phases(resumed)]
    assert pa == pb  # the same timeline: reward 1, policy, reward 2, policy, reward 3, policy, eval


def test_pgg_learns_a_synthetic_preference():
    from engine.prompt.train import train
    from engine.report import MemoryReporter

    cfg = plan_runs(
        "prompt",
        "toy-sentiment",
        "pgg",
        preset="tiny",
        overrides=[
            "scorer=engine.prompt.example_scorers:vowel_fraction",
            "max_steps=240",
            "eval_every=40",
            "reward_retrain_every=40",
            "train_score_every=1",
            "max_test_examples=8",
        ],
    )[0].config
    rep = MemoryReporter()
    train(cfg, rep, Path(os.environ.get("TMPDIR", "/tmp")) / f"learn-{os.getpid()}")
    scores = rep.series("train/score")
    first, last = sum(scores[:20]) / 20, sum(scores[-20:]) / 20
    print(f"vowel fraction: first 20 steps {first:.3f}, last 20 steps {last:.3f}")
    assert last > first + 0.1, (first, last)
