"""Preference data for the rlhf task: pairs and ranked lists, streamed and checked row by row, split by
prompt, and tokenised for a causal LM.

Sources (`iter_pairs`, `iter_lists`, `iter_prompts`, `check_file`):
- a local `.jsonl` (read line by line), `.csv` (the csv module, streamed) or `.parquet` file (pyarrow, in
  batches). With `split` set and the file named otherwise, the file of that split beside it is read
  (`data/train.jsonl`, split "test": `data/test.jsonl`, any of the three formats);
- a folder holding such files: `split` picks `<split>.<ext>` (or shards `<split>-*.<ext>`, also under a
  `data/` subfolder); with no split, a folder of one split is read, else its train split;
- the built-in `toy-prefs` and `toy-prefs-xor` (engine/data/make_toy_prefs.py; splits train, test, eval);
- a Hugging Face hub id such as `trl-lib/ultrafeedback_binarized` or `Anthropic/hh-rlhf`, streamed with
  `datasets.load_dataset(id, split=split or "train", streaming=True)`.

Row formats (TRL's preference formats, docs/source/dataset_formats.md, and pgg's ranking format):
- explicit prompt {prompt, chosen, rejected}; implicit prompt {chosen, rejected};
- each field plain text ("standard") or a list of {role, content} messages ("conversational"); in a CSV
  cell, a list of messages or of responses is written as JSON;
- ranking {prompt, responses: [r1, r2, ...]}, best first, K >= 2 (same response types as chosen).
A conversational response is a message list whose last message is the assistant's: its content is the
response, and the messages before it (the same in every response of the row) extend the prompt, unless they
start with the prompt's messages (HuggingFaceH4/ultrafeedback_binarized repeats the prompt); the implicit
prompt is exactly these: chosen[:-1], which must equal rejected[:-1].
A plain-text implicit prompt is split hh-rlhf style at the last "\\n\\nAssistant:" of each text (the text
before it must be the same in both), else at the longest common prefix, backed up to a word boundary (TRL's
`extract_prompt` works by characters). Text prompts become chat messages: an hh-rlhf transcript
("\\n\\nHuman: ... \\n\\nAssistant: ...") its turns, any other text one user message.

Every bad row is a ConfigError of one line that names the file, the line (JSONL, CSV) or row (Parquet,
hub) and the problem. `check_file` collects the problems of a file instead, for queue-time checks.

Nothing heavier than the standard library is imported with this module (torch, pyarrow and datasets are
imported where used), so the queue can call `check_file` and start fast.
"""

from __future__ import annotations

import csv
import hashlib
import itertools
import json
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from engine.errors import ConfigError, EngineError

if TYPE_CHECKING:
    import torch

Message = dict[str, str]  # {"role": ..., "content": ...}

DATA = Path(__file__).resolve().parents[1] / "data"
# In sub-folders: the tiny tokenizer (engine.models) trains on every engine/data/toy-*/*.jsonl and must not change.
BUILTIN = {"toy-prefs": DATA / "toy-prefs" / "additive", "toy-prefs-xor": DATA / "toy-prefs" / "xor"}
FORMATS = (".jsonl", ".csv", ".parquet")
HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")
HH_ASSISTANT = "\n\nAssistant:"
HH_TURN = re.compile(r"\n\n(Human|Assistant):")
MAX_PROBLEMS = 20  # check_file reports at most this many
PARQUET_BATCH = 256  # rows per pyarrow batch
# What follows a plain-text prompt for a tokenizer with no chat template: the response starts on a new line.
PLAIN_SEPARATOR = "\n"
# End-of-turn tokens of common chat templates: ChatML (Qwen, SmolLM2), Llama-3, Phi-3, Gemma, Command-R.
END_OF_TURN = ("<|im_end|>", "<|eot_id|>", "<|end|>", "<end_of_turn>", "<|END_OF_TURN_TOKEN|>")


@dataclass(frozen=True)
class PreferencePair:
    """One preference: the prompt as chat messages, and the final assistant responses as text."""

    prompt: list[Message]
    chosen: str
    rejected: str
    where: str = field(default="", compare=False)  # "file line N", for later errors about this row


