"""Summarization data: (source, target) pairs for train, validation and test.

`dataset` is a hub name (cnn_dailymail 3.0.0: article -> highlights; xsum: document -> summary), the
built-in `toy-news`, or a path to a local train file (.jsonl or .csv); its validation and test files
default to `validation.*` / `test.*` beside it and can be set. Source and target fields default by
dataset and can be set too.
"""

from __future__ import annotations

import csv
import json
import random
from dataclasses import dataclass
from pathlib import Path

from engine.config import SummarizeConfig
from engine.errors import EngineError
from engine.models import DATA

HUB = {
    "cnn_dailymail": ("cnn_dailymail", "3.0.0", "article", "highlights"),
    "xsum": ("EdinburghNLP/xsum", None, "document", "summary"),
}
LOCAL_FIELDS = (("article", "highlights"), ("document", "summary"), ("source", "target"), ("article", "summary"))


@dataclass
class Pairs:
    train: list[tuple[str, str]]
    validation: list[tuple[str, str]]
    test: list[tuple[str, str]]


def load_pairs(cfg: SummarizeConfig) -> Pairs:
    if cfg.dataset in HUB:
        pairs = _from_hub(cfg)
    else:
        train = DATA / "toy-news" / "train.jsonl" if cfg.dataset == "toy-news" else Path(cfg.dataset)
        val = Path(cfg.validation_file) if cfg.validation_file else _beside(train, "validation")
        test = Path(cfg.test_file) if cfg.test_file else _beside(train, "test")
        pairs = Pairs(_read(train, cfg), _read(val, cfg), _read(test, cfg))
    if cfg.max_train_examples and len(pairs.train) > cfg.max_train_examples:
        pairs.train = random.Random(cfg.dataset_seed).sample(pairs.train, cfg.max_train_examples)
    pairs.validation = pairs.validation[: cfg.max_val_examples or None]
    pairs.test = pairs.test[: cfg.max_test_examples or None]
    if not pairs.train:
        raise EngineError(f"dataset {cfg.dataset!r} has no training pairs")
    return pairs


def _beside(train: Path, split: str) -> Path:
    for ext in (train.suffix, ".jsonl", ".csv"):
        candidate = train.with_name(f"{split}{ext}")
        if candidate.exists():
            return candidate
    raise EngineError(f"no {split} file beside {train}; set it with --set {split}_file=PATH")


def _read(path: Path, cfg: SummarizeConfig) -> list[tuple[str, str]]:
    if not path.exists():
        raise EngineError(f"data file {path} does not exist")
    try:
        if path.suffix == ".csv":
            with open(path, newline="") as f:
                rows = list(csv.DictReader(f))
        else:
            rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    except (json.JSONDecodeError, csv.Error, UnicodeDecodeError) as err:
        raise EngineError(f"cannot read {path}: {err}") from None
    if not rows:
        return []
    src, tgt = cfg.source_field, cfg.target_field
    if not src or not tgt:
        found = next(((s, t) for s, t in LOCAL_FIELDS if s in rows[0] and t in rows[0]), None)
        if found is None and not (src and tgt):
            raise EngineError(
                f"{path}: cannot tell the source and target fields among {', '.join(rows[0])}; "
                f"set --set source_field=... --set target_field=..."
            )
        src, tgt = src or found[0], tgt or found[1]  # type: ignore[index]
    missing = [f for f in (src, tgt) if f not in rows[0]]
    if missing:
        raise EngineError(f"{path}: no field {missing[0]!r} (fields: {', '.join(rows[0])})")
    return [(str(r[src]), str(r[tgt])) for r in rows]


def _from_hub(cfg: SummarizeConfig) -> Pairs:
    import datasets

    path, config, src, tgt = HUB[cfg.dataset]
    src, tgt = cfg.source_field or src, cfg.target_field or tgt
    try:
        ds = datasets.load_dataset(path, config)
    except Exception as err:
        raise EngineError(
            f"cannot load dataset {cfg.dataset!r} from the Hugging Face hub: "
            f"{str(err).splitlines()[0][:160]}. Offline, pass local files: --dataset path/to/train.jsonl"
        ) from None
    return Pairs(*[list(zip(ds[s][src], ds[s][tgt])) for s in ("train", "validation", "test")])
