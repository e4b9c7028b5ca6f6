"""The rlhf task's preference data: formats, bad rows, streaming, prompt splits, tokenisation, batches, toy sets."""

import csv
import itertools
import json
import re

import pytest
import torch

from engine.errors import ConfigError, EngineError
from engine.rlhf import data as rd
from engine.rlhf.data import (
    PreferencePair,
    RankedList,
    check_file,
    collate,
    collate_pairs,
    encode_pair,
    encode_response,
    end_token_id,
    iter_lists,
    iter_pairs,
    iter_prompts,
    render_prompt,
    split_by_prompt,
    toy_preference,
    toy_preference_nonadditive,
)

USER = [{"role": "user", "content": "Describe the weather."}]
CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def write_csv(path, rows):
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        for r in rows:
            w.writerow({k: v if isinstance(v, str) else json.dumps(v) for k, v in r.items()})
    return path


def write_parquet(path, rows):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(rows), path, row_group_size=100)
    return path


WRITERS = {"jsonl": write_jsonl, "csv": write_csv, "parquet": write_parquet}


def assistant(text):
    return [{"role": "assistant", "content": text}]


# -- formats ------------------------------------------------------------------------------------------

ROWS = {
    "explicit text": (
        {"prompt": "Describe the weather.", "chosen": "lovely and warm.", "rejected": "grim."},
        USER,
        "lovely and warm.",
        "grim.",
    ),
    "explicit chat": (
        {"prompt": USER, "chosen": assistant("sunny."), "rejected": assistant("cold.")},
        USER,
        "sunny.",
        "cold.",
    ),
    "implicit chat": (
        {"chosen": USER + assistant("sunny."), "rejected": USER + assistant("cold.")},
        USER,
        "sunny.",
        "cold.",
    ),
    "explicit chat, prompt repeated": (
        {
            "prompt": "Describe the weather.",
            "chosen": USER + assistant("sunny."),
            "rejected": USER + assistant("cold."),
        },
        USER,
        "sunny.",
        "cold.",
    ),
    "explicit chat, more turns": (
        {
            "prompt": USER,
            "chosen": assistant("sunny.") + [{"role": "user", "content": "And?"}] + assistant("warm."),
            "rejected": assistant("sunny.") + [{"role": "user", "content": "And?"}] + assistant("cold."),
        },
        USER + assistant("sunny.") + [{"role": "user", "content": "And?"}],
        "warm.",
        "cold.",
    ),
    "implicit text": (
        {"chosen": "The sky is blue.", "rejected": "The sky is green."},
        [{"role": "user", "content": "The sky is"}],
        "blue.",
        "green.",
    ),
    "implicit text mid-word": (
        {"chosen": "The cat is great", "rejected": "The cat is grim"},
        [{"role": "user", "content": "The cat is"}],
        "great",
        "grim",
    ),
    "hh-rlhf": (
        {
            "chosen": "\n\nHuman: Hi\n\nAssistant: Hello!\n\nHuman: Weather?\n\nAssistant: Sunny today.",
            "rejected": "\n\nHuman: Hi\n\nAssistant: Hello!\n\nHuman: Weather?\n\nAssistant: Go away.",
        },
        [
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello!"},
            {"role": "user", "content": "Weather?"},
        ],
        "Sunny today.",
        "Go away.",
    ),
    "hh-rlhf explicit prompt": (
        {"prompt": "\n\nHuman: Weather?\n\nAssistant:", "chosen": " Sunny.", "rejected": " No."},
        [{"role": "user", "content": "Weather?"}],
        " Sunny.",
        " No.",
    ),
}


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
@pytest.mark.parametrize("case", list(ROWS))
def test_every_format_reads_every_row_kind(tmp_path, fmt, case):
    row, prompt, chosen, rejected = ROWS[case]
    path = WRITERS[fmt](tmp_path / f"train.{fmt}", [row, row])
    pairs = list(iter_pairs(path))
    assert pairs == [PreferencePair(prompt, chosen, rejected)] * 2
    where = {"jsonl": "line 2", "csv": "line 3", "parquet": "row 2"}[fmt]
    k = 1 + sum(v.count("\n") for v in row.values() if isinstance(v, str))
    if fmt == "csv" and k > 1:  # quoted newlines: a record of k lines
        where = f"lines {2 + k}-{1 + 2 * k}"
    assert pairs[1].where == f"{path} {where}"
    assert check_file(path) == []


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_rankings_give_lists_and_all_their_pairs(tmp_path, fmt):
    rows = [
        {"prompt": "Say something about cats.", "responses": ["great cats.", "cats.", "awful cats."]},
        {"prompt": "Describe the sea.", "responses": ["lovely sea.", "grim sea."]},
    ]
    path = WRITERS[fmt](tmp_path / f"r.{fmt}", rows)
    lists = list(iter_lists(path))
    assert [len(x.responses) for x in lists] == [3, 2] and lists[0].responses[0] == "great cats."
    pairs = list(iter_pairs(path))
    assert [(p.chosen, p.rejected) for p in pairs] == [
        ("great cats.", "cats."),
        ("great cats.", "awful cats."),
        ("cats.", "awful cats."),
        ("lovely sea.", "grim sea."),
    ]
    # a pair row is a list of 2
    pair = write_jsonl(tmp_path / "p.jsonl", [ROWS["explicit chat"][0]])
    assert list(iter_lists(pair)) == [RankedList(USER, ["sunny.", "cold."])]