@dataclass(frozen=True)
class RankedList:
    """A prompt and K >= 2 responses ranked best first (a pair is a list of 2)."""

    prompt: list[Message]
    responses: list[str]
    where: str = field(default="", compare=False)

    def pairs(self) -> list[PreferencePair]:
        """Every (better, worse) pair of the list, K(K-1)/2 of them (InstructGPT's use of a ranking)."""
        return [PreferencePair(self.prompt, a, b, self.where) for a, b in itertools.combinations(self.responses, 2)]


class _RowError(Exception):
    """A problem with one row; the caller prefixes where it is."""


# ---------------------------------------------------------------------------------------------------
# reading rows


def iter_lists(
    source: str | Path, split: str | None = None, on_error: Callable[[str], None] | None = None
) -> Iterator[RankedList]:
    """Ranked lists from `source` (see the module docstring), one row at a time. A pair row gives a list of 2.

    A bad row raises ConfigError; with `on_error`, it gets the message instead and the row is skipped
    (for hub sets with a few broken rows). Problems with the file itself always raise."""
    for where, row in _rows(source, split, on_error):
        try:
            prompt, responses = _parse(row)
        except _RowError as err:
            _fail(f"{where}: {err}", on_error)
            continue
        yield RankedList(prompt, responses, where)


def iter_pairs(
    source: str | Path, split: str | None = None, on_error: Callable[[str], None] | None = None
) -> Iterator[PreferencePair]:
    """Preference pairs from `source`, streamed. A ranking row of K responses gives its K(K-1)/2 pairs."""
    for ranked in iter_lists(source, split, on_error):
        yield from ranked.pairs()


def iter_prompts(
    source: str | Path, split: str | None = None, on_error: Callable[[str], None] | None = None
) -> Iterator[list[Message]]:
    """The prompts of `source`: prompt-only rows {prompt} (TRL's format for PPO and RLOO), or the prompt of
    each preference or ranking row."""
    for where, row in _rows(source, split, on_error):
        try:
            if "prompt" in row and not any(k in row for k in ("chosen", "rejected", "responses")):
                yield _prompt(row["prompt"])
            else:
                yield _parse(row)[0]
        except _RowError as err:
            _fail(f"{where}: {err}", on_error)


def check_file(path: str | Path, limit: int | None = None, split: str | None = None) -> list[str]:
    """Every problem of a local preference source (the first 20), one line each; [] when it reads clean.

    Streams like `iter_lists` (memory stays flat) and stops at the 20th problem, or after `limit` rows. A
    hub id is not checked here (nothing is downloaded): it returns []."""
    if _is_hub(path):
        return []
    problems: list[str] = []
    rows = 0

    def note(message: str) -> None:
        problems.append(message)
        if len(problems) >= MAX_PROBLEMS or (limit is not None and rows + len(problems) >= limit):
            raise _Enough

    try:
        for _ in iter_lists(path, split, note):
            rows += 1
            if limit is not None and rows + len(problems) >= limit:
                break
    except _Enough:
        pass
    except ConfigError as err:
        problems.append(str(err))
    if rows == 0 and not problems:
        problems.append(f"{path} has no rows")
    return problems[:MAX_PROBLEMS]


class _Enough(Exception):
    """check_file has seen enough."""


def _fail(message: str, on_error: Callable[[str], None] | None) -> None:
    if on_error is None:
        raise ConfigError(message)
    on_error(message)


def _is_hub(source: str | Path) -> bool:
    s = str(source)
    return (
        s not in BUILTIN
        and not Path(s).expanduser().exists()
        and HUB_ID.fullmatch(s) is not None
        and Path(s).suffix not in FORMATS
    )


def _rows(
    source: str | Path, split: str | None, on_error: Callable[[str], None] | None
) -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, row) for every row of the source. A row that cannot be read at all (bad JSON, not an object,
    a wrong field count) goes to `on_error` or raises; the rest is `_parse`'s job."""
    if _is_hub(source):
        yield from _hub_rows(str(source), split)
        return
    for path in _files(source, split):
        reader = {".jsonl": _jsonl_rows, ".csv": _csv_rows, ".parquet": _parquet_rows}[path.suffix]
        for where, row, problem in reader(path):
            if problem is not None:
                _fail(f"{where}: {problem}", on_error)
            elif row is not None:
                yield where, row


