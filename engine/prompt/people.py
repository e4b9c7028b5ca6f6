"""The prompt task's reward model grounded on people's rankings (preference human or mixed, docs/rankings.md).

An optional feature beside the paper's algorithm in engine.prompt.train, which calls these at its reward
phase: before each reward training `collect` asks people to rank lists of K prompts sampled from the
current policy and waits for them (engine.preferences.Pool); `ranked_batch` turns ranked lists into
ListMLE data; `human_val_loss` (preference=human's early stopping) and `human_validation`
(reward/human_tau) read the held-out lists. engine.summarize.people has the same functions in the same
order. This module and train.py import each other as modules: nothing is read from either at import.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any

import numpy as np
import torch

from engine.losses import aggregate, grounding_tau
from engine.preferences import Ranked, orders_by_score
from engine.prompt import train
from engine.prompt.data import Example
from engine.prompt.policy import Rollout
from engine.prompt.scorer import TaskLMScorer
from engine.rankings import Request


def collect(ctx: train.Ctx) -> None:
    """Before reward training: people rank this training's lists, the run waits (engine.preferences.Pool)."""
    assert ctx.pool is not None
    ctx.pool.collect(ctx.state.reward_trainings + 1, partial(ranking_requests, ctx), partial(automatic_orders, ctx))
    ctx.state.queries["human"] = ctx.pool.ranked_by_people


SHOWN = 3  # training examples a ranker sees with the task, and the task LM's verdict on (the Rank screen's v)


def shown_examples(ctx: train.Ctx, shown: int = SHOWN) -> list[Example]:
    """The training examples shown to rankers: one of each label in turn, at least one per label."""
    examples, c = ctx.splits.train, len(ctx.splits.info.verbalizers)
    by_label = [[ex for ex in examples if ex.label == k] for k in range(c)]
    return [group[i] for i in range(shown) for group in by_label if i < len(group)][: max(shown, c)]


def task_context(ctx: train.Ctx, shown: int = SHOWN) -> str:
    """What a ranker needs to judge prompts: the task, its labels and a few train examples."""
    info = ctx.splits.info
    labels = " / ".join(v.strip() for v in info.verbalizers)
    template = (
        info.masked_template.replace("{sentence_1}", "<text>")
        .replace("{mask}", "<label>")
        .replace("{prompt}", "<prompt>")
    )
    lines = [f"{ctx.cfg.dataset}: a prompt that makes the task LM answer {labels}, placed as {template}"]
    for ex in shown_examples(ctx, shown):
        lines.append(f"  {ex.text[:160]!r} -> {info.verbalizers[ex.label].strip()}")
    return "\n".join(lines)


def what_prompts_do(ctx: train.Ctx, texts: list[str], shown: int = SHOWN) -> list[dict[str, Any]]:
    """Per prompt, what the Rank screen shows on `v` (hidden until asked: docs/rankings.md): its automatic
    score, the one rank_fallback=auto orders by (the scorer's mean reward on the training examples), the
    task LM's accuracy there, and its verdict on each shown example (the label word it picks, and the
    gold one). Counted as logging queries: shown to people, never trained on."""
    info, train_set = ctx.splits.info, ctx.splits.train
    s = train.score(ctx, texts, train_set, "logging")
    out: list[dict[str, Any]] = [
        dict(
            score=float(s.score[i]),
            accuracy=float(s.accuracy[i]) if s.accuracy is not None else None,
            examples=len(train_set),
            verdicts=[],
        )
        for i in range(len(texts))
    ]
    if isinstance(ctx.scorer, TaskLMScorer):  # a user's scorer gives a number per prompt, no verdicts
        examples = shown_examples(ctx, shown)
        ctx.state.queries["logging"] += len(texts) * len(examples)
        said = ctx.scorer.class_probs(texts, examples).argmax(-1).tolist()  # (P, N): as accuracy counts
        words = [v.strip() for v in info.verbalizers]
        for i, row in enumerate(said):
            out[i]["verdicts"] = [
                dict(text=ex.text[:160], gold=words[ex.label], said=words[c]) for ex, c in zip(examples, row)
            ]
    return out