def test_folders_splits_and_files_beside(tmp_path):
    row = ROWS["explicit text"][0]
    write_jsonl(tmp_path / "train.jsonl", [row] * 3)
    write_csv(tmp_path / "test.csv", [row])
    assert len(list(iter_pairs(tmp_path))) == 3  # several splits, none named: train
    assert len(list(iter_pairs(tmp_path, "test"))) == 1
    assert len(list(iter_pairs(tmp_path / "train.jsonl", "test"))) == 1  # the test file beside the train file
    with pytest.raises(ConfigError, match="no validation split"):
        list(iter_pairs(tmp_path, "validation"))
    with pytest.raises(ConfigError, match="no validation file beside"):
        list(iter_pairs(tmp_path / "train.jsonl", "validation"))
    shards = tmp_path / "hub" / "data"
    shards.mkdir(parents=True)
    for i in range(2):
        write_parquet(shards / f"train-0000{i}-of-00002.parquet", [row] * 2)
    assert len(list(iter_pairs(tmp_path / "hub"))) == 4  # one split: every shard
    with pytest.raises(ConfigError, match="no file or folder"):
        list(iter_pairs(tmp_path / "nope.jsonl"))
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(ConfigError, match="unknown format '.txt'"):
        list(iter_pairs(tmp_path / "x.txt"))


def test_hub_ids_stream_through_datasets(monkeypatch):
    """The hub path, offline: load_dataset is asked to stream, and its rows are checked as a file's are."""
    import datasets

    calls = []

    def fake(name, split=None, streaming=False):
        calls.append((name, split, streaming))
        return iter(
            [ROWS["hh-rlhf"][0], {"chosen": "\n\nHuman: a\n\nAssistant: b", "rejected": "\n\nHuman: a\n\nAssistant: b"}]
        )

    monkeypatch.setattr(datasets, "load_dataset", fake)
    it = iter_pairs("Anthropic/hh-rlhf", "test")
    assert next(it).chosen == "Sunny today." and calls == [("Anthropic/hh-rlhf", "test", True)]
    with pytest.raises(ConfigError, match=r"^Anthropic/hh-rlhf test row 2: chosen and rejected are the same"):
        next(it)
    skipped = []
    assert len(list(iter_pairs("Anthropic/hh-rlhf", on_error=skipped.append))) == 1 and len(skipped) == 1
    assert check_file("trl-lib/ultrafeedback_binarized") == []  # nothing downloaded at queue time

    def offline(*a, **k):
        raise ConnectionError("no network\nsecond line")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(EngineError, match="cannot load dataset 'trl-lib/ultrafeedback_binarized'") as err:
        list(iter_pairs("trl-lib/ultrafeedback_binarized"))
    assert "\n" not in str(err.value)


