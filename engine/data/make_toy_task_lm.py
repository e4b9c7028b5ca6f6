"""Builds `toy-roberta`, the task LM of the tiny prompt preset (run once; the folder is committed).

A random task LM gives a prompt no consistent score: its verdict on each sentence is noise, so a prompt
that scores well on the train split scores at chance on dev (measured: Kendall tau 0.05 between the two
over 3,000 prompts), and no reward model can learn a preference that is not there. `toy-roberta` is a
tiny RoBERTa (2 layers, width 64, 0.6 MB) pretrained here, in under a minute of CPU, as a masked LM on
sentences from pgg's toy sentiment grammar followed by a continuation. The continuation names the
sentence's sentiment (" great" / " terrible") only after a cue such as "it was" or "overall"; after other
words it is a neutral word. So, like RoBERTa on real reviews, the model knows sentiment, and a prompt
decides how much of it reaches the mask: a prompt that ends in a cue classifies well, one that does not
is near chance. The sentences are drawn from the grammar with their own seed.

    python engine/data/make_toy_task_lm.py     # writes engine/data/toy-roberta/
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

import torch

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parents[1]))

from engine.data.make_toy_data import OPENERS, SUBJECTS, sentiment  # noqa: E402

CUES = ["it was", "was", "it is", "is", "overall it was", "so it was", "simply", "truly", "really", "overall"]
NEUTRAL = ["today", "again", "here", "now", "too", "there", "then", "later", "also", "still"]
FILLER = sorted({w for phrase in SUBJECTS + OPENERS for w in phrase.replace(",", "").split()} | set(NEUTRAL))
STEPS, BATCH, LR, SEED = 1500, 64, 3e-3, 7


def corpus(rng: random.Random, n: int) -> list[tuple[str, str]]:
    """(text before the last word, the last word): the word follows the template's "<mask> ." slot."""
    lines = []
    for _ in range(n):
        y = rng.randint(0, 1)
        s = sentiment(rng, y)
        if rng.random() < 0.7:
            lines.append((f"{s} {rng.choice(CUES)}", " great" if y else " terrible"))
        else:
            words = " ".join(rng.choice(FILLER) for _ in range(rng.randint(1, 4)))
            lines.append((f"{s} {words}", " " + rng.choice(NEUTRAL)))
    return lines


def probe(model, tok, targets: list[int]) -> str:
    """Accuracy of the verbalizers after a cue and after a neutral word, on fresh sentences."""
    rng = random.Random(0)
    out = []
    for cue in ("it was", "today"):
        ys = [rng.randint(0, 1) for _ in range(64)]
        texts = [f"{sentiment(rng, y)} {cue} {tok.mask_token} ." for y in ys]
        enc = tok(texts, padding=True, return_tensors="pt")
        with torch.no_grad():
            logits = model(**enc).logits
        pos = (enc["input_ids"] == tok.mask_token_id).int().argmax(1)
        pred = logits[torch.arange(len(ys)), pos][:, targets].argmax(-1)  # 0: great, 1: terrible
        out.append(f"{cue!r} {(pred == 1 - torch.tensor(ys)).float().mean():.2f}")
    model.train()
    return ", ".join(out)


def build(out: Path = HERE / "toy-roberta") -> None:
    from transformers import AutoModelForMaskedLM, RobertaConfig

    from engine.models import tiny_tokenizer

    torch.manual_seed(SEED)
    rng = random.Random(SEED)
    tok = tiny_tokenizer("masked")
    ids, slots = [], []
    for head, word in corpus(rng, 8000):
        ids.append(tok(f"{head}{word} .")["input_ids"])
        slots.append(len(tok(head)["input_ids"]) - 1)  # <s> head </s>: the word takes </s>'s place
    cfg = RobertaConfig(
        vocab_size=len(tok),
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=128,
        max_position_embeddings=514,
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
    )
    model = AutoModelForMaskedLM.from_config(cfg)
    # Attention starts uniform (zero queries and keys): the mask then reads the sentence's bag of words
    # from the first step, and the sentiment is learnt in hundreds of steps instead of thousands.
    for layer in model.roberta.encoder.layer:
        for proj in (layer.attention.self.query, layer.attention.self.key):
            torch.nn.init.zeros_(proj.weight)
    opt = torch.optim.AdamW(model.parameters(), lr=LR)
    targets = [tok.convert_tokens_to_ids(tok.tokenize(w)[0]) for w in (" great", " terrible")]
    for step in range(1, STEPS + 1):
        pick_ids = torch.randint(0, len(ids), (BATCH,)).tolist()
        batch = [ids[i] for i in pick_ids]
        width = max(map(len, batch))
        x = torch.full((BATCH, width), tok.pad_token_id)
        att = torch.zeros(BATCH, width, dtype=torch.long)
        for i, b in enumerate(batch):
            x[i, : len(b)], att[i, : len(b)] = torch.tensor(b), 1
        # masked LM: 15% of the words, and the word before the final " ." most of the time
        r = torch.rand(x.shape)
        last = torch.zeros_like(att, dtype=torch.bool)
        last[torch.arange(BATCH), torch.tensor([slots[i] for i in pick_ids])] = True
        pick = ((r < 0.15) | (last & (r < 0.8))) & att.bool() & (x != tok.bos_token_id) & (x != tok.eos_token_id)
        labels = torch.where(pick, x, -100)
        loss = model(input_ids=x.masked_fill(pick, tok.mask_token_id), attention_mask=att, labels=labels).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 250 == 0:
            print(f"step {step}: loss {loss.item():.3f}, {probe(model, tok, targets)}", flush=True)
    assert all(isinstance(t, int) for t in targets)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    print(f"wrote {out}")


if __name__ == "__main__":
    build(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "toy-roberta")
