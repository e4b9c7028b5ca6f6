"""Why does the reward model not ground on the pair preference? Replays the lists a pgg run ranked.

    python benchmarks/pair_diagnosis.py [--kind pair] [--passes 3] [--pretrain-steps 1000]
    python benchmarks/pair_diagnosis.py --save-context DIR [--pretrain-steps 1500]

Runs pgg on a synthetic preference (benchmarks/synthetic_preferences.py; tiny preset, 64 prompts per
policy step, soft-max aggregation) and records every prompt it had scored. Then three learners are fit
to the same reward-training prompts, ordered by their true score (ListMLE on each step's 16, `--passes`
passes over all steps so far before each grounding check), and each is asked to rank the run's fresh
grounding candidates, as `reward/tau` does:

- table: a free value per adjacent token pair and a soft maximum over them (the preference's exact form);
- tiny-gpt2: pgg's tiny reward model (TokenRewardModel on a 2-layer, 64-wide GPT-2 from random init);
- prev-token MLP: token rewards from the embeddings of the token and the one before it;
- context GPT-2: the same tiny GPT-2 first pretrained (`--pretrain-steps` on random token sequences) until its
  last hidden state names the current token and the previous one, as a pretrained LM's local-context
  features would; fine-tuned with the backbone at the head's learning rate (`reward_backbone_lr=1`, the
  original's one rate) and at a twentieth of it (`reward_backbone_lr=0.05`).

Printed per grounding check: the run's own tau, and each learner's tau on the lists it trained on (fit)
and on the fresh candidates. If the table ranks the fresh candidates well, the ranked lists held enough
information and the reward model is what fails.
"""

from __future__ import annotations

import argparse
import copy
import sys
import tempfile
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import synthetic_preferences as prefs  # noqa: E402
from engine.losses import aggregate, kendall_tau, listmle  # noqa: E402
from engine.models import tiny_tokenizer  # noqa: E402
from engine.prompt.train import train  # noqa: E402
from engine.registry import plan_runs  # noqa: E402
from engine.report import MemoryReporter  # noqa: E402
from engine.reward_model import TokenRewardModel  # noqa: E402

CALLS: list[tuple[int, int, list[str]]] = []  # (prompts, examples, prompts) per scorer call, in order
KIND = ["pair"]
TAU_CANDIDATES = 48  # told apart from the 16-prompt reward steps and the 64-prompt policy batches
LENGTH = 5


def recorded(prompts: list[str], examples: list) -> list[float]:
    """The scorer the run uses: the synthetic preference, with every call recorded."""
    CALLS.append((len(prompts), len(examples), list(prompts)))
    return getattr(prefs, KIND[0])(prompts, examples)


class Table(nn.Module):
    def __init__(self, vocab: int):
        super().__init__()
        self.vocab = vocab
        self.value = nn.Embedding(vocab * vocab, 1)
        nn.init.zeros_(self.value.weight)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        pair = ids[:, :-1] * self.vocab + ids[:, 1:]
        return torch.cat([torch.zeros_like(ids[:, :1], dtype=torch.float), self.value(pair).squeeze(-1)], 1)


class PrevToken(nn.Module):
    def __init__(self, vocab: int, d: int = 64, hidden: int = 64):
        super().__init__()
        self.emb = nn.Embedding(vocab + 1, d)  # + a start marker before the first token
        self.head = nn.Sequential(nn.Linear(2 * d, hidden), nn.ReLU(), nn.Linear(hidden, 1))
        self.start = vocab

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        prev = torch.cat([torch.full_like(ids[:, :1], self.start), ids[:, :-1]], 1)
        return self.head(torch.cat([self.emb(prev), self.emb(ids)], -1)).squeeze(-1)


def tiny_gpt2(vocab: int) -> nn.Module:
    from transformers import GPT2Config, GPT2Model

    return TokenRewardModel(
        GPT2Model(GPT2Config(vocab_size=vocab, n_positions=64, n_embd=64, n_layer=2, n_head=2)), hidden=64
    )


def context_gpt2(vocab: int, steps: int) -> nn.Module:
    """A tiny GPT-2 whose last hidden state holds (previous token, token): two linear read-outs are trained
    to name both on uniformly random sequences. Returned as a TokenRewardModel backbone."""
    from transformers import GPT2Config, GPT2Model

    with torch.random.fork_rng(devices=[]):  # the same backbone whatever ran before
        torch.manual_seed(0)
        backbone = GPT2Model(GPT2Config(vocab_size=vocab, n_positions=64, n_embd=64, n_layer=2, n_head=2))
        readout = nn.Linear(64, 2 * vocab)
        opt = torch.optim.Adam([*backbone.parameters(), *readout.parameters()], lr=3e-3)
        for _ in range(steps):
            x = torch.randint(0, vocab, (64, 8))
            out = readout(backbone(input_ids=x).last_hidden_state).view(64, 8, 2, vocab)
            loss = nn.functional.cross_entropy(
                out[:, :, 0].reshape(-1, vocab), x.reshape(-1)
            ) + nn.functional.cross_entropy(out[:, 1:, 1].reshape(-1, vocab), x[:, :-1].reshape(-1))
            opt.zero_grad()
            loss.backward()
            opt.step()
    names = (out[:, :, 0].argmax(-1) == x).float().mean(), (out[:, 1:, 1].argmax(-1) == x[:, :-1]).float().mean()
    print(
        f"context GPT-2 after {steps} pretraining steps names the token {names[0]:.0%} and the previous one "
        f"{names[1]:.0%} of the time"
    )
    return backbone