# -- bad rows -----------------------------------------------------------------------------------------

BAD = {
    "missing column": (
        {"prompt": "p", "chosen": "a", "answer": "b"},
        r"no 'rejected' column \(columns: prompt, chosen, answer\)",
    ),
    "missing both": ({"text": "p"}, "no 'chosen' and 'rejected' column"),
    "empty chosen": ({"prompt": "p", "chosen": "  ", "rejected": "b"}, "the chosen response is empty"),
    "empty rejected chat": (
        {"prompt": USER, "chosen": assistant("a"), "rejected": assistant("")},
        "rejected response is empty",
    ),
    "same": ({"prompt": "p", "chosen": "same", "rejected": "same"}, "chosen and rejected are the same response"),
    "wrong type": ({"prompt": "p", "chosen": 3, "rejected": "b"}, "wrong type: chosen must be text or a list"),
    "null": ({"prompt": None, "chosen": "a", "rejected": "b"}, "wrong type: prompt must be .* not null"),
    "mixed": ({"prompt": "p", "chosen": "a", "rejected": assistant("b")}, "chosen is text but rejected is a list"),
    "bad message": (
        {"prompt": [{"role": "user"}], "chosen": "a", "rejected": "b"},
        r"prompt\[0\] must be a \{role, content\}",
    ),
    "content type": (
        {"prompt": [{"role": "user", "content": ["x"]}], "chosen": "a", "rejected": "b"},
        r"prompt\[0\].content must be text",
    ),
    "last not assistant": (
        {"chosen": USER + assistant("a") + USER, "rejected": USER + assistant("b")},
        "last message of chosen is from 'user', not the assistant",
    ),
    "mismatched chat": (
        {"chosen": USER + assistant("a"), "rejected": [{"role": "user", "content": "other"}] + assistant("b")},
        "mismatched implicit prompts: chosen and rejected differ before their last message",
    ),
    "mismatched hh": (
        {"chosen": "\n\nHuman: a\n\nAssistant: x", "rejected": "\n\nHuman: b\n\nAssistant: y"},
        "mismatched implicit prompts: the text before the last",
    ),
    "no prompt": ({"chosen": assistant("a"), "rejected": assistant("b")}, "no prompt"),
    "no common text": ({"chosen": "yes", "rejected": "no"}, "share no prompt text"),
    "short ranking": ({"prompt": "p", "responses": ["only"]}, "a ranking needs at least 2"),
    "ranking without prompt": ({"responses": ["a", "b"]}, "needs a 'prompt' column"),
    "ranking duplicate": (
        {"prompt": "p", "responses": ["a", "b", "a"]},
        r"responses\[0\] and responses\[2\] are the same",
    ),
}


@pytest.mark.parametrize("case", list(BAD))
def test_a_bad_row_is_one_line_naming_file_and_line(tmp_path, case):
    row, message = BAD[case]
    good = ROWS["explicit text"][0]
    path = write_jsonl(tmp_path / "d.jsonl", [good, good, row, good])
    with pytest.raises(ConfigError, match=f"^{re.escape(str(path))} line 3: .*{message}") as err:
        list(iter_pairs(path))
    assert "\n" not in str(err.value)
    problems = check_file(path)
    assert len(problems) == 1 and problems[0] == str(err.value)


