"""Preferences from people for the rlhf task's alternation (`reward_retrain_every` with `preference=human`).

At each retraining, `retrain_prompts` train prompts, each with `retrain_k` responses of the current policy
coloured by the reward model's token rewards, go to pgg-tui's Rank screen (engine.rankings, through the run's
reporter); the run waits, then trains its reward model on every pair that the lists people ranked so far imply
(engine.preferences.Pool, as the other tasks' people modules use it). `rank_timeout` ends a wait: the lists left
unranked are ordered by the run's judge.
"""

from __future__ import annotations

import itertools
from types import SimpleNamespace

import torch

from engine.preferences import Pool, Ranked
from engine.rankings import Request
from engine.rlhf.common import Ctx, Prompt, generator
from engine.rlhf.ppo import rollout, sample, sample_rows


def pool(ctx: Ctx) -> Pool:
    """The run's pool of people-ranked lists, with the settings Pool reads named after this task's."""
    cfg = ctx.cfg
    settings = SimpleNamespace(
        rankings_file="",
        rank_lists=cfg.retrain_prompts,
        rank_heldout=0.0,  # the reward model's held-out pairs measure it; people's lists all train
        reward_k=cfg.retrain_k,
        rank_timeout=cfg.rank_timeout,
        rank_fallback="auto",
        preference="human",
        human_share=1.0,
    )
    return Pool(settings, ctx.reporter, "rlhf")


def ranking_requests(ctx: Ctx, n: int) -> list[Request]:
    """`n` train prompts, each with retrain_k responses of the current policy and their token rewards under the
    current reward model (the ranker sees where the reward lands)."""
    cfg = ctx.cfg
    order = torch.randperm(len(ctx.data.prompts), generator=generator(cfg.seed, "ranking requests", ctx.state.retrains))
    prompts = [ctx.data.prompts[i] for i in order[:n].tolist()]
    many = [p for p in prompts for _ in range(cfg.retrain_k)]
    responses = sample(ctx, ctx.policy, many)
    shown = sample_rows(ctx, rollout(ctx, many, responses), range(len(many)), "rank")
    k = cfg.retrain_k
    cands = [dict(text=r["text"], tokens=r["tokens"], rewards=r["rewards"]) for r in shown]
    return [
        Request(
            context="\n".join(f"{m['role']}: {m['content']}" for m in p.prompt),
            candidates=cands[j * k : (j + 1) * k],
            payload=dict(prompt=p.prompt, prompt_ids=p.ids, responses=responses[j * k : (j + 1) * k]),
        )
        for j, p in enumerate(prompts)
    ]


def judge_orders(ctx: Ctx, lists: list[Ranked]) -> list[list[int]]:
    """The lists people left unranked at rank_timeout, best first by the run's judge."""
    out = []
    for r in lists:
        prompt = Prompt(r.payload["prompt"], r.payload["prompt_ids"])
        scores = ctx.judge([prompt] * len(r.payload["responses"]), r.payload["responses"])
        out.append(sorted(range(len(scores)), key=lambda c: -scores[c]))
    return out


def ranked_pairs(ctx: Ctx) -> list[list[list[int]]]:
    """Ask for this retraining's lists and wait for them; then every (prompt, better, worse) pair that the lists
    ranked so far in the run imply, K(K-1)/2 per list."""
    assert ctx.pool is not None
    ctx.pool.collect(ctx.state.retrains + 1, lambda n: ranking_requests(ctx, n), lambda lists: judge_orders(ctx, lists))
    ctx.state.queries = ctx.pool.ranked_by_people
    pairs = []
    for r in ctx.pool.lists:
        ids = r.payload["responses"]
        for better, worse in itertools.combinations(r.order, 2):  # best first: each before the ones after it
            pairs.append([r.payload["prompt_ids"], ids[better], ids[worse]])
    return pairs
