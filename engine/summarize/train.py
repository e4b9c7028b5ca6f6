"""Summarization training: reward-weighted MLE with a learned token reward (algorithm.md §4).

The schedule, as the original code runs it (defaults in engine.config.SummarizeConfig):

    train the reward model on 0.1 epoch of sampled summaries ranked by METEOR     (pgg only)
    for each update n (grad_accum micro-batches of batch_size articles):
        WMLE: mean over summaries of sum_t w_t NLL_t, w = r_phi / sum r_phi per summary
        every eval_every epochs: greedy decoding of validation, R1 + 2 R2 + RLsum (logged only)
        every reward_retrain_every epochs while in epochs 0-1: retrain the reward model  (pgg only)
        every checkpoint_every updates: a resumable checkpoint
    test: greedy decoding to max_target_length, ROUGE-1/2/L/Lsum and METEOR

`mle` is the same loop with r = 1: the per-summary mean NLL ("Sup"). The reward model always reads
[start] + summary and its outputs 1..T score the summary's tokens, in reward learning and in WMLE
alike (the original drops the start token in WMLE: parity_start_token). Preferences from people
(preference human or mixed, an option beside the paper) are in engine.summarize.people.
"""

from __future__ import annotations

import hashlib
import math
import random
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from engine import budget, checkpoint
from engine.config import SummarizeConfig
from engine.errors import Cancelled, EngineError
from engine.losses import (
    top_k_filter,
    aggregate,
    group_mean_length,
    grounding_tau,
    listmle,
    listmle_chance,
    neg_entropy,
    reverse_cumsum,
    token_nll,
    wmle_loss,
    wmle_weights,
)
from engine.models import autocast, fix_threads, load_model, load_tokenizer, pick_device, runtime_env, stream_seed
from engine.preferences import Pool, human_count
from engine.report import NullReporter, Reporter
from engine.reward_model import TokenRewardModel
from engine.summarize import people
from engine.summarize.data import Pairs, load_pairs
from engine.summarize.metrics import PairScorer, meteor_flags, postprocess, rouge, score_pair, wordnet_available

EXCERPT = 400  # characters of the article kept with each sample


def schedule(n_batches: int, cfg: SummarizeConfig) -> tuple[int, int, int, int]:
    """(updates per epoch U, total updates, validation period, reward retrain period) for a loader length."""
    U = math.ceil(n_batches / cfg.grad_accum)
    total = math.ceil(U * cfg.epochs)
    return U, total, max(1, int(cfg.eval_every * U)), max(1, int(cfg.reward_retrain_every * U))


def is_reward_retrain_step(n: int, U: int, period: int) -> bool:
    """Retrain after update n every `period` updates while n is in epoch 0 or 1 (U updates per epoch).
    The training loop and retrain_steps() both ask this, so the table the tests check is the loop's."""
    return (n - 1) // U < 2 and n % period == 0


def retrain_steps(n_batches: int, cfg: SummarizeConfig) -> list[int]:
    """Updates after which the reward model is retrained (pgg): every period, while in epoch 0 or 1."""
    U, total, _, period = schedule(n_batches, cfg)
    return [n for n in range(1, total + 1) if is_reward_retrain_step(n, U, period)]


def reward_updates(n_batches: int, cfg: SummarizeConfig) -> int:
    """Updates per reward training: reward_epochs of ceil(batches / reward_grad_accum) updates per epoch."""
    return max(1, math.ceil(math.ceil(n_batches / cfg.reward_grad_accum) * cfg.reward_epochs))


@dataclass
class State:
    update: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0  # micro-batches of the current epoch already used (for a resume mid-epoch)
    reward_trainings: int = 0
    # preference queries, one per summary scored against its reference: `signal` trains or validates the
    # reward model; `logging` is only shown (sample rows, test)
    queries: dict[str, int] = field(default_factory=lambda: {"signal": 0, "logging": 0})
    tau: float | None = None  # the last reward phase's grounding quality
    human_tau: float | None = None  # the same against held-out people-ranked lists (preference human, mixed)
    val_score: float | None = None  # the last validation's R1 + 2 R2 + RLsum: of the model that is tested
    budget_spent: bool = False  # max_queries reached: the reward model is no longer trained
    policy_samples: int = 0  # summaries the policy sampled in training (reward lists, on-policy terms)
    train_seconds: float = 0.0  # wall time of training so far (a resumed run adds to it)


