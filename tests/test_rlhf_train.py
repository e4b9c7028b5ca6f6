"""The rlhf task's trainer: the tiny preset end to end through the run entry for each method (what a run records,
every parameter trained), the reward model learning the toy preference, a gold judge, the reward model retrained
on the policy's responses, bad data and settings refused in one line before any training, and a stop and resume
that repeats the uninterrupted run. The whole file takes about 50 s on 2 cores."""

import json
from pathlib import Path

import pytest
import torch

from engine.__main__ import execute
from engine.config import RlhfConfig, build_config, to_json
from engine.errors import Cancelled, ConfigError
from engine.registry import plan_runs
from engine.report import MemoryReporter, NullReporter
from engine.store import Store

# Fewer rollouts and shorter warm-up and reward training than the preset: the machinery, not the learning
# (test_the_reward_model_learns_the_toy_preference measures that at the preset itself).
FAST = ["max_rollouts=4", "sft_epochs=2", "rm_epochs=2", "eval_samples=2", "checkpoint_every=3", "sample_every=2"]


def queue(store, method, overrides=(), dataset="toy-prefs"):
    return store.queue(plan_runs("rlhf", dataset, method, preset="tiny", overrides=FAST + list(overrides)), to_json)


def changed(before: dict, after: dict) -> list[str]:
    return [k for k in before if not torch.equal(before[k].cpu(), after[k].cpu())]


@pytest.mark.slow
@pytest.mark.parametrize("method", ["token-ppo", "segment-ppo", "bandit-ppo"])
def test_tiny_run_ends_done_and_trains_every_parameter(db, tmp_path, method):
    """segment-ppo runs at the preset's c = 3.4 nats: the warmed-up tiny reference's next-token entropy after
    a word is 2.7-3.6 nats (quartiles 2.75 / 3.34 / 3.57), so about half the words close a segment."""
    from engine.rlhf.train import setup

    store = Store.open(db)
    (rid,) = queue(store, method)
    assert execute(store, rid) == 0
    run = store.get(rid)
    assert run.status == "done", run.error
    res = json.loads(run.results)
    for k in ("test/win_rate", "test/win_rate_lo", "test/win_rate_hi", "val/win_rate", "reward/accuracy"):
        assert 0 <= res[k] <= 1, k
    assert res["test/win_rate_lo"] <= res["test/win_rate"] <= res["test/win_rate_hi"]
    assert res["test/kl"] == res["test/kl"] and res["test/length"] >= 1 and "test/judge_reward" in res
    assert res["rollouts"] == 4
    names = {m.name for m in store.metrics(rid)}
    assert {
        "sft/loss",
        "reward/loss",
        "reward/val_loss",
        "reward/accuracy",
        "policy/loss",
        "value/loss",
        "policy/kl",
        "reward/mean",
        "policy/entropy",
        "policy/clip_frac",
        "value/clip_frac",
        "response/length",
        "test/win_rate",
        "val/win_rate",
    } <= names
    assert [p.kind for p in store.phases(rid)] == ["sft", "reward", "policy", "eval"]

    # samples: per-token rewards beside every token, segment ends in extra, for the app's colouring
    samples = store.samples(rid)
    assert {s.kind for s in samples} == {"reward", "policy", "eval"}
    for s in samples:
        tokens, rewards, extra = json.loads(s.tokens), json.loads(s.rewards), json.loads(s.extra)
        assert tokens and len(tokens) == len(rewards), s
        ends = extra["segment_ends"]
        assert all(0 <= e < len(tokens) for e in ends)
        if method == "bandit-ppo":  # one reward, on the end token
            assert ends == [len(tokens) - 1] and all(r == 0 for r in rewards[:-1])
        else:  # dense: nothing on the end token; token-ppo: every other token ends a segment
            assert rewards[-1] == 0 and len(tokens) - 1 not in ends
            if method == "token-ppo":
                assert ends == list(range(len(tokens) - 1))
    assert any(json.loads(s.extra).get("model") == "reference" for s in samples if s.kind == "eval")

    # every trainable parameter moved: the policy and the value and reward models from where PPO and reward
    # learning started (the warmed-up reference's weights; the heads as drawn at setup)
    ckpt = torch.load(Path(run.run_dir) / "ckpt" / "last.pt", weights_only=False)
    fresh = setup(build_config(RlhfConfig, json.loads(run.config)), NullReporter(), tmp_path / "fresh")
    ref = ckpt["reference"]
    base = {k.removeprefix("transformer."): v for k, v in ref.items() if k.startswith("transformer.")}
    start = {"policy": {k: ref[k] for k, _ in fresh.policy.named_parameters()}}
    for name, model in (("critic", fresh.critic), ("reward_model", fresh.reward_model)):
        start[name] = {
            k: base[k.removeprefix("backbone.")] if k.startswith("backbone.") else v.detach()
            for k, v in model.named_parameters()
        }
    for name, before in start.items():
        assert changed(before, ckpt[name]) == list(before), (
            name,
            [k for k in before if k not in changed(before, ckpt[name])],
        )


