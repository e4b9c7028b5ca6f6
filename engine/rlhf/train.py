"""RLHF with token-, segment- or bandit-level rewards: a reward model from preference pairs, then PPO on its
rewards (reference/rlhf.md: Yin et al. 2025 as their code, DR, runs it; defaults in engine.config.RlhfConfig).

    setup   the pairs split by prompt: train, held-out (reward accuracy; validation and test prompts), and with
            judge=gold a gold half of train. Every bad row, over-long prompt or chat the model cannot render
            fails here, in one line, before any training
    sft     (sft_epochs > 0) warm the policy up on the train responses; it becomes the reference
    gold    (judge=gold) a bandit reward model on the gold half: the judge of the win rates
    reward  the proxy reward model: Bradley-Terry on the train pairs, the sequence score = the mean of a per-token
            head's values at the segment ends (token-ppo: every token, segment-ppo: where the reference's
            next-token entropy exceeds seg_entropy, bandit-ppo: the end token); then the location normaliser,
            fitted on its scores of the train responses (rlhf.md §3.3)
    policy  for each rollout of rollout_batch prompts: sample, per-token rewards (dense or on the end token)
            minus beta x KL to the reference, GAE, whitened advantages, clipped PPO for the actor and the critic
            (separate Adam); checkpoints every checkpoint_every rollouts and on a stop request
            (reward_retrain_every > 0, PGG's alternation, not in the paper: in the first half of training, the
            reward model is retrained every N rollouts on the policy's own responses ranked by `preference`)
    eval    on held-out test prompts: win rate against the reference by the judge (Wilson 95% interval), mean
            judge reward, KL to the reference, response length; the same on validation prompts (val/win_rate)

This module holds the schedule, the setup (data, models, judge), the warm-up and the checkpoints; the phases live
beside it: reward.py (reward models), ppo.py (rollouts and updates), evaluate.py (win rates), common.py (what
they share).
"""

from __future__ import annotations

import copy
import importlib
import itertools
import math
import random
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from engine import checkpoint
from engine.config import RlhfConfig
from engine.errors import Cancelled, ConfigError, EngineError
from engine.models import fix_threads, pick_device, stream_seed
from engine.report import NullReporter, Reporter
from engine.rlhf import data as D
from engine.rlhf import people
from engine.rlhf.common import (
    SAMPLE_ROWS,
    Ctx,
    Data,
    Prompt,
    Scorer,
    State,
    adam,
    chunks,
    generator,
    response_text,
    rows,
    threshold_text,
)
from engine.rlhf.evaluate import evaluate_test, validate
from engine.rlhf.models import (
    ScalarHeadModel,
    adapt,
    freeze,
    lm_response,
    load_causal_lm,
    load_tokenizer,
    model_positions,
    response_index,
    same_tokenizer,
    scalar_model,
)
from engine.rlhf.ppo import ppo_update, rollout, rollout_metrics, rollout_prompts, sample_rows, total_rollouts
from engine.rlhf.reward import (
    fit_normaliser,
    record_reward_samples,
    retrain_reward_model,
    retrain_steps,
    score_with,
    train_reward_model,
)

JUDGES = {
    "toy-prefs": "engine.rlhf.data:toy_preference",
    "toy-prefs-xor": "engine.rlhf.data:toy_preference_nonadditive",
}


