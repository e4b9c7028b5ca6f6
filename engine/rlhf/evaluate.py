"""Evaluation (rlhf.md §6): responses of the policy and of the frozen reference to held-out prompts, compared by
the judge; win rate with a Wilson interval, judge and proxy rewards of both, KL to the reference, lengths."""

from __future__ import annotations

import math
from typing import Any

import torch

from engine.models import runtime_env, stream_seed
from engine.rlhf import data as D
from engine.rlhf import ppo_math as M
from engine.rlhf.common import SAMPLE_ROWS, Ctx, Prompt, chunks, rows, segment_ends, threshold_text
from engine.rlhf.models import response_index, values_at
from engine.rlhf.ppo import Rollout, rollout, sample, sample_rows


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


def compare(
    ctx: Ctx, prompts: list[Prompt], split: str, step: int
) -> tuple[dict[str, float], Rollout, list[list[int]], list[float], list[float]]:
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
    out = {
        f"{split}/win_rate": rate,
        f"{split}/win_rate_lo": lo,
        f"{split}/win_rate_hi": hi,
        f"{split}/sigmoid_gap": sum(0.5 + 0.5 * math.tanh((a - b) / 2) for a, b in zip(g_pol, g_ref)) / len(wins),
        f"{split}/judge_reward": sum(g_pol) / len(g_pol),
        f"{split}/judge_reward_ref": sum(g_ref) / len(g_ref),
        f"{split}/kl": roll.kl.sum(-1).mean().item(),
        f"{split}/kl_k3": k3.mean().item(),
        f"{split}/length": roll.mask.float().sum(-1).mean().item(),
        f"{split}/length_ref": sum(map(len, ref)) / len(ref),
        f"{split}/rm_score": roll.score.mean().item(),
        f"{split}/rm_score_ref": sum(ref_scores) / len(ref_scores),
        f"{split}/comparisons": float(len(wins)),
    }
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
    rows_ = sample_rows(
        ctx,
        roll,
        shown,
        "eval",
        [
            dict(
                model="policy",
                judge_ref=g_ref[i],
                win=1.0 if g_pol[i] > g_ref[i] else 0.5 if g_pol[i] == g_ref[i] else 0.0,
            )
            for i in shown
        ],
    )
    ref_roll = rollout(ctx, [roll.prompts[i] for i in shown], [ref[i] for i in shown])
    rows_ += sample_rows(ctx, ref_roll, range(len(shown)), "eval", [dict(model="reference") for _ in shown])
    ctx.reporter.samples(step, rows_)
    results: dict[str, Any] = dict(values)
    results.update({k: v for k, v in ctx.state.val.items()})
    results.update({k: v for k, v in ctx.state.reward.items()})
    results.update({k: v for k, v in ctx.state.gold.items()})
    results.update(
        rollouts=step,
        method=ctx.cfg.method,
        judge=ctx.judge_name,
        threshold=threshold_text(ctx.cfg),
        reward_trainings=1 + ctx.state.retrains,
        **{"queries/preference": ctx.state.queries},
        normaliser=ctx.state.normaliser,
        train_pairs=len(ctx.data.train),
        heldout_pairs=len(ctx.data.heldout),
    )
    return {**results, **runtime_env(ctx.device)}
