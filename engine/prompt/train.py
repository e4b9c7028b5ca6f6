"""Prompt task training: preference-grounded token-level guidance for discrete prompts (algorithm.md §3, §6).

The schedule, as the original code runs it (defaults in engine.config.PromptConfig):

    train the reward model                                   (pgg only)
    for step n = 1 .. max_steps:
        policy step: sample prompts, weight tokens, update the MLP adaptor
        late greedy evaluation: a greedy prompt scored on dev becomes a final candidate
        every eval_every: validation on dev -> plateau LR, best checkpoint, early stopping
        every reward_retrain_every while n <= max_steps/2: retrain the reward model   (pgg only)
        every checkpoint_every: a resumable checkpoint
    final choice: candidates ranked by dev score; test accuracy of the top 3

Methods: `pgg` weights each token by the learned reward r_phi(s_t, a_t); `seq-reinforce` weights every
token by its prompt's (z-scored) true score; `rlprompt` is RLPrompt's soft Q-learning on the sparse
sequence reward, with its own protocol (no LR schedule, no early stopping, greedy candidates throughout).
Preferences from people (preference human or mixed, an option beside the paper) are in engine.prompt.people.
"""

from __future__ import annotations

import copy
import math
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from engine import budget, checkpoint
from engine.config import PromptConfig
from engine.errors import Cancelled, EngineError
from engine.losses import (
    aggregate,
    grounding_tau,
    listmle,
    listmle_chance,
    neg_entropy,
    reinforce_loss,
    reverse_cumsum,
    sql_loss,
    zscore,
)
from engine.models import fix_threads, load_model, load_tokenizer, model_kind, pick_device, runtime_env, stream_seed
from engine.preferences import Pool, human_count
from engine.prompt import people
from engine.prompt.data import Example, Splits, load_splits
from engine.prompt.policy import PromptPolicy, Rollout
from engine.prompt.scorer import Scores, TaskLMScorer, UserScorer
from engine.report import NullReporter, Reporter
from engine.reward_model import TokenRewardModel


@dataclass
class State:
    """The schedule's position: everything besides weights and RNGs that a checkpoint restores."""

    step: int = 0
    reward_trainings: int = 0
    best_score: float | None = None
    early_stop_left: int = 7
    candidates: list[dict[str, Any]] = field(default_factory=list)  # greedy prompts with their dev scores
    stopped_early: bool = False
    # preference queries, one per (prompt, example) pair scored: `signal` shapes the result (training,
    # validation, selection); `logging` is only shown (train score, grounding quality, test); `prompts`
    # counts the signal's prompts whatever their examples (query_unit=prompts)
    queries: dict[str, int] = field(default_factory=lambda: {"signal": 0, "logging": 0, "prompts": 0})
    policy_samples: int = 0  # prompts sampled for policy updates: what a method spends besides queries
    budget_spent: bool = False  # max_queries reached: training ended there
    train_seconds: float = 0.0  # wall time of training so far (a resumed run adds to it)
    tau: float | None = None  # the last reward phase's grounding quality
    human_tau: float | None = None  # the same against held-out people-ranked lists (preference human, mixed)


@dataclass
class Ctx:
    cfg: PromptConfig
    reporter: Reporter
    device: torch.device
    splits: Splits
    tok: Any  # the policy's tokenizer
    policy: PromptPolicy
    scorer: TaskLMScorer | UserScorer
    reward_model: TokenRewardModel | None
    opt: torch.optim.Optimizer
    plateau: torch.optim.lr_scheduler.ReduceLROnPlateau
    target_mlp: torch.nn.Module | None  # rlprompt's Polyak target
    np_rng: np.random.Generator
    run_dir: Path
    state: State
    identity: checkpoint.Identity | None  # whose checkpoints this run may resume
    pool: Pool | None = None  # the people-ranked lists (preference human, mixed)
    replay: list[tuple[torch.Tensor, torch.Tensor]] = field(default_factory=list)  # (ids, true) per reward step
    phase: str | None = None  # the label of the phase being recorded: the reporter is only written to
    started: float = field(default_factory=time.monotonic)  # this process's training start (time/train_s)