@dataclass
class Ctx:
    cfg: SummarizeConfig
    reporter: Reporter
    device: torch.device
    pairs: Pairs
    tok: Any
    policy: Any
    reward_model: TokenRewardModel | None
    opt: torch.optim.Optimizer
    true_score: PairScorer  # the preference source: METEOR by default
    meteor: PairScorer  # test METEOR
    run_dir: Path
    state: State
    identity: checkpoint.Identity | None  # whose checkpoints this run may resume
    pool: Pool | None = None  # the people-ranked lists (preference human, mixed)
    phase: str | None = None  # the label of the phase being recorded: the reporter is only written to
    started: float = field(default_factory=time.monotonic)  # this process's training start (time/train_s)


def train(
    cfg: SummarizeConfig,
    reporter: Reporter | None = None,
    run_dir: str | Path = ".",
    identity: checkpoint.Identity | None = None,
) -> dict[str, Any]:
    reporter = reporter or NullReporter()
    ctx = setup(cfg, reporter, Path(run_dir), identity)
    state = ctx.state
    n_batches = math.ceil(len(ctx.pairs.train) / cfg.batch_size)
    U, total, eval_period, retrain_period = schedule(n_batches, cfg)
    reporter.log(
        f"{n_batches} micro-batches per epoch, {U} updates per epoch, {total} updates; "
        f"reward retraining after updates {retrain_steps(n_batches, cfg)[:8]}"
    )
    reporter.progress(state.update, total)
    reporter.plan(total, retrain_steps(n_batches, cfg) if cfg.method == "pgg" else [])
    try:
        if cfg.method == "pgg" and state.reward_trainings == 0:
            train_reward_model(ctx)
            save_checkpoint(ctx)
        if ctx.phase != "policy":  # a resumed run may already be inside its policy phase
            ctx.phase = reporter.begin_phase("policy", state.update)

        while state.update < total:
            order = torch.randperm(len(ctx.pairs.train), generator=generator(cfg.seed, "policy epoch", state.epoch))
            batches = [order[i : i + cfg.batch_size].tolist() for i in range(0, len(order), cfg.batch_size)]
            while state.batch_in_epoch < len(batches) and state.update < total:
                if reporter.should_stop():
                    save_checkpoint(ctx)
                    raise Cancelled()
                group = batches[state.batch_in_epoch : state.batch_in_epoch + cfg.grad_accum]
                values = policy_update(ctx, [[ctx.pairs.train[i] for i in b] for b in group])
                state.batch_in_epoch += len(group)
                n = state.update = state.update + 1
                reporter.metrics(n, values)
                if n % eval_period == 0 or n == total:
                    validate(ctx, n)
                if cfg.method == "pgg" and is_reward_retrain_step(n, U, retrain_period) and not budget_reached(ctx):
                    train_reward_model(ctx)
                    ctx.phase = reporter.begin_phase("policy", n)
                    if cfg.reset_optim:
                        ctx.opt = make_optimizer(ctx.policy, cfg)
                if n % cfg.checkpoint_every == 0:
                    save_checkpoint(ctx)
                reporter.progress(n)
            if state.batch_in_epoch >= len(batches):
                state.epoch, state.batch_in_epoch = state.epoch + 1, 0

        ctx.phase = reporter.begin_phase("eval", state.update)
        results = evaluate_test(ctx)
        reporter.end_phase(state.update)
        return results
    finally:
        ctx.true_score.close()
        ctx.meteor.close()


def generator(seed: int, stream: str, index: int) -> torch.Generator:
    """An RNG of its own for each shuffle: the policy's epochs and the reward trainings never share one
    (seed*1000+e and seed*7919+k did at seed 0)."""
    return torch.Generator().manual_seed(stream_seed(seed, stream, index))


# ---------------------------------------------------------------------------------------------------
# setup


def make_optimizer(policy: Any, cfg: SummarizeConfig) -> torch.optim.Optimizer:
    # AdamW with weight decay 0 and a constant learning rate, as the original
    return torch.optim.AdamW(policy.parameters(), lr=cfg.policy_lr, weight_decay=0.0)