def batch(prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    kept = [(p, ids) for p in prompts if len(ids := prefs._ids(p)) == LENGTH]  # the preference reads these ids
    return torch.tensor([ids for _, ids in kept]), torch.tensor(getattr(prefs, KIND[0])([p for p, _ in kept], []))


def score(model: nn.Module, ids: torch.Tensor, temp: float) -> torch.Tensor:
    r = model(ids)
    return aggregate(r, torch.ones_like(r, dtype=torch.bool), "max", temp, scale=r.shape[1])


def replay(
    model: nn.Module,
    lr: float,
    temp: float,
    passes: int,
    checks: list[tuple[list, list[str]]],
    backbone_lr: float = 1.0,
) -> list[str]:
    groups = model.param_groups(lr, backbone_lr) if isinstance(model, TokenRewardModel) else model.parameters()
    opt = torch.optim.Adam(groups, lr=lr)
    out = []
    for seen, fresh in checks:
        model.train()
        for _ in range(passes):
            for ids, true in seen:
                loss = listmle(score(model, ids, temp)[None], true[None])
                opt.zero_grad()
                loss.backward()
                opt.step()
        model.eval()
        with torch.no_grad():
            fit = torch.stack([kendall_tau(score(model, ids, temp), true) for ids, true in seen[-50:]]).nanmean()
            ids, true = batch(fresh)
            out.append(f"{float(fit):.2f} / {float(kendall_tau(score(model, ids, temp), true)):.2f}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kind", default="pair")
    ap.add_argument("--steps", type=int, default=120)
    ap.add_argument("--passes", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--pretrain-steps", type=int, default=1000)
    ap.add_argument(
        "--save-context",
        metavar="DIR",
        help="only pretrain the context GPT-2 and save it to DIR (a reward_model=DIR for pgg runs)",
    )
    args = ap.parse_args()
    if args.save_context:
        context_gpt2(len(tiny_tokenizer("causal")), args.pretrain_steps).save_pretrained(args.save_context)
        return
    import pair_diagnosis as scorer  # the run imports the scorer by name: this file's second copy, not __main__

    scorer.KIND[0] = KIND[0] = args.kind
    torch.manual_seed(args.seed)
    overrides = [
        "scorer=pair_diagnosis:recorded",
        f"max_steps={args.steps}",
        "policy_batch=64",
        "agg=max",
        f"eval_every={args.steps // 6}",
        f"reward_retrain_every={args.steps // 6}",
        "max_test_examples=8",
        f"tau_candidates={TAU_CANDIDATES}",
    ]
    (spec,) = plan_runs("prompt", "toy-sentiment", "pgg", str(args.seed), preset="tiny", overrides=overrides)
    rep = MemoryReporter()
    train(spec.config, rep, tempfile.mkdtemp(prefix="pair-diagnosis-"))
    cfg = spec.config
    checks, seen = [], []
    full = max(m for _, m, _ in scorer.CALLS)  # a whole split; reward steps score a subset of the train split
    for n, m, prompts in scorer.CALLS:
        if n == cfg.reward_candidates and m < full:
            seen.append(batch(prompts))
        elif n == TAU_CANDIDATES:
            checks.append((list(seen), prompts))
    vocab = len(tiny_tokenizer("causal"))
    rows = {
        "table": replay(Table(vocab), 0.05, cfg.agg_temp, args.passes, checks),
        "tiny-gpt2 (pgg's)": replay(tiny_gpt2(vocab), cfg.reward_lr, cfg.agg_temp, args.passes, checks),
        "prev-token MLP": replay(PrevToken(vocab), cfg.reward_lr, cfg.agg_temp, args.passes, checks),
    }
    context = context_gpt2(vocab, args.pretrain_steps)
    for scale in (1.0, 0.05):
        model = TokenRewardModel(copy.deepcopy(context), hidden=cfg.reward_hidden)
        rows[f"context GPT-2, reward_backbone_lr={scale:g}"] = replay(
            model, cfg.reward_lr, cfg.agg_temp, args.passes, checks, backbone_lr=scale
        )
    print(
        f"{args.kind}: the run's tau per reward phase "
        f"{', '.join(f'{t:.2f}' for t in rep.series('reward/tau'))}; {len(seen)} reward steps of "
        f"{cfg.reward_candidates} prompts"
    )
    print("| learner | " + " | ".join(f"phase {i + 1} fit / fresh" for i in range(len(checks))) + " |")
    print("|---|" + "---|" * len(checks))
    for name, cells in rows.items():
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
