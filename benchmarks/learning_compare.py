"""pgg against seq-reinforce and rlprompt at equal policy steps, on a synthetic preference (CPU, tiny models).

    python benchmarks/learning_compare.py [--steps 240] [--seeds 3]

Each method trains the tiny policy for the same number of policy steps with
`scorer=engine.prompt.example_scorers:vowel_fraction` (prompts with more vowels are preferred) and the
score of sampled prompts is logged every step. Reported: the mean score of the first and the last 20
steps, mean ± std over seeds, and the wall time per run. The tiny preset's learning rates are used for
all three methods, untuned per method.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.prompt.train import train  # noqa: E402
from engine.registry import plan_runs  # noqa: E402
from engine.report import MemoryReporter  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=240)
    ap.add_argument("--seeds", type=int, default=3)
    args = ap.parse_args()
    print("| method | score, first 20 steps | score, last 20 steps | gain | s per run |")
    print("|---|---|---|---|---|")
    for method in ("pgg", "seq-reinforce", "rlprompt"):
        firsts, lasts, secs = [], [], []
        for seed in range(args.seeds):
            cfg = plan_runs(
                "prompt",
                "toy-sentiment",
                method,
                str(seed),
                preset="tiny",
                overrides=[
                    "scorer=engine.prompt.example_scorers:vowel_fraction",
                    f"max_steps={args.steps}",
                    f"eval_every={args.steps // 6}",
                    f"reward_retrain_every={args.steps // 6}",
                    "train_score_every=1",
                    "max_test_examples=8",
                ],
            )[0].config
            rep = MemoryReporter()
            t = time.perf_counter()
            train(cfg, rep, tempfile.mkdtemp())
            secs.append(time.perf_counter() - t)
            s = rep.series("train/score")
            firsts.append(statistics.mean(s[:20]))
            lasts.append(statistics.mean(s[-20:]))
        gain = [b - a for a, b in zip(firsts, lasts)]
        sd = lambda xs: statistics.stdev(xs) if len(xs) > 1 else 0.0  # noqa: E731
        print(
            f"| {method} | {statistics.mean(firsts):.3f} ± {sd(firsts):.3f} | {statistics.mean(lasts):.3f} ± "
            f"{sd(lasts):.3f} | {statistics.mean(gain):+.3f} | {statistics.mean(secs):.1f} |"
        )


if __name__ == "__main__":
    main()