def _files(source: str | Path, split: str | None) -> list[Path]:
    s = str(source)
    if s in BUILTIN:
        return _in_folder(BUILTIN[s], split or "train")
    path = Path(s).expanduser()
    if path.is_dir():
        return _in_folder(path, split)
    if path.is_file():
        if path.suffix not in FORMATS:
            raise ConfigError(
                f"{path}: unknown format {path.suffix or '(no extension)'!r}; expected a .jsonl, .csv or .parquet file"
            )
        if split is None or path.stem == split:
            return [path]
        beside = [path.with_name(split + ext) for ext in (path.suffix, *FORMATS)]
        found = next((p for p in beside if p.is_file()), None)
        if found is None:
            raise ConfigError(f"no {split} file beside {path} ({split}.jsonl, .csv or .parquet)")
        return [found]
    raise ConfigError(
        f"no file or folder {s!r}, and it is not a built-in set ({', '.join(BUILTIN)}) "
        f"or a hub id such as trl-lib/ultrafeedback_binarized"
    )


def _in_folder(folder: Path, split: str | None) -> list[Path]:
    files = sorted(
        p for d in (folder, folder / "data") if d.is_dir() for p in d.iterdir() if p.is_file() and p.suffix in FORMATS
    )
    if not files:
        raise ConfigError(f"{folder} holds no .jsonl, .csv or .parquet file")

    def of(name: str) -> list[Path]:
        return [p for p in files if p.stem == name or re.match(rf"{re.escape(name)}[-_]\d", p.stem)]

    if split is None:
        splits = {re.sub(r"[-_]\d.*$", "", p.stem) for p in files}
        if len(splits) == 1:
            return files
        if not of("train"):
            raise ConfigError(f"{folder} holds several splits ({', '.join(sorted(splits))}): name one")
        split = "train"
    chosen = of(split)
    if not chosen:
        raise ConfigError(f"{folder} has no {split} split (files: {', '.join(p.name for p in files[:8])})")
    return chosen


Read = Iterator[tuple[str, dict[str, Any] | None, str | None]]  # (where, row, problem)


def _jsonl_rows(path: Path) -> Read:
    try:
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                where = f"{path} line {n}"
                try:
                    row = json.loads(line.rstrip("\r\n"))
                except json.JSONDecodeError as err:
                    yield where, None, f"not valid JSON ({err.msg}, column {err.colno})"
                    continue
                if not isinstance(row, dict):
                    yield where, None, f"a row must be a JSON object, not {_kind(row)}"
                    continue
                yield where, row, None
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not UTF-8 text (binary, or another encoding such as UTF-16)") from None
    except OSError as err:
        raise ConfigError(f"cannot read {path}: {err.strerror or err}") from None


def _csv_rows(path: Path) -> Read:
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            header = reader.fieldnames
            if not header:
                raise ConfigError(f"{path} is empty (a CSV file needs a header row)")
            end = reader.line_num
            for raw in reader:
                start, end = end + 1, reader.line_num  # a record can span lines (a quoted newline)
                where = f"{path} line {end}" if start >= end else f"{path} lines {start}-{end}"
                extra = raw.pop(None, None) or []
                missing = sum(v is None for v in raw.values())
                if extra or missing:
                    yield where, None, f"{len(header) - missing + len(extra)} fields, the header has {len(header)}"
                    continue
                yield where, {k: _cell(v) for k, v in raw.items()}, None
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not UTF-8 text (binary, or another encoding such as UTF-16)") from None
    except csv.Error as err:
        raise ConfigError(f"{path}: {err}") from None
    except OSError as err:
        raise ConfigError(f"cannot read {path}: {err.strerror or err}") from None


def _cell(value: str) -> Any:
    """A CSV cell: text, or a JSON list (messages, or a ranking's responses) when it is one."""
    if value.startswith("["):
        try:
            decoded = json.loads(value)
        except json.JSONDecodeError:
            return value
        if isinstance(decoded, list) and decoded and all(isinstance(x, (dict, str)) for x in decoded):
            return decoded
    return value


