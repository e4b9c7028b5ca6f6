"""Models by name: a Hugging Face hub id, a local directory, or a built-in `tiny-*` architecture.

The tiny models have random weights drawn from a fixed seed (the same weights in every run, so runs
that differ only in their seed stay comparable) and share one byte-level BPE tokenizer trained here in
about a second on pgg's own toy data. They exist for tests, offline demos and speed measurements.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import socket
import warnings
from pathlib import Path
from urllib.parse import urlparse
from typing import Any

import torch
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForMaskedLM,
    AutoModelForSeq2SeqLM,
    AutoTokenizer,
    GPT2Config,
    PreTrainedTokenizerFast,
    RobertaConfig,
    T5Config,
)
from transformers.utils import logging as hf_logging

from engine.errors import EngineError

DATA = Path(__file__).parent / "data"
TINY = ("tiny-gpt2", "tiny-roberta", "tiny-t5")
# The paper's architectures at full size with random weights (and the tiny tokenizer): for speed
# measurements with no download. Same names as the hub's, prefixed `random-`.
RANDOM = ("random-distilgpt2", "random-roberta-large", "random-t5-small")
# Shipped with pgg, pretrained by engine/data/make_toy_task_lm.py: the tiny prompt preset's task LM, which
# knows the toy sentiment grammar (a random task LM gives a prompt no consistent score to learn).
SHIPPED = {"toy-roberta": DATA / "toy-roberta"}
BUILTIN = TINY + RANDOM
SPECIALS = ["<pad>", "</s>", "<s>", "<unk>", "<mask>", "<|endoftext|>"]  # <pad> is id 0, as T5 expects
# Words the tiny tokenizer must keep whole: the verbalizers of the classification datasets.
VERBALIZER_WORDS = [" terrible", " great", " bad", " okay", " good", "World", "Sports", "Business", "Tech"]

hf_logging.set_verbosity_error()
hf_logging.disable_progress_bar()  # a run's log is read in the app: no progress bars in it
# transformers 5.x renames `past_key_values=` to `cache=`; 4.x, which pgg supports too, knows only the old name.
warnings.filterwarnings("ignore", message="`past_key_values` is deprecated", category=FutureWarning)


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise EngineError(f"device {name!r} asked for, but no CUDA GPU is visible; use --set device=cpu")
    return torch.device(name)


def fix_threads(n: int) -> int:
    """Pin torch's CPU threads to the run's recorded setting (0: leave what the process was given).

    A float sum split over 2 threads adds in another order than over 1, so a tiny run's numbers moved with
    OMP_NUM_THREADS (the CI failure of issue 22); fixed, a seed reproduces on any machine size. Returns the
    thread count the run trains with, for its log."""
    if n > 0:
        torch.set_num_threads(n)
    return torch.get_num_threads()


def runtime_env(device: torch.device) -> dict[str, Any]:
    """env/* entries saying where the numbers were computed, for `pgg show`'s reproducibility line: a CPU
    run repeats bit for bit on a CPU with the same kernels at the same thread count; a CUDA run does not."""
    if device.type == "cuda":
        return {"env/device": f"cuda ({torch.cuda.get_device_name(device)})", "env/threads": torch.get_num_threads()}
    return {
        "env/device": f"{device.type} ({torch.backends.cpu.get_cpu_capability()})",
        "env/threads": torch.get_num_threads(),
    }


def autocast(device: torch.device, enabled: bool) -> contextlib.AbstractContextManager[Any]:
    """bf16 autocast on CUDA for frozen forwards; a no-op on CPU."""
    if enabled and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def stream_seed(seed: int, stream: str, index: int = 0) -> int:
    """A 63-bit seed for one named random stream of a run: streams never coincide, whatever the seed."""
    digest = hashlib.blake2b(f"{seed}/{stream}/{index}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


def full_precision(device: torch.device) -> contextlib.AbstractContextManager[Any]:
    """Autocast off: what runs inside computes in the dtype of its inputs and weights (float32)."""
    return torch.autocast(device.type, enabled=False)


def small_init(module: torch.nn.Module) -> None:
    """Xavier-uniform with gain 1e-4 and biases -1e-4, as the original's adaptor and reward head: both
    start near zero, so the policy starts at the frozen LM and every token reward at squash(-1e-4)."""
    for m in module.modules():
        if isinstance(m, torch.nn.Linear):
            torch.nn.init.xavier_uniform_(m.weight, gain=1e-4)
            torch.nn.init.constant_(m.bias, -1e-4)


# ---------------------------------------------------------------------------------------------------
# the tiny tokenizer


def _corpus() -> list[str]:
    lines = []
    for path in sorted(DATA.glob("toy-*/*")):
        if path.suffix in (".tsv", ".jsonl"):
            lines += path.read_text().splitlines()
    # Each verbalizer word often enough, in context, that BPE merges it into one token.
    lines += [f"it was{w} and{w}." if w.startswith(" ") else f"{w} news: {w} today." for w in VERBALIZER_WORDS] * 60
    return lines