def setup(cfg: SummarizeConfig, reporter: Reporter, run_dir: Path, identity: checkpoint.Identity | None = None) -> Ctx:
    threads = fix_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    device = pick_device(cfg.device)
    pairs = load_pairs(cfg)
    reporter.log(
        f"{cfg.method} on {cfg.dataset}: {len(pairs.train)} train / {len(pairs.validation)} validation / "
        f"{len(pairs.test)} test pairs, device {device} ({threads} CPU thread{'s' * (threads != 1)}); METEOR with"
        f"{'' if wordnet_available() else 'out'} WordNet synonyms"
    )
    tok = load_tokenizer(cfg.policy_model, "policy", "policy_model")
    policy = load_model(cfg.policy_model, "seq2seq", "policy", "policy_model").to(device)
    if not policy.config.is_encoder_decoder:
        raise EngineError(f"policy model {cfg.policy_model!r} is not an encoder-decoder (seq2seq) model")
    reward_model = None
    if cfg.method == "pgg":
        rtok = load_tokenizer(cfg.reward_model, "reward", "reward_model")
        if rtok.get_vocab() != tok.get_vocab():
            raise EngineError(
                f"reward model {cfg.reward_model!r} does not share the policy's tokenizer; "
                f"pick a backbone of the same family (t5-small with t5-base, ...)"
            )
        backbone = load_model(cfg.reward_model, "base", "reward", "reward_model")
        reward_model = TokenRewardModel(backbone, cfg.reward_hidden, cfg.squash).to(device).eval()
    ctx = Ctx(
        cfg,
        reporter,
        device,
        pairs,
        tok,
        policy,
        reward_model,
        make_optimizer(policy, cfg),
        PairScorer(cfg.true_score, cfg.score_workers),
        PairScorer("meteor", cfg.score_workers),
        run_dir,
        State(),
        identity,
    )
    if cfg.preference != "auto":
        ctx.pool = Pool(cfg, reporter, "summarize")
    load_checkpoint(ctx)
    return ctx


def encode(ctx: Ctx, pairs: list[tuple[str, str]]) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Sources (with the prefix, truncated) and labels (-100 on padding)."""
    cfg = ctx.cfg
    src = ctx.tok(
        [cfg.source_prefix + s for s, _ in pairs],
        max_length=cfg.max_source_length,
        truncation=True,
        padding=True,
        return_tensors="pt",
    ).to(ctx.device)
    return {"input_ids": src["input_ids"], "attention_mask": src["attention_mask"]}, target_labels(ctx, pairs)


def target_labels(ctx: Ctx, pairs: list[tuple[str, str]]) -> torch.Tensor:
    """The targets tokenized and truncated to max_target_length, -100 on padding."""
    tgt = ctx.tok(
        [t for _, t in pairs], max_length=ctx.cfg.max_target_length, truncation=True, padding=True, return_tensors="pt"
    )["input_ids"].to(ctx.device)
    return tgt.masked_fill(tgt == ctx.tok.pad_token_id, -100)


def start_id(ctx: Ctx) -> int:
    return int(ctx.policy.config.decoder_start_token_id)


def sequence_mask(ctx: Ctx, seqs: torch.Tensor) -> torch.Tensor:
    """Valid generated tokens: not padding and not the start token at position 0 (EOS counts)."""
    mask = seqs != ctx.tok.pad_token_id
    mask[:, 0] = False
    return mask


# ---------------------------------------------------------------------------------------------------
# reward model training (§4.3)


@torch.no_grad()
def sample_summaries(ctx: Ctx, src: dict[str, torch.Tensor], k: int, top_k: int) -> torch.Tensor:
    """K sampled summaries per article, (B*K, L) with the start token at position 0."""
    ctx.state.policy_samples += src["input_ids"].shape[0] * k
    ctx.policy.eval()
    with autocast(ctx.device, ctx.cfg.bf16):
        out = ctx.policy.generate(
            **src,
            do_sample=True,
            top_k=top_k,
            top_p=1.0,
            temperature=1.0,
            num_beams=1,
            num_return_sequences=k,
            max_length=ctx.cfg.max_target_length,
        )
    ctx.policy.train()
    return out


def sample_and_score(
    ctx: Ctx, pairs: list[tuple[str, str]]
) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
    """K sampled summaries for every article of a whole update in one generate call, and their true score
    (METEOR by default). Returns the encoded sources, the samples (B*K, L) and the true scores (B, K).
    """
    K = ctx.cfg.reward_k
    src, labels = encode(ctx, pairs)
    seqs = sample_summaries(ctx, src, K, ctx.cfg.reward_top_k)  # (B*K, L)
    texts = [postprocess(t) for t in ctx.tok.batch_decode(seqs, skip_special_tokens=True)]
    refs = [r for r in references(ctx, pairs, labels) for _ in range(K)]
    ctx.state.queries["signal"] += len(texts)
    true = torch.tensor(ctx.true_score(texts, refs), device=ctx.device).view(-1, K)  # one pooled call
    return src, seqs, true


def references(ctx: Ctx, pairs: list[tuple[str, str]], labels: torch.Tensor | None = None) -> list[str]:
    """The references summaries are scored against, post-processed. `reference=tokenized` (the default, as
    the original): the target as the policy is trained on it, tokenized, truncated to max_target_length
    and decoded; `raw`: the dataset's text."""
    if ctx.cfg.reference == "raw":
        return [postprocess(t) for _, t in pairs]
    if labels is None:
        labels = target_labels(ctx, pairs)
    ids = labels.masked_fill(labels == -100, ctx.tok.pad_token_id)
    return [postprocess(t) for t in ctx.tok.batch_decode(ids, skip_special_tokens=True)]