def _parquet_rows(path: Path) -> Read:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        batches = pq.ParquetFile(path).iter_batches(batch_size=PARQUET_BATCH)
        n = 0
        for batch in batches:
            for row in batch.to_pylist():
                n += 1
                yield f"{path} row {n}", row, None
    except (pa.ArrowException, OSError) as err:
        raise ConfigError(f"cannot read {path} as Parquet: {str(err).splitlines()[0][:160]}") from None


def _hub_rows(name: str, split: str | None) -> Iterator[tuple[str, dict[str, Any]]]:
    import datasets

    split = split or "train"
    try:
        ds = datasets.load_dataset(name, split=split, streaming=True)
    except Exception as err:
        raise EngineError(
            f"cannot load dataset {name!r} ({split} split) from the Hugging Face hub: "
            f"{(str(err).splitlines() or [type(err).__name__])[0][:160]}. "
            f"Offline, pass a local .jsonl, .csv or .parquet file"
        ) from None
    for n, row in enumerate(ds, 1):
        yield f"{name} {split} row {n}", dict(row)


# ---------------------------------------------------------------------------------------------------
# one row -> (prompt messages, responses best first)


def _parse(row: dict[str, Any]) -> tuple[list[Message], list[str]]:
    if "responses" in row:
        if "prompt" not in row:
            raise _RowError(f"a ranking row needs a 'prompt' column beside 'responses' (columns: {_columns(row)})")
        raw = row["responses"]
        if not isinstance(raw, list):
            raise _RowError(f"wrong type: responses must be a list of responses, best first, not {_kind(raw)}")
        if len(raw) < 2:
            raise _RowError(f"responses lists {len(raw)} response; a ranking needs at least 2, best first")
        names = [f"responses[{i}]" for i in range(len(raw))]
    elif "chosen" in row and "rejected" in row:
        raw, names = [row["chosen"], row["rejected"]], ["chosen", "rejected"]
    else:
        missing = " and ".join(repr(c) for c in ("chosen", "rejected") if c not in row)
        raise _RowError(
            f"no {missing} column (columns: {_columns(row)}); expected chosen and rejected "
            f"(prompt optional), or prompt and responses"
        )
    parsed = [_response(value, name) for value, name in zip(raw, names)]
    kinds = {isinstance(prefix, list) for prefix, _ in parsed}
    if len(kinds) > 1:
        text = next(n for n, (p, _) in zip(names, parsed) if not isinstance(p, list))
        chat = next(n for n, (p, _) in zip(names, parsed) if isinstance(p, list))
        raise _RowError(f"wrong types: {text} is text but {chat} is a list of messages")
    texts = [text for _, text in parsed]
    prefixes = [prefix for prefix, _ in parsed if prefix is not None]  # conversational responses only
    if prefixes:
        _same_prefix(prefixes, names)
    if "prompt" in row:
        prompt = _prompt(row["prompt"])
        if prefixes and prefixes[0][: len(prompt)] != prompt:  # messages before the response extend the prompt,
            prompt = prompt + prefixes[0]
        elif prefixes:  # unless they repeat it (HuggingFaceH4/ultrafeedback_binarized: prompt and full chats)
            prompt = prefixes[0]
    elif prefixes:
        prompt = prefixes[0]
        if not prompt:
            raise _RowError(
                f"{names[0]} and {names[1]} are single assistant messages: there is no prompt (add a prompt column)"
            )
    else:
        prompt, texts = _split_text(texts, names)
    for name, text in zip(names, texts):
        if not text.strip():
            raise _RowError(f"the {name} response is empty")
    for (i, a), (j, b) in itertools.combinations(enumerate(texts), 2):
        if a == b:
            raise _RowError(f"{names[i]} and {names[j]} are the same response ({_short(a)})")
    return prompt, texts


