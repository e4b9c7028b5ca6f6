"""Example sequence-level preferences for `--set scorer=module:function` (and for the learning tests).

A scorer gets the batch of prompts and the examples they are scored on, and returns one number per
prompt; higher is preferred. Only the ordering of the numbers matters to the reward model (ListMLE).
"""

from __future__ import annotations

from collections.abc import Sequence

from engine.prompt.data import Example


def vowel_fraction(prompts: list[str], examples: list[Example]) -> Sequence[float]:
    """Prompts with more vowels are preferred: a synthetic preference a tiny policy can learn in minutes."""
    return [sum(c in "aeiou" for c in p.lower()) / max(1, len(p)) for p in prompts]
