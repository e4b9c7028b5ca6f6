"""Few-shot classification data for the prompt task: splits, templates and verbalizers per dataset.

Three sources, in this order: a folder in the original 16-shot layout (`data_dir`), pgg's built-in toy
set, or the Hugging Face hub (train and dev drawn as `shots` per class from the hub's train split,
deterministically from the dataset seed; the test split is the hub's labelled test set).
"""

from __future__ import annotations

import csv
import random
from dataclasses import dataclass
from pathlib import Path

from engine.errors import EngineError
from engine.models import DATA
from engine.registry import DATASET_SEED_DIRS

MASKED_TEMPLATE = "{sentence_1} {prompt} {mask} ."  # the original's default (fsc_reward.py:77-84)
TOPIC_TEMPLATE = "{mask} {prompt} {sentence_1}"  # AG News: the mask comes first
CAUSAL_TEMPLATE = "{sentence_1} {prompt}"  # next token = verbalizer; the sentence's KV cache is reused


@dataclass(frozen=True)
class Example:
    text: str
    label: int


@dataclass(frozen=True)
class DatasetInfo:
    verbalizers: tuple[str, ...]  # one per class, as text (" great" has its leading space)
    masked_template: str = MASKED_TEMPLATE
    hub: tuple[str, str | None, str, str] | None = None  # (path, config, text field, test split)


SENTIMENT2 = (" terrible", " great")
SENTIMENT5 = (" terrible", " bad", " okay", " good", " great")
DATASETS = {
    "sst-2": DatasetInfo(SENTIMENT2, hub=("SetFit/sst2", None, "text", "test")),
    "yelp-2": DatasetInfo(SENTIMENT2, hub=("yelp_polarity", None, "text", "test")),
    "mr": DatasetInfo(SENTIMENT2, hub=("rotten_tomatoes", None, "text", "test")),
    "cr": DatasetInfo(SENTIMENT2, hub=("SetFit/CR", None, "text", "test")),
    "sst-5": DatasetInfo(SENTIMENT5, hub=("SetFit/sst5", None, "text", "test")),
    "agnews": DatasetInfo(
        ("World", "Sports", "Business", "Tech"), TOPIC_TEMPLATE, hub=("ag_news", None, "text", "test")
    ),
    "toy-sentiment": DatasetInfo(SENTIMENT2),
}


@dataclass
class Splits:
    train: list[Example]
    dev: list[Example]
    test: list[Example]  # may be empty (yelp-2's 16-shot folders ship no test file)
    info: DatasetInfo


def read_tsv(path: Path) -> list[Example]:
    """One split of the 16-shot layout: a header, a `text` or `sentence` column and an int `label`.

    Read as the original reads it (pandas' defaults): a field wrapped in double quotes is unquoted and
    a doubled quote inside it is one quote. (Read literally, 1,440 of the 48,385 shipped rows differ.)
    Unlike pandas, a text such as "NA" stays text. Anything malformed fails with the file and line.
    """
    if not path.is_file():
        raise EngineError(f"{path} does not exist")
    examples: list[Example] = []
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.reader(f, delimiter="\t")
            header = next(reader, None)
            if header is None:
                raise EngineError(f"{path} is empty")
            col = "text" if "text" in header else "sentence"
            if col not in header or "label" not in header:
                raise EngineError(f"{path}: expected columns text (or sentence) and label, found {', '.join(header)}")
            ti, li = header.index(col), header.index("label")
            for row in reader:
                if not row:
                    continue  # blank lines, as pandas skips them
                if len(row) != len(header):
                    raise EngineError(f"{path}:{reader.line_num}: {len(row)} fields, the header has {len(header)}")
                try:
                    label = int(row[li])
                except ValueError:
                    raise EngineError(f"{path}:{reader.line_num}: label {row[li]!r} is not an integer") from None
                examples.append(Example(row[ti], label))
    except UnicodeDecodeError:
        raise EngineError(f"{path} is not UTF-8 text (binary, or another encoding such as UTF-16)") from None
    except csv.Error as err:
        raise EngineError(f"{path}: {err}") from None
    if not examples:
        raise EngineError(f"{path} has no examples")
    return examples


def kshot(texts: list[str], labels: list[int], shots: int, seed: int) -> tuple[list[Example], list[Example]]:
    """Draw `shots` examples per class for train and another, disjoint `shots` per class for dev."""
    rng = random.Random(seed)
    by_class: dict[int, list[int]] = {}
    for i, y in enumerate(labels):
        by_class.setdefault(y, []).append(i)
    train, dev = [], []
    for y in sorted(by_class):
        idx = by_class[y][:]
        if len(idx) < 2 * shots:
            raise EngineError(
                f"class {y} has {len(idx)} examples; {2 * shots} are needed for {shots}-shot train and dev"
            )
        rng.shuffle(idx)
        train += [Example(texts[i], y) for i in idx[:shots]]
        dev += [Example(texts[i], y) for i in idx[shots : 2 * shots]]
    rng.shuffle(train)
    rng.shuffle(dev)
    return train, dev


def load_splits(dataset: str, dataset_seed: int, data_dir: str = "", shots: int = 16, max_test: int = 0) -> Splits:
    info = DATASETS[dataset]
    if data_dir:
        folder = Path(data_dir) / dataset / DATASET_SEED_DIRS[dataset_seed]
        if not folder.is_dir():
            raise EngineError(f"no folder {folder} (dataset seed {dataset_seed})")
        test_path = folder / "test.tsv"  # yelp-2's 16-shot folders ship none
        splits = Splits(
            read_tsv(folder / "train.tsv"),
            read_tsv(folder / "dev.tsv"),
            read_tsv(test_path) if test_path.exists() else [],
            info,
        )
    elif dataset == "toy-sentiment":
        folder = DATA / "toy-sentiment"
        splits = Splits(
            read_tsv(folder / "train.tsv"), read_tsv(folder / "dev.tsv"), read_tsv(folder / "test.tsv"), info
        )
    else:
        splits = _from_hub(dataset, info, dataset_seed, shots)
    if max_test:
        splits.test = splits.test[:max_test]
    n_classes = len(info.verbalizers)
    for name in ("train", "dev", "test"):
        bad = [(i, e.label) for i, e in enumerate(getattr(splits, name)) if not 0 <= e.label < n_classes]
        if bad:
            raise EngineError(
                f"{dataset} {name} split, example {bad[0][0] + 1}: label {bad[0][1]}; "
                f"{dataset} has {n_classes} classes (0..{n_classes - 1})"
            )
    return splits


def _from_hub(dataset: str, info: DatasetInfo, dataset_seed: int, shots: int) -> Splits:
    import datasets

    path, config, field, test_split = info.hub  # type: ignore[misc]
    try:
        ds = datasets.load_dataset(path, config)
    except Exception as err:
        raise EngineError(
            f"cannot load dataset {dataset!r} ({path}) from the Hugging Face hub: {str(err).splitlines()[0][:160]}. "
            f"Offline, pass a folder in the 16-shot layout with --data-dir"
        ) from None
    train, dev = kshot(list(ds["train"][field]), list(ds["train"]["label"]), shots, 1000 + dataset_seed)
    test = [Example(t, y) for t, y in zip(ds[test_split][field], ds[test_split]["label"])]
    return Splits(train, dev, test, info)