def _response(value: Any, name: str) -> tuple[list[Message] | None, str]:
    """(the messages before the response, or None for text; the response text)."""
    if isinstance(value, str):
        return None, value
    if isinstance(value, list):
        if not value:
            raise _RowError(f"the {name} response is an empty list of messages")
        messages = _messages(value, name)
        last = messages[-1]["role"]
        if last != "assistant":
            raise _RowError(f"the last message of {name} is from {last!r}, not the assistant")
        return messages[:-1], messages[-1]["content"]
    raise _RowError(f"wrong type: {name} must be text or a list of {{role, content}} messages, not {_kind(value)}")


def _prompt(value: Any) -> list[Message]:
    if isinstance(value, str):
        if not value.strip():
            raise _RowError("the prompt is empty")
        return _text_prompt(value)
    if isinstance(value, list):
        if not value:
            raise _RowError("the prompt is an empty list of messages")
        return _messages(value, "prompt")
    raise _RowError(f"wrong type: prompt must be text or a list of {{role, content}} messages, not {_kind(value)}")


def _messages(value: list[Any], name: str) -> list[Message]:
    out = []
    for i, m in enumerate(value):
        if not isinstance(m, dict) or "role" not in m or "content" not in m:
            raise _RowError(
                f"wrong type: {name}[{i}] must be a {{role, content}} message, not {_kind(m)}"
                + (f" with keys {', '.join(map(str, m))}" if isinstance(m, dict) else "")
            )
        for key in ("role", "content"):
            if not isinstance(m[key], str):
                raise _RowError(f"wrong type: {name}[{i}].{key} must be text, not {_kind(m[key])}")
        out.append({"role": m["role"], "content": m["content"]})
    return out


def _same_prefix(prefixes: list[list[Message]], names: list[str]) -> None:
    for prefix, name in zip(prefixes[1:], names[1:]):
        if prefix != prefixes[0]:
            at = next(
                (i for i, (a, b) in enumerate(zip(prefix, prefixes[0])) if a != b), min(len(prefix), len(prefixes[0]))
            )
            raise _RowError(
                f"mismatched implicit prompts: {names[0]} and {name} differ before their last message "
                f"({len(prefixes[0])} and {len(prefix)} messages before it, differing at message {at + 1})"
            )


def _split_text(texts: list[str], names: list[str]) -> tuple[list[Message], list[str]]:
    """An implicit text prompt: hh-rlhf style at the last "\\n\\nAssistant:", else the common prefix."""
    marks = [t.rfind(HH_ASSISTANT) for t in texts]
    if all(m >= 0 for m in marks):
        heads = [t[:m] for t, m in zip(texts, marks)]
        for head, name in zip(heads[1:], names[1:]):
            if head != heads[0]:
                raise _RowError(
                    f"mismatched implicit prompts: the text before the last '\\n\\nAssistant:' differs "
                    f"between {names[0]} and {name}"
                )
        if not heads[0].strip():
            raise _RowError(f"{names[0]} has no prompt before its '\\n\\nAssistant:' (add a prompt column)")
        return _hh_messages(heads[0]), [t[m + len(HH_ASSISTANT) :].lstrip() for t, m in zip(texts, marks)]
    if any(m >= 0 for m in marks):
        raise _RowError(f"mismatched implicit prompts: only some of {', '.join(names)} contain '\\n\\nAssistant:'")
    n = len(texts[0])
    for t in texts[1:]:
        n = min(n, next((i for i, (a, b) in enumerate(zip(texts[0], t)) if a != b), len(t)))
    cut = max(texts[0].rfind(" ", 0, n + 1), texts[0].rfind("\n", 0, n + 1))  # back to a word boundary
    head = texts[0][:cut].rstrip() if cut > 0 else ""
    if not head:
        raise _RowError(f"{' and '.join(names)} share no prompt text; add a prompt column")
    return [{"role": "user", "content": head}], [t[cut:].lstrip() for t in texts]


def _text_prompt(text: str) -> list[Message]:
    if text.startswith("Human:") or "\n\nHuman:" in text:
        messages = _hh_messages(text)
        if messages and messages[-1]["role"] == "assistant" and not messages[-1]["content"]:
            messages = messages[:-1]  # "...\n\nAssistant:" ends a prompt: the generation prompt, not a turn
        if messages:
            return messages
    return [{"role": "user", "content": text}]


