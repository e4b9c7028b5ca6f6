"""The rlhf task's models: policy and reference (causal LMs), reward and value models (a backbone with a
per-token scalar head), the built-in tiny chat model, and the forwards that read response positions.

Names resolve as elsewhere in pgg (engine.models): a hub id, a local folder, or the built-in `tiny-gpt2`. Here
`tiny-gpt2` is a chat model: a 2-layer GPT-2 (n_embd 64) with random weights from a fixed seed and a small
byte-level BPE trained on the toy preference sets, with ChatML special tokens and template (`<|im_start|>`,
`<|im_end|>`), so chat prompts render as they would for SmolLM2 or Qwen.

Reward and value models follow DR (rlhf.md §2, §3.1): the causal LM's base model without its LM head, and
`score` = Linear(hidden, 1, bias=False) initialised N(0, std 1/(hidden + 1)), read at every position.

Position conventions on right-padded rows (engine.rlhf.data.collate), response token t at column p = idx[t]:
  log pi(y_t)      from the LM's logits at p - 1 (the distribution y_t was drawn from);
  H_t (segmenter)  entropy of the reference's logits at p (the next token's distribution, rlhf.md §7);
  r_phi(x, y_<=t)  the reward head at p;
  V_t              the value head at p - 1 (the state before action t, DR's critic).
"""

from __future__ import annotations

import copy
import functools
import json
from typing import Any

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from torch import Tensor, nn
from transformers import AutoConfig, AutoModelForCausalLM, GPT2Config, PreTrainedTokenizerFast

from engine import models as pgg_models
from engine.errors import ConfigError, EngineError
from engine.rlhf.data import BUILTIN

TINY = ("tiny-gpt2",)
CHATML = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
TINY_SPECIALS = ["<|endoftext|>", "<pad>", "<|im_start|>", "<|im_end|>"]
TINY_VOCAB = 512
TINY_POSITIONS = 256


# ---------------------------------------------------------------------------------------------------
# the tiny chat model


def _toy_texts() -> list[str]:
    """Every prompt and response of the toy preference sets' train splits (what the tiny BPE learns from)."""
    out = []
    for folder in BUILTIN.values():
        for line in (folder / "train.jsonl").read_text().splitlines():
            row = json.loads(line)
            for key in ("prompt", "chosen", "rejected"):
                out += [m["content"] for m in row[key]]
    return out + ["user assistant system"] * 50  # the chat roles as whole tokens


@functools.cache
def _tiny_backend() -> str:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=TINY_VOCAB,
        special_tokens=TINY_SPECIALS,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )  # any text encodes
    tok.train_from_iterator(_toy_texts(), trainer=trainer)
    return tok.to_str()


def tiny_chat_tokenizer() -> PreTrainedTokenizerFast:
    tok = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer.from_str(_tiny_backend()),
        bos_token="<|endoftext|>",
        eos_token="<|endoftext|>",
        pad_token="<pad>",
        additional_special_tokens=["<|im_start|>", "<|im_end|>"],
    )
    tok.chat_template = CHATML
    tok.name_or_path = "tiny-gpt2"
    return tok


def _tiny_config(tok: PreTrainedTokenizerFast) -> GPT2Config:
    return GPT2Config(
        vocab_size=len(tok),
        n_positions=TINY_POSITIONS,
        n_embd=64,
        n_layer=2,
        n_head=2,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )


# ---------------------------------------------------------------------------------------------------
# loading by name


def load_tokenizer(name: str, role: str, field: str) -> Any:
    tok = tiny_chat_tokenizer() if name in TINY else pgg_models.load_tokenizer(name, role, field)
    if tok.pad_token_id is None:  # Llama-3 has none: pad with EOS, the masks say what is padding
        tok.pad_token = tok.eos_token
    return tok


def load_causal_lm(name: str, role: str, field: str) -> Any:
    """A causal LM with dropout off (as TRL's PPO: the ratio of a response's log-probs under the policy that
    sampled it is then exactly 1 at the first update, and reward and value forwards are deterministic)."""
    if name in TINY:
        cfg = _tiny_config(tiny_chat_tokenizer())
        model = pgg_models._fixed_seed_init(name, lambda: AutoModelForCausalLM.from_config(cfg))
    else:
        model = pgg_models.load_model(name, "causal", role, field)
    if getattr(model.config, "is_encoder_decoder", False):
        raise ConfigError(
            f"{field}={name!r} is an encoder-decoder model; the rlhf task needs a causal (decoder-only) LM"
        )
    for m in model.modules():
        if isinstance(m, nn.Dropout):
            m.p = 0.0
    return model


def model_positions(name: str, role: str, field: str) -> int | None:
    """The positions a model reads, from its config alone (cheap: the data is checked against it before the
    weights load)."""
    if name in TINY:
        return TINY_POSITIONS
    try:
        cfg = AutoConfig.from_pretrained(name, **pgg_models._hub_kwargs(name))
    except Exception as err:
        raise pgg_models._load_error(name, role, field, err) from None
    return _positions(cfg)