def train(
    cfg: PromptConfig,
    reporter: Reporter | None = None,
    run_dir: str | Path = ".",
    identity: checkpoint.Identity | None = None,
) -> dict[str, Any]:
    reporter = reporter or NullReporter()
    ctx = setup(cfg, reporter, Path(run_dir), identity)
    state = ctx.state
    reporter.progress(state.step, cfg.max_steps)
    reporter.plan(cfg.max_steps, [n for n in range(1, cfg.max_steps + 1) if is_reward_retrain_step(cfg, n)])

    # reward model before step 1 (a resumed run has it in its checkpoint)
    if cfg.method == "pgg" and state.reward_trainings == 0:
        train_reward_model(ctx)
        save_checkpoint(ctx)
    if ctx.phase != "policy":  # a resumed run may already be inside its policy phase
        ctx.phase = reporter.begin_phase("policy", state.step)

    while state.step < cfg.max_steps and not budget_reached(ctx):
        if reporter.should_stop():
            save_checkpoint(ctx)
            raise Cancelled()
        n = state.step = state.step + 1
        policy_step(ctx, n)
        if is_greedy_step(cfg, n, state.early_stop_left):
            greedy_candidate(ctx, n)
        if n % cfg.eval_every == 0:
            validate(ctx, n)
        reporter.progress(n)
        if state.early_stop_left <= 0:  # before this step's retraining, as the original breaks first
            state.stopped_early = True
            reporter.log(f"early stop at step {n}: no validation improvement in {cfg.early_stop} validations")
            break
        if is_reward_retrain_step(cfg, n) and not budget_reached(ctx):
            train_reward_model(ctx)
            ctx.phase = reporter.begin_phase("policy", n)
        if n % cfg.checkpoint_every == 0:
            save_checkpoint(ctx)

    ctx.phase = reporter.begin_phase("eval", state.step)
    results = final_choice(ctx)
    reporter.end_phase(state.step)
    return results


def is_greedy_step(cfg: PromptConfig, n: int, early_stop_left: int) -> bool:
    """Late greedy evaluation (the final candidates): from max_steps - 2*eval_every on, or once early
    stopping is near; rlprompt evaluates greedily throughout, as RLPrompt does."""
    late = n >= cfg.max_steps - 2 * cfg.eval_every or early_stop_left <= 2 or cfg.method == "rlprompt"
    return late and n % cfg.greedy_every == 0


def is_reward_retrain_step(cfg: PromptConfig, n: int) -> bool:
    """Retrain every reward_retrain_every steps during the first half (after that step's validation)."""
    return cfg.method == "pgg" and n <= cfg.max_steps // 2 and n % cfg.reward_retrain_every == 0


# ---------------------------------------------------------------------------------------------------
# setup


def special_ids(tok: Any) -> list[int]:
    """Every id the tokenizer treats as special: its declared roles and any other special added token (a
    shared vocabulary's <s>, </s>, <mask>: the policy spelled them, and a task LM reads </s> as a separator)."""
    added = getattr(tok, "added_tokens_decoder", {})
    return sorted(set(tok.all_special_ids) | {i for i, t in added.items() if getattr(t, "special", False)})


def setup(cfg: PromptConfig, reporter: Reporter, run_dir: Path, identity: checkpoint.Identity | None = None) -> Ctx:
    threads = fix_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    device = pick_device(cfg.device)
    splits = load_splits(cfg.dataset, cfg.dataset_seed, cfg.data_dir, cfg.shots, cfg.max_test_examples)
    reporter.log(
        f"{cfg.method} on {cfg.dataset} (dataset seed {cfg.dataset_seed}, seed {cfg.seed}): "
        f"{len(splits.train)} train / {len(splits.dev)} dev / {len(splits.test)} test examples, device {device} "
        f"({threads} CPU thread{'s' * (threads != 1)})"
    )

    tok = load_tokenizer(cfg.policy_model, "policy", "policy_model")
    backbone = load_model(cfg.policy_model, "causal", "policy", "policy_model")
    source = tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id
    blocked = special_ids(tok) if cfg.block_special_tokens else None
    policy = PromptPolicy(backbone, cfg.adaptor_hidden, source, cfg.bf16, blocked).to(device)

    if cfg.scorer:
        scorer: TaskLMScorer | UserScorer = UserScorer(cfg.scorer)
    else:
        kind = model_kind(cfg.task_model) if cfg.task_model_kind == "auto" else cfg.task_model_kind
        if kind == "seq2seq":
            raise EngineError(f"task model {cfg.task_model!r} is encoder-decoder; use a masked or causal LM")
        task_tok = load_tokenizer(cfg.task_model, "task", "task_model")
        task_lm = load_model(cfg.task_model, kind, "task", "task_model")
        scorer = TaskLMScorer(
            task_lm,
            task_tok,
            kind,
            splits.info,
            device,
            cfg.score_batch,
            cfg.bf16,
            cfg.correct_coeff,
            cfg.incorrect_coeff,
        )

    reward_model = None
    if cfg.method == "pgg":
        name = cfg.reward_model or cfg.policy_model
        field_name = "reward_model" if cfg.reward_model else "policy_model"
        reward_model = TokenRewardModel(
            load_model(name, "base", "reward", field_name), cfg.reward_hidden, cfg.squash
        ).to(device)

    opt = torch.optim.Adam(policy.mlp.parameters(), lr=cfg.policy_lr)
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(
        opt, mode="max", factor=cfg.lr_decay, patience=cfg.patience, min_lr=cfg.min_lr
    )
    target = copy.deepcopy(policy.mlp).requires_grad_(False) if cfg.method == "rlprompt" else None
    ctx = Ctx(
        cfg,
        reporter,
        device,
        splits,
        tok,
        policy,
        scorer,
        reward_model,
        opt,
        plateau,
        target,
        np.random.default_rng(cfg.seed),
        run_dir,
        State(early_stop_left=cfg.early_stop),
        identity,
    )
    if cfg.preference != "auto":
        ctx.pool = Pool(cfg, reporter, "prompt")
    load_checkpoint(ctx)
    return ctx