def test_unreadable_rows_and_files(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"chosen": "a b", "rejected": "a c"}\n\n{"chosen": \n[1, 2]\n')
    assert check_file(path) == [
        f"{path} line 3: not valid JSON (Expecting value, column 12)",
        f"{path} line 4: a row must be a JSON object, not a list",
    ]
    path.write_bytes(b"\xff\xfe{\x00")
    assert check_file(path) == [f"{path} is not UTF-8 text (binary, or another encoding such as UTF-16)"]
    bad_csv = tmp_path / "d.csv"
    bad_csv.write_text("prompt,chosen,rejected\np,a,b\np,a\np,a,b,extra\n")
    assert check_file(bad_csv) == [
        f"{bad_csv} line 3: 2 fields, the header has 3",
        f"{bad_csv} line 4: 4 fields, the header has 3",
    ]
    (tmp_path / "empty.jsonl").write_text("")
    assert check_file(tmp_path / "empty.jsonl") == [f"{tmp_path}/empty.jsonl has no rows"]
    (tmp_path / "bad.parquet").write_bytes(b"not parquet")
    assert check_file(tmp_path / "bad.parquet")[0].startswith(f"cannot read {tmp_path}/bad.parquet as Parquet")


def test_check_file_stops_at_20_problems_and_at_the_limit(tmp_path):
    good, bad = ROWS["explicit text"][0], BAD["same"][0]
    path = write_jsonl(tmp_path / "d.jsonl", [good, bad] * 100)
    problems = check_file(path)
    assert len(problems) == 20 and problems[-1].startswith(f"{path} line 40:")
    same = "chosen and rejected are the same response ('same')"
    assert check_file(path, limit=5) == [f"{path} line 2: {same}", f"{path} line 4: {same}"]  # 5 rows read


# -- streaming ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_streaming_yields_rows_before_a_late_bad_row(tmp_path, fmt):
    good = {"prompt": "Describe the weather.", "chosen": "lovely.", "rejected": "grim."}
    rows = [good] * 9_999 + [{"prompt": "Describe the weather.", "chosen": "x", "rejected": "x"}]
    path = WRITERS[fmt](tmp_path / f"big.{fmt}", rows)
    it = iter_pairs(path)
    assert [p.chosen for p in itertools.islice(it, 3)] == ["lovely."] * 3  # no error yet: the file is not all read
    where = {"jsonl": "line 10000", "csv": "line 10001", "parquet": "row 10000"}[fmt]
    with pytest.raises(ConfigError, match=f"{where}: chosen and rejected are the same"):
        list(it)


def test_reading_the_first_pair_reads_little_of_a_file(tmp_path, monkeypatch):
    path = write_jsonl(tmp_path / "big.jsonl", [ROWS["explicit text"][0]] * 5000)
    seen = []
    real = rd._jsonl_rows

    def counting(p):
        for item in real(p):
            seen.append(item)
            yield item

    monkeypatch.setattr(rd, "_jsonl_rows", counting)
    assert next(iter_pairs(path)).chosen == "lovely and warm." and len(seen) == 1


# -- split by prompt ----------------------------------------------------------------------------------


def test_split_by_prompt_is_deterministic_and_disjoint():
    pairs = [
        PreferencePair([{"role": "user", "content": f"prompt {i % 50}"}], f"good {i}", f"bad {i}") for i in range(500)
    ]
    rest, held = split_by_prompt(pairs, 0.3, seed=7)
    assert (rest, held) == split_by_prompt(pairs, 0.3, seed=7)
    assert len(rest) + len(held) == 500
    rest_prompts = {rd.prompt_text(p.prompt) for p in rest}
    held_prompts = {rd.prompt_text(p.prompt) for p in held}
    assert not rest_prompts & held_prompts and 5 <= len(held_prompts) <= 25  # about 30 % of 50 prompts
    assert split_by_prompt(pairs, 0.3, seed=8) != (rest, held)
    assert split_by_prompt(pairs, 0.0, 1)[1] == [] and split_by_prompt(pairs, 1.0, 1)[0] == []
    with pytest.raises(ConfigError, match=r"in \[0, 1\]"):
        split_by_prompt(pairs, 1.5, 0)


# -- tokenisation -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tokenizers_():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    def build(template):
        backend = Tokenizer(models.BPE(unk_token="<unk>"))
        backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        backend.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=400,
            special_tokens=["<pad>", "<unk>", "<|endoftext|>", "<|im_start|>", "<|im_end|>"],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )
        corpus = [
            " ".join(rd.TOY_GOOD + rd.TOY_BAD + rd.TOY_NEUTRAL),
            "Describe the weather. Say something about cats.",
        ] * 20
        backend.train_from_iterator(corpus, trainer=trainer)
        tok = PreTrainedTokenizerFast(
            tokenizer_object=backend, eos_token="<|endoftext|>", pad_token="<pad>", unk_token="<unk>"
        )
        tok.name_or_path = "tiny-chat" if template else "tiny-plain"
        if template:
            tok.chat_template = template
        return tok

    return build(CHATML), build(None)