@functools.cache
def _tiny_backend() -> str:
    # Only the characters of the corpus (printable ASCII), not all 256 bytes: a random tiny policy that
    # samples lone high bytes would write prompts that do not decode.
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=1024, special_tokens=SPECIALS, show_progress=False)
    tok.train_from_iterator(_corpus(), trainer=trainer)
    return tok.to_str()


def tiny_tokenizer(style: str) -> PreTrainedTokenizerFast:
    """The shared tiny BPE, dressed as a GPT-2 ("causal"), RoBERTa ("masked") or T5 ("seq2seq") tokenizer."""
    backend = Tokenizer.from_str(_tiny_backend())
    if style == "masked":
        # as RoBERTa's: the mask takes the space before it, so "was <mask>" reads like "was great" (one
        # token, Ġgreat), not "was Ġ <mask>"
        backend.add_special_tokens([AddedToken("<mask>", lstrip=True, special=True, normalized=False)])
        backend.post_processor = processors.RobertaProcessing(
            ("</s>", backend.token_to_id("</s>")), ("<s>", backend.token_to_id("<s>")), add_prefix_space=False
        )
        return PreTrainedTokenizerFast(
            tokenizer_object=backend,
            bos_token="<s>",
            eos_token="</s>",
            pad_token="<pad>",
            unk_token="<unk>",
            mask_token="<mask>",
            cls_token="<s>",
            sep_token="</s>",
        )
    if style == "seq2seq":
        backend.post_processor = processors.TemplateProcessing(
            single="$A </s>", pair="$A </s> $B </s>", special_tokens=[("</s>", backend.token_to_id("</s>"))]
        )
        return PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="</s>", pad_token="<pad>", unk_token="<unk>")
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<|endoftext|>",
        eos_token="<|endoftext|>",
        pad_token="<pad>",
        unk_token="<unk>",
    )


def _tiny_config(name: str, tok: PreTrainedTokenizerFast) -> Any:
    v = len(tok)
    if name == "random-distilgpt2":
        return GPT2Config(
            vocab_size=50257,
            n_positions=1024,
            n_embd=768,
            n_layer=6,
            n_head=12,
            bos_token_id=tok.bos_token_id,
            eos_token_id=tok.eos_token_id,
            pad_token_id=tok.pad_token_id,
        )
    if name == "random-roberta-large":
        return RobertaConfig(
            vocab_size=50265,
            hidden_size=1024,
            num_hidden_layers=24,
            num_attention_heads=16,
            intermediate_size=4096,
            max_position_embeddings=514,
            pad_token_id=tok.pad_token_id,
            bos_token_id=tok.bos_token_id,
            eos_token_id=tok.eos_token_id,
        )
    if name == "random-t5-small":
        return T5Config(
            vocab_size=32128,
            d_model=512,
            d_ff=2048,
            d_kv=64,
            num_layers=6,
            num_decoder_layers=6,
            num_heads=8,
            pad_token_id=tok.pad_token_id,
            eos_token_id=tok.eos_token_id,
            decoder_start_token_id=tok.pad_token_id,
        )
    if name == "tiny-gpt2":
        return GPT2Config(
            vocab_size=v,
            n_positions=512,
            n_embd=64,
            n_layer=2,
            n_head=2,
            bos_token_id=tok.bos_token_id,
            eos_token_id=tok.eos_token_id,
            pad_token_id=tok.pad_token_id,
        )
    if name == "tiny-roberta":
        # A wide init (std 0.5, not 0.02) makes the random task LM's verdict depend on the prompt, so a
        # tiny run has something to learn: at 0.02 every prompt scores about the same.
        return RobertaConfig(
            vocab_size=v,
            hidden_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=128,
            max_position_embeddings=514,
            pad_token_id=tok.pad_token_id,
            bos_token_id=tok.bos_token_id,
            eos_token_id=tok.eos_token_id,
            initializer_range=0.5,
        )
    return T5Config(
        vocab_size=v,
        d_model=64,
        d_ff=128,
        d_kv=32,
        num_layers=2,
        num_decoder_layers=2,
        num_heads=2,
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id,
        decoder_start_token_id=tok.pad_token_id,
    )