def ranking_requests(ctx: train.Ctx, n: int) -> list[Request]:
    """`n` lists of K prompts sampled from the current policy, with their token rewards under the current
    reward model (the ranker sees them coloured) and, under `auto`, what each does (`what_prompts_do`)."""
    cfg = ctx.cfg
    ctx.policy.eval()
    roll = ctx.policy.rollout(n * cfg.reward_k, cfg.prompt_length, cfg.top_k)
    r = train.token_rewards(ctx, roll.ids)
    context = task_context(ctx)
    texts = [ctx.tok.decode(x) for x in roll.ids.tolist()]
    auto = what_prompts_do(ctx, texts)
    out = []
    for a in range(n):
        rows = range(a * cfg.reward_k, (a + 1) * cfg.reward_k)
        out.append(
            Request(
                context=context,
                payload=dict(ids=[roll.ids[b].tolist() for b in rows]),
                candidates=[
                    dict(
                        text=texts[b],
                        tokens=train.token_pieces(ctx, roll.ids[b].tolist()),
                        rewards=r[b].tolist(),
                        auto=auto[b],
                    )
                    for b in rows
                ],
            )
        )
    return out


def automatic_orders(ctx: train.Ctx, lists: list[Ranked]) -> list[list[int]]:
    """The orders the task LM's score gives lists people did not rank in time (rank_fallback=auto)."""
    texts = [t for r in lists for t in r.texts]
    return orders_by_score(lists, train.score(ctx, texts, ctx.splits.train).score.tolist())


def ranked_batch(ctx: train.Ctx, lists: list[Ranked]) -> train.RankedLists:
    """People-ranked lists as ListMLE data: every list's K prompts as candidates, its order as targets.
    A file's lists carry text only: it is tokenized by the policy's tokenizer (lengths may differ)."""
    ids: list[list[int]] = []
    for r in lists:
        ids += (
            r.payload["ids"]
            if "ids" in r.payload
            else [ctx.tok(t, add_special_tokens=False)["input_ids"][:64] or [ctx.policy.source_id] for t in r.texts]
        )
    width = max(len(x) for x in ids)
    pad = ctx.tok.pad_token_id if ctx.tok.pad_token_id is not None else ctx.tok.eos_token_id
    t = torch.tensor([x + [pad] * (width - len(x)) for x in ids], device=ctx.device)
    mask = torch.tensor([[True] * len(x) + [False] * (width - len(x)) for x in ids], device=ctx.device)
    k = len(lists[0].texts)
    true = torch.tensor([s for r in lists for s in r.scores()], device=ctx.device)
    return train.RankedLists(
        Rollout(t, t), true, torch.arange(len(ids), device=ctx.device).view(-1, k), None if bool(mask.all()) else mask
    )


def human_val_loss(ctx: train.Ctx) -> float:
    """preference=human: the reward validation loss (early stopping's choice) is on the selection half of
    the held-out people-ranked lists (the training lists when fewer than two are held out): no task-LM
    scoring in the reward phase, and never the lists reward/human_tau reports on."""
    pool = ctx.pool
    assert pool is not None and ctx.reward_model is not None
    ctx.reward_model.eval()
    with torch.no_grad():
        loss = train.reward_loss(ctx, ranked_batch(ctx, pool.split_heldout()[0] or pool.train))[0].item()
    ctx.reward_model.train()
    return loss


def human_validation(ctx: train.Ctx) -> dict[str, float]:
    """ListMLE and Kendall tau of the reward model on the held-out people-ranked lists that early stopping
    did not choose it on (the report half: an unbiased grounding against people)."""
    report = ctx.pool.split_heldout()[1] if ctx.pool is not None else []
    if not report:
        return {}
    rm = ctx.reward_model
    assert rm is not None
    rm.eval()
    data = ranked_batch(ctx, report)
    with torch.no_grad():
        loss, r = train.reward_loss(ctx, data)
        e = aggregate(
            r,
            data.mask if data.mask is not None else torch.ones_like(r, dtype=torch.bool),
            ctx.cfg.agg,
            ctx.cfg.agg_temp,
            scale=r.shape[1] if data.mask is None else data.mask.sum(1).float().mean(),
        )
    taus = [t for t in grounding_tau(e[data.lists], data.true[data.lists]).tolist() if not math.isnan(t)]
    ctx.state.human_tau = float(np.mean(taus)) if taus else None
    out = {"reward/human_val_loss": loss.item()}
    if ctx.state.human_tau is not None:
        out["reward/human_tau"] = ctx.state.human_tau
    return out
