"""Scorers for tests: the package's example, and one that breaks the contract."""

from engine.prompt.example_scorers import vowel_fraction  # noqa: F401


def wrong_length(prompts, examples):
    return [1.0]


def not_a_number(prompts, examples):
    return [float("nan")] * len(prompts)


def not_numbers(prompts, examples):
    return ["high"] * len(prompts)