def train(
    cfg: RlhfConfig,
    reporter: Reporter | None = None,
    run_dir: str | Path = ".",
    identity: checkpoint.Identity | None = None,
) -> dict[str, Any]:
    reporter = reporter or NullReporter()
    ctx = setup(cfg, reporter, Path(run_dir), identity)
    state = ctx.state
    total = total_rollouts(ctx)
    reporter.log(
        f"{cfg.method} (c = {threshold_text(cfg)}): {len(ctx.data.train)} train pairs over "
        f"{len(ctx.data.prompts)} prompts, {len(ctx.data.heldout)} held-out pairs, {len(ctx.data.val)} "
        f"validation and {len(ctx.data.test)} test prompts; judge {ctx.judge_name}; {total} rollouts of "
        f"{cfg.rollout_batch}"
    )
    reporter.progress(state.step, total)
    reporter.plan(total, retrain_steps(cfg, total))

    if cfg.sft_epochs > 0 and not state.sft_done:
        warm_up(ctx)
        save_checkpoint(ctx)
    if ctx.gold is not None and not state.gold_done:
        state.gold = train_reward_model(ctx, ctx.gold, ctx.data.gold, ctx.data.heldout, "gold")
        state.gold_done = True
        save_checkpoint(ctx)
    if not state.reward_done:
        state.reward = train_reward_model(ctx, ctx.reward_model, ctx.data.train, ctx.data.heldout, "reward")
        fit_normaliser(ctx)
        record_reward_samples(ctx)
        state.reward_done = True
        save_checkpoint(ctx)

    if ctx.phase != "policy":
        ctx.phase = reporter.begin_phase("policy", state.step)
    while state.step < total:
        if reporter.should_stop():
            save_checkpoint(ctx)
            raise Cancelled()
        n = state.step + 1
        roll = rollout(ctx, [ctx.data.prompts[i] for i in rollout_prompts(ctx, n)])
        values = {**rollout_metrics(roll), **ppo_update(ctx, roll, n)}
        state.step = n
        reporter.metrics(n, values)
        if n == 1 or n % cfg.sample_every == 0:
            reporter.samples(n, sample_rows(ctx, roll, range(min(SAMPLE_ROWS, len(roll.prompts))), "policy"))
        if cfg.eval_every and n % cfg.eval_every == 0 and n < total:
            validate(ctx, n)
        if n in retrain_steps(cfg, total):  # PGG's alternation (not in the paper)
            retrain_reward_model(ctx)
            ctx.phase = reporter.begin_phase("policy", n)
        if n % cfg.checkpoint_every == 0 or n == total:
            save_checkpoint(ctx)
        reporter.progress(n)

    ctx.phase = reporter.begin_phase("eval", state.step)
    validate(ctx, state.step)
    results = evaluate_test(ctx)
    reporter.end_phase(state.step)
    return results


# ---------------------------------------------------------------------------------------------------
# setup


def setup(cfg: RlhfConfig, reporter: Reporter, run_dir: Path, identity: checkpoint.Identity | None = None) -> Ctx:
    threads = fix_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    device = pick_device(cfg.device)
    # what can be wrong with the data, the judge or the lengths is found before any weights load
    tok = load_tokenizer(cfg.policy_model, "policy", "policy_model")
    end_id = D.end_token_id(tok)
    stop_ids = sorted({end_id, *([tok.eos_token_id] if tok.eos_token_id is not None else [])})
    positions = model_positions(cfg.policy_model, "policy", "policy_model")
    if positions is not None and cfg.max_prompt_len + cfg.max_new_tokens > positions:
        raise ConfigError(
            f"max_prompt_len {cfg.max_prompt_len} + max_new_tokens {cfg.max_new_tokens} = "
            f"{cfg.max_prompt_len + cfg.max_new_tokens} tokens, more than the policy's {positions} positions"
        )
    judge_name = resolve_judge(cfg)
    for name in (judge_name, cfg.preference):
        if name not in ("", "gold", "judge", "human"):
            load_function(name)
    data = load_data(cfg, tok, end_id, positions, judge_name == "gold")
    reporter.log(
        f"device {device} ({threads} CPU thread{'s' * (threads != 1)}); policy {cfg.policy_model}, end token "
        f"{tok.convert_ids_to_tokens(end_id)!r}"
    )

    policy = load_causal_lm(cfg.policy_model, "policy", "policy_model").to(device)
    reference = freeze(copy.deepcopy(policy))
    reward_model = head_model(cfg, cfg.reward_model, reference, "reward", "reward_model", tok).to(device)
    gold = None
    if judge_name == "gold":
        gold = head_model(cfg, cfg.gold_model or cfg.reward_model, reference, "gold", "gold_model", tok).to(device)
    critic = head_model(cfg, "", reference, "critic", "policy_model", tok).to(device)  # DR: from the SFT model
    if cfg.lora_rank or cfg.grad_checkpoint:  # after the reference and the reward models were copied whole
        policy = adapt(policy, cfg.lora_rank, cfg.grad_checkpoint)
        critic.backbone = adapt(critic.backbone, cfg.lora_rank, cfg.grad_checkpoint)
    ctx = Ctx(
        cfg,
        reporter,
        device,
        tok,
        end_id,
        stop_ids,
        data,
        policy,
        reference,
        critic,
        reward_model,
        gold,
        judge=lambda prompts, responses: [],
        judge_name=judge_name,
        preference=None,
        actor_opt=adam(policy, cfg.actor_lr),
        critic_opt=adam(critic, cfg.critic_lr),
        run_dir=run_dir,
        identity=identity,
    )
    ctx.judge = make_judge(ctx, judge_name)
    if cfg.preference == "human":
        ctx.pool = people.pool(ctx)
    elif cfg.preference:
        ctx.preference = ctx.judge if cfg.preference == "judge" else make_judge(ctx, cfg.preference)
    load_checkpoint(ctx)
    return ctx


