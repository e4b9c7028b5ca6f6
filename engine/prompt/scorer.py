"""The preference source of the prompt task: a frozen task LM reading a template, or a user's function.

All (prompt x example) pairs of a call go through chunked batched forwards (texts sorted by length so
chunks pad little), and the LM head is applied only where a verbalizer is read, never over the whole
sequence: at RoBERTa-large's 50k vocabulary, full logits would cost more memory than the model.

A user scorer is `package.module:function` with the signature

    def my_scorer(prompts: list[str], examples: list[Example]) -> Sequence[float]

returning one score per prompt (higher is better) for the batch of examples given (each has `.text`
and `.label`). It replaces the task LM everywhere: ranking for the reward model, validation, the
final choice and the test score.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from engine.errors import EngineError
from engine.losses import gap_reward
from engine.models import autocast, full_precision
from engine.prompt.data import CAUSAL_TEMPLATE, DatasetInfo, Example


@dataclass
class Scores:
    score: torch.Tensor  # (P,) mean gap reward (or the user's score) per prompt
    accuracy: torch.Tensor | None  # (P,) fraction of examples classified right; None for a user scorer


class TaskLMScorer:
    def __init__(
        self,
        model,
        tokenizer,
        kind: str,
        info: DatasetInfo,
        device: torch.device,
        batch: int = 512,
        bf16: bool = True,
        correct_coeff: float = 200.0,
        incorrect_coeff: float = 180.0,
    ):
        self.model = model.to(device).eval().requires_grad_(False)
        self.tok = tokenizer
        self.kind = kind
        self.device = device
        self.batch = batch
        self.bf16 = bf16
        self.coeffs = (correct_coeff, incorrect_coeff)
        self.template = info.masked_template if kind == "masked" else CAUSAL_TEMPLATE
        self.verbalizer_ids = torch.tensor([_single_token(tokenizer, v) for v in info.verbalizers], device=device)
        if self.tok.pad_token is None:
            self.tok.pad_token = self.tok.eos_token
        if kind == "masked":
            if self.tok.mask_token is None:
                raise EngineError(
                    "the task LM is read as a masked LM but its tokenizer has no mask token; set task_model_kind=causal"
                )
            # A trailing mask must survive truncation of long inputs (algorithm.md §7 #9).
            self.tok.truncation_side = "left" if self.template.endswith("{mask} .") else "right"
            self.head = getattr(model, "lm_head", None) or getattr(model, "cls", None)
            self.pieces = PieceEncoder(self.tok, self.template)
        else:
            self.body = model.base_model
            self.head = model.get_output_embeddings()

    def score(self, prompts: list[str], examples: list[Example]) -> Scores:
        probs = self.class_probs(prompts, examples)  # (P, N, C)
        labels = torch.tensor([e.label for e in examples], device=probs.device).expand(len(prompts), -1)
        reward, _ = gap_reward(probs, labels, *self.coeffs)
        # Accuracy as the original's evaluator counts it: argmax over the verbalizers (first class on a
        # tie), not the gap reward's `gap > 0`, which calls a tie right for every tied label.
        return Scores(reward.mean(1), (probs.argmax(-1) == labels).float().mean(1))

    def verbalizer_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """The head in float32 at the read positions, (b, d) -> (b, C). Under bf16, two verbalizer logits
        often round to one value, and the gap reward's tie rule turns every exact tie into a reward
        (algorithm.md §3.2); the original computes them in float32."""
        with full_precision(self.device):
            return self.head(hidden.float())[:, self.verbalizer_ids].float()

    @torch.no_grad()
    def class_probs(self, prompts: list[str], examples: list[Example]) -> torch.Tensor:
        """Verbalizer probabilities, (P, N, C)."""
        if self.kind == "masked":
            return self._masked(prompts, examples)
        return self._causal(prompts, examples)

    def _masked(self, prompts: list[str], examples: list[Example]) -> torch.Tensor:
        encoded = self.pieces.encode(prompts, [e.text for e in examples])  # P*N id lists, prompt-major
        order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
        out = torch.empty(len(encoded), len(self.verbalizer_ids), device=self.device)
        for start in range(0, len(order), self.batch):
            idx = order[start : start + self.batch]
            enc = _pad([encoded[i] for i in idx], self.tok.pad_token_id, self.device)
            rows = torch.arange(len(idx), device=self.device)
            pos = self._mask_position(enc["input_ids"])  # (b,)
            if self.head is not None:
                with autocast(self.device, self.bf16):
                    hidden = self.model.base_model(**enc).last_hidden_state[rows, pos]  # (b, d)
                logits = self.verbalizer_logits(hidden)
            else:  # no separable head: the whole forward in float32
                with full_precision(self.device):
                    logits = self.model(**enc).logits[rows, pos][:, self.verbalizer_ids].float()
            out[torch.tensor(idx, device=self.device)] = logits.softmax(-1)
        return out.view(len(prompts), len(examples), -1)

    def _mask_position(self, ids: torch.Tensor) -> torch.Tensor:
        """The template's own mask: the first for mask-first templates, else the last, so that a prompt which
        happens to spell the mask token cannot move where the verdict is read."""
        is_mask = (ids == self.tok.mask_token_id).int()  # (b, L)
        if self.template.startswith("{mask}"):
            return is_mask.argmax(1)
        return ids.shape[1] - 1 - is_mask.flip(1).argmax(1)  # right padding holds no mask

    def _causal(self, prompts: list[str], examples: list[Example]) -> torch.Tensor:
        """Sentence first, prompt after: each sentence's KV cache is computed once and reused for every prompt.

        Exact against templating the whole string for byte-level BPE tokenizers, which split before a space.
        """
        P = len(prompts)
        tok = self.tok
        tok.padding_side = "right"
        pr = tok([" " + p for p in prompts], padding=True, return_tensors="pt", add_special_tokens=False).to(
            self.device
        )
        p_ids, p_mask = pr["input_ids"], pr["attention_mask"]  # (P, Lp)
        p_last = p_mask.sum(1) - 1  # (P,) index of each prompt's last token
        per_chunk = max(1, self.batch // P)
        out = []
        for start in range(0, len(examples), per_chunk):
            chunk = examples[start : start + per_chunk]
            n = len(chunk)
            tok.padding_side = "left"
            sent = tok([e.text for e in chunk], padding=True, return_tensors="pt", add_special_tokens=False).to(
                self.device
            )
            s_mask = sent["attention_mask"]  # (n, Ls)
            s_pos = (s_mask.cumsum(1) - 1).clamp(min=0)
            with autocast(self.device, self.bf16):
                cache = self.body(
                    input_ids=sent["input_ids"], attention_mask=s_mask, position_ids=s_pos, use_cache=True
                ).past_key_values
                cache.batch_repeat_interleave(P)  # (n*P, ...) example-major, like the rows below
                mask = torch.cat([s_mask.repeat_interleave(P, 0), p_mask.repeat(n, 1)], 1)  # (nP, Ls+Lp)
                pos = s_mask.sum(1, keepdim=True).repeat_interleave(P, 0) + torch.arange(
                    p_ids.shape[1], device=self.device
                )
                hidden = self.body(
                    input_ids=p_ids.repeat(n, 1),
                    attention_mask=mask,
                    position_ids=pos,
                    past_key_values=cache,
                    use_cache=True,
                ).last_hidden_state  # (nP, Lp, d)
                last = hidden[torch.arange(n * P, device=self.device), p_last.repeat(n)]  # (nP, d)
            out.append(self.verbalizer_logits(last).softmax(-1).view(n, P, -1))
        return torch.cat(out, 0).transpose(0, 1)  # (P, N, C)


class PieceEncoder:
    """Token ids of `template` filled with (prompt, sentence), equal to tokenizing the whole string.

    The template is split around the sentence into before | sentence | after; each sentence is tokenized
    once and cached, each prompt's pieces once per call, and the ids concatenated with the special tokens.
    For byte-level BPE this is exact when pieces meet at one space followed by a non-space (the
    pre-tokenizer splits before such a space, so no token crosses the seam). Texts where that does not
    hold, inputs that need truncation, and other tokenizers take the whole-string path.
    """

    def __init__(self, tok, template: str):
        self.tok = tok
        head, _, tail = template.partition("{sentence_1}")
        # keep a space next to the sentence on the sentence's side: " word" is one BPE piece
        self.lead = " " if head.endswith(" ") else ""
        self.head, self.tail = head[: len(head) - len(self.lead)], tail
        self.template = template
        self.fast = "ByteLevel" in str(getattr(getattr(tok, "backend_tokenizer", None), "pre_tokenizer", ""))
        self.max_len = min(getattr(tok, "model_max_length", 512) or 512, 4096)
        self.cache: dict[str, list[int]] = {}
        # the special tokens around a single sequence, read off one encoding (<s> ... </s> for RoBERTa)
        probe, bare = tok("a")["input_ids"], tok("a", add_special_tokens=False)["input_ids"]
        i = next(i for i in range(len(probe)) if probe[i : i + len(bare)] == bare)
        self.prefix, self.suffix = probe[:i], probe[i + len(bare) :]
        self.budget = self.max_len - len(self.prefix) - len(self.suffix)

    def _ids(self, text: str) -> list[int]:
        ids = self.cache.get(text)
        if ids is None:
            ids = self.cache[text] = self.tok(text, add_special_tokens=False)["input_ids"]
        return ids

    def encode(self, prompts: list[str], sentences: list[str]) -> list[list[int]]:
        mask = self.tok.mask_token
        out: list[list[int]] = []
        for p in prompts:
            head = self.head.format(prompt=p, mask=mask)
            tail = self.tail.format(prompt=p, mask=mask)
            head_ids = self.tok(head, add_special_tokens=False)["input_ids"] if head else []
            tail_ids = self.tok(tail, add_special_tokens=False)["input_ids"] if tail else []
            for s in sentences:
                body = self.lead + s
                ids = head_ids + self._ids(body) + tail_ids if self._seams_ok(head, body, tail) else None
                if ids is None or len(ids) > self.budget:
                    full = self.template.format(sentence_1=s, prompt=p, mask=mask)
                    out.append(self.tok(full, truncation=True)["input_ids"])
                else:
                    out.append(self.prefix + ids + self.suffix)
        return out

    def _seams_ok(self, head: str, body: str, tail: str) -> bool:
        if not self.fast or not body or body.endswith((" ", "\t", "\n")):
            return False
        if head and (head[-1].isspace() or not body.startswith(" ") or body[1:2].isspace()):
            return False
        return not (tail and (not tail.startswith(" ") or tail[1:2].isspace()))


class UserScorer:
    def __init__(self, spec: str):
        self.spec = spec
        self.fn = load_user_function(spec)

    def score(self, prompts: list[str], examples: list[Example]) -> Scores:
        try:
            values = [float(v) for v in self.fn(list(prompts), list(examples))]
        except (TypeError, ValueError) as err:
            raise EngineError(f"scorer {self.spec} returned something other than numbers: {err}") from None
        if len(values) != len(prompts):
            raise EngineError(f"scorer {self.spec} returned {len(values)} scores for {len(prompts)} prompts")
        bad = [v for v in values if not math.isfinite(v)]
        if bad:
            raise EngineError(f"scorer {self.spec} returned {bad[0]} for a prompt; scores must be finite numbers")
        return Scores(torch.tensor(values), None)


def load_user_function(spec: str) -> Callable[[list[str], list[Example]], Sequence[float]]:
    module, sep, name = spec.partition(":")
    if not sep or not module or not name:
        raise EngineError(f"scorer {spec!r}: expected package.module:function")
    try:
        fn = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as err:
        raise EngineError(f"cannot load scorer {spec!r}: {err}") from None
    if not callable(fn):
        raise EngineError(f"scorer {spec!r} is not callable")
    return fn  # type: ignore[no-any-return]


def _pad(seqs: list[list[int]], pad_id: int, device: torch.device) -> dict[str, torch.Tensor]:
    """Right-pad id lists into input_ids and attention_mask (the tokenizer's pad() is slow in a hot loop)."""
    width = max(len(x) for x in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, x in enumerate(seqs):
        ids[i, : len(x)] = torch.tensor(x)
        mask[i, : len(x)] = 1
    return {"input_ids": ids.to(device), "attention_mask": mask.to(device)}


def _single_token(tokenizer, word: str) -> int:
    pieces = tokenizer.tokenize(word)
    if len(pieces) != 1:
        raise EngineError(f"verbalizer {word!r} is {len(pieces)} tokens for the task LM's tokenizer; it must be one")
    return int(tokenizer.convert_tokens_to_ids(pieces[0]))
