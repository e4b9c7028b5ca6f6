"""Seconds per policy step and per reward step of the prompt task, split by part, at tiny and paper sizes.

    python benchmarks/prompt_bench.py --size tiny            # CPU
    python benchmarks/prompt_bench.py --size paper --device cuda

Paper size = the paper's architectures (distilgpt2 policy and reward backbone, roberta-large task LM)
with random weights (`random-*` built-ins: no download); SST-2's 16-shot train split from ../shared/data
when present, else the toy set. Besides pgg's own step, it times what the original code's structure
costs for the same work: the task LM called once per prompt in fp32 with full-vocabulary logits, the
logging score of 16 prompts computed every step, and the sampled ids decoded and re-tokenized between
sampling steps.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.losses import aggregate, listmle, reinforce_loss  # noqa: E402
from engine.prompt.data import MASKED_TEMPLATE  # noqa: E402
from engine.prompt.train import decode, setup  # noqa: E402
from engine.registry import plan_runs  # noqa: E402
from engine.report import StoreReporter  # noqa: E402
from engine.store import Store  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "fewshot"


class Timer:
    def __init__(self, device: torch.device):
        self.device = device
        self.parts: dict[str, list[float]] = {}

    def __call__(self, name: str):
        timer = self

        class _Span:
            def __enter__(self):
                if timer.device.type == "cuda":
                    torch.cuda.synchronize()
                self.t = time.perf_counter()

            def __exit__(self, *exc):
                if timer.device.type == "cuda":
                    torch.cuda.synchronize()
                timer.parts.setdefault(name, []).append(time.perf_counter() - self.t)

        return _Span()

    def median(self, name: str) -> float:
        return statistics.median(self.parts[name])


def build(size: str, device: str, bf16: bool):
    if size == "tiny":
        preset, extra = "tiny", []
    else:
        preset, extra = "paper", ["policy_model=random-distilgpt2", "task_model=random-roberta-large"]
    data = ["sst-2", str(SHARED)] if SHARED.is_dir() else ["toy-sentiment", ""]
    cfg = plan_runs(
        "prompt",
        data[0],
        "pgg",
        preset=preset,
        data_dir=data[1],
        overrides=extra + [f"device={device}", f"bf16={bf16}"],
    )[0].config
    tmp = tempfile.mkdtemp()
    store = Store.open(f"{tmp}/bench.db")
    (rid,) = store.queue(plan_runs("prompt", "toy-sentiment"))
    reporter = StoreReporter(store, rid, interval=1.0)
    return cfg, setup(cfg, reporter, Path(tmp) / "run"), reporter


def pgg_policy_step(ctx, t: Timer, n: int) -> None:
    cfg = ctx.cfg
    with t("sampling"):
        roll = ctx.policy.rollout(cfg.policy_batch, cfg.prompt_length, cfg.top_k)
    with t("reward model"):
        ctx.reward_model.eval()
        with torch.no_grad():
            r = ctx.reward_model(roll.ids)
    with t("policy update"):
        logits = ctx.policy.logits(roll.hidden)
        loss, ent = reinforce_loss(logits, roll.ids, r, cfg.entropy_coeff)
        ctx.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(ctx.policy.mlp.parameters(), cfg.grad_clip)
        ctx.opt.step()
    with t("task LM scoring"):
        if n % cfg.train_score_every == 0:
            ctx.scorer.score(decode(ctx, roll.ids[:16]), ctx.splits.train)
    with t("store"):
        ctx.reporter.metrics(n, {"policy/loss": loss.item(), "policy/entropy": ent.item(), "lr": 5e-5})


def pgg_reward_step(ctx, t: Timer) -> None:
    cfg = ctx.cfg
    rm = ctx.reward_model
    rm.train()
    opt = torch.optim.Adam(rm.parameters(), lr=cfg.reward_lr)
    with t("sampling"):
        roll = ctx.policy.rollout(cfg.reward_candidates, cfg.prompt_length, cfg.top_k)
    with t("task LM scoring"):
        m = math.ceil(cfg.reward_subset * len(ctx.splits.train))
        subset = [ctx.splits.train[i] for i in ctx.np_rng.choice(len(ctx.splits.train), m, replace=False)]
        true = ctx.scorer.score(decode(ctx, roll.ids), subset).score.to(ctx.device)
    with t("reward model"):
        r = rm(roll.ids)
        e = aggregate(r, torch.ones_like(r, dtype=torch.bool), cfg.agg, cfg.agg_temp, scale=cfg.prompt_length)
        lists = torch.rand(cfg.reward_lists, cfg.reward_candidates, device=ctx.device).argsort(1)[:, : cfg.reward_k]
        loss = listmle(e[lists], true[lists])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    with t("store"):
        ctx.reporter.metrics(0, {"reward/loss": loss.item()})


def original_scoring(ctx, prompts: list[str], examples) -> None:
    """One fp32 forward per prompt over the examples, full-vocabulary logits, as the original's logging call."""
    sc = ctx.scorer
    for p in prompts:
        texts = [MASKED_TEMPLATE.format(sentence_1=e.text, prompt=p, mask=sc.tok.mask_token) for e in examples]
        enc = sc.tok(texts, padding=True, truncation=True, return_tensors="pt").to(ctx.device)
        with torch.no_grad():
            logits = sc.model(**enc).logits  # (N, L, V)
        pos = (enc["input_ids"] == sc.tok.mask_token_id).int().argmax(1)
        probs = logits[torch.arange(len(texts)), pos][:, sc.verbalizer_ids].softmax(-1)
        probs.cpu().numpy()  # the per-prompt host sync