def head_model(cfg: RlhfConfig, name: str, reference: Any, role: str, field_name: str, tok: Any) -> ScalarHeadModel:
    """A reward or value model; its head drawn from a stream of its own, so it is the same whatever ran before."""
    if name and name != cfg.policy_model and not same_tokenizer(load_tokenizer(name, role, field_name), tok):
        raise ConfigError(
            f"{field_name}={name!r} does not share the policy's tokenizer; pick a model of the same "
            f"family, or leave it empty (the policy model)"
        )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(stream_seed(cfg.seed, f"{role} head"))
        return scalar_model(name, reference, cfg.policy_model, role, field_name)


def resolve_judge(cfg: RlhfConfig) -> str:
    if cfg.judge == "auto":
        return JUDGES.get(cfg.dataset, "gold")
    return cfg.judge


def make_judge(ctx: Ctx, name: str) -> Scorer:
    """judge(prompts, responses as ids ending with the end token) -> one score each, higher is better."""
    if name == "gold":
        return lambda prompts, responses: score_with(ctx, ctx.gold, prompts, responses)  # type: ignore[arg-type]
    fn = load_function(name)

    def judge(prompts: list[Prompt], responses: list[list[int]]) -> list[float]:
        out = []
        for p, r in zip(prompts, responses):
            value = fn(p.prompt, response_text(ctx, r))
            if not isinstance(value, (int, float)) or not math.isfinite(value):
                raise EngineError(f"{name} returned {value!r} for a response, not a finite number")
            out.append(float(value))
        return out

    return judge


def load_function(name: str) -> Callable[..., Any]:
    """A judge's or preference's `package.module:function`; ConfigError in one line if it cannot be had."""
    module, _, fn_name = name.partition(":")
    try:
        return getattr(importlib.import_module(module), fn_name)  # type: ignore[no-any-return]
    except Exception as err:  # ImportError, AttributeError, or whatever the module raises on import
        raise ConfigError(f"{name!r} (judge or preference): cannot load it ({type(err).__name__}: {err})") from None


def split_exists(source: str, split: str) -> bool:
    """Whether a local source has a `split` file of its own (engine.rlhf.data's rules); a hub id is trusted."""
    if not split:
        return False
    path = D.BUILTIN.get(source) or Path(source).expanduser()
    if not path.exists():
        return True  # a hub id: its loader says so in one line if the split is missing
    if path.is_file():
        return path.stem != split and any(path.with_name(split + ext).is_file() for ext in D.FORMATS)
    names = [p.stem for d in (path, path / "data") if d.is_dir() for p in d.iterdir() if p.suffix in D.FORMATS]
    return any(n == split or re.match(rf"{re.escape(split)}[-_]\d", n) for n in names)


