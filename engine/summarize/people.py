"""The summarization task's reward model grounded on people's rankings (preference human or mixed,
docs/rankings.md).

An optional feature beside the paper's algorithm in engine.summarize.train, which calls these at its
reward phase: before each reward training `collect` asks people to rank K summaries of train articles
sampled from the current policy and waits for them (engine.preferences.Pool); `ranked_batch` turns ranked
lists into a reward micro-batch; `human_validation` (reward/human_tau) reads the held-out lists.
engine.prompt.people has the same functions in the same order. This module and train.py import each other
as modules: nothing is read from either at import.
"""

from __future__ import annotations

import math
from functools import partial

import numpy as np
import torch

from engine.losses import grounding_tau
from engine.preferences import Ranked, orders_by_score
from engine.rankings import Request
from engine.summarize import train
from engine.summarize.metrics import postprocess


def collect(ctx: train.Ctx) -> None:
    """Before reward training: people rank this training's lists, the run waits (engine.preferences.Pool)."""
    assert ctx.pool is not None
    ctx.pool.collect(ctx.state.reward_trainings + 1, partial(ranking_requests, ctx), partial(automatic_orders, ctx))
    ctx.state.queries["human"] = ctx.pool.ranked_by_people


def ranking_requests(ctx: train.Ctx, n: int) -> list[Request]:
    """`n` train articles, each with K summaries sampled from the current policy as the automatic lists
    are, and their token rewards under the current reward model (the ranker sees them coloured)."""
    cfg, rm = ctx.cfg, ctx.reward_model
    assert rm is not None
    gen = train.generator(cfg.seed, "ranking requests", ctx.state.reward_trainings)
    idx = torch.randperm(len(ctx.pairs.train), generator=gen)[:n].tolist()
    pairs = [ctx.pairs.train[i] for i in idx]
    src, labels = train.encode(ctx, pairs)
    seqs = train.sample_summaries(ctx, src, cfg.reward_k, cfg.reward_top_k)
    rm.eval()
    with torch.no_grad():
        r = rm(
            src["input_ids"].repeat_interleave(cfg.reward_k, 0),
            src["attention_mask"].repeat_interleave(cfg.reward_k, 0),
            decoder_input_ids=seqs,
        )
    mask = train.sequence_mask(ctx, seqs)
    refs = train.references(ctx, pairs, labels)
    out = []
    for a, pair in enumerate(pairs):
        rows = [a * cfg.reward_k + j for j in range(cfg.reward_k)]
        cands = [train.summary_row(ctx, pair, seqs[row], r[row], mask[row], None, None, "rank", {}) for row in rows]
        ids = [seqs[row][: int(mask[row].nonzero().max()) + 1 if mask[row].any() else 1].tolist() for row in rows]
        out.append(
            Request(
                context=pair[0],
                payload=dict(source=pair[0], reference=refs[a], ids=ids),
                candidates=[dict(text=c["text"], tokens=c["tokens"], rewards=c["rewards"]) for c in cands],
            )
        )
    return out


def automatic_orders(ctx: train.Ctx, lists: list[Ranked]) -> list[list[int]]:
    """The orders the automatic score gives lists people did not rank in time (rank_fallback=auto)."""
    refs = [(r.payload.get("reference") or "") for r in lists for _ in r.texts]
    return orders_by_score(lists, ctx.true_score([postprocess(t) for r in lists for t in r.texts], refs))


def ranked_batch(
    ctx: train.Ctx, lists: list[Ranked]
) -> tuple[list[tuple[str, str]], dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
    """People-ranked lists as one reward micro-batch: (pairs, sources, summaries (B*K, L) with the start
    token first, targets (B, K)). A file's lists carry text only: it is tokenized as a target is."""
    pairs = [(r.payload.get("source", r.context), r.payload.get("reference", "")) for r in lists]
    src, _ = train.encode(ctx, pairs)
    seqs: list[list[int]] = []
    for r in lists:
        if "ids" in r.payload:
            seqs += r.payload["ids"]
        else:
            ids = ctx.tok(r.texts, max_length=ctx.cfg.max_target_length - 1, truncation=True)["input_ids"]
            seqs += [[train.start_id(ctx)] + x for x in ids]
    width = max(len(x) for x in seqs)
    padded = torch.tensor([x + [ctx.tok.pad_token_id] * (width - len(x)) for x in seqs], device=ctx.device)
    true = torch.tensor([r.scores() for r in lists], device=ctx.device)
    return pairs, src, padded, true


def human_validation(ctx: train.Ctx) -> dict[str, float]:
    """ListMLE and Kendall tau of the reward model on the held-out people-ranked lists."""
    if ctx.pool is None or not ctx.pool.heldout:
        return {}
    rm = ctx.reward_model
    assert rm is not None
    rm.eval()
    held = ctx.pool.heldout
    losses, taus = [], []
    with torch.no_grad():
        for i in range(0, len(held), ctx.cfg.reward_batch):
            pairs, src, seqs, true = ranked_batch(ctx, held[i : i + ctx.cfg.reward_batch])
            loss, e = train.reward_listmle(ctx, pairs, src, seqs, true, scores=True)
            losses.append(loss.item() * len(pairs))
            taus += [t for t in grounding_tau(e, true).tolist() if not math.isnan(t)]
    rm.train()
    ctx.state.human_tau = float(np.mean(taus)) if taus else None
    out = {"reward/human_val_loss": sum(losses) / len(held)}
    if ctx.state.human_tau is not None:
        out["reward/human_tau"] = ctx.state.human_tau
    return out