def reward_listmle(
    ctx: Ctx,
    pairs: list[tuple[str, str]],
    src: dict[str, torch.Tensor],
    seqs: torch.Tensor,
    true: torch.Tensor,
    record: bool = False,
    scores: bool = False,
) -> Any:
    """ListMLE of the reward model's aggregated scores against METEOR, for one micro-batch of articles."""
    cfg, rm = ctx.cfg, ctx.reward_model
    assert rm is not None
    K = cfg.reward_k
    enc = rm.encode(src["input_ids"], src["attention_mask"]).repeat_interleave(K, 0)  # each article encoded once
    r = rm(
        src["input_ids"], src["attention_mask"].repeat_interleave(K, 0), decoder_input_ids=seqs, encoder_hidden=enc
    )  # (B*K, L)
    mask = sequence_mask(ctx, seqs)
    e = aggregate(r, mask, cfg.agg, cfg.agg_temp, scale=group_mean_length(mask, K)).view(-1, K)  # (B, K)
    if record:
        e_, r_ = e.detach(), r.detach()
        rows = []
        for i in range(min(2, len(pairs))):
            for j in range(K):
                row = i * K + j
                rows.append(
                    summary_row(
                        ctx,
                        pairs[i],
                        seqs[row],
                        r_[row],
                        mask[row],
                        float(e_[i, j]),
                        float(true[i, j]),
                        "reward",
                        dict(group=i, rank_true=int((true[i] > true[i, j]).sum()) + 1),
                    )
                )
        ctx.reporter.samples(ctx.state.update, rows)
    return (listmle(e, true), e) if scores else listmle(e, true)


def micro_batches(
    src: dict[str, torch.Tensor], seqs: torch.Tensor, true: torch.Tensor, size: int, k: int
) -> Iterator[tuple[int, dict[str, torch.Tensor], torch.Tensor, torch.Tensor]]:
    """Split an update's sampled data back into micro-batches of `size` articles (memory stays bounded)."""
    for i in range(0, true.shape[0], size):
        part = {key: v[i : i + size] for key, v in src.items()}
        yield i, part, seqs[i * k : (i + size) * k], true[i : i + size]


