"""Seconds per reward update and per policy update of the summarization task, split by part.

    python benchmarks/summarize_bench.py --size tiny
    python benchmarks/summarize_bench.py --size paper --device cuda

Paper size = t5-small's architecture for the policy and the reward backbone with random weights
(`random-t5-small`), batch 8 x 4 micro-batches, K = 3, articles of ~1,000 tokens and 128-token
summaries. Articles are the toy-news ones joined to CNN/DM length. A reward update is 4 micro-batches
of: sampling K summaries per article, METEOR of each, the reward model's ListMLE step. Alongside pgg's
way it times the original's: one METEOR call per pair in the training process, and the article
re-encoded by the reward model for each of its K samples.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.losses import aggregate, group_mean_length, listmle  # noqa: E402
from engine.registry import plan_runs  # noqa: E402
from engine.report import NullReporter  # noqa: E402
from engine.summarize.metrics import _score_chunk, postprocess  # noqa: E402
from engine.summarize.train import encode, policy_update, sample_summaries, sequence_mask, setup  # noqa: E402


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(device, fn):
    sync(device)
    t = time.perf_counter()
    out = fn()
    sync(device)
    return out, time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", choices=["tiny", "paper"], default="tiny")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--updates", type=int, default=3)
    args = ap.parse_args()
    extra = [f"device={args.device}"]
    if args.size == "paper":
        extra += ["policy_model=random-t5-small", "reward_model=random-t5-small", "max_train_examples=64"]
        preset = "paper"
    else:
        preset = "tiny"
    cfg = plan_runs("summarize", "toy-news", "pgg", preset=preset, overrides=extra)[0].config
    ctx = setup(cfg, NullReporter(), Path(tempfile.mkdtemp()))
    dev = ctx.device
    pairs = ctx.pairs.train
    if args.size == "paper":  # CNN/DM-length articles: ~10 toy articles joined
        pairs = [
            (" ".join(pairs[(i + j) % len(pairs)][0] for j in range(10)), " ".join(pairs[i][1] for _ in range(3)))
            for i in range(len(pairs))
        ]
    B, A, K = cfg.reward_batch, cfg.reward_grad_accum, cfg.reward_k
    rm = ctx.reward_model
    opt = torch.optim.Adam(rm.parameters(), lr=cfg.reward_lr)
    name = torch.cuda.get_device_name(0) if dev.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    src0, _ = encode(ctx, pairs[:B])
    print(
        f"# summarization, {args.size} size, {name}: {A} x {B} articles per update, K={K}, "
        f"source {src0['input_ids'].shape[1]} tokens, summaries up to {cfg.max_target_length}"
    )

    parts: dict[str, list[float]] = {}

    def add(k: str, v: float) -> None:
        parts.setdefault(k, []).append(v)

    for u in range(args.updates + 1):  # the first update warms up
        tot: dict[str, float] = {}
        groups = [pairs[(u * A + m) * B % len(pairs) :][:B] or pairs[:B] for m in range(A)]
        everything = [p for g in groups for p in g]
        # pgg: the update's K samples for all A x B articles in one generate call, METEOR in one pooled call
        src, _ = encode(ctx, everything)
        seqs, tot["sampling"] = timed(dev, lambda: sample_summaries(ctx, src, K, cfg.reward_top_k))
        texts = [postprocess(t) for t in ctx.tok.batch_decode(seqs, skip_special_tokens=True)]
        refs = [postprocess(t) for _, t in everything for _ in range(K)]
        true, tot["METEOR (pool)"] = timed(dev, lambda: ctx.meteor(texts, refs))
        true_all = torch.tensor(true, device=dev).view(-1, K)
        # the original: one generate call per micro-batch, one METEOR call per pair
        tot["sampling (per micro-batch)"] = 0.0
        for g in groups:
            gsrc, _ = encode(ctx, g)
            _, dt = timed(dev, lambda: sample_summaries(ctx, gsrc, K, cfg.reward_top_k))
            tot["sampling (per micro-batch)"] += dt
        _, tot["METEOR (per pair)"] = timed(dev, lambda: _score_chunk("meteor", list(zip(texts, refs))))

        def reward_update(reencode: bool) -> None:
            opt.zero_grad(set_to_none=True)
            for i in range(0, len(everything), B):
                part = {k: v[i : i + B] for k, v in src.items()}
                s, tt = seqs[i * K : (i + B) * K], true_all[i : i + B]
                mask = part["attention_mask"].repeat_interleave(K, 0)
                if reencode:
                    r = rm(part["input_ids"].repeat_interleave(K, 0), mask, decoder_input_ids=s)
                else:
                    enc = rm.encode(part["input_ids"], part["attention_mask"]).repeat_interleave(K, 0)
                    r = rm(part["input_ids"], mask, decoder_input_ids=s, encoder_hidden=enc)
                vm = sequence_mask(ctx, s)
                e = aggregate(r, vm, cfg.agg, cfg.agg_temp, scale=group_mean_length(vm, K)).view(-1, K)
                (listmle(e, tt) / A).backward()
            opt.step()

        _, tot["reward model"] = timed(dev, lambda: reward_update(False))
        _, tot["reward model (re-encode K x)"] = timed(dev, lambda: reward_update(True))
        _, tot["policy update (WMLE)"] = timed(dev, lambda: policy_update(ctx, groups))
        if u > 0:
            for k, v in tot.items():
                add(k, v)
    ctx.meteor.close()
    med = {k: statistics.median(v) for k, v in parts.items()}
    ours = med["sampling"] + med["METEOR (pool)"] + med["reward model"]
    orig = med["sampling (per micro-batch)"] + med["METEOR (per pair)"] + med["reward model (re-encode K x)"]
    print("| update | total s | sampling | METEOR | reward model | policy |")
    print("|---|---|---|---|---|---|")
    print(
        f"| pgg reward update | {ours:.3f} | {med['sampling']:.3f} | {med['METEOR (pool)']:.3f} | "
        f"{med['reward model']:.3f} | – |"
    )
    print(
        f"| original-structure reward update | {orig:.3f} | {med['sampling (per micro-batch)']:.3f} | "
        f"{med['METEOR (per pair)']:.3f} | "
        f"{med['reward model (re-encode K x)']:.3f} | – |"
    )
    print(
        f"| policy update (WMLE, reward model weights) | {med['policy update (WMLE)']:.3f} | – | – | – | "
        f"{med['policy update (WMLE)']:.3f} |"
    )


if __name__ == "__main__":
    main()