def _hh_messages(text: str) -> list[Message]:
    """An hh-rlhf transcript ("\\n\\nHuman: ...\\n\\nAssistant: ...") as chat messages."""
    parts = HH_TURN.split("\n\n" + text if text.startswith(("Human:", "Assistant:")) else text)
    messages = [{"role": "user", "content": parts[0].strip()}] if parts[0].strip() else []
    for role, content in zip(parts[1::2], parts[2::2]):
        messages.append({"role": "user" if role == "Human" else "assistant", "content": content.strip()})
    return messages


def _columns(row: dict[str, Any]) -> str:
    return ", ".join(map(str, row)) or "none"


def _kind(value: Any) -> str:
    return {
        dict: "an object",
        list: "a list",
        str: "text",
        type(None): "null",
        bool: "a boolean",
        int: "a number",
        float: "a number",
    }.get(type(value), type(value).__name__)


def _short(text: str, n: int = 40) -> str:
    return repr(text if len(text) <= n else text[:n] + "...")


# ---------------------------------------------------------------------------------------------------
# splitting by prompt


class _HasPrompt(Protocol):
    @property
    def prompt(self) -> list[Message]: ...


T = TypeVar("T", bound=_HasPrompt)


def prompt_text(prompt: Sequence[Message]) -> str:
    """The prompt as one canonical string (what `split_by_prompt` hashes)."""
    return json.dumps([[m["role"], m["content"]] for m in prompt], ensure_ascii=False)


def prompt_fraction(prompt: Sequence[Message], seed: int) -> float:
    """A number in [0, 1) fixed by the prompt text and the seed (blake2b): the same on every machine."""
    digest = hashlib.blake2b(f"{seed}\0{prompt_text(prompt)}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") / 2**64


def split_by_prompt(items: Iterable[T], fraction: float, seed: int) -> tuple[list[T], list[T]]:
    """(rest, held): a prompt goes to `held` iff its hash is below `fraction`, so about that share of the
    prompts, every row of a prompt on one side, the same split for the same seed (the gold-RM half, or the
    held-out eval prompts)."""
    if not 0.0 <= fraction <= 1.0:
        raise ConfigError(f"the split fraction must be in [0, 1], not {fraction}")
    rest: list[T] = []
    held: list[T] = []
    for item in items:
        (held if prompt_fraction(item.prompt, seed) < fraction else rest).append(item)
    return rest, held


# ---------------------------------------------------------------------------------------------------
# tokenisation for a causal LM (tokenizer: a transformers tokenizer; typed Any to keep imports light)


def _name(tokenizer: Any) -> str:
    return str(getattr(tokenizer, "name_or_path", "") or type(tokenizer).__name__)


def has_chat_template(tokenizer: Any) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def render_prompt(tokenizer: Any, messages: Sequence[Message]) -> list[int]:
    """The prompt's token ids, ending where the assistant's response starts.

    With a chat template: the template with add_generation_prompt=True (it adds whatever special tokens it
    writes, e.g. BOS). Without one, only a prompt of one user message can be rendered: its content, then
    PLAIN_SEPARATOR ("\\n"), tokenised with the tokenizer's special tokens (Llama's BOS; a trailing EOS is
    dropped). Anything else (system messages, several turns) is chat the model was not made for: ConfigError."""
    if has_chat_template(tokenizer):
        ids = tokenizer.apply_chat_template(
            list(messages), add_generation_prompt=True, tokenize=True, return_dict=False
        )
        return [int(i) for i in ids]
    if len(messages) == 1 and messages[0]["role"] == "user":
        ids = [int(i) for i in tokenizer(messages[0]["content"] + PLAIN_SEPARATOR)["input_ids"]]
        eos = getattr(tokenizer, "eos_token_id", None)
        if ids and eos is not None and ids[-1] == eos:
            ids = ids[:-1]
        return ids
    roles = ", ".join(m["role"] for m in messages)
    raise ConfigError(
        f"model {_name(tokenizer)} has no chat template; the data has multi-turn chat (roles {roles}): "
        f"use a chat model, or prompts of one user message"
    )


