"""Reward models (rlhf.md §2, §3.3): Bradley-Terry on preference pairs with the sequence score read at the
segment ends, the location-aware normaliser, the gold model's scores, and PGG's retraining on the policy's
own responses."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator

import torch

from engine.config import RlhfConfig
from engine.errors import Cancelled
from engine.models import autocast
from engine.rlhf import data as D
from engine.rlhf import ppo_math as M
from engine.rlhf.common import (
    Ctx,
    Prompt,
    adam,
    chunks,
    generator,
    lr_factor,
    row,
    rows,
    segment_ends,
    set_lr,
    token_rewards,
)
from engine.rlhf.models import ScalarHeadModel, response_index, values_at
from engine.rlhf import people
from engine.rlhf.ppo import sample


def pair_scores(
    ctx: Ctx,
    rm: ScalarHeadModel,
    pairs: list[D.EncodedPair],
    bandit: bool,
    grad: bool = False,
    micro: int | None = None,
) -> Iterator[tuple[int, torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]]:
    """For each micro-batch of pairs: (its size, chosen scores (b,), rejected scores (b,), the tensors of its
    2b rows: values, ends, mask, ids and idx). Chosen rows first, then rejected (data.collate_pairs)."""
    batch = D.collate_pairs(pairs, ctx.tok.pad_token_id)
    B = len(pairs)
    for sl in chunks(B, micro or ctx.cfg.micro_batch):
        both = torch.cat([torch.arange(sl.start, sl.stop), torch.arange(B + sl.start, B + sl.stop)])
        sub = D.Batch(
            *(
                t[both]
                for t in (
                    batch.input_ids,
                    batch.attention_mask,
                    batch.response_mask,
                    batch.response_start,
                    batch.response_end,
                )
            )
        )
        ids, attn = rows(sub, slice(None), ctx.device)
        idx, mask = response_index(sub.response_start.to(ctx.device), sub.response_end.to(ctx.device))
        ends = segment_ends(ctx, ids, attn, idx, mask, bandit)
        with torch.set_grad_enabled(grad):
            values = values_at(rm, ids, attn, idx, before=False)  # (2b, T)
            score = M.sequence_score(values, ends, ctx.cfg.agg)
        b = sl.stop - sl.start
        yield b, score[:b], score[b:], dict(values=values, ends=ends, mask=mask, ids=ids, idx=idx)


def train_reward_model(
    ctx: Ctx, rm: ScalarHeadModel, pairs: list[D.EncodedPair], heldout: list[D.EncodedPair], kind: str
) -> dict[str, float]:
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
        part = [pairs[i] for i in order[k * cfg.rm_batch : (k + 1) * cfg.rm_batch]]
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
        rep.metrics(
            step,
            {
                f"{kind}/loss": total,
                f"{kind}/train_accuracy": correct / len(part),
                f"{kind}/lr": opt.param_groups[0]["lr"],
            },
        )
        rep.phase_progress(step, steps)
        if k == per_epoch - 1 or step == steps:
            last = validate_reward_model(ctx, rm, heldout, bandit, kind)
            rep.metrics(step, last)
    rm.eval()
    return last


@torch.no_grad()
def validate_reward_model(
    ctx: Ctx, rm: ScalarHeadModel, pairs: list[D.EncodedPair], bandit: bool, kind: str
) -> dict[str, float]:
    """Mean BT loss and strict accuracy on held-out pairs; segments per response and tokens per segment."""
    rm.eval()
    loss, correct, segments, tokens, responses = 0.0, 0.0, 0, 0, 0
    for b, chosen, rejected, t in pair_scores(ctx, rm, pairs, bandit):
        loss += M.bradley_terry_loss(chosen, rejected).item() * b
        correct += M.pair_accuracy(chosen, rejected).item() * b
        segments += int(M.n_segments(t["ends"]).sum())
        tokens += int((M.segment_ids(t["ends"], t["mask"]) >= 0).sum())
        responses += 2 * b
    return {
        f"{kind}/val_loss": loss / len(pairs),
        f"{kind}/accuracy": correct / len(pairs),
        f"{kind}/segments": segments / responses,
        f"{kind}/segment_length": tokens / max(1, segments),
    }


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
    ctx.reporter.metrics(
        ctx.state.step,
        {
            "reward/norm_a_mu": a_mu,
            "reward/norm_b_mu": b_mu,
            "reward/norm_a_sigma": a_sigma,
            "reward/norm_b_sigma": b_sigma,
        },
    )
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
    for _, chosen, rejected, t in pair_scores(ctx, ctx.reward_model, pairs, ctx.cfg.method == "bandit-ppo", micro=b):
        r = token_rewards(ctx, t["values"], t["ends"], t["mask"])
        scores = torch.cat([chosen, rejected]).tolist()
        for i in range(2 * b):
            out.append(
                row(
                    ctx,
                    prompts[i].prompt,
                    responses[i],
                    r[i],
                    t["ends"][i],
                    t["mask"][i],
                    scores[i],
                    true[i],
                    "reward",
                    dict(pair=i % b, label="chosen" if i < b else "rejected"),
                )
            )
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
    if ctx.pool is not None:  # preference=human: people rank them in pgg-tui (engine/rlhf/people.py)
        state.own_pairs = people.ranked_pairs(ctx)
    else:
        assert ctx.preference is not None
        order = torch.randperm(len(ctx.data.prompts), generator=generator(cfg.seed, "retrain prompts", state.retrains))
        prompts = [ctx.data.prompts[i] for i in order[: cfg.retrain_prompts].tolist()]
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
    ctx.reporter.metrics(
        state.step, {"queries/preference": float(state.queries), "reward/own_pairs": float(len(pairs))}
    )