def summary_row(
    ctx: Ctx,
    pair: tuple[str, str],
    seq: torch.Tensor,
    r: torch.Tensor | None,
    mask: torch.Tensor,
    model_score: float | None,
    true: float | None,
    kind: str,
    extra: dict[str, Any],
) -> dict[str, Any]:
    ids = seq[mask].tolist()
    return dict(
        kind=kind,
        context=pair[0][:EXCERPT],
        text=ctx.tok.decode(ids, skip_special_tokens=True),
        tokens=[ctx.tok.decode([i]) for i in ids],
        rewards=r[mask].tolist() if r is not None else [],
        model_score=model_score,
        true_score=true,
        extra=dict(extra, reference=pair[1]),
    )


def train_reward_model(ctx: Ctx) -> None:
    """0.1 epoch of a fresh shuffled pass over the train split, fresh Adam, validation at the last step.
    As the original, the last-step model is kept (its best-checkpoint logic never acts at 0.1 epoch)."""
    cfg, rep, rm = ctx.cfg, ctx.reporter, ctx.reward_model
    assert rm is not None
    label = ctx.phase = rep.begin_phase("reward", ctx.state.update)
    rm.train()
    opt = torch.optim.Adam(rm.param_groups(cfg.reward_lr, cfg.reward_backbone_lr))
    gen = generator(cfg.seed, "reward training", ctx.state.reward_trainings)
    n = len(ctx.pairs.train)
    groups = []  # each pass over the train split (reward_epochs may exceed 1): a fresh shuffle cut into updates
    for _ in range(max(1, math.ceil(cfg.reward_epochs))):
        order = torch.randperm(n, generator=gen).tolist()
        batches = [order[i : i + cfg.reward_batch] for i in range(0, n, cfg.reward_batch)]
        groups += [batches[i : i + cfg.reward_grad_accum] for i in range(0, len(batches), cfg.reward_grad_accum)]
    steps = reward_updates(math.ceil(n / cfg.reward_batch), cfg)
    if ctx.pool is not None:
        people.collect(ctx)
        rm.train()  # asking sampled with it in eval mode
    human_rng = random.Random(stream_seed(cfg.seed, "human lists", ctx.state.reward_trainings))
    rep.log(
        f"{label}: {steps} reward updates of {cfg.reward_grad_accum} x {cfg.reward_batch} articles, K={cfg.reward_k}"
        + (f", {cfg.preference} preferences" if ctx.pool is not None else "")
    )
    for step in range(1, steps + 1):
        if budget_reached(ctx):
            break
        group = groups[step - 1]
        pairs = [ctx.pairs.train[i] for idx in group for i in idx]
        # the update's lists: sampled and scored automatically, and (human, mixed) a share ranked by people
        n_human = human_count(cfg, len(pairs))
        parts: list[tuple[list[tuple[str, str]], dict[str, torch.Tensor], torch.Tensor, torch.Tensor]] = []
        if len(pairs) > n_human:
            pairs = pairs[: len(pairs) - n_human]
            src, seqs, true = sample_and_score(ctx, pairs)
            parts += [
                (pairs[i : i + cfg.reward_batch], *rest)
                for i, *rest in micro_batches(src, seqs, true, cfg.reward_batch, cfg.reward_k)
            ]
        if n_human:
            ranked = ctx.pool.draw(n_human, human_rng)  # type: ignore[union-attr]
            parts += [
                people.ranked_batch(ctx, ranked[i : i + cfg.reward_batch]) for i in range(0, n_human, cfg.reward_batch)
            ]
        opt.zero_grad(set_to_none=True)
        total = 0.0
        for j, (part_pairs, part, part_seqs, part_true) in enumerate(parts):
            record = j == 0 and (step == 1 or step % 10 == 0)
            loss = reward_listmle(ctx, part_pairs, part, part_seqs, part_true, record)
            (loss / len(parts)).backward()
            total += loss.item() / len(parts)
        torch.nn.utils.clip_grad_norm_(rm.parameters(), cfg.grad_clip)
        opt.step()
        rep.metrics(step, {"reward/loss": total})
        rep.phase_progress(step, steps)
        if rep.should_stop():
            raise Cancelled()
    if budget_reached(ctx):  # validating would query the preference again
        rep.metrics(steps, query_metrics(ctx))
        rm.eval()
        ctx.state.reward_trainings += 1
        return
    val_loss, tau = reward_validation(ctx)
    ctx.state.tau = None if math.isnan(tau) else tau  # no article with summaries to rank: no tau this phase
    rep.metrics(
        steps,
        {
            "reward/val_loss": val_loss,
            "reward/chance_loss": listmle_chance(cfg.reward_k),
            **({"reward/tau": tau} if ctx.state.tau is not None else {}),
            **people.human_validation(ctx),
            **query_metrics(ctx),
        },
    )
    rm.eval()
    ctx.state.reward_trainings += 1


