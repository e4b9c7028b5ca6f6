"""A synthetic sequence-level preference for the learning test: prompts with more vowels score higher."""


def vowel_fraction(prompts, examples):
    return [sum(c in "aeiou" for c in p.lower()) / max(1, len(p)) for p in prompts]


def wrong_length(prompts, examples):
    return [1.0]
