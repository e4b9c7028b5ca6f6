"""The tiny presets ground: their reward model ends well below the ListMLE chance level and ranks fresh
candidates as the true score does, and pgg trains a different model than its baseline.

(Before toy-roberta, every tiny prompt run's reward validation loss sat at ln 5! = 4.787 and summarization
pgg finished bit-identical to mle.)

The thresholds sit well outside the spread measured over seeds 0-5 (one CPU thread, the runs' default; the
numbers are in each test's docstring), not at what one seed just clears: a tiny run's numbers move with
the CPU's kernels (AVX2 vs AVX-512) as they do with the seed. A threshold one seed cleared by 0.002 failed
CI at two threads (issue 22).
"""

import math

import pytest

from engine.registry import plan_runs
from engine.report import MemoryReporter

pytestmark = pytest.mark.slow


def run(task, dataset, method, tmp_path):
    (spec,) = plan_runs(task, dataset, method, preset="tiny")
    trainer = {"prompt": "engine.prompt.train", "summarize": "engine.summarize.train"}[task]
    rep = MemoryReporter()
    results = __import__(trainer, fromlist=["train"]).train(spec.config, rep, tmp_path / method)
    return rep, results


def test_tiny_prompt_preset_grounds(tmp_path):
    """Seeds 0-5: last phase's best validation ListMLE 2.93-3.35 (chance 4.79; asserted below 4.29), its
    tau on fresh dev prompts 0.51-0.73 (asserted above 0.35)."""
    rep, results = run("prompt", "toy-sentiment", "pgg", tmp_path)
    chance = math.log(math.factorial(5))
    assert rep.series("reward/chance_loss") == pytest.approx([chance] * 2)
    best, tau = rep.series("reward/best_val_loss"), rep.series("reward/tau")
    print(f"best validation loss per phase {best}, tau {tau} (chance {chance:.3f})")
    assert best[-1] < chance - 0.5 and tau[-1] > 0.35
    signal, logging = rep.series("queries/signal"), rep.series("queries/logging")
    assert signal == sorted(signal) and logging == sorted(logging)  # counters only grow
    assert results["queries/signal"] == signal[-1] > results["queries/logging"] == logging[-1] > 0


def test_tiny_summarize_preset_grounds_and_differs_from_mle(tmp_path):
    """The reward validation loss is measured on 8 articles: noisy from phase to phase (seed 0: 1.77, 2.02,
    1.49, 2.69, 1.59), so no single phase's value is asserted. Seeds 0-5: the best phase's 1.27-1.51
    (chance 1.79; asserted below 1.64), the mean tau of the last three phases 0.36-0.56 (asserted above 0.25).
    The last phase alone (1.43-1.68) sat on either side of the old threshold 1.59."""
    rep, pgg = run("summarize", "toy-news", "pgg", tmp_path)
    _, mle = run("summarize", "toy-news", "mle", tmp_path)
    chance = math.log(math.factorial(3))
    val, tau = rep.series("reward/val_loss"), rep.series("reward/tau")
    print(f"validation loss per phase {val}, tau {tau} (chance {chance:.3f})")
    assert min(val) < chance - 0.15 and sum(tau[-3:]) / 3 > 0.25
    assert pgg["test/rouge1"] != mle["test/rouge1"]
    assert pgg["queries/signal"] > 0 and mle["queries/signal"] == 0
