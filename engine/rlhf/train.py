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
"""

from __future__ import annotations

import copy
import importlib
import itertools
import math
import random
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from engine import checkpoint
from engine.config import RlhfConfig
from engine.errors import Cancelled, ConfigError, EngineError
from engine.models import autocast, fix_threads, pick_device, runtime_env, stream_seed
from engine.report import NullReporter, Reporter
from engine.rlhf import data as D
from engine.rlhf import ppo_math as M
from engine.rlhf.models import (ScalarHeadModel, freeze, lm_response, load_causal_lm, load_tokenizer,
                                max_positions, response_index, same_tokenizer, scalar_model, values_at)

EXCERPT = 400  # characters of the prompt kept with each sample row
SAMPLE_ROWS = 4  # rollouts recorded every sample_every steps
JUDGES = {"toy-prefs": "engine.rlhf.data:toy_preference", "toy-prefs-xor": "engine.rlhf.data:toy_preference_nonadditive"}


@dataclass
class Prompt:
    prompt: list[D.Message]  # the chat messages
    ids: list[int]  # rendered with the generation prompt, left-truncated to max_prompt_len


@dataclass
class Data:
    train: list[D.EncodedPair]  # the proxy reward model's pairs
    heldout: list[D.EncodedPair]  # its validation pairs (reward/accuracy)
    heldout_prompts: list[list[D.Message]]  # their prompts as messages (sample rows, the judge)
    gold: list[D.EncodedPair]  # the gold reward model's pairs (judge=gold), disjoint from train by prompt
    prompts: list[Prompt]  # PPO's prompts: those of the train pairs
    val: list[Prompt]  # held-out prompts for val/win_rate
    test: list[Prompt]  # held-out prompts for test/win_rate


@dataclass
class State:
    step: int = 0  # rollouts done
    sft_done: bool = False
    gold_done: bool = False
    reward_done: bool = False
    normaliser: list[float] | None = None  # [a_mu, b_mu, a_sigma, b_sigma]
    reward: dict[str, float] = field(default_factory=dict)  # the proxy's last validation: reward/accuracy, ...
    gold: dict[str, float] = field(default_factory=dict)
    updates: int = 0  # PPO optimiser steps (the learning-rate schedule)
    val: dict[str, float] = field(default_factory=dict)  # the last validation's numbers
    retrains: int = 0  # reward retrainings on the policy's responses (reward_retrain_every)
    own_pairs: list[list[list[int]]] = field(default_factory=list)  # their pairs: [prompt, better, worse] ids
    queries: int = 0  # responses the preference scored for them


@dataclass
class Ctx:
    cfg: RlhfConfig
    reporter: Reporter
    device: torch.device
    tok: Any
    end_id: int
    stop_ids: list[int]
    data: Data
    policy: Any  # trained
    reference: Any  # frozen: the initial (warmed-up) policy, and the segmenter
    critic: ScalarHeadModel
    reward_model: ScalarHeadModel
    gold: ScalarHeadModel | None
    judge: Callable[[list[Prompt], list[list[int]]], list[float]]
    judge_name: str
    preference: Callable[[list[Prompt], list[list[int]]], list[float]] | None  # ranks for reward_retrain_every
    actor_opt: torch.optim.Optimizer
    critic_opt: torch.optim.Optimizer
    run_dir: Path
    identity: checkpoint.Identity | None
    state: State = field(default_factory=State)
    phase: str | None = None
    ref_cache: dict[str, list[list[int]]] = field(default_factory=dict)  # the reference's eval responses


def train(cfg: RlhfConfig, reporter: Reporter | None = None, run_dir: str | Path = ".",
          identity: checkpoint.Identity | None = None) -> dict[str, Any]:
    reporter = reporter or NullReporter()
    ctx = setup(cfg, reporter, Path(run_dir), identity)
    state = ctx.state
    total = total_rollouts(ctx)
    reporter.log(f"{cfg.method} (c = {threshold_text(cfg)}): {len(ctx.data.train)} train pairs over "
                 f"{len(ctx.data.prompts)} prompts, {len(ctx.data.heldout)} held-out pairs, {len(ctx.data.val)} "
                 f"validation and {len(ctx.data.test)} test prompts; judge {ctx.judge_name}; {total} rollouts of "
                 f"{cfg.rollout_batch}")
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


def generator(seed: int, stream: str, index: int) -> torch.Generator:
    return torch.Generator().manual_seed(stream_seed(seed, stream, index))


def threshold_text(cfg: RlhfConfig) -> str:
    return {"token-ppo": "0, every token", "bandit-ppo": "the end token"}.get(cfg.method, f"{cfg.seg_entropy:g} nats")


# ---------------------------------------------------------------------------------------------------
# setup


def setup(cfg: RlhfConfig, reporter: Reporter, run_dir: Path, identity: checkpoint.Identity | None = None) -> Ctx:
    threads = fix_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    device = pick_device(cfg.device)
    tok = load_tokenizer(cfg.policy_model, "policy", "policy_model")
    end_id = D.end_token_id(tok)
    stop_ids = sorted({end_id, *([tok.eos_token_id] if tok.eos_token_id is not None else [])})
    policy = load_causal_lm(cfg.policy_model, "policy", "policy_model")
    positions = max_positions(policy)
    if positions is not None and cfg.max_prompt_len + cfg.max_new_tokens > positions:
        raise ConfigError(f"max_prompt_len {cfg.max_prompt_len} + max_new_tokens {cfg.max_new_tokens} = "
                          f"{cfg.max_prompt_len + cfg.max_new_tokens} tokens, more than the policy's {positions} positions")
    judge_name = resolve_judge(cfg)
    data = load_data(cfg, tok, end_id, positions, judge_name == "gold")
    reporter.log(f"device {device} ({threads} CPU thread{'s' * (threads != 1)}); policy {cfg.policy_model}, end token "
                 f"{tok.convert_ids_to_tokens(end_id)!r}")

    policy = policy.to(device)
    reference = freeze(copy.deepcopy(policy))
    reward_model = head_model(cfg, cfg.reward_model, reference, "reward", "reward_model", tok).to(device)
    gold = None
    if judge_name == "gold":
        gold = head_model(cfg, cfg.gold_model or cfg.reward_model, reference, "gold", "gold_model", tok).to(device)
    critic = head_model(cfg, "", reference, "critic", "policy_model", tok).to(device)  # DR: from the SFT model
    ctx = Ctx(cfg, reporter, device, tok, end_id, stop_ids, data, policy, reference, critic, reward_model, gold,
              judge=lambda prompts, responses: [], judge_name=judge_name, preference=None,
              actor_opt=adam(policy, cfg.actor_lr), critic_opt=adam(critic, cfg.critic_lr), run_dir=run_dir,
              identity=identity)
    ctx.judge = make_judge(ctx, judge_name)
    if cfg.preference:
        ctx.preference = ctx.judge if cfg.preference == "judge" else make_judge(ctx, cfg.preference)
    load_checkpoint(ctx)
    return ctx


def adam(model: torch.nn.Module, lr: float) -> torch.optim.Optimizer:
    # DR: Adam betas (0.9, 0.95), weight decay 0 (rlhf.md §2, §3.4)
    return torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr, betas=(0.9, 0.95))


def head_model(cfg: RlhfConfig, name: str, reference: Any, role: str, field_name: str, tok: Any) -> ScalarHeadModel:
    """A reward or value model; its head drawn from a stream of its own, so it is the same whatever ran before."""
    if name and name != cfg.policy_model and not same_tokenizer(load_tokenizer(name, role, field_name), tok):
        raise ConfigError(f"{field_name}={name!r} does not share the policy's tokenizer; pick a model of the same "
                          f"family, or leave it empty (the policy model)")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(stream_seed(cfg.seed, f"{role} head"))
        return scalar_model(name, reference, cfg.policy_model, role, field_name)


def resolve_judge(cfg: RlhfConfig) -> str:
    if cfg.judge == "auto":
        return JUDGES.get(cfg.dataset, "gold")
    return cfg.judge


def make_judge(ctx: Ctx, name: str) -> Callable[[list[Prompt], list[list[int]]], list[float]]:
    """judge(prompts, responses as ids ending with the end token) -> one score each, higher is better."""
    if name == "gold":
        return lambda prompts, responses: score_with(ctx, ctx.gold, prompts, responses)  # type: ignore[arg-type]
    module, _, fn_name = name.partition(":")
    try:
        fn = getattr(importlib.import_module(module), fn_name)
    except (ImportError, AttributeError) as err:
        raise ConfigError(f"{name!r} (judge or preference): cannot load it ({err})") from None

    def judge(prompts: list[Prompt], responses: list[list[int]]) -> list[float]:
        out = []
        for p, r in zip(prompts, responses):
            value = fn(p.prompt, response_text(ctx, r))
            if not isinstance(value, (int, float)) or not math.isfinite(value):
                raise EngineError(f"{name} returned {value!r} for a response, not a finite number")
            out.append(float(value))
        return out

    return judge


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
        held = held[:cfg.max_heldout_pairs or None]
    gold_pairs: list[D.PreferencePair] = []
    if gold:
        pairs, gold_pairs = D.split_by_prompt(pairs, cfg.gold_fraction, stream_seed(cfg.dataset_seed, "gold split"))
    for name, part in (("train", pairs), ("held-out", held), ("gold", gold_pairs if gold else [None])):
        if not part:
            raise ConfigError(f"dataset {source!r}: no {name} pairs after the split by prompt (heldout_fraction, "
                              f"gold_fraction); use more data")

    def named(where: str, fn: Callable[[], Any]) -> Any:
        """fn(), its ConfigError prefixed with the row it is about (a chat the tokenizer cannot render)."""
        try:
            return fn()
        except ConfigError as err:
            if where and where not in str(err):
                raise ConfigError(f"{where}: {err}") from None
            raise

    def encode(ps: list[D.PreferencePair]) -> list[D.EncodedPair]:
        return [named(p.where, lambda p=p: D.encode_pair(tok, p, cfg.max_prompt_len, cfg.max_response_len, end_id,
                                                         positions)) for p in ps]

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
        raise ConfigError(f"dataset {source!r}: {len(test) + len(val)} held-out prompts, too few to split into "
                          f"validation and test prompts (val_fraction={cfg.val_fraction:g}); use more data")
    return Data(encode(pairs), encode(held), [p.prompt for p in held], encode(gold_pairs), prompts_of(pairs),
                val[:cfg.val_prompts or None], test[:cfg.eval_prompts or None])


# ---------------------------------------------------------------------------------------------------
# shared pieces: learning rates, batches, segments, token rewards


def lr_factor(cfg: RlhfConfig, step: int, total: int) -> float:
    """DR's cosine_with_min_lr: linear warmup over 3% of the steps, cosine down to 0.1x (rlhf.md §2, §3.4)."""
    if cfg.lr_schedule == "constant":
        return 1.0
    warm = max(1, math.ceil(0.03 * total))
    if step < warm:
        return (step + 1) / warm
    progress = min(1.0, (step - warm) / max(1, total - warm))
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))


