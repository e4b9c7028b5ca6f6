"""What the rlhf trainer's phases share: the run's context and state, and the pieces every phase uses (micro-batches,
learning-rate schedule, segment ends, the per-token rewards PPO trains on, sample rows for the app).

The phases: engine/rlhf/reward.py (reward models), ppo.py (rollouts and updates), evaluate.py (win rates);
engine/rlhf/train.py runs them in order.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from engine import checkpoint
from engine.config import RlhfConfig
from engine.models import autocast, stream_seed
from engine.report import Reporter
from engine.rlhf import data as D
from engine.rlhf import ppo_math as M
from engine.rlhf.models import ScalarHeadModel, lm_response

EXCERPT = 400  # characters of the prompt kept with each sample row
SAMPLE_ROWS = 4  # rollouts recorded every sample_every steps

Scorer = Callable[[list["Prompt"], list[list[int]]], list[float]]  # (prompts, responses ids) -> one score each


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
    judge: Scorer
    judge_name: str
    preference: Scorer | None  # ranks the policy's responses for reward_retrain_every (None: people do)
    actor_opt: torch.optim.Optimizer
    critic_opt: torch.optim.Optimizer
    run_dir: Path
    identity: checkpoint.Identity | None
    state: State = field(default_factory=State)
    phase: str | None = None
    ref_cache: dict[str, list[list[int]]] = field(default_factory=dict)  # the reference's eval responses
    pool: Any = None  # preference=human: engine.preferences.Pool, the lists people ranked


def generator(seed: int, stream: str, index: int) -> torch.Generator:
    return torch.Generator().manual_seed(stream_seed(seed, stream, index))


def threshold_text(cfg: RlhfConfig) -> str:
    return {"token-ppo": "0, every token", "bandit-ppo": "the end token"}.get(cfg.method, f"{cfg.seg_entropy:g} nats")


def adam(model: torch.nn.Module, lr: float) -> torch.optim.Optimizer:
    # DR: Adam betas (0.9, 0.95), weight decay 0 (rlhf.md §2, §3.4)
    return torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr, betas=(0.9, 0.95))


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


def segment_ends(
    ctx: Ctx,
    ids: torch.Tensor,
    attn: torch.Tensor,
    idx: torch.Tensor,
    mask: torch.Tensor,
    bandit: bool,
    entropy: torch.Tensor | None = None,
) -> torch.Tensor:
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
    return M.dense_token_rewards(
        values, ends, mask, cfg.reward_type, None if norm is None else tuple(norm), cfg.interpolate, cfg.sigma_floor
    )


def response_text(ctx: Ctx, ids: Sequence[int]) -> str:
    return ctx.tok.decode(list(ids), skip_special_tokens=True).strip()


def prompt_excerpt(prompt: list[D.Message]) -> str:
    text = "\n".join(f"{m['role']}: {m['content']}" for m in prompt)
    return text if len(text) <= EXCERPT else "..." + text[-EXCERPT:]


# ---------------------------------------------------------------------------------------------------
# sample rows for the app (the same shape as the other tasks': tokens coloured by their reward)


def row(
    ctx: Ctx,
    prompt: list[D.Message],
    response: list[int],
    rewards: torch.Tensor,
    ends: torch.Tensor,
    mask: torch.Tensor,
    model_score: float | None,
    true_score: float | None,
    kind: str,
    extra: dict[str, Any],
) -> dict[str, Any]:
    n = len(response)
    m = mask[:n]
    return dict(
        kind=kind,
        context=prompt_excerpt(prompt),
        text=response_text(ctx, response),
        tokens=[ctx.tok.decode([i]) for i in response],
        rewards=rewards[:n][m].tolist(),
        model_score=model_score,
        true_score=true_score,
        extra=dict(extra, segment_ends=ends[:n].nonzero().flatten().tolist()),
    )