def test_the_reward_model_learns_the_toy_preference(tmp_path):
    """Held-out pair accuracy of the proxy reward model at the tiny preset (token-ppo, seed 0; the 100 held-out
    pairs of toy-prefs' test split; chance 0.5). Measured over seeds 0-4 at the preset (sft 4 epochs, rm 4 epochs
    of 32 pairs, lr 1e-3): token-ppo 0.82 0.83 0.88 0.77 0.79, segment-ppo (c = 3.4) 0.82 0.73 0.78 0.80 0.70,
    bandit-ppo 0.88 0.82 0.90 0.79 0.87. The threshold sits below the worst token-ppo seed."""
    from engine.rlhf.reward import train_reward_model
    from engine.rlhf.train import setup, warm_up

    cfg = plan_runs("rlhf", "toy-prefs", "token-ppo", preset="tiny")[0].config
    ctx = setup(cfg, NullReporter(), tmp_path)
    warm_up(ctx)
    res = train_reward_model(ctx, ctx.reward_model, ctx.data.train, ctx.data.heldout, "reward")
    assert res["reward/accuracy"] >= 0.7, res
    assert res["reward/val_loss"] < 0.6  # a model that scores every pair alike has ln 2 = 0.693


@pytest.mark.slow
def test_a_gold_reward_model_judges_when_asked(tmp_path):
    """judge=gold (Gao et al.): a bandit reward model trained on a half of the train prompts judges the win rates;
    the proxy trains on the other half, so no prompt's pairs reach both."""
    from engine.rlhf.train import setup, train

    cfg = plan_runs("rlhf", "toy-prefs", "segment-ppo", preset="tiny", overrides=FAST + ["judge=gold"])[0].config
    rep = MemoryReporter()
    res = train(cfg, rep, tmp_path)
    assert [p[0] for p in rep.phase_rows] == ["sft", "gold", "reward 1", "policy", "eval"]
    assert res["judge"] == "gold" and 0.5 < res["gold/accuracy"] <= 1 and 0 <= res["test/win_rate"] <= 1
    assert res["gold/segments"] == 1  # bandit: one segment, read at the end token
    data = setup(cfg, NullReporter(), tmp_path / "again").data
    assert len(data.train) == res["train_pairs"] and len(data.train) + len(data.gold) == 400
    assert {tuple(p.prompt) for p in data.train}.isdisjoint({tuple(p.prompt) for p in data.gold})


@pytest.mark.slow
def test_the_reward_model_is_retrained_on_the_policys_ranked_responses(tmp_path):
    """reward_retrain_every (PGG's alternation): after rollout 2 of 4 (the first half), 16 prompts x 3 responses
    of the policy ranked by the toy preference: up to 48 pairs, a second reward phase, then PPO goes on."""
    from engine.rlhf.train import train

    cfg = plan_runs(
        "rlhf",
        "toy-prefs",
        "token-ppo",
        preset="tiny",
        overrides=FAST
        + ["reward_retrain_every=2", "preference=engine.rlhf.data:toy_preference", "retrain_prompts=16", "retrain_k=3"],
    )[0].config
    rep = MemoryReporter()
    res = train(cfg, rep, tmp_path)
    assert [p[0] for p in rep.phase_rows] == ["sft", "reward 1", "policy", "reward 2", "policy", "eval"]
    assert res["reward_trainings"] == 2 and res["queries/preference"] == 48
    (own,) = rep.series("reward/own_pairs")
    assert 0 < own <= 48 and len(rep.series("reward/accuracy")) >= 2 and res["rollouts"] == 4


# ---------------------------------------------------------------------------------------------------
# bad data: one line, before any training, nothing recorded