def query_metrics(ctx: Ctx) -> dict[str, float]:
    """What the run has spent: preference queries and policy samples (the prompt task's names)."""
    out = {f"queries/{k}": float(v) for k, v in ctx.state.queries.items()}
    out["samples/policy"] = float(ctx.state.policy_samples)
    return out


def train_seconds(ctx: Ctx) -> float:
    """Wall time spent training, over every attempt of a resumed run (a result, never a metric row)."""
    return ctx.state.train_seconds + time.monotonic() - ctx.started


def budget_reached(ctx: Ctx) -> bool:
    state = ctx.state
    state.budget_spent = budget.reached(
        ctx.cfg.max_queries,
        state.queries["signal"],
        state.budget_spent,
        ctx.reporter,
        state.update,
        "summaries",
        "the reward model is no longer trained, WMLE goes on",
    )
    return state.budget_spent


def reward_validation(ctx: Ctx) -> tuple[float, float]:
    """Mean ListMLE over the first reward_val_fraction of the validation batches, and the grounding
    quality on the same fresh samples: Kendall tau of model vs true score within each article's K
    summaries, averaged over articles (0 for one the model scores all alike; left out: those whose K true
    scores all tie)."""
    cfg = ctx.cfg
    val = ctx.pairs.validation
    n = max(1, int(cfg.reward_val_fraction * math.ceil(len(val) / cfg.reward_batch)))
    ctx.reward_model.eval()  # type: ignore[union-attr]
    pairs = val[: n * cfg.reward_batch]
    losses, taus = [], []
    if pairs:
        src, seqs, true = sample_and_score(ctx, pairs)
        with torch.no_grad():
            for i, part, part_seqs, part_true in micro_batches(src, seqs, true, cfg.reward_batch, cfg.reward_k):
                loss, e = reward_listmle(ctx, pairs[i : i + cfg.reward_batch], part, part_seqs, part_true, scores=True)
                losses.append(loss.item())
                taus += [t for t in grounding_tau(e, part_true).tolist() if not math.isnan(t)]
    ctx.reward_model.train()  # type: ignore[union-attr]
    nan = float("nan")
    return (float(np.mean(losses)) if losses else nan), (float(np.mean(taus)) if taus else nan)


# ---------------------------------------------------------------------------------------------------
# the policy update (§4.4)


def token_weights(ctx: Ctx, src: dict[str, torch.Tensor], labels: torch.Tensor) -> torch.Tensor:
    """r_phi(s_t, y_t) for the reference summary's tokens, (B, T), without gradients."""
    rm = ctx.reward_model
    assert rm is not None
    y = labels.masked_fill(labels == -100, ctx.tok.pad_token_id)
    with torch.no_grad():
        if ctx.cfg.parity_start_token:  # the original: y without the start token
            return rm(src["input_ids"], src["attention_mask"], decoder_input_ids=y)
        dec = torch.cat([torch.full_like(y[:, :1], start_id(ctx)), y], 1)
        return rm(src["input_ids"], src["attention_mask"], decoder_input_ids=dec)[:, 1:]


def policy_loss(ctx: Ctx, pairs: list[tuple[str, str]]) -> tuple[torch.Tensor, dict[str, float]]:
    cfg = ctx.cfg
    src, labels = encode(ctx, pairs)
    mask = labels != -100  # (B, T)
    # the trained forward runs in float32 (bf16 covers generation only, as the option says)
    logits = ctx.policy(**src, labels=labels).logits  # (B, T, V); HF shifts labels right for the decoder
    nll = token_nll(logits, labels.clamp(min=0)) * mask
    r = token_weights(ctx, src, labels) if cfg.method == "pgg" else torch.ones_like(nll)
    w = wmle_weights(r, mask, use_q=cfg.use_q, exp=cfg.exp_weights)
    loss = wmle_loss(nll, w)
    values = {"policy/wmle": loss.item(), "policy/nll": (nll.sum() / mask.sum()).item()}
    if cfg.method == "pgg":
        values["policy/token_reward"] = (r * mask).sum().item() / mask.sum().item()
    if cfg.reinforce_coeff > 0 or cfg.entropy_coeff > 0:
        rl, negh = sampled_terms(ctx, src)
        loss = loss + cfg.reinforce_coeff * rl + cfg.entropy_coeff * negh
        values.update({"policy/reinforce": rl.item(), "policy/neg_entropy": negh.item()})
    return loss, values


