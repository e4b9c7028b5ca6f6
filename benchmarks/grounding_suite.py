"""Does grounding work, and when does it pay? pgg against sequence-level feedback at equal preference budgets.

    python benchmarks/grounding_suite.py [--steps 120] [--seeds 3] [--kinds decomposable,position,product,pair]

Synthetic preferences over the tiny policy's prompts (benchmarks/synthetic_preferences.py):
decomposable over tokens, position-weighted, and two non-decomposable ones (the best adjacent pair,
valued by the product of its token values or by a random table). For each, pgg
trains `--steps` policy steps with the tiny preset; its grounding quality (Kendall tau of the reward
model against the true score on fresh candidates) is recorded per reward phase. seq-reinforce and
rlprompt then train until they have spent the same number of preference queries on training signal
(one query: one prompt scored on one example). Reported: tau per phase, and the true score of the
sampled prompts over the last 20 steps, mean ± std over seeds, at that equal budget.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.errors import Cancelled  # noqa: E402
from engine.prompt.train import train  # noqa: E402
from engine.registry import plan_runs  # noqa: E402
from engine.report import MemoryReporter  # noqa: E402


class Budget(MemoryReporter):
    """Stops a run at the step where its training-signal queries reach the budget."""

    def __init__(self, budget: float | None):
        super().__init__()
        self.budget = budget

    def metrics(self, step: int, values: dict[str, float]) -> None:
        super().metrics(step, values)
        if self.budget is not None and values.get("queries/signal", 0.0) >= self.budget:
            self.stop = True


def run(
    kind: str, method: str, seed: int, steps: int, budget: float | None, extra: list[str], pgg_extra: list[str] = ()
) -> tuple[MemoryReporter, float]:
    overrides = [
        f"scorer=synthetic_preferences:{kind}",
        f"max_steps={steps}",
        "train_score_every=1",
        "max_test_examples=8",
        *extra,
    ]
    if method == "pgg":
        overrides += [f"eval_every={max(1, steps // 6)}", f"reward_retrain_every={max(1, steps // 6)}", *pgg_extra]
    else:  # long enough to reach the budget; eval every 20 as pgg's tiny preset
        overrides += ["eval_every=20", "early_stop=1000"]
    (spec,) = plan_runs("prompt", "toy-sentiment", method, str(seed), preset="tiny", overrides=overrides)
    rep = Budget(budget)
    t = time.perf_counter()
    with contextlib.suppress(Cancelled):  # the budget was spent
        train(spec.config, rep, tempfile.mkdtemp(prefix=f"gs-{kind}-{method}-"))
    return rep, time.perf_counter() - t


def fmt(xs: list[float]) -> str:
    return f"{statistics.mean(xs):.3f} ± {statistics.stdev(xs) if len(xs) > 1 else 0.0:.3f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=120, help="pgg's policy steps (sets the budget)")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--kinds", default="decomposable,position,product,pair")
    ap.add_argument("--set", nargs="*", default=[], help="extra settings for every run (key=value)")
    ap.add_argument("--pgg-set", nargs="*", default=[], help="extra settings for pgg's runs only")
    args = ap.parse_args()
    print(
        "| preference | tau per reward phase (pgg) | queries (signal) | pgg | seq-reinforce | rlprompt | s per seed |"
    )
    print("|---|---|---|---|---|---|---|")
    for kind in args.kinds.split(","):
        taus: list[list[float]] = []
        final: dict[str, list[float]] = {m: [] for m in ("pgg", "seq-reinforce", "rlprompt")}
        queries, secs = [], 0.0
        for seed in range(args.seeds):
            rep, t = run(kind, "pgg", seed, args.steps, None, args.set, args.pgg_set)
            secs += t
            taus.append(rep.series("reward/tau"))
            budget = rep.series("queries/signal")[-1]
            queries.append(budget)
            final["pgg"].append(statistics.mean(rep.series("train/score")[-20:]))
            for method in ("seq-reinforce", "rlprompt"):
                rep, t = run(kind, method, seed, 100 * args.steps, budget, args.set)
                secs += t
                final[method].append(statistics.mean(rep.series("train/score")[-20:]))
        # NaN: every fresh candidate was the same prompt (the policy collapsed), so no ordering to compare
        per_phase = [statistics.mean(ok) if (ok := [t for t in col if t == t]) else float("nan") for col in zip(*taus)]
        print(
            f"| {kind} | {', '.join(f'{t:.2f}' for t in per_phase)} | {statistics.mean(queries):,.0f} | "
            f"{fmt(final['pgg'])} | {fmt(final['seq-reinforce'])} | {fmt(final['rlprompt'])} | "
            f"{secs / args.seeds:.0f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