def test_render_prompt_with_a_chat_template(tokenizers_):
    chat, _ = tokenizers_
    ids = render_prompt(chat, USER)
    assert chat.decode(ids) == "<|im_start|>user\nDescribe the weather.<|im_end|>\n<|im_start|>assistant\n"
    multi = [
        {"role": "system", "content": "Be kind."},
        *USER,
        *assistant("Sunny."),
        {"role": "user", "content": "More?"},
    ]
    assert chat.decode(render_prompt(chat, multi)).endswith(
        "<|im_start|>user\nMore?<|im_end|>\n<|im_start|>assistant\n"
    )
    assert end_token_id(chat) == chat.convert_tokens_to_ids("<|im_end|>")


def test_render_prompt_without_a_chat_template(tokenizers_):
    _, plain = tokenizers_
    assert plain.decode(render_prompt(plain, USER)) == "Describe the weather." + rd.PLAIN_SEPARATOR
    assert end_token_id(plain) == plain.eos_token_id
    multi = [*USER, *assistant("Sunny."), {"role": "user", "content": "More?"}]
    with pytest.raises(
        ConfigError,
        match=r"^model tiny-plain has no chat template; the data has multi-turn chat "
        r"\(roles user, assistant, user\)",
    ) as err:
        render_prompt(plain, multi)
    assert "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="multi-turn chat"):  # a system message is chat too
        render_prompt(plain, [{"role": "system", "content": "Be kind."}, *USER])


def test_end_token_follows_known_templates(tokenizers_):
    class Fake:
        eos_token_id, unk_token_id, name_or_path = 2, 1, "fake"
        chat_template = "... {{ '<|eot_id|>' }} ..."

        def convert_tokens_to_ids(self, t):
            return {"<|eot_id|>": 128009, "<|end|>": 32007}.get(t, 1)

    llama = Fake()
    assert end_token_id(llama) == 128009
    llama.chat_template = "<|user|> {{ m }} <|end|>"
    assert end_token_id(llama) == 32007  # Phi-3: not its eos
    llama.chat_template = "[INST] {{ m }} [/INST]"
    assert end_token_id(llama) == 2  # Mistral: eos
    llama.eos_token_id = None
    with pytest.raises(ConfigError, match="model fake has no end token"):
        end_token_id(llama)


def test_encode_pair_truncates_and_ends_every_response(tokenizers_):
    chat, plain = tokenizers_
    end = end_token_id(chat)
    pair = PreferencePair(USER, "lovely warm day.", "grim " * 40)
    full_prompt = render_prompt(chat, USER)
    enc = encode_pair(chat, pair, max_prompt_len=5, max_response_len=12, end_id=end)
    assert enc.prompt == full_prompt[-5:]  # left-truncated: the generation prompt is kept
    assert enc.chosen == chat("lovely warm day.", add_special_tokens=False)["input_ids"] + [end]  # fits: end appended
    assert len(enc.rejected) == 12 and enc.rejected[-1] == end  # cut: end overwrites the last kept token
    assert enc.rejected[:-1] == chat("grim " * 40, add_special_tokens=False)["input_ids"][:11]
    assert encode_response(chat, "warm<|im_end|>", 8, end).count(end) == 1  # an end token in the text is not doubled
    untouched = encode_pair(chat, pair, 1000, 1000, end)
    assert untouched.prompt == full_prompt
    with pytest.raises(
        ConfigError,
        match=r"^d.jsonl line 7: the prompt has \d+ tokens, more than the 8 positions of model "
        r"tiny-chat \(prompts longer than the model\)",
    ):
        encode_pair(chat, PreferencePair(USER, "a", "b", "d.jsonl line 7"), 4, 4, end, max_positions=8)
    with pytest.raises(ConfigError, match="more than the model's 16 positions"):
        encode_pair(chat, pair, 12, 8, end, max_positions=16)
    with pytest.raises(ConfigError, match="multi-turn"):
        encode_pair(plain, PreferencePair([*USER, *assistant("x"), *USER], "a", "b"), 64, 8, plain.eos_token_id)


