"""CUDA paths: run on a GPU machine with `pytest -m gpu` (CI has no GPU; the default run deselects them).

The CPU suite covers the same code under CPU autocast; these check what only CUDA does: bf16 autocast of
the frozen forwards, the GPU RNG streams a resumed run restores, generation under autocast.
"""

import pytest
import torch

from engine import checkpoint
from engine.models import load_model, load_tokenizer
from engine.prompt.data import load_splits
from engine.prompt.scorer import TaskLMScorer
from engine.registry import plan_runs
from engine.report import NullReporter

pytestmark = pytest.mark.gpu
cuda = torch.device("cuda")


def test_task_lm_under_bf16_keeps_float32_verdicts():
    splits = load_splits("toy-sentiment", 0)
    name = "toy-roberta"
    scorer = TaskLMScorer(
        load_model(name, "masked", "task", "t"),
        load_tokenizer(name, "task", "t"),
        "masked",
        splits.info,
        cuda,
        256,
        bf16=True,
    )
    exact = TaskLMScorer(
        load_model(name, "masked", "task", "t"),
        load_tokenizer(name, "task", "t"),
        "masked",
        splits.info,
        cuda,
        256,
        bf16=False,
    )
    prompts = ["it was", "simply", "the plot", "a b c", "overall it was"] * 8
    mixed, full = scorer.class_probs(prompts, splits.test), exact.class_probs(prompts, splits.test)
    assert mixed.dtype == torch.float32
    assert int((mixed[..., 0] == mixed[..., 1]).sum()) == int((full[..., 0] == full[..., 1]).sum())
    assert (mixed - full).abs().mean() < 0.02


def test_gpu_rng_streams_survive_a_checkpoint(tmp_path):
    torch.cuda.manual_seed_all(3)
    torch.randn(4, device=cuda)
    state = checkpoint.rng_state()
    expected = torch.randn(4, device=cuda)
    path = tmp_path / "last.pt"
    checkpoint.save(path, {"rng": state}, None)
    torch.randn(100, device=cuda)
    checkpoint.restore_rng(checkpoint.load(path, None, cuda)["rng"])
    assert torch.equal(torch.randn(4, device=cuda), expected)


def test_summarization_generates_in_bf16_and_trains_in_float32(tmp_path):
    from engine.summarize import train as sum_train

    (spec,) = plan_runs("summarize", "toy-news", "pgg", preset="tiny", overrides=["device=cuda"])
    ctx = sum_train.setup(spec.config, NullReporter(), tmp_path)
    dtypes = []
    ctx.policy.lm_head.register_forward_hook(lambda _m, _i, out: dtypes.append(out.dtype))
    sum_train.policy_loss(ctx, ctx.pairs.train[:2])
    assert dtypes == [torch.float32]
    sum_train.sample_summaries(ctx, sum_train.encode(ctx, ctx.pairs.train[:1])[0], 2, 5)
    assert torch.bfloat16 in dtypes
    ctx.true_score.close()
    ctx.meteor.close()


def test_tiny_prompt_run_on_cuda_grounds(tmp_path):
    from engine.prompt.train import train
    from engine.report import MemoryReporter

    (spec,) = plan_runs("prompt", "toy-sentiment", "pgg", preset="tiny", overrides=["device=cuda"])
    rep = MemoryReporter()
    results = train(spec.config, rep, tmp_path)
    assert results["env/device"].startswith("cuda"), results["env/device"]  # trained on the GPU, not a CPU fallback
    assert rep.series("reward/tau")[-1] > 0.3
    # the tiny preset tests on the first 64 toy-sentiment test sentences, 32 positive and 32 negative: one
    # verdict for all (every verbalizer pair tied, the first class wins) scores exactly 50; the top prompts of
    # a grounded run classify well above that (the same run on CPU, seeds 0-3: 84 to 100)
    assert 50 < results["test/accuracy"] <= 100, results["test/accuracy"]
