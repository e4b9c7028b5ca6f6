"""Token vs segment vs bandit PPO at equal preference data, on preferences of known structure; and what one PPO
step costs at SmolLM2 size.

    python benchmarks/rlhf_bench.py                      # tiny preset, both toy preferences, seeds 0-4
    python benchmarks/rlhf_bench.py --seeds 0-9 --datasets toy-prefs
    python benchmarks/rlhf_bench.py --step-model ~/.cache/pgg/smollm2-135m-instruct   # + one PPO step's cost

`toy-prefs` prefers responses with more words from a good list and fewer from a bad one: a sum over tokens, which a
token-level reward can represent. `toy-prefs-xor` prefers responses holding exactly one of "red" and "blue": no sum
over tokens can represent it. Every method trains on the same pairs (the dataset's train split, split by prompt)
and is judged by the dataset's own preference function on held-out prompts: its win rate against the reference
policy (ties ½), mean over seeds with a 95% Student-t interval. The policy's KL to the reference and the reward
model's held-out pair accuracy are reported beside it, since a win bought with a large KL is a different claim.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.registry import parse_seeds, plan_runs  # noqa: E402
from engine.report import MemoryReporter  # noqa: E402
from pgg_tui.core.compare import t_interval  # noqa: E402

METHODS = ("token-ppo", "segment-ppo", "bandit-ppo")


def one_run(dataset: str, method: str, seed: int, overrides: list[str]) -> tuple[dict[str, float], float]:
    from engine.rlhf.train import train

    spec = plan_runs("rlhf", dataset, method, str(seed), preset="tiny", overrides=overrides)[0]
    t = time.perf_counter()
    res = train(spec.config, MemoryReporter(), tempfile.mkdtemp(prefix=f"rb-{method}-"))
    return res, time.perf_counter() - t


def compare(datasets: list[str], seeds: list[int], overrides: list[str]) -> None:
    print("| preference | method | win rate vs reference (95% t, n) | KL to reference | RM held-out accuracy | s/run |")
    print("|---|---|---|---|---|---|")
    for dataset in datasets:
        for method in METHODS:
            wins, kls, accs, secs = [], [], [], []
            for seed in seeds:
                res, took = one_run(dataset, method, seed, overrides)
                wins.append(float(res["test/win_rate"]))
                kls.append(float(res["test/kl"]))
                accs.append(float(res["reward/accuracy"]))
                secs.append(took)
                print(
                    f"  {dataset} {method} seed {seed}: win {wins[-1]:.3f} kl {kls[-1]:.2f} acc {accs[-1]:.2f}",
                    file=sys.stderr,
                    flush=True,
                )
            lo, hi = t_interval(wins) or (float("nan"), float("nan"))
            print(
                f"| {dataset} | {method} | {statistics.mean(wins):.3f} [{lo:.3f}, {hi:.3f}] (n={len(wins)}) | "
                f"{statistics.mean(kls):.2f} | {statistics.mean(accs):.3f} | {statistics.mean(secs):.0f} |",
                flush=True,
            )


def step_cost(model: str, method: str) -> None:
    """Wall time of one PPO step (sampling, scoring, the update) at the model's size on this machine, and the
    process's peak memory, from a run cut to two rollouts of 16 prompts."""
    from engine.rlhf.train import train

    sets = [
        f"policy_model={model}",
        "max_rollouts=2",
        "rollout_batch=16",
        "minibatch=8",
        "micro_batch=4",
        "gen_batch=16",
        "max_new_tokens=64",
        "max_pairs=64",
        "max_heldout_pairs=32",
        "eval_prompts=8",
        "val_prompts=8",
        "eval_samples=1",
        "rm_epochs=1",
        "threads=0",
    ]
    spec = plan_runs("rlhf", "toy-prefs", method, "0", preset="smollm2", overrides=sets)[0]
    rep = MemoryReporter()
    stamps: list[tuple[int, float]] = []
    original = rep.metrics

    def metrics(step: int, values: dict[str, float]) -> None:
        if "policy/loss" in values:
            stamps.append((step, time.perf_counter()))
        original(step, values)

    rep.metrics = metrics  # type: ignore[method-assign]
    t = time.perf_counter()
    train(spec.config, rep, tempfile.mkdtemp(prefix="rb-step-"))
    total = time.perf_counter() - t
    step = stamps[1][1] - stamps[0][1] if len(stamps) > 1 else float("nan")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # kB -> GB
    print(
        f"| {Path(model).name} | {method} | 16 prompts x 64 new tokens | {step:.1f} s | {peak:.1f} GB | "
        f"{total:.0f} s in all |"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0-4")
    ap.add_argument("--datasets", default="toy-prefs,toy-prefs-xor")
    ap.add_argument("--set", nargs="*", default=[], help="overrides for every run, key=value")
    ap.add_argument("--step-model", default=None, help="a local chat model folder: time one PPO step at its size")
    args = ap.parse_args()
    if args.step_model:
        print("| model | method | rollout | one PPO step | peak memory | |")
        print("|---|---|---|---|---|---|")
        for method in METHODS:
            step_cost(args.step_model, method)
        return
    compare(args.datasets.split(","), parse_seeds(args.seeds), args.set)


if __name__ == "__main__":
    main()