def load_data(cfg: RlhfConfig, tok: Any, end_id: int, positions: int | None, gold: bool) -> Data:
    """Read, split and encode everything up front: a bad row, a prompt longer than the model or chat the
    tokenizer cannot render is a ConfigError of one line here, before any training."""
    source = cfg.dataset
    train_split = None if Path(source).expanduser().is_file() else "train"
    pairs = list(itertools.islice(D.iter_pairs(source, train_split), cfg.max_pairs or None))
    if not pairs:
        raise ConfigError(f"dataset {source!r} has no preference pairs")
    if split_exists(source, cfg.test_split):
        held = list(itertools.islice(D.iter_pairs(source, cfg.test_split), cfg.max_heldout_pairs or None))
    else:
        pairs, held = D.split_by_prompt(pairs, cfg.heldout_fraction, stream_seed(cfg.dataset_seed, "heldout split"))
        held = held[: cfg.max_heldout_pairs or None]
    gold_pairs: list[D.PreferencePair] = []
    if gold:
        pairs, gold_pairs = D.split_by_prompt(pairs, cfg.gold_fraction, stream_seed(cfg.dataset_seed, "gold split"))
    for name, part in (("train", pairs), ("held-out", held), ("gold", gold_pairs if gold else [None])):
        if not part:
            raise ConfigError(
                f"dataset {source!r}: no {name} pairs after the split by prompt (heldout_fraction, "
                f"gold_fraction); use more data"
            )

    def named(where: str, fn: Callable[[], Any]) -> Any:
        """fn(), its ConfigError prefixed with the row it is about (a chat the tokenizer cannot render)."""
        try:
            return fn()
        except ConfigError as err:
            if where and where not in str(err):
                raise ConfigError(f"{where}: {err}") from None
            raise

    def encode(ps: list[D.PreferencePair]) -> list[D.EncodedPair]:
        return [
            named(
                p.where, lambda p=p: D.encode_pair(tok, p, cfg.max_prompt_len, cfg.max_response_len, end_id, positions)
            )
            for p in ps
        ]

    def prompts_of(ps: Sequence[D.PreferencePair]) -> list[Prompt]:
        seen: dict[str, Prompt] = {}
        for p in ps:
            key = D.prompt_text(p.prompt)
            if key not in seen:
                seen[key] = Prompt(p.prompt, D.encode_prompt(tok, p.prompt, cfg.max_prompt_len, positions, p.where))
        return list(seen.values())

    # each split hashes the prompts with a seed of its own: one seed for all would correlate them (a set whose
    # held-out prompts were chosen by the same hash would put them all on one side)
    test, val = D.split_by_prompt(prompts_of(held), cfg.val_fraction, stream_seed(cfg.dataset_seed, "val split"))
    if not test or not val:
        raise ConfigError(
            f"dataset {source!r}: {len(test) + len(val)} held-out prompts, too few to split into "
            f"validation and test prompts (val_fraction={cfg.val_fraction:g}); use more data"
        )
    return Data(
        encode(pairs),
        encode(held),
        [p.prompt for p in held],
        encode(gold_pairs),
        prompts_of(pairs),
        val[: cfg.val_prompts or None],
        test[: cfg.eval_prompts or None],
    )


# ---------------------------------------------------------------------------------------------------
# sft warm-up (pgg's option for a policy that is not a chat model yet, e.g. the tiny preset's random one)