def sampled_terms(ctx: Ctx, src: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """The optional on-policy terms on one sampled summary per article (§4.4 step 5).

    Sampling without gradients and then teacher-forcing the samples gives the same gradient as the
    original's generate-with-grad. Like the original, the NLL and the entropy read the top-k-filtered
    scores (outside the top k: -1e4).
    """
    cfg = ctx.cfg
    seqs = sample_summaries(ctx, src, 1, cfg.reward_top_k)  # (B, L) with the start token
    logits = ctx.policy(**src, decoder_input_ids=seqs[:, :-1]).logits.float()  # predicts seqs[:, 1:]
    logits = top_k_filter(logits, cfg.reward_top_k, -1e4)
    actions = seqs[:, 1:]
    mask = actions != ctx.tok.pad_token_id
    r = torch.ones_like(actions, dtype=torch.float)
    if ctx.reward_model is not None:
        with torch.no_grad():
            if cfg.parity_start_token:  # the original: the sequence without its start token
                r = ctx.reward_model(src["input_ids"], src["attention_mask"], decoder_input_ids=actions)
            else:
                r = ctx.reward_model(src["input_ids"], src["attention_mask"], decoder_input_ids=seqs)[:, 1:]
    r = r * mask
    if cfg.use_q:
        r = reverse_cumsum(r) * mask
    n = mask.sum().clamp(min=1)
    rl = (r * token_nll(logits, actions) * mask).sum() / n
    negh = (neg_entropy(logits) * mask).sum() / n
    return rl, negh


def policy_update(ctx: Ctx, groups: list[list[tuple[str, str]]]) -> dict[str, float]:
    """One optimizer update over up to grad_accum micro-batches."""
    cfg = ctx.cfg
    ctx.policy.train()
    ctx.opt.zero_grad(set_to_none=True)
    divisor = cfg.grad_accum if cfg.parity_last_update else len(groups)
    totals: dict[str, float] = {}
    for pairs in groups:
        loss, values = policy_loss(ctx, pairs)
        (loss / divisor).backward()
        for k, v in values.items():
            totals[k] = totals.get(k, 0.0) + v / len(groups)
    torch.nn.utils.clip_grad_norm_(ctx.policy.parameters(), cfg.grad_clip)
    ctx.opt.step()
    totals["policy/loss"] = (
        totals["policy/wmle"]
        + cfg.reinforce_coeff * totals.get("policy/reinforce", 0.0)
        + cfg.entropy_coeff * totals.get("policy/neg_entropy", 0.0)
    )
    totals["lr"] = ctx.opt.param_groups[0]["lr"]
    return totals


# ---------------------------------------------------------------------------------------------------
# evaluation (§4.5, §4.6)


@torch.no_grad()
def greedy(ctx: Ctx, pairs: list[tuple[str, str]], bf16: bool | None = None) -> list[torch.Tensor]:
    """Greedy summaries; `bf16` overrides the config's (the test split decodes in float32 by default)."""
    ctx.policy.eval()
    out = []
    bs = ctx.cfg.batch_size * 4
    for i in range(0, len(pairs), bs):
        src, _ = encode(ctx, pairs[i : i + bs])
        with autocast(ctx.device, ctx.cfg.bf16 if bf16 is None else bf16):
            seqs = ctx.policy.generate(**src, do_sample=False, num_beams=1, max_length=ctx.cfg.max_target_length)
        out += list(seqs)
    ctx.policy.train()
    return out


def validate(ctx: Ctx, n: int) -> None:
    """Greedy decoding of the validation split; score = R1 + 2 R2 + RLsum (logged, as the original)."""
    cfg, pairs = ctx.cfg, ctx.pairs.validation
    if not pairs:
        return
    seqs = greedy(ctx, pairs)
    preds = [postprocess(ctx.tok.decode(s, skip_special_tokens=True)) for s in seqs]
    refs = references(ctx, pairs)
    scores = rouge(preds, refs)
    ctx.state.val_score = scores["rouge1"] + 2 * scores["rouge2"] + scores["rougeLsum"]
    ctx.reporter.metrics(n, {"val/score": ctx.state.val_score, **{f"val/{k}": v for k, v in scores.items()}})
    # the first four validation articles at every validation: one context followed across steps
    rows = []
    for pair, seq, ref in list(zip(pairs, seqs, refs))[:4]:
        seq = seq.unsqueeze(0)
        mask = sequence_mask(ctx, seq)
        r = None
        if ctx.reward_model is not None:
            src, _ = encode(ctx, [pair])
            r = ctx.reward_model(src["input_ids"], src["attention_mask"], decoder_input_ids=seq)
        hyp = postprocess(ctx.tok.decode(seq[0], skip_special_tokens=True))
        ctx.state.queries["logging"] += 1
        rows.append(
            summary_row(
                ctx,
                pair,
                seq[0],
                None if r is None else r[0],
                mask[0],
                None,
                score_pair(cfg.true_score, hyp, ref),
                "eval",
                {},
            )
        )
    ctx.reporter.samples(n, rows)


def evaluate_test(ctx: Ctx) -> dict[str, Any]:
    pairs = ctx.pairs.test or ctx.pairs.validation
    split = "test" if ctx.pairs.test else "validation"
    seqs = greedy(ctx, pairs, bf16=ctx.cfg.bf16 and ctx.cfg.bf16_test)
    preds = [postprocess(ctx.tok.decode(s, skip_special_tokens=True)) for s in seqs]
    refs = references(ctx, pairs)
    scores = rouge(preds, refs)
    meteor = 100 * float(np.mean(ctx.meteor(preds, refs)))
    ctx.state.queries["logging"] += len(preds)
    results: dict[str, Any] = {f"test/{k}": v for k, v in scores.items()}
    results["test/meteor"] = meteor
    results.update(
        updates=ctx.state.update,
        reward_trainings=ctx.state.reward_trainings,
        test_split=split,
        budget_spent=ctx.state.budget_spent,
        reference=ctx.cfg.reference,
        # what the model wrote, hashed: two runs with the same hash wrote the same summaries of the same articles
        test_outputs_sha=hashlib.sha256("\n".join(preds).encode()).hexdigest()[:16],
        **meteor_flags(),
        **query_metrics(ctx),
    )
    results["time/train_s"] = train_seconds(ctx)
    if ctx.state.tau is not None:
        results["reward/tau"] = ctx.state.tau
    if ctx.state.human_tau is not None:
        results["reward/human_tau"] = ctx.state.human_tau
    if ctx.state.val_score is not None:  # what a sweep selects a configuration by
        results["val/score"] = ctx.state.val_score
    ctx.reporter.metrics(ctx.state.update, {k: v for k, v in results.items() if k.startswith(("test/", "queries/"))})
    return {**results, **runtime_env(ctx.device)}


# ---------------------------------------------------------------------------------------------------
# checkpoints


def save_checkpoint(ctx: Ctx) -> None:
    ctx.reporter.flush()
    ctx.state.train_seconds, ctx.started = train_seconds(ctx), time.monotonic()
    data = dict(
        state=asdict(ctx.state),
        policy=ctx.policy.state_dict(),
        opt=ctx.opt.state_dict(),
        reward_model=ctx.reward_model.state_dict() if ctx.reward_model is not None else None,
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
    ctx.opt.load_state_dict(data["opt"])
    if ctx.reward_model is not None and data["reward_model"] is not None:
        ctx.reward_model.load_state_dict(data["reward_model"])
    checkpoint.restore_rng(data["rng"])
    ctx.reporter.log(f"resumed from the checkpoint at update {ctx.state.update}")
    ctx.phase = ctx.reporter.resumed(data["saved_at"], ctx.state.update)
