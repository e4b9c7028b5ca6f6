"""Writes pgg's toy preference sets for the rlhf task (run once; the files are committed; deterministic).

Prompts: 60 short single-user-message chats, "<verb> <topic>." from 5 verbs x 12 topics ("Describe the
weather.", "Say something about cats."). `split_by_prompt(fraction 0.2, seed 0)` holds about a fifth of
them out: test pairs and the eval prompts use only held-out prompts, train pairs only the others.
Responses: 3 to 8 lower-case words ending in ".", optionally opened by the prompt's topic, drawn from a
small vocabulary (engine.rlhf.data: TOY_GOOD, TOY_BAD, TOY_NEUTRAL, TOY_XOR).

toy-prefs (engine/data/toy-prefs/additive): the preference is KNOWN and additive over words,
`toy_preference(prompt, response)` = (# words in TOY_GOOD) - (# words in TOY_BAD); every word is good with
probability 0.2, bad 0.2, neutral otherwise, independently of the response length, so length says nothing.
Chosen scores strictly higher than rejected in every pair. A token-level reward can represent it exactly.

toy-prefs-xor (engine/data/toy-prefs/xor): the preference is `toy_preference_nonadditive`, 1 when exactly
one of "red" and "blue" occurs: chosen has exactly one, rejected has neither or both (half each). Every
other word is drawn as above and independently of the label, and "red" (and "blue") occurs in half of the
chosen and half of the rejected responses, so no sum of per-word values beats chance (50 %) in expectation.

Each folder: train.jsonl (400 pairs; xor 240), test.jsonl (100 pairs; xor 80) as TRL conversational rows with an
explicit prompt, {"prompt": [user], "chosen": [assistant], "rejected": [assistant]}, and eval.jsonl, the
held-out prompts only, {"prompt": [user]}. The files sit in sub-folders: engine.models' tiny tokenizer
trains on engine/data/toy-*/*.jsonl and must not change.
"""

import json
import random
from pathlib import Path

from engine.rlhf.data import (
    TOY_BAD,
    TOY_GOOD,
    TOY_NEUTRAL,
    TOY_XOR,
    split_by_prompt,
    toy_preference,
    toy_preference_nonadditive,
)

HERE = Path(__file__).parent / "toy-prefs"
VERBS = ["Describe", "Say something about", "Tell me about", "Write a line about", "Give your view of"]
TOPICS = [
    "the weather",
    "cats",
    "the sea",
    "music",
    "the city",
    "breakfast",
    "trains",
    "the garden",
    "winter",
    "books",
    "the market",
    "the river",
]
HELD_OUT = 0.2  # share of prompts held out for test and eval
SIZES = {"additive": {"train": 400, "test": 100}, "xor": {"train": 240, "test": 80}}


class Prompt:
    def __init__(self, verb: str, topic: str):
        self.topic = topic
        self.prompt = [{"role": "user", "content": f"{verb} {topic}."}]


def prompts() -> tuple[list[Prompt], list[Prompt]]:
    """(train prompts, held-out prompts)."""
    return split_by_prompt([Prompt(v, t) for v in VERBS for t in TOPICS], HELD_OUT, seed=0)


def word(rng: random.Random, xor_free: bool) -> str:
    u = rng.random()
    if u < 0.2:
        return rng.choice(TOY_GOOD)
    if u < 0.4:
        return rng.choice(TOY_BAD)
    return rng.choice(TOY_NEUTRAL if xor_free else TOY_NEUTRAL + TOY_XOR)


def response(rng: random.Random, topic: str, xor_words: tuple[str, ...] | None = None) -> str:
    """3-8 words; with `xor_words`, exactly those of TOY_XOR occur (inserted at random places)."""
    words = [word(rng, xor_free=xor_words is not None) for _ in range(rng.randint(3, 8) - len(xor_words or ()))]
    for w in xor_words or ():
        words.insert(rng.randint(0, len(words)), w)
    if rng.random() < 0.5:
        words = topic.split() + words
    return " ".join(words) + "."


def additive_pair(rng: random.Random, p: Prompt) -> dict[str, object]:
    while True:
        a, b = response(rng, p.topic), response(rng, p.topic)
        sa, sb = toy_preference(p.prompt, a), toy_preference(p.prompt, b)
        if sa != sb:
            chosen, rejected = (a, b) if sa > sb else (b, a)
            return row(p, chosen, rejected)


def xor_pair(rng: random.Random, p: Prompt) -> dict[str, object]:
    chosen = response(rng, p.topic, (rng.choice(TOY_XOR),))
    rejected = response(rng, p.topic, TOY_XOR if rng.random() < 0.5 else ())
    assert toy_preference_nonadditive(p.prompt, chosen) > toy_preference_nonadditive(p.prompt, rejected)
    return row(p, chosen, rejected)


def row(p: Prompt, chosen: str, rejected: str) -> dict[str, object]:
    return {
        "prompt": p.prompt,
        "chosen": [{"role": "assistant", "content": chosen}],
        "rejected": [{"role": "assistant", "content": rejected}],
    }


def write(kind: str, seed: int) -> None:
    rng = random.Random(seed)
    train_prompts, held = prompts()
    out = HERE / kind
    out.mkdir(parents=True, exist_ok=True)
    make = additive_pair if kind == "additive" else xor_pair
    for split, pool in (("train", train_prompts), ("test", held)):
        with open(out / f"{split}.jsonl", "w") as f:
            for _ in range(SIZES[kind][split]):
                f.write(json.dumps(make(rng, rng.choice(pool)), separators=(",", ":")) + "\n")
    with open(out / "eval.jsonl", "w") as f:
        f.writelines(json.dumps({"prompt": p.prompt}, separators=(",", ":")) + "\n" for p in held)


if __name__ == "__main__":
    write("additive", seed=0)
    write("xor", seed=1)