def warm_up(ctx: Ctx) -> None:
    """NLL on the train pairs' responses, chosen and rejected alike (so the warm-up learns the data's
    responses, not the preference); the policy then is the reference and the reward and value models' start."""
    cfg, rep, policy = ctx.cfg, ctx.reporter, ctx.policy
    ctx.phase = rep.begin_phase("sft", 0)
    items = [(p.prompt, r) for p in ctx.data.train for r in (p.chosen, p.rejected)]
    per_epoch = math.ceil(len(items) / cfg.rm_batch)
    steps = max(1, math.ceil(cfg.sft_epochs * per_epoch))
    opt = torch.optim.Adam(policy.parameters(), lr=cfg.sft_lr, betas=(0.9, 0.95))
    rep.log(f"sft: {steps} updates of {cfg.rm_batch} responses")
    policy.train()
    for step in range(1, steps + 1):
        if rep.should_stop():
            raise Cancelled()  # nothing saved: the run restarts from its last checkpoint
        epoch, k = divmod(step - 1, per_epoch)
        order = torch.randperm(len(items), generator=generator(cfg.seed, "sft epoch", epoch)).tolist()
        part = [items[i] for i in order[k * cfg.rm_batch : (k + 1) * cfg.rm_batch]]
        batch = D.collate([p for p, _ in part], [r for _, r in part], ctx.tok.pad_token_id)
        opt.zero_grad(set_to_none=True)
        total = 0.0
        for sl in chunks(len(part), cfg.micro_batch * 2):
            ids, attn = rows(batch, sl, ctx.device)
            idx, mask = response_index(batch.response_start[sl].to(ctx.device), batch.response_end[sl].to(ctx.device))
            logp = lm_response(policy, ids, attn, idx)["logp"]
            loss = -(logp * mask).sum() / batch.response_mask.sum()  # a token mean over the whole update
            loss.backward()
            total += loss.item()
        torch.nn.utils.clip_grad_norm_(policy.parameters(), cfg.grad_clip)
        opt.step()
        rep.metrics(step, {"sft/loss": total})
        rep.phase_progress(step, steps)
    policy.eval()
    # the warmed-up policy is the reference (the segmenter too) and where the reward and value models start
    ctx.reference.load_state_dict(policy.state_dict())
    base = ctx.reference.base_model.state_dict()
    for m, name in (
        (ctx.reward_model, cfg.reward_model),
        (ctx.gold, cfg.gold_model or cfg.reward_model),
        (ctx.critic, ""),
    ):
        if m is not None and (not name or name == cfg.policy_model):
            m.backbone.load_state_dict(base)
    ctx.state.sft_done = True


# ---------------------------------------------------------------------------------------------------
# checkpoints


def save_checkpoint(ctx: Ctx) -> None:
    ctx.reporter.flush()
    data = dict(
        state=asdict(ctx.state),
        policy=ctx.policy.state_dict(),
        critic=ctx.critic.state_dict(),
        reward_model=ctx.reward_model.state_dict(),
        actor_opt=ctx.actor_opt.state_dict(),
        critic_opt=ctx.critic_opt.state_dict(),
        gold=ctx.gold.state_dict() if ctx.gold is not None else None,
        reference=ctx.reference.state_dict() if ctx.cfg.sft_epochs > 0 else None,
        rng=checkpoint.rng_state(),
        saved_at=time.time(),
    )
    checkpoint.save(ctx.run_dir / "ckpt" / "last.pt", data, ctx.identity)


def load_checkpoint(ctx: Ctx) -> None:
    data = checkpoint.load(ctx.run_dir / "ckpt" / "last.pt", ctx.identity, ctx.device, ctx.reporter.log)
    if data is None:
        return
    ctx.state = State(**data["state"])
    ctx.policy.load_state_dict(data["policy"])
    ctx.critic.load_state_dict(data["critic"])
    ctx.reward_model.load_state_dict(data["reward_model"])
    ctx.actor_opt.load_state_dict(data["actor_opt"])
    ctx.critic_opt.load_state_dict(data["critic_opt"])
    if ctx.gold is not None and data["gold"] is not None:
        ctx.gold.load_state_dict(data["gold"])
    if data["reference"] is not None:
        ctx.reference.load_state_dict(data["reference"])
    checkpoint.restore_rng(data["rng"])
    ctx.reporter.log(f"resumed from the checkpoint at rollout {ctx.state.step}")
    ctx.phase = ctx.reporter.resumed(data["saved_at"], ctx.state.step)