def original_policy_step(ctx, t: Timer) -> None:
    """pgg's step with the original's costs: re-tokenized sampling and 16 per-prompt scorings every step."""
    cfg = ctx.cfg
    with t("sampling"):
        # the original decodes the sampled ids to strings and re-tokenizes them after every token
        roll = ctx.policy.rollout(cfg.policy_batch, cfg.prompt_length, cfg.top_k)
        for k in range(1, cfg.prompt_length + 1):
            strings = ctx.tok.batch_decode(roll.ids[:, :k].tolist())
            ctx.tok(strings, add_special_tokens=False)
    with t("reward model"):
        ctx.reward_model.train()  # dropout on, as the original
        with torch.no_grad():
            r = ctx.reward_model(roll.ids)
    with t("policy update"):
        logits = ctx.policy.logits(roll.hidden)
        loss, ent = reinforce_loss(logits, roll.ids, r, cfg.entropy_coeff)
        ctx.opt.zero_grad(set_to_none=True)
        loss.backward()
        ctx.opt.step()
        loss.item()
    with t("task LM scoring"):
        original_scoring(ctx, decode(ctx, roll.ids[:16]), ctx.splits.train)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", choices=["tiny", "paper"], default="tiny")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--no-bf16", action="store_true")
    ap.add_argument("--warmup", type=int, default=None, help="warm-up steps (default: train_score_every)")
    args = ap.parse_args()
    cfg, ctx, reporter = build(args.size, args.device, not args.no_bf16)
    dev = ctx.device
    name = torch.cuda.get_device_name(0) if dev.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    print(
        f"# prompt task, {args.size} size, {name}, policy batch {cfg.policy_batch}, train split {len(ctx.splits.train)}"
    )
    rows = []
    for label, fn in [
        ("pgg policy step", lambda t, n: pgg_policy_step(ctx, t, n)),
        ("pgg reward step", lambda t, n: pgg_reward_step(ctx, t)),
        ("original-structure policy step", lambda t, n: original_policy_step(ctx, t)),
    ]:
        warm = Timer(dev)
        warmup = cfg.train_score_every if args.warmup is None else args.warmup
        for n in range(1, warmup + 1):  # warm every path once, scoring included
            fn(warm, n)
        t = Timer(dev)
        steps = args.steps
        t0 = time.perf_counter()
        for n in range(warmup + 1, warmup + steps + 1):
            fn(t, n)
        total = (time.perf_counter() - t0) / steps
        parts = {k: sum(v) / steps for k, v in t.parts.items()}
        rows.append((label, total, parts))
    reporter.close()
    cols = ["sampling", "task LM scoring", "reward model", "policy update", "store"]
    print("| step | total s | " + " | ".join(cols) + " |")
    print("|---|---|" + "---|" * len(cols))
    for label, total, parts in rows:
        print(f"| {label} | {total:.4f} | " + " | ".join(f"{parts.get(c, 0):.4f}" for c in cols) + " |")
    median_ms = statistics.median(reporter.flush_seconds or [0]) * 1e3
    print(f"store flushes: {len(reporter.flush_seconds)}, median {median_ms:.2f} ms")


if __name__ == "__main__":
    main()
