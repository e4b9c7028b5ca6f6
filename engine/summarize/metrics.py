"""Sequence-level scores for summaries: METEOR (the default preference source) and ROUGE (validation and
test, or the preference source with `true_score=rouge*`).

METEOR is NLTK's implementation, the one behind Hugging Face `evaluate`'s meteor, called directly on
pre-tokenized text. It needs NLTK's WordNet for synonym matches and punkt for tokenizing; with no
network neither may be installed, so pgg checks once: with WordNet present (`python -m nltk.downloader
wordnet punkt_tab` on a machine with network, or an nltk_data folder on NLTK_DATA) METEOR is the full
metric; without it, METEOR matches exact words and Porter stems only (no synonyms), and tokenizing and
sentence splitting fall back to regular expressions. Which one ran is recorded in each run's results as
`meteor_wordnet`, `meteor_punkt` and `meteor_full` (both). ROUGE is Google's `rouge-score` with the Porter
stemmer, as `evaluate` uses.

Many pairs are scored in a process pool in chunks (one METEOR call per pair costs ~1 ms of Python).
"""

from __future__ import annotations

import functools
import multiprocessing as mp
import os
import re
from collections.abc import Sequence

_SENT = re.compile(r"(?<=[.!?])\s+")
_WORD = re.compile(r"\w+|[^\w\s]")


class _NoSynonyms:
    """A WordNet stand-in with no synsets: METEOR then matches exact words and stems only."""

    @staticmethod
    def synsets(*_args, **_kwargs):  # noqa: ANN205
        return []


@functools.cache
def wordnet_available() -> bool:
    try:
        from nltk.corpus import wordnet

        wordnet.synsets("dog")
        return True
    except LookupError:
        return False


def punkt_available() -> bool:
    """NLTK's punkt tokenizer data is installed (else words and sentences are split by regular expressions)."""
    return _punkt()


def meteor_flags() -> dict[str, bool]:
    """What a run's METEOR (and ROUGE-Lsum's sentence split) ran with, for its results: the full metric needs
    both; without them the numbers are not comparable with a full METEOR's."""
    wordnet, punkt = wordnet_available(), punkt_available()
    return {"meteor_wordnet": wordnet, "meteor_punkt": punkt, "meteor_full": wordnet and punkt}


@functools.cache
def _punkt() -> bool:
    try:
        import nltk

        nltk.sent_tokenize("A. B.")
        nltk.word_tokenize("a b")
        return True
    except LookupError:
        return False


def split_sentences(text: str) -> list[str]:
    if _punkt():
        import nltk

        return nltk.sent_tokenize(text)
    return [s for s in _SENT.split(text.strip()) if s]


def postprocess(text: str) -> str:
    """The original's post-processing: strip, split into sentences, join with newlines (for ROUGE-Lsum)."""
    return "\n".join(split_sentences(text.strip()))


def tokenize(text: str) -> list[str]:
    if _punkt():
        import nltk

        return nltk.word_tokenize(text)
    return _WORD.findall(text)


def meteor_one(hypothesis: str, reference: str) -> float:
    from nltk.translate.meteor_score import meteor_score

    if wordnet_available():
        from nltk.corpus import wordnet
    else:
        wordnet = _NoSynonyms()
    return float(meteor_score([tokenize(reference)], tokenize(hypothesis), wordnet=wordnet))


def rouge_one(hypothesis: str, reference: str, key: str) -> float:
    """One ROUGE F1 in [0, 1] (rouge1, rouge2, rougeL or rougeLsum), Porter-stemmed as `evaluate` does."""
    return float(_rouge_scorer().score(reference, hypothesis)[key].fmeasure)


ROUGE_KEYS = ("rouge1", "rouge2", "rougeL", "rougeLsum")
PAIR_METRICS = ("meteor",) + ROUGE_KEYS  # what a sequence-level preference can be


def score_pair(metric: str, hypothesis: str, reference: str) -> float:
    return meteor_one(hypothesis, reference) if metric == "meteor" else rouge_one(hypothesis, reference, metric)


def _score_chunk(metric: str, pairs: list[tuple[str, str]]) -> list[float]:
    return [score_pair(metric, h, r) for h, r in pairs]


class PairScorer:
    """A metric (METEOR or a ROUGE F1) for many (hypothesis, reference) pairs: in-process for a few, a
    spawn pool for many."""

    def __init__(self, metric: str = "meteor", workers: int = 0, min_pool: int = 64):
        if metric not in PAIR_METRICS:
            raise ValueError(f"unknown metric {metric!r}; choose one of {', '.join(PAIR_METRICS)}")
        self.metric = metric
        self.workers = workers or min(8, os.cpu_count() or 1)
        self.min_pool = min_pool
        self._pool: mp.pool.Pool | None = None

    def __call__(self, hypotheses: Sequence[str], references: Sequence[str]) -> list[float]:
        pairs = list(zip(hypotheses, references))
        if len(pairs) < self.min_pool or self.workers < 2:
            return _score_chunk(self.metric, pairs)
        if self._pool is None:  # spawn, not fork: the parent may hold CUDA state
            self._pool = mp.get_context("spawn").Pool(self.workers)
        size = -(-len(pairs) // self.workers)
        chunks = [(self.metric, pairs[i : i + size]) for i in range(0, len(pairs), size)]
        return [s for part in self._pool.starmap(_score_chunk, chunks) for s in part]

    def close(self) -> None:
        if self._pool is not None:
            self._pool.terminate()
            self._pool = None


@functools.cache
def _rouge_scorer():  # noqa: ANN202
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(list(ROUGE_KEYS), use_stemmer=True)


def rouge(predictions: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """Mean ROUGE-1/2/L/Lsum F1 x 100 over the pairs (texts already post-processed)."""
    scorer = _rouge_scorer()
    totals = dict.fromkeys(ROUGE_KEYS, 0.0)
    for p, r in zip(predictions, references):
        s = scorer.score(r, p)
        for k in ROUGE_KEYS:
            totals[k] += s[k].fmeasure
    n = max(1, len(predictions))
    return {k: 100 * v / n for k, v in totals.items()}