# ---------------------------------------------------------------------------------------------------
# helpers shared by the phases


def decode(ctx: Ctx, ids: torch.Tensor) -> list[str]:
    return ctx.tok.batch_decode(ids.tolist())


def score(ctx: Ctx, prompts: list[str], examples: list[Example], purpose: str = "signal") -> Scores:
    """The preference source on prompts x examples, counting the queries it answered."""
    ctx.state.queries[purpose] += len(prompts) * len(examples)
    if purpose == "signal":
        ctx.state.queries["prompts"] += len(prompts)
    return ctx.scorer.score(prompts, examples)


def query_metrics(ctx: Ctx) -> dict[str, float]:
    """What the run has spent: preference queries and policy samples."""
    state = ctx.state
    out = {f"queries/{k}": float(v) for k, v in state.queries.items()}
    out["samples/policy"] = float(state.policy_samples)
    return out


def train_seconds(ctx: Ctx) -> float:
    """Wall time spent training, over every attempt of a resumed run (a result, never a metric row: the
    rows of one seed are the same numbers on any machine, its wall time is not)."""
    return ctx.state.train_seconds + time.monotonic() - ctx.started


def budget_reached(ctx: Ctx) -> bool:
    """max_queries spent, in its unit (validation queries count; the final choice comes after)."""
    cfg, state = ctx.cfg, ctx.state
    spent = state.queries["signal"] if cfg.query_unit == "pairs" else state.queries["prompts"]
    state.budget_spent = budget.reached(
        cfg.max_queries, spent, state.budget_spent, ctx.reporter, state.step, cfg.query_unit, "training ends"
    )
    return state.budget_spent


def token_pieces(ctx: Ctx, ids: list[int]) -> list[str]:
    return [ctx.tok.decode([i]) for i in ids]


def token_rewards(ctx: Ctx, ids: torch.Tensor, train_mode: bool = False) -> torch.Tensor:
    """r_phi on prompt ids (B, T) without gradients. Eval mode unless parity asks for the original's dropout."""
    rm = ctx.reward_model
    assert rm is not None
    rm.train(train_mode)
    with torch.no_grad():
        return rm(ids)  # (B, T)


def sequence_score(ctx: Ctx, r: torch.Tensor) -> torch.Tensor:
    """e = f({r_t}): the aggregated model score of fixed-length prompts, (B, T) -> (B,)."""
    return aggregate(r, torch.ones_like(r, dtype=torch.bool), ctx.cfg.agg, ctx.cfg.agg_temp, scale=r.shape[1])