def test_collate_masks_and_indices():
    batch = collate([[1, 2, 3], [4]], [[5, 6, 9], [7, 9]], pad_id=0)
    assert batch.input_ids.tolist() == [[1, 2, 3, 5, 6, 9], [4, 7, 9, 0, 0, 0]]
    assert batch.attention_mask.tolist() == [[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0]]
    assert batch.response_mask.tolist() == [[0, 0, 0, 1, 1, 1], [0, 1, 1, 0, 0, 0]]
    assert batch.response_start.tolist() == [3, 1] and batch.response_end.tolist() == [6, 3]
    last = batch.input_ids[torch.arange(2), batch.response_end - 1]
    assert last.tolist() == [9, 9]  # the end token, where a bandit reward is read
    pairs = collate_pairs([rd.EncodedPair([1, 2], [3, 9], [4, 4, 9]), rd.EncodedPair([5], [6, 9], [9])], pad_id=0)
    assert pairs.input_ids.tolist() == [[1, 2, 3, 9, 0], [5, 6, 9, 0, 0], [1, 2, 4, 4, 9], [5, 9, 0, 0, 0]]
    assert pairs.response_mask.sum(1).tolist() == [2, 2, 3, 1]
    with pytest.raises(ValueError):
        collate([[1]], [[]], 0)


# -- the toy sets -------------------------------------------------------------------------------------


def test_the_toy_sets_load_and_their_known_preference_agrees_on_every_row():
    for name, gold, sizes in (
        ("toy-prefs", toy_preference, (400, 100)),
        ("toy-prefs-xor", toy_preference_nonadditive, (240, 80)),
    ):
        train, test = list(iter_pairs(name, "train")), list(iter_pairs(name, "test"))
        assert (len(train), len(test)) == sizes
        for p in train + test:
            assert gold(p.prompt, p.chosen) > gold(p.prompt, p.rejected), p.where
            assert len(p.prompt) == 1 and p.prompt[0]["role"] == "user"
        eval_prompts = list(iter_prompts(name, "eval"))
        test_prompts = {rd.prompt_text(p.prompt) for p in test}
        assert {rd.prompt_text(p) for p in eval_prompts} >= test_prompts  # held-out prompts
        assert not test_prompts & {rd.prompt_text(p.prompt) for p in train}
        assert check_file(rd.BUILTIN[name]) == []
    # no sum of word values separates the xor pairs: "red" is as common in rejected as in chosen responses
    xor = list(iter_pairs("toy-prefs-xor"))
    share = [sum("red" in rd.toy_words(getattr(p, side)) for p in xor) / len(xor) for side in ("chosen", "rejected")]
    assert all(0.4 < s < 0.6 for s in share)


def test_toy_scores():
    assert toy_preference(USER, "Lovely, warm and grim.") == 1.0
    assert toy_preference("any prompt", "the day.") == 0.0
    assert [toy_preference_nonadditive(USER, t) for t in ("red day.", "blue day.", "red and blue.", "a day.")] == [
        1,
        1,
        0,
        0,
    ]


def test_the_module_loads_no_heavy_library():
    """check_file runs at queue time: importing the module must not load torch, pyarrow or datasets."""
    import subprocess
    import sys

    code = (
        "import sys, engine.rlhf.data; "
        "print([m for m in ('torch', 'transformers', 'datasets', 'pyarrow') if m in sys.modules])"
    )
    assert (
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "[]"
    )
