"""Synthetic sequence-level preferences over the tiny policy's prompts, for benchmarks/grounding_suite.py.

Each is a `--set scorer=...` function: it reads the prompt's tokens (the tiny tokenizer's, the policy's
own) and ignores the examples. Values come from tables drawn once from a fixed seed.

- decomposable: the sum of a value per token (a token-level reward exists and AVG/SUM recover it);
- position: the same values, the first token weighted 4x (what matters is where a token stands);
- product: the best adjacent pair of tokens, a pair's value the product of its tokens' values (an
  interaction: no sum of token values equals it, but a model that sees the previous token can learn it);
- pair: the best adjacent pair of tokens, from a random table of pairs (no sum of token values equals it,
  and nothing about one pair tells the value of another).
"""

from __future__ import annotations

import functools
import random

from engine.models import tiny_tokenizer

VOCAB = 1024


@functools.cache
def _tables() -> tuple[list[float], dict[tuple[int, int], float]]:
    rng = random.Random(2023)
    token = [rng.gauss(0.0, 1.0) for _ in range(VOCAB)]
    pair: dict[tuple[int, int], float] = {}
    return token, pair


def _pair_value(a: int, b: int) -> float:
    _, pair = _tables()
    if (a, b) not in pair:
        pair[(a, b)] = random.Random(a * VOCAB + b).gauss(0.0, 1.0)
    return pair[(a, b)]


@functools.cache
def _tok():  # noqa: ANN202
    return tiny_tokenizer("causal")


def _ids(prompt: str) -> list[int]:
    return [i % VOCAB for i in _tok()(prompt, add_special_tokens=False)["input_ids"]] or [0]


def decomposable(prompts: list[str], examples: list) -> list[float]:  # noqa: ARG001
    token, _ = _tables()
    return [sum(token[i] for i in _ids(p)) / 5 for p in prompts]


def position(prompts: list[str], examples: list) -> list[float]:  # noqa: ARG001
    token, _ = _tables()
    out = []
    for p in prompts:
        ids = _ids(p)
        out.append((4 * token[ids[0]] + sum(token[i] for i in ids[1:])) / 8)
    return out


def product(prompts: list[str], examples: list) -> list[float]:  # noqa: ARG001
    token, _ = _tables()
    out = []
    for p in prompts:
        ids = _ids(p)
        out.append(max((token[a] * token[b] for a, b in zip(ids, ids[1:])), default=0.0))
    return out


def pair(prompts: list[str], examples: list) -> list[float]:  # noqa: ARG001
    out = []
    for p in prompts:
        ids = _ids(p)
        out.append(max((_pair_value(a, b) for a, b in zip(ids, ids[1:])), default=0.0))
    return out


KINDS = {"decomposable": "decomposable", "position": "position", "product": "product", "pair": "pair"}