def sample_rows(
    ctx: Ctx,
    roll: Rollout,
    r: torch.Tensor | None,
    true: torch.Tensor | None,
    kind: str,
    n: int | None = None,
    extra: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Samples for the store: tokens with their rewards, the aggregated model score and the true score."""
    n = roll.ids.shape[0] if n is None else min(n, roll.ids.shape[0])
    e = sequence_score(ctx, r) if r is not None else None
    rows = []
    for b in range(n):
        ids = roll.ids[b].tolist()
        rows.append(
            dict(
                kind=kind,
                text=ctx.tok.decode(ids),
                tokens=token_pieces(ctx, ids),
                rewards=r[b].tolist() if r is not None else [],
                model_score=float(e[b]) if e is not None else None,
                true_score=float(true[b]) if true is not None else None,
                context=ctx.cfg.dataset,
                extra=extra or {},
            )
        )
    return rows


# ---------------------------------------------------------------------------------------------------
# reward model training (§3.4)


@dataclass
class RankedLists:
    """One reward step's data: sampled prompts, their true scores, and the ListMLE lists drawn from them."""

    roll: Rollout
    true: torch.Tensor  # (C,)
    lists: torch.Tensor  # (L, K) candidate indices
    mask: torch.Tensor | None = None  # (C, T) valid tokens, for prompts of unequal length (a ranking file's)


def ranked_lists(ctx: Ctx, split: list[Example], n_lists: int | None = None) -> RankedLists:
    """16 sampled prompts, true scores on an 80% subset of the split, 64 lists of K."""
    cfg = ctx.cfg
    n_lists = cfg.reward_lists if n_lists is None else n_lists
    roll = ctx.policy.rollout(cfg.reward_candidates, cfg.prompt_length, cfg.top_k)
    m = math.ceil(cfg.reward_subset * len(split))
    subset = [split[i] for i in ctx.np_rng.choice(len(split), m, replace=False)]
    true = score(ctx, decode(ctx, roll.ids), subset).score.to(ctx.device)  # (C,)
    return RankedLists(roll, true, draw_lists(n_lists, cfg.reward_candidates, cfg.reward_k, ctx.device))


def draw_lists(n: int, c: int, k: int, device: torch.device) -> torch.Tensor:
    """n lists of K candidate indices out of C: (n, K), without replacement within a list when C >= K."""
    if c >= k:
        return torch.rand(n, c, device=device).argsort(1)[:, :k]
    return torch.randint(0, c, (n, k), device=device)


def reward_loss(ctx: Ctx, data: RankedLists) -> tuple[torch.Tensor, torch.Tensor]:
    """ListMLE of the aggregated model scores against the true ones; also the token rewards (C, T)."""
    r = ctx.reward_model(data.roll.ids)  # type: ignore[misc]  # (C, T)
    if data.mask is None:
        e = sequence_score(ctx, r)  # (C,)
    else:
        e = aggregate(r, data.mask, ctx.cfg.agg, ctx.cfg.agg_temp, scale=data.mask.sum(1).float().mean())
    return listmle(e[data.lists], data.true[data.lists]), r


REPLAY_KEPT = 10_000  # reward steps' scored prompts kept for reward_replay (16 x 5 ids each in the paper)


def with_replay(ctx: Ctx, data: RankedLists, loss: torch.Tensor) -> torch.Tensor:
    """The step's ListMLE loss averaged with that of `reward_replay` earlier steps' scored prompts, drawn at
    random (with replacement) and ranked in fresh lists of K; then this step's prompts join them.
    Every list counts the same, as if all had been drawn in this step."""
    n, lists = ctx.cfg.reward_replay, data.lists.shape[0]
    if ctx.replay:
        picks = torch.randint(len(ctx.replay), (n,)).tolist()
        ids = torch.cat([ctx.replay[i][0] for i in picks])
        true = torch.cat([ctx.replay[i][1] for i in picks])
        c = ctx.replay[0][0].shape[0]
        offset = (torch.arange(n * lists, device=ctx.device) // lists * c)[:, None]  # each list in its own set
        idx = draw_lists(n * lists, c, data.lists.shape[1], ctx.device) + offset
        old = listmle(sequence_score(ctx, ctx.reward_model(ids))[idx], true[idx])  # type: ignore[misc]
        loss = (loss + n * old) / (1 + n)
    ctx.replay.append((data.roll.ids.detach(), data.true.detach()))
    del ctx.replay[:-REPLAY_KEPT]
    return loss


def train_reward_model(ctx: Ctx) -> None:
    """One RewardModelTrainer.train(): fresh Adam, epochs with a noisy dev validation, plateau LR,
    early stopping, and the best weights reloaded at the end."""
    cfg, rep, rm = ctx.cfg, ctx.reporter, ctx.reward_model
    assert rm is not None
    label = ctx.phase = rep.begin_phase("reward", ctx.state.step)
    rep.log(f"{label}: training the token reward model" + (f" on {cfg.preference} preferences" if ctx.pool else ""))
    if ctx.pool is not None:
        people.collect(ctx)
    n_human = human_count(cfg, cfg.reward_lists)
    human_rng = random.Random(stream_seed(cfg.seed, "human lists", ctx.state.reward_trainings))
    opt = torch.optim.Adam(rm.param_groups(cfg.reward_lr, cfg.reward_backbone_lr))
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(
        opt, mode="min", factor=cfg.lr_decay, patience=cfg.patience, min_lr=cfg.min_lr
    )
    steps_per_epoch = max(1, cfg.reward_max_steps // cfg.reward_epochs)
    best, left, total = math.inf, cfg.early_stop, 0
    best_state = {k: v.detach().clone() for k, v in rm.state_dict().items()}
    fixed = (
        [ranked_lists(ctx, ctx.splits.dev) for _ in range(cfg.reward_valid_draws)]
        if cfg.reward_valid_fixed and cfg.preference != "human"
        else None
    )
    validated = False
    for epoch in range(cfg.reward_epochs):
        rm.train()
        for i in range(steps_per_epoch):
            if budget_reached(ctx):
                break
            if n_human < cfg.reward_lists:  # the automatic lists, as the paper
                data = ranked_lists(ctx, ctx.splits.train, cfg.reward_lists - n_human)
                loss, r = reward_loss(ctx, data)
                if cfg.reward_replay:
                    loss = with_replay(ctx, data, loss)
            if n_human:  # the people-ranked share (preference human, mixed), weighted by its count
                batch = people.ranked_batch(ctx, ctx.pool.draw(n_human, human_rng))  # type: ignore[union-attr]
                human_loss, human_r = reward_loss(ctx, batch)
                if n_human == cfg.reward_lists:
                    loss, r, data = human_loss, human_r, batch
                else:
                    loss = (loss * (cfg.reward_lists - n_human) + human_loss * n_human) / cfg.reward_lists
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(rm.parameters(), cfg.grad_clip)
            opt.step()
            total += 1
            rep.metrics(total, {"reward/loss": loss.item()})
            rep.phase_progress(total, cfg.reward_max_steps)  # at most: early stopping may end it sooner
            if i == 0:  # one ranked candidate set per epoch, for the samples browser
                rows = sample_rows(ctx, data.roll, r.detach(), data.true, "reward", extra={"epoch": epoch + 1})
                rep.samples(total, sorted(rows, key=lambda x: -x["true_score"]))
        if rep.should_stop():
            raise Cancelled()  # a half-trained reward model is not checkpointed: a resume redoes the phase
        if budget_reached(ctx):  # no queries left to validate with: the best validated weights, else these
            if not validated:
                best_state = {k: v.detach().clone() for k, v in rm.state_dict().items()}
            break
        val = people.human_val_loss(ctx) if cfg.preference == "human" else reward_validation(ctx, fixed)
        validated = True
        rep.metrics(total, {"reward/val_loss": val, "reward/lr": opt.param_groups[0]["lr"]})
        plateau.step(val)
        if val < best * (1 - 1e-4):
            best, left = val, cfg.early_stop
            best_state = {k: v.detach().clone() for k, v in rm.state_dict().items()}
        else:
            left -= 1
        if left <= 0 or total >= cfg.reward_max_steps:
            break
    rm.load_state_dict(best_state)
    best = (
        {}
        if budget_reached(ctx)
        else {
            "reward/best_val_loss": people.human_val_loss(ctx)
            if cfg.preference == "human"
            else reward_validation(ctx, fixed)
        }
    )
    rep.metrics(total, {**best, **grounding(ctx), **people.human_validation(ctx), **query_metrics(ctx)})
    rm.eval()
    ctx.state.reward_trainings += 1


def grounding(ctx: Ctx) -> dict[str, float]:
    """Grounding quality: Kendall tau between the aggregated model score and the true dev score of
    `tau_candidates` fresh prompts from the current policy, beside the ListMLE chance level ln(K!)."""
    cfg, rm = ctx.cfg, ctx.reward_model
    assert rm is not None
    ctx.policy.eval()
    roll = ctx.policy.rollout(cfg.tau_candidates, cfg.prompt_length, cfg.top_k)
    true = score(ctx, decode(ctx, roll.ids), ctx.splits.dev, "logging").score.to(ctx.device)
    rm.eval()
    with torch.no_grad():
        e = sequence_score(ctx, rm(roll.ids))
    tau = float(grounding_tau(e, true))
    out = {"reward/chance_loss": listmle_chance(cfg.reward_k)}
    ctx.state.tau = None if math.isnan(tau) else tau
    if ctx.state.tau is None:  # not recorded: the previous phase's tau must not stand for this one
        distinct = len({tuple(row) for row in roll.ids.tolist()})
        ctx.reporter.log(
            f"grounding tau undefined after this reward training: the {cfg.tau_candidates} fresh prompts "
            f"({distinct} distinct) all score alike on dev, so there is nothing to rank"
        )
    else:
        out["reward/tau"] = ctx.state.tau
    return out


def reward_validation(ctx: Ctx, fixed: list[RankedLists] | None = None) -> float:
    """Mean ListMLE over reward_valid_draws draws on the dev split: fresh ones each time (noisy, as the
    original), or the same `fixed` ones throughout a training (reward_valid_fixed)."""
    rm = ctx.reward_model
    rm.eval()  # type: ignore[union-attr]
    with torch.no_grad():
        draws = fixed or [ranked_lists(ctx, ctx.splits.dev) for _ in range(ctx.cfg.reward_valid_draws)]
        losses = [reward_loss(ctx, data)[0].item() for data in draws]
    rm.train()  # type: ignore[union-attr]
    return float(np.mean(losses))


# ---------------------------------------------------------------------------------------------------
# policy steps (§3.5 and §6)


def policy_step(ctx: Ctx, n: int) -> None:
    cfg, rep = ctx.cfg, ctx.reporter
    ctx.policy.train()
    batch = cfg.sql_batch if cfg.method == "rlprompt" else cfg.policy_batch
    roll = ctx.policy.rollout(batch, cfg.prompt_length, cfg.top_k)
    ctx.state.policy_samples += batch
    logits = ctx.policy.logits(roll.hidden)  # (B, T, V) unfiltered, with gradients through the adaptor
    r = true = None
    if cfg.method == "pgg":
        r = token_rewards(ctx, roll.ids, train_mode=cfg.parity_reward_dropout)  # (B, T)
        weights = reverse_cumsum(r) if cfg.use_q else r
        if cfg.reward_baseline == "zscore":  # per position: the batch mean is the baseline, the std the scale
            weights = (weights - weights.mean(0)) / (weights.std(0, correction=0) + 1e-4)
        elif cfg.reward_baseline == "center":
            weights = weights - weights.mean(0)
        loss, entropy = reinforce_loss(logits, roll.ids, weights, cfg.entropy_coeff)
    else:
        true = score(ctx, decode(ctx, roll.ids), ctx.splits.train).score.to(ctx.device)  # (B,)
        z = zscore(true) if cfg.zscore else true
        if cfg.method == "seq-reinforce":
            loss, entropy = reinforce_loss(logits, roll.ids, z.unsqueeze(1).expand_as(roll.ids), cfg.entropy_coeff)
        else:
            with torch.no_grad():
                target_logits = ctx.policy.logits(roll.hidden, ctx.target_mlp)
            loss = sql_loss(logits, target_logits, roll.ids, cfg.sql_reward_scale * z)
            entropy = -neg_entropy(logits).mean().detach()
    ctx.opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(ctx.policy.mlp.parameters(), cfg.grad_clip)
    ctx.opt.step()
    if ctx.target_mlp is not None:  # Polyak: theta' <- (1 - tau) theta' + tau theta
        with torch.no_grad():
            for pt, p in zip(ctx.target_mlp.parameters(), ctx.policy.mlp.parameters()):
                pt.lerp_(p, cfg.sql_tau)

    values = {"policy/loss": loss.item(), "policy/entropy": entropy.item(), "lr": ctx.opt.param_groups[0]["lr"]}
    if r is not None:
        values["policy/token_reward"] = r.mean().item()
    # the true train score of 16 prompts is logging only (the original computes it every step)
    final_step = n == cfg.max_steps and cfg.parity_final_scores and cfg.method != "rlprompt"
    if n % cfg.train_score_every == 0 or n == 1 or final_step:
        if true is None:
            s = score(ctx, decode(ctx, roll.ids[:16]), ctx.splits.train, "logging")
            true16, acc = s.score, s.accuracy
        else:
            true16, acc = true[:16], None
        values["train/score"] = true16.mean().item()
        if acc is not None:
            values["train/accuracy"] = acc.mean().item()
        rep.samples(
            n,
            sample_rows(
                ctx, Rollout(roll.ids[:8], roll.hidden[:8]), None if r is None else r[:8], true16[:8], "policy"
            ),
        )
        if final_step:  # the original stores the last step's 16 prompts, train-scored, as final candidates
            ctx.state.candidates += [
                dict(
                    prompt=p,
                    ids=roll.ids[i].tolist(),
                    score=float(true16[i]),
                    step=n,
                    split="train",
                    source="last step",
                )
                for i, p in enumerate(decode(ctx, roll.ids[:16]))
            ]
        values.update(query_metrics(ctx))
    rep.metrics(n, values)


# ---------------------------------------------------------------------------------------------------
# validation, greedy candidates, final choice (§3.6, §3.7)


def validate(ctx: Ctx, n: int) -> None:
    """Score val_draws x val_prompts sampled prompts on dev; drive plateau LR, best checkpoint, early stop."""
    cfg, state = ctx.cfg, ctx.state
    ctx.policy.eval()
    roll = ctx.policy.rollout(cfg.val_draws * cfg.val_prompts, cfg.prompt_length, cfg.top_k)
    s = score(ctx, decode(ctx, roll.ids), ctx.splits.dev)
    value = s.score.view(cfg.val_draws, cfg.val_prompts).mean(1).mean().item()
    values = {"dev/score": value}
    if s.accuracy is not None:
        values["dev/accuracy"] = s.accuracy.mean().item()
    ctx.reporter.metrics(n, values)
    if cfg.method == "rlprompt":  # RLPrompt has no LR schedule and no early stopping
        return
    ctx.plateau.step(value)
    prev = state.best_score
    if cfg.parity_improvement_test:
        better = prev is None or value > prev * (1 + 1e-4)
    else:
        better = prev is None or value > prev + 1e-4 * abs(prev)
    if better:
        state.best_score = value
        state.early_stop_left = cfg.early_stop
        save_best(ctx)
    else:
        state.early_stop_left -= 1


def greedy_candidate(ctx: Ctx, n: int) -> None:
    ctx.policy.eval()
    roll = ctx.policy.rollout(1, ctx.cfg.prompt_length, None)
    prompt = decode(ctx, roll.ids)[0]
    s = score(ctx, [prompt], ctx.splits.dev)
    ctx.state.candidates.append(
        dict(prompt=prompt, ids=roll.ids[0].tolist(), score=float(s.score[0]), step=n, split="dev", source="greedy")
    )
    r = token_rewards(ctx, roll.ids) if ctx.reward_model is not None else None
    ctx.reporter.samples(n, sample_rows(ctx, roll, r, s.score, "greedy"))
    ctx.reporter.metrics(n, {"dev/greedy_score": float(s.score[0])})


def final_choice(ctx: Ctx) -> dict[str, Any]:
    """Rank candidates by score, report the mean test accuracy of the top `final_top`.

    Candidates, in this order: the greedy prompts of the late evaluations, then `final_samples` prompts
    sampled from the best checkpoint (pgg, seq-reinforce; RLPrompt's protocol keeps its greedy prompts
    only). A prompt seen twice keeps its first entry. By default every candidate is scored on dev;
    parity_final_scores ranks the sampled ones by their train score and adds the last step's 16
    train-scored prompts, mixing the two splits as the original does.
    """
    cfg, state = ctx.cfg, ctx.state
    sampled: list[dict[str, Any]] = []
    if cfg.method != "rlprompt":
        load_best(ctx)
        ctx.policy.eval()
        roll = ctx.policy.rollout(cfg.final_samples, cfg.prompt_length, cfg.top_k)
        prompts = decode(ctx, roll.ids)
        split = "train" if cfg.parity_final_scores else "dev"
        values = score(ctx, prompts, getattr(ctx.splits, split)).score.tolist()
        sampled = [
            dict(prompt=p, ids=roll.ids[i].tolist(), score=v, step=state.step, split=split, source="best checkpoint")
            for i, (p, v) in enumerate(zip(prompts, values))
        ]
    ranked = rank_candidates(state.candidates + sampled)[: cfg.final_candidates]
    if not ranked:
        raise EngineError(
            "no final candidates: the run made no greedy evaluation (raise max_steps or lower "
            "greedy_every) and sampled none"
        )
    dev = [c["score"] for c in ranked if c["split"] == "dev"]
    results: dict[str, Any] = {
        "dev/score": max(dev) if dev else None,
        "steps": state.step,
        "reward_trainings": state.reward_trainings,
        "stopped_early": state.stopped_early,
        "budget_spent": state.budget_spent,
    }
    if state.tau is not None:
        results["reward/tau"] = state.tau
    if state.human_tau is not None:
        results["reward/human_tau"] = state.human_tau
    test_name = "test/accuracy" if isinstance(ctx.scorer, TaskLMScorer) else "test/score"
    if ctx.splits.test:
        tested = [(c, tested_as(cfg, c["prompt"])) for c in ranked]
        kept = [(c, text) for c, text in tested if text is not None]
        if len(kept) < len(tested):
            ctx.reporter.log(
                f"parity_test_prompt: {len(tested) - len(kept)} of {len(tested)} final candidates "
                "would fail the original's Hydra parse and are dropped before the top-N mean"
            )
        test = test_scores(ctx, [text for _, text in kept]) if kept else []
        for (c, _), t in zip(kept, test):
            c["test"] = t
        if test:
            results[test_name] = float(np.mean(test[: cfg.final_top]))
            results[f"{test_name}_top1"] = test[0]
    else:
        ctx.reporter.log(f"{cfg.dataset} has no test split here: test accuracy not computed")
    # the validation counterpart of the reported test number (the top final_top candidates' mean): what a
    # sweep chooses a configuration by; dev/score, the single best, is a noisier estimate of it
    results["dev/top_score"] = top_dev_score([c["score"] for c in ranked], cfg.final_top)
    results["prompt"] = ranked[0]["prompt"]
    results["top_prompts"] = [dict(prompt=c["prompt"], score=c["score"], test=c.get("test")) for c in ranked]
    rows = []
    for rank, c in enumerate(ranked, 1):
        ids = torch.tensor([c["ids"]], device=ctx.device)
        r = token_rewards(ctx, ids)[0].tolist() if ctx.reward_model is not None else []
        rows.append(
            dict(
                kind="final",
                text=c["prompt"],
                tokens=token_pieces(ctx, c["ids"]),
                rewards=r,
                true_score=c["score"],
                context=cfg.dataset,
                extra=dict(rank=rank, split=c["split"], test=c.get("test"), step=c["step"], source=c.get("source", "")),
            )
        )
    ctx.reporter.samples(state.step, rows)
    results.update(query_metrics(ctx))
    ctx.reporter.metrics(state.step, {k: v for k, v in results.items() if k.startswith(("test/", "queries/"))})
    results["time/train_s"] = train_seconds(ctx)
    return {**results, **runtime_env(ctx.device)}


def top_dev_score(scores: list[float], top: int) -> float:
    """Mean validation score of the `top` best-ranked final candidates."""
    return float(np.mean(scores[:top]))


HYDRA_BREAKS = frozenset(",=()[]{}'\"~")  # characters the original's unquoted Hydra override fails on


def tested_as(cfg: PromptConfig, prompt: str) -> str | None:
    """The string a candidate is tested as: itself; with parity_test_prompt, as the original's evaluator gets
    it through a Hydra override (surrounding spaces stripped), or None where that parse fails (dropped)."""
    if not cfg.parity_test_prompt:
        return prompt
    return None if HYDRA_BREAKS.intersection(prompt) else prompt.strip()


def test_scores(ctx: Ctx, prompts: list[str]) -> list[float]:
    """Test accuracy (x100), or a user scorer's score, per prompt: in float32 unless bf16_test."""
    scorer = ctx.scorer if isinstance(ctx.scorer, TaskLMScorer) else None  # a user function has no precision
    bf16 = scorer.bf16 if scorer else False
    if scorer:
        scorer.bf16 = ctx.cfg.bf16 and ctx.cfg.bf16_test
    try:
        s = score(ctx, prompts, ctx.splits.test, "logging")
    finally:
        if scorer:
            scorer.bf16 = bf16
    return (s.accuracy * 100 if s.accuracy is not None else s.score).tolist()


def rank_candidates(candidates: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Drop repeated prompts (the first entry stays, as pandas' drop_duplicates), best score first."""
    first: dict[str, dict[str, Any]] = {}
    for c in candidates:
        first.setdefault(c["prompt"], c)
    return sorted(first.values(), key=lambda c: -c["score"])


# ---------------------------------------------------------------------------------------------------
# checkpoints: a killed run resumes with the same schedule state and RNG streams


def save_checkpoint(ctx: Ctx) -> None:
    ctx.reporter.flush()  # every row recorded before the checkpoint is in the store before it exists
    ctx.state.train_seconds, ctx.started = train_seconds(ctx), time.monotonic()
    data = dict(
        state=asdict(ctx.state),
        mlp=ctx.policy.mlp.state_dict(),
        opt=ctx.opt.state_dict(),
        plateau=ctx.plateau.state_dict(),
        target=ctx.target_mlp.state_dict() if ctx.target_mlp is not None else None,
        reward_model=ctx.reward_model.state_dict() if ctx.reward_model is not None else None,
        rng=checkpoint.rng_state(ctx.np_rng),
        saved_at=time.time(),
        replay=[torch.stack(part) for part in zip(*ctx.replay)] if ctx.replay else None,
    )
    checkpoint.save(ctx.run_dir / "ckpt" / "last.pt", data, ctx.identity)


def load_checkpoint(ctx: Ctx) -> None:
    data = checkpoint.load(ctx.run_dir / "ckpt" / "last.pt", ctx.identity, ctx.device, ctx.reporter.log)
    if data is None:
        return
    ctx.state = State(**data["state"])
    ctx.state.queries.setdefault("prompts", 0)  # a checkpoint from before query_unit
    ctx.policy.mlp.load_state_dict(data["mlp"])
    ctx.opt.load_state_dict(data["opt"])
    ctx.plateau.load_state_dict(data["plateau"])
    if ctx.target_mlp is not None and data["target"] is not None:
        ctx.target_mlp.load_state_dict(data["target"])
    if ctx.reward_model is not None and data["reward_model"] is not None:
        ctx.reward_model.load_state_dict(data["reward_model"])
    if data.get("replay") is not None:
        ctx.replay = list(zip(data["replay"][0].unbind(), data["replay"][1].unbind()))
    checkpoint.restore_rng(data["rng"], ctx.np_rng)
    load_best(ctx, check_only=True)  # a damaged best.pt fails now, not after the resumed run has trained
    ctx.reporter.log(f"resumed from the checkpoint at step {ctx.state.step}")
    ctx.phase = ctx.reporter.resumed(data["saved_at"], ctx.state.step)


def save_best(ctx: Ctx) -> None:
    data = dict(mlp=ctx.policy.mlp.state_dict(), step=ctx.state.step, score=ctx.state.best_score)
    checkpoint.save(ctx.run_dir / "ckpt" / "best.pt", data, ctx.identity)


def load_best(ctx: Ctx, check_only: bool = False) -> None:
    data = checkpoint.load(ctx.run_dir / "ckpt" / "best.pt", ctx.identity, ctx.device)
    if data is not None and not check_only:
        ctx.policy.mlp.load_state_dict(data["mlp"])