def write_rows(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def good_rows(n: int = 24) -> list[dict]:
    return [
        {
            "prompt": [{"role": "user", "content": f"Tell me about topic {i % 8}."}],
            "chosen": [{"role": "assistant", "content": "the sea great."}],
            "rejected": [{"role": "assistant", "content": "the sea awful."}],
        }
        for i in range(n)
    ]


def tiny_model_without_chat_template(folder: Path) -> str:
    from engine.rlhf.models import load_causal_lm, tiny_chat_tokenizer

    tok = tiny_chat_tokenizer()
    tok.chat_template = None
    tok.save_pretrained(folder)
    load_causal_lm("tiny-gpt2", "policy", "policy_model").save_pretrained(folder)
    return str(folder)


LONG = " ".join(["weather"] * 400)  # about 400 tokens: more than the tiny model's 256 positions


@pytest.mark.parametrize(
    "case, bad, says",
    [
        ("missing column", lambda r: {k: v for k, v in r.items() if k != "rejected"}, "no 'rejected' column"),
        (
            "empty response",
            lambda r: dict(r, chosen=[{"role": "assistant", "content": " "}]),
            "the chosen response is empty",
        ),
        (
            "prompt longer than the model",
            lambda r: dict(r, prompt=[{"role": "user", "content": LONG}]),
            "more than the 256 positions",
        ),
        (
            "multi-turn chat, no chat template",
            lambda r: dict(
                r,
                prompt=[
                    {"role": "user", "content": "hi"},
                    {"role": "assistant", "content": "hello"},
                    {"role": "user", "content": "and?"},
                ],
            ),
            "has no chat template",
        ),
    ],
)
def test_bad_data_fails_in_one_line_before_training(db, tmp_path, case, bad, says):
    store = Store.open(db)
    train, test = tmp_path / "data" / "train.jsonl", tmp_path / "data" / "test.jsonl"
    train.parent.mkdir()
    write_rows(train, good_rows())
    write_rows(test, good_rows(8))
    extra = [f"policy_model={tiny_model_without_chat_template(tmp_path / 'plain')}"] if "template" in case else []
    (rid,) = queue(store, "token-ppo", extra, dataset=str(train))
    rows = good_rows()
    rows[5] = bad(rows[5])
    write_rows(train, rows)  # broken after queueing: the run itself must say so
    assert execute(store, rid) == 1
    run = store.get(rid)
    assert run.status == "failed" and run.results is None
    assert says in run.error and "\n" not in run.error.strip() and "Traceback" not in run.error, run.error
    assert "line 6" in run.error or case == "prompt longer than the model" and "positions" in run.error
    assert store.metrics(rid) == [] and store.samples(rid) == [] and store.phases(rid) == []


@pytest.mark.parametrize(
    "setting, says",
    [
        ("reward_retrain_every=10", "go together"),
        ("preference=engine.rlhf.data:toy_preference", "go together"),
        ("preference=nowhere:fn", "preference="),
        ("minibatch=4096", "larger than rollout_batch"),
        ("judge=no.such.module:fn", "judge="),
        ("interpolate=true", "every_segment_last"),
        ("method=ppo", "choose one of"),
        ("micro_batch=100000", "memory_budget_gb"),
    ],
)
def test_settings_are_checked_at_queue_time(setting, says):
    overrides = [setting] + (["reward_type=every_segment_last"] if setting.startswith("interpolate") else [])
    with pytest.raises(ConfigError, match=says):
        if setting.startswith("method="):
            build_config(RlhfConfig, {"method": "ppo"})
        else:
            plan_runs("rlhf", "toy-prefs", "token-ppo", preset="tiny", overrides=overrides)


def test_datasets_are_checked_at_queue_time(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        plan_runs("rlhf", str(tmp_path / "nope.parquet"), "token-ppo")
    plan_runs("rlhf", "Anthropic/hh-rlhf", "bandit-ppo")  # listed hub ids and others are left to the run
    plan_runs("rlhf", "HuggingFaceH4/ultrafeedback_binarized", "bandit-ppo")
    write_rows(tmp_path / "prefs.jsonl", good_rows())
    plan_runs("rlhf", str(tmp_path / "prefs.jsonl"), "segment-ppo")


# ---------------------------------------------------------------------------------------------------
# stop and resume


class StopAt(MemoryReporter):
    def __init__(self, step: int):
        super().__init__()
        self.at = step

    def should_stop(self) -> bool:
        return any(m["name"] == "policy/loss" and m["step"] >= self.at for m in self.metric_rows)


@pytest.mark.slow
def test_a_stopped_run_resumes_where_it_stopped(tmp_path):
    """Stopped after rollout 2 (a checkpoint, then Cancelled), the run resumes at rollout 3 from its checkpoint
    and ends where the uninterrupted run ends, number for number (CPU, one thread)."""
    from engine.rlhf.train import train

    short = FAST + ["sft_epochs=1", "rm_epochs=1", "max_rollouts=3"]
    cfg = plan_runs("rlhf", "toy-prefs", "segment-ppo", preset="tiny", overrides=short)[0].config
    whole = train(cfg, NullReporter(), tmp_path / "whole")
    with pytest.raises(Cancelled):
        train(cfg, StopAt(2), tmp_path / "parts")
    rep = MemoryReporter()
    parts = train(cfg, rep, tmp_path / "parts")
    assert "resumed from the checkpoint at rollout 2" in rep.log_rows
    assert [p[0] for p in rep.phase_rows] == ["policy", "eval"] and min(m["step"] for m in rep.metric_rows) == 3
    assert {k: v for k, v in parts.items() if not k.startswith("env/")} == {
        k: v for k, v in whole.items() if not k.startswith("env/")
    }


@pytest.mark.slow
def test_people_rank_the_policys_responses_and_the_reward_model_retrains(db):
    """PGG's alternation with people (issue 27 item 5): at the retraining the run asks for 3 prompts x 3 responses
    through the store and waits (waiting_for > 0, what the app's Rank screen serves); a ranker orders them; the
    reward model retrains on the 3 x 3 pairs they imply and the run ends done, having counted 3 lists by people."""
    import threading
    import time

    from engine import rankings

    store = Store.open(db)
    human = ["reward_retrain_every=2", "preference=human", "retrain_prompts=3", "retrain_k=3"]
    (rid,) = queue(store, "token-ppo", human)
    seen: list[tuple[str, int, list[str]]] = []

    def ranker() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and len(seen) < 3:
            r = rankings.claim(store, "ana")
            if r is None:
                time.sleep(0.1)
                continue
            texts = [c["text"] for c in json.loads(r.candidates)]
            seen.append((r.context, store.get(rid).waiting_for, texts))
            assert all(len(c["tokens"]) == len(c["rewards"]) for c in json.loads(r.candidates))
            rankings.submit(store, r.id, [2, 0, 1], "ana")

    person = threading.Thread(target=ranker, daemon=True)
    person.start()
    assert execute(store, rid) == 0, store.get(rid).error
    person.join(5)
    run = store.get(rid)
    res = json.loads(run.results)
    assert run.status == "done" and res["reward_trainings"] == 2 and res["queries/preference"] == 3
    assert len(seen) == 3 and all(ctx.startswith("user: ") and len(texts) == 3 for ctx, _, texts in seen)
    assert seen[0][1] > 0  # the run was waiting for people when the first list was ranked
    assert [x["order"] for x in rankings.answered(store, [rid])] == [[2, 0, 1]] * 3
    assert json.loads(run.config)["preference"] == "human" and store.get(rid).waiting_for == 0
    own = [m.value for m in store.metrics(rid, names=["reward/own_pairs"])]
    assert own == [9.0]  # 3 lists x 3 pairs each


@pytest.mark.slow
def test_lora_trains_only_the_adapters_and_the_value_head(tmp_path):
    """lora_rank (issue 27 item 4): the policy and the critic carry LoRA adapters (peft) on every linear layer; the
    base weights stay as loaded, the adapters and the value head change, and gradient checkpointing runs beside."""
    from engine.rlhf import train as rlhf_train

    cfg = plan_runs(
        "rlhf",
        "toy-prefs",
        "token-ppo",
        preset="tiny",
        overrides=[*FAST, "sft_epochs=0", "lora_rank=4", "grad_checkpoint=true"],
    )[0].config
    seen = {}
    setup = rlhf_train.setup

    def spy(*args, **kwargs):
        ctx = setup(*args, **kwargs)
        seen["ctx"] = ctx
        seen["policy"] = {k: v.detach().clone() for k, v in ctx.policy.state_dict().items()}
        seen["critic"] = {k: v.detach().clone() for k, v in ctx.critic.state_dict().items()}
        return ctx

    rlhf_train.setup = spy
    try:
        res = rlhf_train.train(cfg, MemoryReporter(), tmp_path)
    finally:
        rlhf_train.setup = setup
    ctx = seen["ctx"]
    moved = changed(seen["policy"], ctx.policy.state_dict())
    assert moved and all("lora_" in k for k in moved), moved
    trainable = [n for n, p in ctx.policy.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    critic_moved = changed(seen["critic"], ctx.critic.state_dict())
    assert "score.weight" in critic_moved and all("lora_" in k or k == "score.weight" for k in critic_moved)
    assert 0.0 <= res["test/win_rate"] <= 1.0 and res["rollouts"] == 4
    with pytest.raises(ConfigError, match="set sft_epochs=0"):
        plan_runs("rlhf", "toy-prefs", "token-ppo", preset="tiny", overrides=["lora_rank=4"])
