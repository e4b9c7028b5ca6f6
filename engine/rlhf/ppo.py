"""PPO with the reward model's token rewards (rlhf.md §3.1, §3.2, §3.4): which prompts each rollout takes,
KV-cached sampling, everything PPO needs of a rollout (log-probs, reference, values, token rewards, KL, GAE), and
the clipped updates of actor and critic."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from engine.models import autocast
from engine.rlhf import data as D
from engine.rlhf import ppo_math as M
from engine.rlhf.common import Ctx, Prompt, chunks, generator, lr_factor, row, rows, segment_ends, set_lr, token_rewards
from engine.rlhf.models import lm_response, response_index, values_at


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
        out += order[offset : offset + cfg.rollout_batch - len(out)]
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
            gen = model.generate(
                input_ids=ids,
                attention_mask=attn,
                do_sample=True,
                temperature=cfg.temperature,
                top_k=0,
                top_p=1.0,
                max_new_tokens=cfg.max_new_tokens,
                eos_token_id=ctx.stop_ids,
                pad_token_id=pad,
                use_cache=True,
            )
        for seq in gen[:, width:].tolist():
            stop = next((i for i, t in enumerate(seq) if t in ctx.stop_ids), None)
            out.append(seq[: stop + 1] if stop is not None else seq[:-1] + [ctx.end_id])
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
    parts: dict[str, list[torch.Tensor]] = {
        k: [] for k in ("logp", "ref_logp", "entropy", "values", "rm_values", "ends")
    }
    for sl in chunks(len(prompts), cfg.micro_batch):
        ids, attn = rows(batch, sl, ctx.device)
        idx = idx_all[sl].to(ctx.device)
        pol = lm_response(ctx.policy, ids, attn, idx, cfg.temperature, ("logp", "entropy"))
        with autocast(ctx.device, cfg.bf16):
            ref = lm_response(
                ctx.reference, ids, attn, idx, cfg.temperature, ("logp", "next_entropy") if segmented else ("logp",)
            )
            rm_values = values_at(ctx.reward_model, ids, attn, idx, before=False)
        parts["logp"].append(pol["logp"])
        parts["entropy"].append(pol["entropy"])
        parts["ref_logp"].append(ref["logp"].float())
        parts["values"].append(values_at(ctx.critic, ids, attn, idx, before=True))
        parts["rm_values"].append(rm_values.float())
        parts["ends"].append(
            segment_ends(ctx, ids, attn, idx, mask[sl], cfg.method == "bandit-ppo", ref.get("next_entropy"))
        )
    t = {k: torch.cat(v) for k, v in parts.items()}
    score = M.sequence_score(t["rm_values"], t["ends"], cfg.agg)
    token_r = token_rewards(ctx, t["rm_values"], t["ends"], mask)
    rewards, kl = M.kl_penalised_rewards(token_r, t["logp"], t["ref_logp"], mask, cfg.kl_coef, clip=cfg.reward_clip)
    values = t["values"] * mask
    advantages, returns = M.gae(rewards, values, mask, cfg.gamma, cfg.lam)
    if mask.sum() >= 2:
        advantages = M.whiten(advantages, mask)
    return Rollout(
        prompts,
        responses,
        batch,
        mask,
        t["logp"],
        t["ref_logp"],
        t["entropy"],
        values,
        t["rm_values"],
        t["ends"],
        score,
        token_r,
        kl,
        rewards,
        advantages,
        returns,
    )


def rollout_metrics(roll: Rollout) -> dict[str, float]:
    m = roll.mask.float()
    lengths = m.sum(-1)
    return {
        "reward/mean": (roll.token_rewards * m).sum(-1).mean().item(),  # what the policy is trained on
        "reward/score": roll.score.mean().item(),  # the reward model's raw sequence score
        "reward/total": roll.rewards.sum(-1).mean().item(),  # with the KL penalty
        "policy/kl": roll.kl.sum(-1).mean().item(),  # per response, k1
        "policy/entropy": ((roll.entropy * m).sum() / m.sum()).item(),
        "response/length": lengths.mean().item(),
        "response/segments": M.n_segments(roll.ends).float().mean().item(),
    }


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
            stats = dict.fromkeys(
                ("policy/loss", "value/loss", "policy/clip_frac", "value/clip_frac", "policy/approx_kl"), 0.0
            )
            for part in chunks(len(members), cfg.micro_batch):
                sel = members[part]
                sub = D.Batch(
                    *(
                        t[sel]
                        for t in (
                            roll.batch.input_ids,
                            roll.batch.attention_mask,
                            roll.batch.response_mask,
                            roll.batch.response_start,
                            roll.batch.response_end,
                        )
                    )
                )
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


def sample_rows(
    ctx: Ctx, roll: Rollout, which: Sequence[int] | range, kind: str, extra: Sequence[dict[str, Any]] | None = None
) -> list[dict[str, Any]]:
    which = list(which)
    true = ctx.judge([roll.prompts[i] for i in which], [roll.responses[i] for i in which])
    return [
        row(
            ctx,
            roll.prompts[i].prompt,
            roll.responses[i],
            roll.token_rewards[i],
            roll.ends[i],
            roll.mask[i],
            float(roll.score[i]),
            true[j],
            kind,
            dict(extra[j] if extra else {}, kl=float(roll.kl[i].sum())),
        )
        for j, i in enumerate(which)
    ]