_STYLE = {
    "tiny-gpt2": "causal",
    "tiny-roberta": "masked",
    "tiny-t5": "seq2seq",
    "random-distilgpt2": "causal",
    "random-roberta-large": "masked",
    "random-t5-small": "seq2seq",
}
_AUTO = {
    "causal": AutoModelForCausalLM,
    "masked": AutoModelForMaskedLM,
    "seq2seq": AutoModelForSeq2SeqLM,
    "base": AutoModel,
}


def _fixed_seed_init(name: str, fn: Any) -> Any:
    """Build with a seed derived from the model name only, leaving the caller's RNG state untouched."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(sum(map(ord, name)) * 7919)
        return fn()


@functools.cache
def hub_reachable() -> bool:
    """Can this machine open a connection to the Hugging Face hub? Asked once, in a few seconds: offline,
    transformers would retry every file for ~50 s before the same error."""
    if os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0") or os.environ.get("TRANSFORMERS_OFFLINE", "") not in (
        "",
        "0",
    ):
        return False
    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    try:
        socket.create_connection((url.hostname or "huggingface.co", url.port or 443), timeout=3).close()
    except OSError:
        return False
    return True


def _hub_kwargs(name: str) -> dict[str, Any]:
    """A folder loads as it is; a hub id from the local cache only, unless the hub can be reached."""
    return {} if os.path.isdir(name) or hub_reachable() else {"local_files_only": True}


def load_tokenizer(name: str, role: str, field: str) -> Any:
    name = str(SHIPPED.get(name, name))
    if name in BUILTIN:
        return tiny_tokenizer(_STYLE[name])
    try:
        return AutoTokenizer.from_pretrained(name, **_hub_kwargs(name))
    except Exception as err:
        raise _load_error(name, role, field, err) from None


def load_model(name: str, kind: str, role: str, field: str) -> Any:
    """kind: causal | masked | seq2seq | base (the backbone without its LM head)."""
    name = str(SHIPPED.get(name, name))
    if name in BUILTIN:
        tok = tiny_tokenizer(_STYLE[name])
        cfg = _tiny_config(name, tok)
        return _fixed_seed_init(name, lambda: _AUTO[kind].from_config(cfg))
    try:
        model = _AUTO[kind].from_pretrained(name, **_hub_kwargs(name))
    except Exception as err:
        raise _load_error(name, role, field, err) from None
    # Weights in float32 whatever dtype the checkpoint was saved in (SmolLM2 and most current ones: bf16):
    # the trainable adaptor and heads are float32, and the run picks the compute dtype (bf16 autocast on
    # CUDA, float32 where precision matters).
    return model.float()


def model_kind(name: str) -> str:
    """'masked', 'causal' or 'seq2seq', from the config alone (cheap)."""
    name = str(SHIPPED.get(name, name))
    if name in BUILTIN:
        return _STYLE[name]
    try:
        cfg = AutoConfig.from_pretrained(name, **_hub_kwargs(name))
    except Exception as err:
        raise _load_error(name, "task", "task_model", err) from None
    archs = " ".join(cfg.architectures or [])
    if cfg.is_encoder_decoder:
        return "seq2seq"
    if "MaskedLM" in archs or cfg.model_type in ("bert", "roberta", "deberta", "deberta-v2", "electra", "xlm-roberta"):
        return "masked"
    return "causal"


def _load_error(name: str, role: str, field: str, err: Exception) -> EngineError:
    if os.path.isdir(name):
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        return EngineError(f"cannot load the {role} model from folder {name!r}: {first}")
    if os.sep in name and not os.path.exists(name):
        return EngineError(f"{role} model folder {name!r} does not exist (--set {field}=...)")
    return EngineError(
        f"cannot load the {role} model {name!r}: it is not a local folder and the Hugging Face hub is not "
        f"reachable. Download it where the hub is reachable (`hf download {name}`, or `save_pretrained`) and "
        f"point at the folder with --set {field}=/path/to/{name.split('/')[-1]}"
    )