def set_lr(opt: torch.optim.Optimizer, lr: float) -> None:
    for group in opt.param_groups:
        group["lr"] = lr


def chunks(n: int, size: int) -> Iterator[slice]:
    for i in range(0, n, size):
        yield slice(i, min(n, i + size))


def rows(batch: D.Batch, part: slice, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """A micro-batch of rows, cut to its own longest row: (ids, attention mask)."""
    width = int(batch.response_end[part].max().item())
    return batch.input_ids[part, :width].to(device), batch.attention_mask[part, :width].to(device)


def segment_ends(ctx: Ctx, ids: torch.Tensor, attn: torch.Tensor, idx: torch.Tensor, mask: torch.Tensor,
                 bandit: bool, entropy: torch.Tensor | None = None) -> torch.Tensor:
    """Segment-end flags (B, T) for the responses: the end token (bandit), every token but the end token
    (token-ppo, c = 0) or the reference's next-token entropy above seg_entropy (segment-ppo; `entropy` when
    the caller has it already)."""
    if bandit:
        return M.segment_ends(torch.zeros(mask.shape, device=mask.device), mask, 0.0, bandit=True)
    if ctx.cfg.method == "token-ppo":
        return M.segment_ends(torch.ones(mask.shape, device=mask.device), mask, 0.0, bandit=False)
    if entropy is None:
        with torch.no_grad(), autocast(ctx.device, ctx.cfg.bf16):
            entropy = lm_response(ctx.reference, ids, attn, idx, want=("next_entropy",))["next_entropy"]
    return M.segment_ends(entropy.float(), mask, ctx.cfg.seg_entropy, bandit=False)


def token_rewards(ctx: Ctx, values: torch.Tensor, ends: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The per-token rewards PPO trains on, before the KL term (rlhf.md §3.2, §3.3, §4): dense for token- and
    segment-ppo (reward_type), the normalised score on the end token for bandit-ppo."""
    cfg, norm = ctx.cfg, ctx.state.normaliser
    if cfg.method == "bandit-ppo":
        score = M.sequence_score(values, ends, cfg.agg)  # (B,) the value at the end token
        if norm is not None:
            one = torch.ones_like(score)
            score = M.location_normalise(score[:, None], one[:, None], one, *norm, sigma_floor=cfg.sigma_floor)[:, 0]
        return M.bandit_token_rewards(score, mask)
    return M.dense_token_rewards(values, ends, mask, cfg.reward_type, None if norm is None else tuple(norm),
                                 cfg.interpolate, cfg.sigma_floor)


def response_text(ctx: Ctx, ids: Sequence[int]) -> str:
    return ctx.tok.decode(list(ids), skip_special_tokens=True).strip()


def prompt_excerpt(prompt: list[D.Message]) -> str:
    text = "\n".join(f"{m['role']}: {m['content']}" for m in prompt)
    return text if len(text) <= EXCERPT else "..." + text[-EXCERPT:]


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
        part = [items[i] for i in order[k * cfg.rm_batch:(k + 1) * cfg.rm_batch]]
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
    for m, name in ((ctx.reward_model, cfg.reward_model), (ctx.gold, cfg.gold_model or cfg.reward_model),
                    (ctx.critic, "")):
        if m is not None and (not name or name == cfg.policy_model):
            m.backbone.load_state_dict(base)
    ctx.state.sft_done = True


# ---------------------------------------------------------------------------------------------------
# reward models (rlhf.md §2)


def pair_scores(ctx: Ctx, rm: ScalarHeadModel, pairs: list[D.EncodedPair], bandit: bool, grad: bool = False,
                micro: int | None = None) -> Iterator[tuple[int, torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]]:
    """For each micro-batch of pairs: (its size, chosen scores (b,), rejected scores (b,), the tensors of its
    2b rows: values, ends, mask, ids and idx). Chosen rows first, then rejected (data.collate_pairs)."""
    batch = D.collate_pairs(pairs, ctx.tok.pad_token_id)
    B = len(pairs)
    for sl in chunks(B, micro or ctx.cfg.micro_batch):
        both = torch.cat([torch.arange(sl.start, sl.stop), torch.arange(B + sl.start, B + sl.stop)])
        sub = D.Batch(*(t[both] for t in (batch.input_ids, batch.attention_mask, batch.response_mask,
                                           batch.response_start, batch.response_end)))
        ids, attn = rows(sub, slice(None), ctx.device)
        idx, mask = response_index(sub.response_start.to(ctx.device), sub.response_end.to(ctx.device))
        ends = segment_ends(ctx, ids, attn, idx, mask, bandit)
        with torch.set_grad_enabled(grad):
            values = values_at(rm, ids, attn, idx, before=False)  # (2b, T)
            score = M.sequence_score(values, ends, ctx.cfg.agg)
        b = sl.stop - sl.start
        yield b, score[:b], score[b:], dict(values=values, ends=ends, mask=mask, ids=ids, idx=idx)


def train_reward_model(ctx: Ctx, rm: ScalarHeadModel, pairs: list[D.EncodedPair], heldout: list[D.EncodedPair],
                       kind: str) -> dict[str, float]:
    """Bradley-Terry on `pairs` for rm_epochs, validated on `heldout` after each epoch. kind "reward": the proxy
    at the method's segmentation; "gold": a bandit model, the judge."""
    cfg, rep = ctx.cfg, ctx.reporter
    bandit = kind == "gold" or cfg.method == "bandit-ppo"
    ctx.phase = rep.begin_phase(kind, ctx.state.step)
    per_epoch = math.ceil(len(pairs) / cfg.rm_batch)
    steps = max(1, math.ceil(cfg.rm_epochs * per_epoch))
    opt = adam(rm, cfg.rm_lr)
    rep.log(f"{kind} model: {steps} updates of {cfg.rm_batch} pairs ({'bandit' if bandit else cfg.method})")
    last: dict[str, float] = {}
    for step in range(1, steps + 1):
        if rep.should_stop():
            raise Cancelled()  # nothing saved: the run restarts this training from its last checkpoint
        epoch, k = divmod(step - 1, per_epoch)
        gen = generator(cfg.seed, f"{kind} epoch", 1000 * ctx.state.retrains + epoch)  # retrainings: new orders
        order = torch.randperm(len(pairs), generator=gen).tolist()
        part = [pairs[i] for i in order[k * cfg.rm_batch:(k + 1) * cfg.rm_batch]]
        set_lr(opt, cfg.rm_lr * lr_factor(cfg, step - 1, steps))
        rm.train()
        opt.zero_grad(set_to_none=True)
        total, correct = 0.0, 0.0
        for b, chosen, rejected, _ in pair_scores(ctx, rm, part, bandit, grad=True):
            loss = M.bradley_terry_loss(chosen, rejected) * b / len(part)
            loss.backward()
            total += loss.item()
            correct += M.pair_accuracy(chosen, rejected).item() * b
        torch.nn.utils.clip_grad_norm_(rm.parameters(), cfg.grad_clip)
        opt.step()
        rep.metrics(step, {f"{kind}/loss": total, f"{kind}/train_accuracy": correct / len(part),
                           f"{kind}/lr": opt.param_groups[0]["lr"]})
        rep.phase_progress(step, steps)
        if k == per_epoch - 1 or step == steps:
            last = validate_reward_model(ctx, rm, heldout, bandit, kind)
            rep.metrics(step, last)
    rm.eval()
    return last


@torch.no_grad()
def validate_reward_model(ctx: Ctx, rm: ScalarHeadModel, pairs: list[D.EncodedPair], bandit: bool,
                          kind: str) -> dict[str, float]:
    """Mean BT loss and strict accuracy on held-out pairs; segments per response and tokens per segment."""
    rm.eval()
    loss, correct, segments, tokens, responses = 0.0, 0.0, 0, 0, 0
    for b, chosen, rejected, t in pair_scores(ctx, rm, pairs, bandit):
        loss += M.bradley_terry_loss(chosen, rejected).item() * b
        correct += M.pair_accuracy(chosen, rejected).item() * b
        segments += int(M.n_segments(t["ends"]).sum())
        tokens += int((M.segment_ids(t["ends"], t["mask"]) >= 0).sum())
        responses += 2 * b
    return {f"{kind}/val_loss": loss / len(pairs), f"{kind}/accuracy": correct / len(pairs),
            f"{kind}/segments": segments / responses, f"{kind}/segment_length": tokens / max(1, segments)}


@torch.no_grad()
def fit_normaliser(ctx: Ctx) -> None:
    """The location-aware normaliser mu(p), sigma(p) (rlhf.md §3.3), fitted on the proxy's raw values at the
    segment ends of every train response, p = k/K. Bandit: p = 1 only, so mu and sigma are the mean and std of
    the scores (OpenRLHF's normaliser, fitted here instead of DR's constants)."""
    cfg = ctx.cfg
    if cfg.reward_norm == "none":
        ctx.state.normaliser = None
        return
    values, positions = [], []
    for _, _, _, t in pair_scores(ctx, ctx.reward_model, ctx.data.train, cfg.method == "bandit-ppo"):
        seg = M.segment_values(t["values"], t["ends"])  # (2b, K)
        k = torch.arange(1, seg.shape[1] + 1, device=seg.device).expand(seg.shape)
        n = M.n_segments(t["ends"])[:, None]
        keep = k <= n
        values.append(seg[keep])
        positions.append((k / n.clamp(min=1))[keep])
    a_mu, b_mu, a_sigma, b_sigma = M.fit_location_normaliser(torch.cat(values), torch.cat(positions))
    ctx.state.normaliser = [a_mu, b_mu, a_sigma, b_sigma]
    ctx.reporter.metrics(ctx.state.step, {"reward/norm_a_mu": a_mu, "reward/norm_b_mu": b_mu, "reward/norm_a_sigma": a_sigma,
                             "reward/norm_b_sigma": b_sigma})
    ctx.reporter.log(f"normaliser: mu(p) = {a_mu:.4g} ln p + {b_mu:.4g}, sigma(p) = {a_sigma:.4g} ln p + {b_sigma:.4g}")


@torch.no_grad()
def record_reward_samples(ctx: Ctx) -> None:
    """A few held-out pairs, chosen and rejected, with the token rewards PPO would give them."""
    pairs = ctx.data.heldout[:3]
    b = len(pairs)
    prompts = [Prompt(m, p.prompt) for m, p in zip(ctx.data.heldout_prompts, pairs)] * 2
    responses = [p.chosen for p in pairs] + [p.rejected for p in pairs]
    true = ctx.judge(prompts, responses)
    out = []
    for _, chosen, rejected, t in pair_scores(ctx, ctx.reward_model, pairs, ctx.cfg.method == "bandit-ppo",
                                              micro=b):
        r = token_rewards(ctx, t["values"], t["ends"], t["mask"])
        scores = torch.cat([chosen, rejected]).tolist()
        for i in range(2 * b):
            out.append(row(ctx, prompts[i].prompt, responses[i], r[i], t["ends"][i], t["mask"][i], scores[i], true[i],
                           "reward", dict(pair=i % b, label="chosen" if i < b else "rejected")))
    ctx.reporter.samples(ctx.state.step, out)


def score_with(ctx: Ctx, rm: ScalarHeadModel, prompts: list[Prompt], responses: list[list[int]]) -> list[float]:
    """A bandit reward model's scores (the value at the end token) of responses to prompts (the gold judge)."""
    out: list[float] = []
    batch = D.collate([p.ids for p in prompts], responses, ctx.tok.pad_token_id)
    with torch.no_grad(), autocast(ctx.device, ctx.cfg.bf16):
        for sl in chunks(len(prompts), ctx.cfg.micro_batch):
            ids, attn = rows(batch, sl, ctx.device)
            idx, mask = response_index(batch.response_start[sl].to(ctx.device), batch.response_end[sl].to(ctx.device))
            values = values_at(rm, ids, attn, idx, before=False)
            out += values.gather(1, M.end_index(mask)[:, None].clamp(min=0))[:, 0].float().tolist()
    return out


def retrain_steps(cfg: RlhfConfig, total: int) -> list[int]:
    """Rollouts after which the reward model is retrained: every reward_retrain_every, in the first half."""
    every = cfg.reward_retrain_every
    return [n for n in range(every, total // 2 + 1, every) if n < total] if every else []


def retrain_reward_model(ctx: Ctx) -> None:
    """PGG's alternation, which the paper does not have: retrain_k responses of the current policy to each of
    retrain_prompts train prompts, ranked by the preference; every pair with distinct scores joins the pairs of
    the earlier retrainings, and the reward model (warm, fresh Adam) trains rm_epochs on them; the normaliser is
    refitted on the train responses."""
    cfg, state = ctx.cfg, ctx.state
    assert ctx.preference is not None
    order = torch.randperm(len(ctx.data.prompts), generator=generator(cfg.seed, "retrain prompts", state.retrains))
    prompts = [ctx.data.prompts[i] for i in order[:cfg.retrain_prompts].tolist()]
    many = [p for p in prompts for _ in range(cfg.retrain_k)]
    responses = sample(ctx, ctx.policy, many)
    scores = ctx.preference(many, responses)
    state.queries += len(responses)
    for j, p in enumerate(prompts):
        for a, b in itertools.combinations(range(j * cfg.retrain_k, (j + 1) * cfg.retrain_k), 2):
            if scores[a] != scores[b]:
                better, worse = (a, b) if scores[a] > scores[b] else (b, a)
                state.own_pairs.append([p.ids, responses[better], responses[worse]])
    state.retrains += 1
    if not state.own_pairs:
        ctx.reporter.log(f"retraining {state.retrains}: the preference scored every response alike; reward model kept")
        return
    pairs = [D.EncodedPair(*x) for x in state.own_pairs]
    state.reward = train_reward_model(ctx, ctx.reward_model, pairs, ctx.data.heldout, "reward")
    fit_normaliser(ctx)
    ctx.reporter.metrics(state.step, {"queries/preference": float(state.queries), "reward/own_pairs": float(len(pairs))})


# ---------------------------------------------------------------------------------------------------
# rollouts (rlhf.md §3.1, §3.2, §3.4)


def total_rollouts(ctx: Ctx) -> int:
    cfg = ctx.cfg
    n = math.ceil(cfg.episodes * len(ctx.data.prompts) / cfg.rollout_batch)
    return min(n, cfg.max_rollouts) if cfg.max_rollouts else n


def rollout_prompts(ctx: Ctx, n: int) -> list[int]:
    """Prompt indices of rollout n (1-based): a stream of shuffled passes over the train prompts, cut into
    rollout_batch; a function of n alone, so a resumed run draws what the uninterrupted one would."""
    cfg, P = ctx.cfg, len(ctx.data.prompts)
    start = (n - 1) * cfg.rollout_batch
    out: list[int] = []
    while len(out) < cfg.rollout_batch:
        epoch, offset = divmod(start + len(out), P)
        order = torch.randperm(P, generator=generator(cfg.seed, "prompt epoch", epoch)).tolist()
        out += order[offset:offset + cfg.rollout_batch - len(out)]
    return out


@torch.no_grad()
def sample(ctx: Ctx, model: Any, prompts: list[Prompt]) -> list[list[int]]:
    """One response per prompt, KV-cached sampling at `temperature` (top_p 1, no top-k), each ending with the end
    token: cut after the first stop token, or (no stop within max_new_tokens) with the end token in its last
    slot, as DR (rlhf.md §3.1)."""
    cfg, pad = ctx.cfg, ctx.tok.pad_token_id
    model.eval()
    out: list[list[int]] = []
    for sl in chunks(len(prompts), cfg.gen_batch):
        part = prompts[sl]
        width = max(len(p.ids) for p in part)
        ids = torch.tensor([[pad] * (width - len(p.ids)) + p.ids for p in part], device=ctx.device)
        attn = torch.tensor([[0] * (width - len(p.ids)) + [1] * len(p.ids) for p in part], device=ctx.device)
        with autocast(ctx.device, cfg.bf16):
            gen = model.generate(input_ids=ids, attention_mask=attn, do_sample=True, temperature=cfg.temperature,
                                 top_k=0, top_p=1.0, max_new_tokens=cfg.max_new_tokens, eos_token_id=ctx.stop_ids,
                                 pad_token_id=pad, use_cache=True)
        for seq in gen[:, width:].tolist():
            stop = next((i for i, t in enumerate(seq) if t in ctx.stop_ids), None)
            out.append(seq[:stop + 1] if stop is not None else seq[:-1] + [ctx.end_id])
    return out


@dataclass
class Rollout:
    """One response per prompt and what PPO needs of it, response-relative and right-padded: (B, T)."""

    prompts: list[Prompt]
    responses: list[list[int]]
    batch: D.Batch  # prompt + response rows (data.collate)
    mask: torch.Tensor  # (B, T) bool: response tokens, the end token included
    logp: torch.Tensor  # (B, T) log pi_old(y_t)
    ref_logp: torch.Tensor  # (B, T) log pi_ref(y_t)
    entropy: torch.Tensor  # (B, T) entropy of the distribution y_t was sampled from
    values: torch.Tensor  # (B, T) V_old(s_t)
    rm_values: torch.Tensor  # (B, T) r_phi(x, y_<=t)
    ends: torch.Tensor  # (B, T) segment ends
    score: torch.Tensor  # (B,) the reward model's sequence score (raw)
    token_rewards: torch.Tensor  # (B, T) rewards before the KL term
    kl: torch.Tensor  # (B, T) k1: log pi_old - log pi_ref
    rewards: torch.Tensor  # (B, T) clamp(token_rewards) - beta kl
    advantages: torch.Tensor  # (B, T) whitened GAE
    returns: torch.Tensor  # (B, T)


@torch.no_grad()
def rollout(ctx: Ctx, prompts: list[Prompt], responses: list[list[int]] | None = None) -> Rollout:
    """Sample a response per prompt (or take `responses`) and compute what PPO needs of them."""
    cfg = ctx.cfg
    if responses is None:
        responses = sample(ctx, ctx.policy, prompts)
    segmented = cfg.method == "segment-ppo"
    batch = D.collate([p.ids for p in prompts], responses, ctx.tok.pad_token_id)
    idx_all, mask = response_index(batch.response_start, batch.response_end)
    mask = mask.to(ctx.device)
    parts: dict[str, list[torch.Tensor]] = {k: [] for k in ("logp", "ref_logp", "entropy", "values", "rm_values", "ends")}
    for sl in chunks(len(prompts), cfg.micro_batch):
        ids, attn = rows(batch, sl, ctx.device)
        idx = idx_all[sl].to(ctx.device)
        pol = lm_response(ctx.policy, ids, attn, idx, cfg.temperature, ("logp", "entropy"))
        with autocast(ctx.device, cfg.bf16):
            ref = lm_response(ctx.reference, ids, attn, idx, cfg.temperature,
                              ("logp", "next_entropy") if segmented else ("logp",))
            rm_values = values_at(ctx.reward_model, ids, attn, idx, before=False)
        parts["logp"].append(pol["logp"])
        parts["entropy"].append(pol["entropy"])
        parts["ref_logp"].append(ref["logp"].float())
        parts["values"].append(values_at(ctx.critic, ids, attn, idx, before=True))
        parts["rm_values"].append(rm_values.float())
        parts["ends"].append(segment_ends(ctx, ids, attn, idx, mask[sl], cfg.method == "bandit-ppo",
                                          ref.get("next_entropy")))
    t = {k: torch.cat(v) for k, v in parts.items()}
    score = M.sequence_score(t["rm_values"], t["ends"], cfg.agg)
    token_r = token_rewards(ctx, t["rm_values"], t["ends"], mask)
    rewards, kl = M.kl_penalised_rewards(token_r, t["logp"], t["ref_logp"], mask, cfg.kl_coef, clip=cfg.reward_clip)
    values = t["values"] * mask
    advantages, returns = M.gae(rewards, values, mask, cfg.gamma, cfg.lam)
    if mask.sum() >= 2:
        advantages = M.whiten(advantages, mask)
    return Rollout(prompts, responses, batch, mask, t["logp"], t["ref_logp"], t["entropy"], values, t["rm_values"],
                   t["ends"], score, token_r, kl, rewards, advantages, returns)


def rollout_metrics(roll: Rollout) -> dict[str, float]:
    m = roll.mask.float()
    lengths = m.sum(-1)
    return {"reward/mean": (roll.token_rewards * m).sum(-1).mean().item(),  # what the policy is trained on
            "reward/score": roll.score.mean().item(),  # the reward model's raw sequence score
            "reward/total": roll.rewards.sum(-1).mean().item(),  # with the KL penalty
            "policy/kl": roll.kl.sum(-1).mean().item(),  # per response, k1
            "policy/entropy": ((roll.entropy * m).sum() / m.sum()).item(),
            "response/length": lengths.mean().item(),
            "response/segments": M.n_segments(roll.ends).float().mean().item()}


def ppo_update(ctx: Ctx, roll: Rollout, n: int) -> dict[str, float]:
    """ppo_epochs passes over the rollout in shuffled minibatches; clipped losses, masked mean per response then
    over responses (DR); actor and critic each with its Adam and a gradient-norm clip."""
    cfg = ctx.cfg
    B = len(roll.prompts)
    per_rollout = cfg.ppo_epochs * math.ceil(B / cfg.minibatch)
    total_updates = total_rollouts(ctx) * per_rollout
    value_clip = cfg.value_clip or (0.2 if cfg.method == "bandit-ppo" else 0.25)
    idx_all, _ = response_index(roll.batch.response_start, roll.batch.response_end)
    sums: dict[str, float] = {}
    ctx.policy.train()
    ctx.critic.train()
    for epoch in range(cfg.ppo_epochs):
        order = torch.randperm(B, generator=generator(cfg.seed, "ppo minibatches", n * 1000 + epoch))
        for mb in chunks(B, cfg.minibatch):
            members = order[mb]
            f = lr_factor(cfg, ctx.state.updates, total_updates)
            set_lr(ctx.actor_opt, cfg.actor_lr * f)
            set_lr(ctx.critic_opt, cfg.critic_lr * f)
            ctx.actor_opt.zero_grad(set_to_none=True)
            ctx.critic_opt.zero_grad(set_to_none=True)
            stats = dict.fromkeys(("policy/loss", "value/loss", "policy/clip_frac", "value/clip_frac",
                                   "policy/approx_kl"), 0.0)
            for part in chunks(len(members), cfg.micro_batch):
                sel = members[part]
                sub = D.Batch(*(t[sel] for t in (roll.batch.input_ids, roll.batch.attention_mask,
                                                  roll.batch.response_mask, roll.batch.response_start,
                                                  roll.batch.response_end)))
                ids, attn = rows(sub, slice(None), ctx.device)
                idx = idx_all[sel].to(ctx.device)
                sel = sel.to(ctx.device)
                mask = roll.mask[sel]
                logp = lm_response(ctx.policy, ids, attn, idx, cfg.temperature)["logp"]
                values = values_at(ctx.critic, ids, attn, idx, before=True)
                pl, clip_frac, approx_kl = M.policy_loss(logp, roll.logp[sel], roll.advantages[sel], mask, cfg.eps_clip)
                vl, vclip_frac = M.value_loss(values, roll.values[sel], roll.returns[sel], mask, value_clip)
                w = len(sel) / len(members)  # the minibatch's mean over responses, from its micro-batches
                ((pl + vl) * w).backward()  # disjoint parameters: each model gets its own loss's gradient
                for k, v in zip(stats, (pl, vl, clip_frac, vclip_frac, approx_kl)):
                    stats[k] += v.item() * w
            torch.nn.utils.clip_grad_norm_(ctx.policy.parameters(), cfg.grad_clip)
            torch.nn.utils.clip_grad_norm_(ctx.critic.parameters(), cfg.grad_clip)
            ctx.actor_opt.step()
            ctx.critic_opt.step()
            ctx.state.updates += 1
            for k, v in stats.items():
                sums[k] = sums.get(k, 0.0) + v / per_rollout
    ctx.policy.eval()
    ctx.critic.eval()
    return {**sums, "lr/actor": ctx.actor_opt.param_groups[0]["lr"], "lr/critic": ctx.critic_opt.param_groups[0]["lr"]}


# ---------------------------------------------------------------------------------------------------
# sample rows for the app (the same shape as the other tasks': tokens coloured by their reward)


def row(ctx: Ctx, prompt: list[D.Message], response: list[int], rewards: torch.Tensor, ends: torch.Tensor,
        mask: torch.Tensor, model_score: float | None, true_score: float | None, kind: str,
        extra: dict[str, Any]) -> dict[str, Any]:
    n = len(response)
    m = mask[:n]
    return dict(kind=kind, context=prompt_excerpt(prompt), text=response_text(ctx, response),
                tokens=[ctx.tok.decode([i]) for i in response], rewards=rewards[:n][m].tolist(),
                model_score=model_score, true_score=true_score,
                extra=dict(extra, segment_ends=ends[:n].nonzero().flatten().tolist()))


def sample_rows(ctx: Ctx, roll: Rollout, which: Sequence[int] | range, kind: str,
                extra: Sequence[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    which = list(which)
    true = ctx.judge([roll.prompts[i] for i in which], [roll.responses[i] for i in which])
    return [row(ctx, roll.prompts[i].prompt, roll.responses[i], roll.token_rewards[i], roll.ends[i], roll.mask[i],
                float(roll.score[i]), true[j], kind,
                dict(extra[j] if extra else {}, kl=float(roll.kl[i].sum())))
            for j, i in enumerate(which)]


# ---------------------------------------------------------------------------------------------------
# evaluation (rlhf.md §6): win rate against the reference by the judge


def wilson(p: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval (95%) of a rate p over n comparisons. Ties count 1/2 in p; they make the true
    variance smaller than a binomial's, so the interval is conservative."""
    if n == 0:
        return 0.0, 1.0
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def seeded(ctx: Ctx, stream: str, index: int) -> Any:
    """An RNG fork for evaluation sampling: evaluating never moves the training's random stream."""
    fork = torch.random.fork_rng(devices=[ctx.device] if ctx.device.type == "cuda" else [])
    fork.__enter__()
    torch.manual_seed(stream_seed(ctx.cfg.seed, stream, index))
    return fork


def compare(ctx: Ctx, prompts: list[Prompt], split: str, step: int) -> tuple[dict[str, float], Rollout, list[list[int]],
                                                                              list[float], list[float]]:
    """eval_samples responses per prompt from the policy and from the reference; the judge compares them pairwise.
    Returns the split's numbers, the policy's rollout, the reference's responses, and both judge scores."""
    cfg = ctx.cfg
    many = [p for p in prompts for _ in range(cfg.eval_samples)]
    if split not in ctx.ref_cache:  # the reference is frozen: its responses are drawn once per split
        fork = seeded(ctx, f"{split} reference", 0)
        try:
            ctx.ref_cache[split] = sample(ctx, ctx.reference, many)
        finally:
            fork.__exit__(None, None, None)
    ref = ctx.ref_cache[split]
    fork = seeded(ctx, f"{split} policy", step)
    try:
        roll = rollout(ctx, many)
    finally:
        fork.__exit__(None, None, None)
    g_pol, g_ref = ctx.judge(many, roll.responses), ctx.judge(many, ref)
    wins = [1.0 if a > b else 0.5 if a == b else 0.0 for a, b in zip(g_pol, g_ref)]
    rate = sum(wins) / len(wins)
    lo, hi = wilson(rate, len(wins))
    k3 = M.kl_k3(roll.logp, roll.ref_logp, roll.mask).sum(-1)
    ref_scores = score_ref(ctx, many, ref)
    out = {f"{split}/win_rate": rate, f"{split}/win_rate_lo": lo, f"{split}/win_rate_hi": hi,
           f"{split}/sigmoid_gap": sum(0.5 + 0.5 * math.tanh((a - b) / 2) for a, b in zip(g_pol, g_ref)) / len(wins),
           f"{split}/judge_reward": sum(g_pol) / len(g_pol), f"{split}/judge_reward_ref": sum(g_ref) / len(g_ref),
           f"{split}/kl": roll.kl.sum(-1).mean().item(), f"{split}/kl_k3": k3.mean().item(),
           f"{split}/length": roll.mask.float().sum(-1).mean().item(),
           f"{split}/length_ref": sum(map(len, ref)) / len(ref),
           f"{split}/rm_score": roll.score.mean().item(), f"{split}/rm_score_ref": sum(ref_scores) / len(ref_scores),
           f"{split}/comparisons": float(len(wins))}
    return out, roll, ref, g_pol, g_ref


@torch.no_grad()
def score_ref(ctx: Ctx, prompts: list[Prompt], responses: list[list[int]]) -> list[float]:
    """The proxy reward model's raw sequence scores of the reference's responses (beside the policy's: the gap
    the policy opened on the proxy, to set against the judge's)."""
    batch = D.collate([p.ids for p in prompts], responses, ctx.tok.pad_token_id)
    idx_all, mask_all = response_index(batch.response_start, batch.response_end)
    out: list[float] = []
    for sl in chunks(len(prompts), ctx.cfg.micro_batch):
        ids, attn = rows(batch, sl, ctx.device)
        idx, mask = idx_all[sl].to(ctx.device), mask_all[sl].to(ctx.device)
        values = values_at(ctx.reward_model, ids, attn, idx, before=False)
        ends = segment_ends(ctx, ids, attn, idx, mask, ctx.cfg.method == "bandit-ppo")
        out += M.sequence_score(values, ends, ctx.cfg.agg).tolist()
    return out


def validate(ctx: Ctx, step: int) -> None:
    values, *_ = compare(ctx, ctx.data.val, "val", step)
    ctx.state.val = values
    ctx.reporter.metrics(step, values)


def evaluate_test(ctx: Ctx) -> dict[str, Any]:
    step = ctx.state.step
    values, roll, ref, g_pol, g_ref = compare(ctx, ctx.data.test, "test", step)
    ctx.reporter.metrics(step, values)
    shown = range(min(2 * SAMPLE_ROWS, len(roll.prompts)))
    rows_ = sample_rows(ctx, roll, shown, "eval", [dict(model="policy", judge_ref=g_ref[i],
                                                        win=1.0 if g_pol[i] > g_ref[i] else 0.5 if g_pol[i] == g_ref[i] else 0.0)
                                                   for i in shown])
    ref_roll = rollout(ctx, [roll.prompts[i] for i in shown], [ref[i] for i in shown])
    rows_ += sample_rows(ctx, ref_roll, range(len(shown)), "eval", [dict(model="reference") for _ in shown])
    ctx.reporter.samples(step, rows_)
    results: dict[str, Any] = dict(values)
    results.update({k: v for k, v in ctx.state.val.items()})
    results.update({k: v for k, v in ctx.state.reward.items()})
    results.update({k: v for k, v in ctx.state.gold.items()})
    results.update(rollouts=step, method=ctx.cfg.method, judge=ctx.judge_name, threshold=threshold_text(ctx.cfg),
                   reward_trainings=1 + ctx.state.retrains, **{"queries/preference": ctx.state.queries},
                   normaliser=ctx.state.normaliser, train_pairs=len(ctx.data.train),
                   heldout_pairs=len(ctx.data.heldout))
    return {**results, **runtime_env(ctx.device)}


# ---------------------------------------------------------------------------------------------------
# checkpoints


def save_checkpoint(ctx: Ctx) -> None:
    ctx.reporter.flush()
    data = dict(state=asdict(ctx.state), policy=ctx.policy.state_dict(), critic=ctx.critic.state_dict(),
                reward_model=ctx.reward_model.state_dict(), actor_opt=ctx.actor_opt.state_dict(),
                critic_opt=ctx.critic_opt.state_dict(), gold=ctx.gold.state_dict() if ctx.gold is not None else None,
                reference=ctx.reference.state_dict() if ctx.cfg.sft_epochs > 0 else None,
                rng=checkpoint.rng_state(), saved_at=time.time())
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