def end_token_id(tokenizer: Any) -> int:
    """The id that ends a response: the chat template's end-of-turn token when it uses a known one
    (<|im_end|> ChatML/SmolLM2/Qwen, <|eot_id|> Llama-3, <|end|> Phi-3, <end_of_turn> Gemma), else EOS."""
    template = getattr(tokenizer, "chat_template", None)
    if template:
        text = template if isinstance(template, str) else json.dumps(template)
        unk = getattr(tokenizer, "unk_token_id", None)
        for token in END_OF_TURN:
            if token in text:
                tid = tokenizer.convert_tokens_to_ids(token)
                if isinstance(tid, int) and tid != unk:
                    return tid
    eos = getattr(tokenizer, "eos_token_id", None)
    if eos is None:
        raise ConfigError(
            f"model {_name(tokenizer)} has no end token: its tokenizer sets no eos_token "
            f"and its chat template no known end-of-turn token"
        )
    return int(eos)


@dataclass(frozen=True)
class EncodedPair:
    prompt: list[int]
    chosen: list[int]  # each response ends with the end token
    rejected: list[int]


@dataclass(frozen=True)
class EncodedList:
    prompt: list[int]
    responses: list[list[int]]  # best first


def check_lengths(max_prompt_len: int, max_response_len: int, max_positions: int | None = None) -> None:
    if max_prompt_len < 1 or max_response_len < 1:
        raise ConfigError(
            f"max_prompt_len ({max_prompt_len}) and max_response_len ({max_response_len}) must be at least 1"
        )
    if max_positions is not None and max_prompt_len + max_response_len > max_positions:
        raise ConfigError(
            f"max_prompt_len {max_prompt_len} + max_response_len {max_response_len} = "
            f"{max_prompt_len + max_response_len} tokens, more than the model's {max_positions} positions"
        )


def encode_prompt(
    tokenizer: Any, messages: Sequence[Message], max_prompt_len: int, max_positions: int | None = None, where: str = ""
) -> list[int]:
    """`render_prompt`, left-truncated to its last `max_prompt_len` tokens (a long chat keeps its latest
    turns and the generation prompt; a template's opening tokens may be cut, as in DR). A prompt longer than
    the model's `max_positions` on its own is a ConfigError naming the row."""
    ids = render_prompt(tokenizer, messages)
    if max_positions is not None and len(ids) > max_positions:
        raise ConfigError(
            f"{where or 'a row'}: the prompt has {len(ids)} tokens, more than the {max_positions} "
            f"positions of model {_name(tokenizer)} (prompts longer than the model); drop such rows"
        )
    return ids[-max_prompt_len:]


def encode_response(tokenizer: Any, text: str, max_response_len: int, end_id: int) -> list[int]:
    """The response's ids (no special tokens added; one trailing end token in the text is not doubled),
    then the end token. Over `max_response_len`, the response is cut on the right and the end token
    overwrites its last kept token (as DR does), so every response ends with the end token and has at most
    `max_response_len` ids."""
    ids = [int(i) for i in tokenizer(text, add_special_tokens=False)["input_ids"]]
    if ids and ids[-1] == end_id:
        ids = ids[:-1]
    if len(ids) + 1 > max_response_len:
        ids = ids[: max_response_len - 1]
    return ids + [end_id]


def encode_list(
    tokenizer: Any,
    item: RankedList | PreferencePair,
    max_prompt_len: int,
    max_response_len: int,
    end_id: int,
    max_positions: int | None = None,
) -> EncodedList:
    check_lengths(max_prompt_len, max_response_len, max_positions)
    responses = item.responses if isinstance(item, RankedList) else [item.chosen, item.rejected]
    return EncodedList(
        encode_prompt(tokenizer, item.prompt, max_prompt_len, max_positions, item.where),
        [encode_response(tokenizer, r, max_response_len, end_id) for r in responses],
    )


def encode_pair(
    tokenizer: Any,
    pair: PreferencePair,
    max_prompt_len: int,
    max_response_len: int,
    end_id: int,
    max_positions: int | None = None,
) -> EncodedPair:
    """Prompt ids (left-truncated), chosen and rejected ids (right-truncated, ending with `end_id`)."""
    enc = encode_list(tokenizer, pair, max_prompt_len, max_response_len, end_id, max_positions)
    return EncodedPair(enc.prompt, enc.responses[0], enc.responses[1])