def _positions(cfg: Any) -> int | None:
    for key in ("n_positions", "max_position_embeddings"):
        value = getattr(cfg, key, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def same_tokenizer(a: Any, b: Any) -> bool:
    return a.get_vocab() == b.get_vocab()


def freeze(model: nn.Module) -> nn.Module:
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


# ---------------------------------------------------------------------------------------------------
# reward and value models


class ScalarHeadModel(nn.Module):
    """A causal LM's base model and a scalar head on every position: (B, S) values (DR `score`, rlhf.md §2)."""

    def __init__(self, backbone: nn.Module):
        super().__init__()
        self.backbone = backbone.train().requires_grad_(True)  # fully fine-tuned (DR: LoRA rank 0)
        cfg = backbone.config
        hidden = getattr(cfg, "hidden_size", None) or cfg.n_embd
        self.score = nn.Linear(hidden, 1, bias=False)
        nn.init.normal_(self.score.weight, std=1.0 / (hidden + 1))

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        h = self.backbone(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state  # (B, S, H)
        return self.score(h.float()).squeeze(-1)  # (B, S), float32


def adapt(model: nn.Module, rank: int, checkpointing: bool) -> nn.Module:
    """LoRA adapters (peft) on every linear layer of `model`, its other weights frozen (rank 0: unchanged), and
    gradient checkpointing when asked."""
    if checkpointing:
        model.gradient_checkpointing_enable()  # type: ignore[operator]
    if not rank:
        return model
    from peft import LoraConfig, get_peft_model

    if checkpointing:
        model.enable_input_require_grads()  # type: ignore[operator]  # checkpointed inputs of frozen embeddings
    return get_peft_model(model, LoraConfig(r=rank, lora_alpha=2 * rank, lora_dropout=0.0, target_modules="all-linear"))


def base_model(lm: nn.Module) -> nn.Module:
    """A copy of a causal LM's transformer without its LM head (the reward and value backbones start from it)."""
    base = getattr(lm, "base_model", None)
    if base is None or base is lm:
        raise EngineError(f"cannot find the base model of {type(lm).__name__} (no base_model_prefix)")
    return copy.deepcopy(base)


def scalar_model(name: str, policy: nn.Module, policy_name: str, role: str, field: str) -> ScalarHeadModel:
    """A reward or value model: from the (possibly warmed-up) policy's transformer when `name` is empty or the
    policy's own name, else from `name`'s base model."""
    if not name or name == policy_name:
        return ScalarHeadModel(base_model(policy))
    return ScalarHeadModel(base_model(load_causal_lm(name, role, field)))


# ---------------------------------------------------------------------------------------------------
# forwards at response positions


def response_index(start: Tensor, end: Tensor) -> tuple[Tensor, Tensor]:
    """Columns of each row's response tokens, right-padded: idx (B, T) long and mask (B, T) bool, T the longest
    response. Padding entries of idx point at the row's start (a valid column)."""
    lengths = end - start  # (B,)
    T = int(lengths.max().item())
    t = torch.arange(T, device=start.device)
    mask = t[None, :] < lengths[:, None]
    idx = torch.where(mask, start[:, None] + t[None, :], start[:, None])
    return idx, mask


def _at(x: Tensor, idx: Tensor) -> Tensor:
    """x (B, S, ...) at columns idx (B, T) -> (B, T, ...)."""
    if x.dim() == 2:
        return x.gather(1, idx)
    return x.gather(1, idx[..., None].expand(-1, -1, x.shape[-1]))


def entropy(logits: Tensor) -> Tensor:
    logp = torch.log_softmax(logits.float(), -1)
    return -(logp.exp() * logp).sum(-1)


def lm_response(
    lm: nn.Module, ids: Tensor, attn: Tensor, idx: Tensor, temperature: float = 1.0, want: tuple[str, ...] = ("logp",)
) -> dict[str, Tensor]:
    """What a causal LM says about each response token (B, T): "logp" log pi(y_t) (at temperature),
    "entropy" the entropy y_t was drawn from (policy/entropy), "next_entropy" H_t of the distribution after y_t
    (the segmenter's)."""
    logits = lm(input_ids=ids, attention_mask=attn).logits  # (B, S, V)
    out = {}
    if "logp" in want or "entropy" in want:
        prev = _at(logits, (idx - 1).clamp(min=0)).float() / temperature  # (B, T, V)
        logp_all = torch.log_softmax(prev, -1)
        if "logp" in want:
            out["logp"] = logp_all.gather(-1, ids.gather(1, idx)[..., None]).squeeze(-1)
        if "entropy" in want:
            out["entropy"] = -(logp_all.exp() * logp_all).sum(-1).detach()
    if "next_entropy" in want:
        out["next_entropy"] = entropy(_at(logits, idx).detach())
    return out


def values_at(model: ScalarHeadModel, ids: Tensor, attn: Tensor, idx: Tensor, before: bool) -> Tensor:
    """The head's values at the response tokens (B, T): at y_t itself (reward), or at the state before it
    (`before`: the value model's V_t)."""
    v = model(ids, attn)  # (B, S)
    return _at(v, (idx - 1).clamp(min=0) if before else idx)