# ---------------------------------------------------------------------------------------------------
# batches


@dataclass
class Batch:
    """Right-padded rows of prompt + response. For row i, input_ids[i, response_start[i]:response_end[i]]
    is the response; its end token sits at response_end[i] - 1 (where a bandit reward is read)."""

    input_ids: torch.Tensor  # (B, S) long, padded with pad_id
    attention_mask: torch.Tensor  # (B, S) long, 1 on prompt and response tokens
    response_mask: torch.Tensor  # (B, S) long, 1 on response tokens, the end token included
    response_start: torch.Tensor  # (B,) long: the first response position (= prompt length)
    response_end: torch.Tensor  # (B,) long: one past the end token (= row length)


def collate(prompts: Sequence[Sequence[int]], responses: Sequence[Sequence[int]], pad_id: int) -> Batch:
    """One row per (prompt, response), right-padded with `pad_id` (a tokenizer without a pad token: pass
    its EOS; the masks, not the ids, say what is padding)."""
    import torch

    if len(prompts) != len(responses) or not prompts:
        raise ValueError(f"collate needs as many prompts as responses, at least one ({len(prompts)}, {len(responses)})")
    if any(not r for r in responses):
        raise ValueError("collate: an empty response (encoded responses end with the end token)")
    starts = [len(p) for p in prompts]
    ends = [len(p) + len(r) for p, r in zip(prompts, responses)]
    width = max(ends)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    for i, (p, r) in enumerate(zip(prompts, responses)):
        ids[i, : ends[i]] = torch.tensor([*p, *r], dtype=torch.long)
    pos = torch.arange(width)
    start, end = torch.tensor(starts), torch.tensor(ends)
    attention = (pos < end[:, None]).long()
    response = ((pos >= start[:, None]) & (pos < end[:, None])).long()
    return Batch(ids, attention, response, start, end)


def collate_pairs(pairs: Sequence[EncodedPair], pad_id: int) -> Batch:
    """2B rows: the B chosen responses first, then the B rejected ones (row i and row B + i are one pair)."""
    prompts = [p.prompt for p in pairs] * 2
    return collate(prompts, [p.chosen for p in pairs] + [p.rejected for p in pairs], pad_id)


# ---------------------------------------------------------------------------------------------------
# the toy preference's known gold scores (engine/data/make_toy_prefs.py writes pairs labelled by them)

TOY_GOOD = ("great", "lovely", "bright", "kind", "happy", "warm")
TOY_BAD = ("awful", "dull", "grim", "sad", "cold", "ugly")
TOY_XOR = ("red", "blue")
TOY_NEUTRAL = (
    "the",
    "a",
    "it",
    "is",
    "and",
    "very",
    "today",
    "here",
    "seems",
    "quite",
    "still",
    "day",
    "so",
    "was",
    "this",
    "one",
    "with",
    "of",
    "all",
    "now",
)
_WORD = re.compile(r"[a-z]+")


def toy_words(response: str) -> list[str]:
    return _WORD.findall(response.lower())


def toy_preference(prompt: Any, response: str) -> float:
    """The toy set's gold score, additive over words: +1 per word of TOY_GOOD, -1 per word of TOY_BAD,
    every other word 0; the prompt is ignored. A token-level reward can represent it exactly."""
    words = toy_words(response)
    return float(sum(w in TOY_GOOD for w in words) - sum(w in TOY_BAD for w in words))


def toy_preference_nonadditive(prompt: Any, response: str) -> float:
    """The toy-prefs-xor gold score: 1 when exactly one of "red" and "blue" occurs, else 0 (an XOR).

    No sum of per-word values represents it: it would need v(red) > 0 and v(blue) > 0 (either alone beats
    neither) and v(red) + v(blue) < v(red) (both lose to one). A reward that reads the context can."""
    words = set(toy_words(response))
    return float(("red" in words) != ("blue" in words))
