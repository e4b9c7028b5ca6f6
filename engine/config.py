"""Run configuration: one documented dataclass per task, defaults equal to the paper's code.

Every value here is stored whole on the Run row as JSON, so any run can be re-created from the store.
Defaults follow `reference/algorithm.md` (§3.8 prompt task, §4.7 summarization). Where pgg deviates
from the original code, the deviation is a named option (prefixed `parity_` when the original's
behaviour is the non-default) and its help says which is the default.

Stdlib only: the CLI and the app import this module and must start fast.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import importlib.util
import math
import re
import json
import typing
from dataclasses import dataclass, field
from typing import Any

from engine.errors import ConfigError


def opt(default: Any, help: str, choices: tuple[str, ...] | None = None) -> Any:
    """A config field with its help text (shown by `pgg show-config` and the app's queue form)."""
    return field(default=default, metadata={"help": help, "choices": choices})


THREADS_HELP = ("CPU threads for torch's own kernels (torch.set_num_threads), fixed so that a seed gives the same "
                "numbers whatever OMP_NUM_THREADS or the machine's core count: 1 (default); 0 = whatever the "
                "process was given (the worker's share of the cores), numbers then depend on it")
MEMORY_HELP = ("the memory (GB) a run's largest training tensors may take by pgg's estimate (sequences x length x "
               "vocabulary, with their gradients), checked when a run is queued so a size that would exhaust the "
               "machine is refused in one line; raise it on a larger GPU")
BACKBONE_LR_HELP = ("the reward backbone's learning rate as a multiple of reward_lr: 1 (default) trains every "
                    "parameter at one rate, as the original; below 1 keeps a pretrained backbone's features "
                    "while the head learns (0 freezes the backbone)")


@dataclass
class PromptConfig:
    """Discrete prompt generation for few-shot classification (RLPrompt setting), §3 of algorithm.md."""

    # > what is trained, on what
    dataset: str = opt("sst-2", "dataset name (sst-2, yelp-2, agnews, mr, cr, sst-5, toy-sentiment)")
    dataset_seed: int = opt(0, "few-shot split: 0..4 = folders 16-100, 16-13, 16-21, 16-42, 16-87")
    seed: int = opt(0, "random seed of the run")
    method: str = opt("pgg", "pgg | seq-reinforce | rlprompt", ("pgg", "seq-reinforce", "rlprompt"))
    data_dir: str = opt("", "folder in the 16-shot layout; empty: built-in toy data or the Hugging Face hub")
    shots: int = opt(16, "examples per class drawn for train and for dev when loading from the hub")
    max_test_examples: int = opt(0, "cap on the test split (0 = all); for quick runs")

    # > models (each: a hub id, a local directory, or a built-in tiny-* architecture)
    policy_model: str = opt("distilgpt2", "frozen causal LM under the trainable MLP adaptor")
    reward_model: str = opt("", "backbone of the token reward model; empty = same as policy_model")
    task_model: str = opt("roberta-large", "frozen task LM that scores prompts (the preference source)")
    task_model_kind: str = opt("auto", "auto | masked | causal: how the task LM reads the template",
                               ("auto", "masked", "causal"))
    scorer: str = opt("", "package.module:function replacing the task LM scorer (see docs/cli.md)")

    # > policy
    prompt_length: int = opt(5, "tokens per prompt (fixed, no EOS)")
    adaptor_hidden: int = opt(2048, "hidden width of the policy's MLP adaptor")
    top_k: int = opt(256, "top-k filter when sampling; the loss uses the unfiltered logits")
    policy_batch: int = opt(64, "prompts sampled per policy step (num_reinforce_samples)")
    policy_lr: float = opt(5e-5, "Adam learning rate of the policy adaptor")
    grad_clip: float = opt(5.0, "gradient-norm clip, both models")
    entropy_coeff: float = opt(0.125, "alpha: weight of mean(sum p log p) in the policy loss")
    use_q: bool = opt(False, "weight tokens by reward-to-go Q_t = sum_{t'>=t} r_t' instead of r_t")
    reward_baseline: str = opt("none", "pgg: the token weights as the original, raw r (none, default; all "
                                       "positive, no baseline) | center (minus the batch mean per position) | "
                                       "zscore (and divided by the batch std)", ("none", "center", "zscore"))
    block_special_tokens: bool = opt(False, "never sample the policy tokenizer's special tokens (the original "
                                            "may sample <|endoftext|>; the tiny preset blocks them)")

    # > token reward model
    reward_hidden: int = opt(2048, "hidden width of the reward head d -> h -> 1")
    squash: str = opt("softplus", "softplus (double soft clamp, default) | sigmoid", ("softplus", "sigmoid"))
    agg: str = opt("avg", "aggregation of token rewards: avg | sum | min | max", ("avg", "sum", "min", "max"))
    agg_temp: float = opt(2.0, "temperature of soft-min / soft-max")
    reward_k: int = opt(5, "K: sequences per ListMLE list")
    reward_candidates: int = opt(16, "prompts sampled per reward step")
    reward_lists: int = opt(64, "ListMLE lists drawn from the candidates per reward step")
    reward_subset: float = opt(0.8, "fraction of the split's examples scored per reward step")
    reward_lr: float = opt(5e-5, "Adam learning rate of the reward model (fresh Adam each training)")
    reward_backbone_lr: float = opt(1.0, BACKBONE_LR_HELP)
    reward_epochs: int = opt(100, "epochs per reward training; steps per epoch = reward_max_steps // epochs")
    reward_max_steps: int = opt(10000, "cap on gradient steps per reward training")
    reward_valid_draws: int = opt(25, "dev draws averaged for the reward validation loss")
    reward_valid_fixed: bool = opt(False, "draw the validation candidates once per reward training, so early "
                                          "stopping compares epochs on the same lists (algorithm.md §7 #15); "
                                          "default fresh draws each epoch, as the original")
    reward_replay: int = opt(0, "each reward step also trains on this many earlier reward steps' scored "
                                "prompts (drawn at random from the run's last 10,000, with fresh lists; no "
                                "new queries); 0 (default) uses each scored prompt for one step, as the original")
    reward_retrain_every: int = opt(1000, "retrain the reward model every N policy steps, up to max_steps/2")
    tau_candidates: int = opt(64, "fresh prompts scored on dev after each reward training for the grounding "
                                  "quality (Kendall tau of model vs true score; logging only)")
    parity_reward_dropout: bool = opt(False, "parity: keep the reward model in train mode (dropout) when "
                                             "it weights the policy loss, as the original does; default eval mode")

    # > schedule
    max_steps: int = opt(12000, "policy steps")
    eval_every: int = opt(500, "validation period: plateau LR, early stopping, best checkpoint")
    val_draws: int = opt(15, "validation draws; each samples val_prompts prompts and scores them on dev")
    val_prompts: int = opt(16, "prompts per validation draw")
    greedy_every: int = opt(10, "late greedy-prompt evaluation period (candidates for the final choice)")
    lr_decay: float = opt(0.8, "ReduceLROnPlateau factor, both models")
    patience: int = opt(2, "ReduceLROnPlateau patience, both models")
    early_stop: int = opt(7, "validations without improvement before stopping, both models")
    min_lr: float = opt(1e-6, "ReduceLROnPlateau floor")
    train_score_every: int = opt(10, "log the true train score of 16 sampled prompts every N steps "
                                     "(the original does it every step; it is logging only)")
    checkpoint_every: int = opt(500, "save a resumable checkpoint every N policy steps")
    parity_improvement_test: bool = opt(False, "parity: the original's `score > best*(1+1e-4)` test, "
                                               "wrong for negative scores; default `best + 1e-4*|best|`")

    # > final prompt choice
    final_samples: int = opt(16, "prompts sampled from the best checkpoint as final candidates (not rlprompt: "
                                 "RLPrompt chooses among its greedy prompts only)")
    final_candidates: int = opt(16, "candidates (best by score) evaluated on test")
    final_top: int = opt(3, "test accuracy reported = mean over the top-N candidates")
    parity_test_prompt: bool = opt(False, "parity: test each candidate as the original's Hydra override parses "
                                          "it (surrounding spaces stripped; a prompt with , = ( ) [ ] { } quotes "
                                          "or ~ fails there and is dropped before the top-N mean); default the "
                                          "prompt as trained")
    parity_final_scores: bool = opt(False, "parity: rank sampled candidates (the best checkpoint's and the "
                                           "last step's 16) by train score and greedy ones by dev score "
                                           "together, as the original; default all on dev, no last-step ones")

    # > preferences from people (pgg only; docs/rankings.md)
    preference: str = opt("auto", "who orders the K sequences of a reward list: auto (the automatic score, as the "
                                  "paper; default) | human (people rank them in pgg-tui, or a rankings_file) | "
                                  "mixed (human_share of each reward update's lists by people, the rest auto)",
                          ("auto", "human", "mixed"))
    human_share: float = opt(0.25, "mixed: share of each reward update's lists taken from the people-ranked ones")
    rank_lists: int = opt(8, "lists of K sent to rankers at each reward training (human, mixed); the run "
                             "waits for them, then trains on every list ranked so far in the run")
    rank_heldout: float = opt(0.25, "share of the ranked lists kept out of training: the grounding quality "
                                    "against people (reward/human_tau) is measured on them")
    rank_timeout: float = opt(0.0, "minutes a reward training waits for its rankings (0 = until ranked)")
    rank_fallback: str = opt("auto", "when rank_timeout passes: auto (order the unranked lists by the automatic "
                                     "score; default) | fail (the run fails)", ("auto", "fail"))
    rankings_file: str = opt("", "JSON Lines of ranked lists (pgg rankings export) to ground on instead of "
                                 "asking people (human, mixed)")

    # > preference source (gap reward)
    correct_coeff: float = opt(200.0, "gap reward coefficient when the prediction is right")
    incorrect_coeff: float = opt(180.0, "gap reward coefficient when the prediction is wrong")

    # > budget (fair comparisons: docs/cli.md "Comparing methods fairly")
    max_queries: int = opt(0, "end training once this many preference queries (query_unit) are spent, validation "
                              "included; the reward training under way keeps its best validated weights and the "
                              "final choice follows (0 = no budget)")
    query_unit: str = opt("pairs", "what max_queries counts: pairs (one per (prompt, example) the preference "
                                   "scores: the task LM's verdicts; default) | prompts (one per prompt scored, "
                                   "however many examples: neutral where the preference ignores the examples, "
                                   "since pgg's reward steps score an 80% subset and the baselines all of it)",
                          ("pairs", "prompts"))

    # > baselines
    zscore: bool = opt(True, "seq-reinforce / rlprompt: z-score true rewards across the batch (population std)")
    sql_batch: int = opt(16, "rlprompt: prompts per step")
    sql_tau: float = opt(0.001, "rlprompt: Polyak rate of the target network")
    sql_reward_scale: float = opt(5.0, "rlprompt: reward shaping [0,1] -> [0, scale]")

    # > runtime
    device: str = opt("auto", "auto | cpu | cuda | cuda:N")
    bf16: bool = opt(True, "bf16 autocast for the frozen forwards on CUDA (verbalizer logits stay float32)")
    bf16_test: bool = opt(False, "bf16 for the test split's scoring too; default float32, as the original's "
                                 "evaluator (bf16 stays for training-time work)")
    time_limit: float = opt(0.0, "seconds a run may take before its worker stops it, recorded failed and "
                                 "resumable (0 = no limit); catches a scorer that never returns")
    score_batch: int = opt(512, "texts per task-LM forward (chunk size)")
    threads: int = opt(1, THREADS_HELP)
    memory_budget_gb: float = opt(24.0, MEMORY_HELP)


@dataclass
class SummarizeConfig:
    """Summarization with reward-weighted MLE and a learned token reward, §4 of algorithm.md."""

    # > what is trained, on what
    dataset: str = opt("cnn_dailymail", "cnn_dailymail | xsum | toy-news | a .jsonl/.csv train file")
    dataset_seed: int = opt(0, "seed of the subset draw when max_train_examples caps the train split")
    seed: int = opt(0, "random seed of the run")
    method: str = opt("pgg", "pgg | mle", ("pgg", "mle"))
    data_dir: str = opt("", "unused by hub datasets; folder holding {train,validation,test}.jsonl otherwise")
    validation_file: str = opt("", "local validation file (default: beside the train file)")
    test_file: str = opt("", "local test file (default: beside the train file)")
    source_field: str = opt("", "source column (default: article / document / source)")
    target_field: str = opt("", "target column (default: highlights / summary / target)")
    max_train_examples: int = opt(0, "cap on train examples (0 = all)")
    max_val_examples: int = opt(0, "cap on validation examples (0 = all)")
    max_test_examples: int = opt(0, "cap on test examples (0 = all)")
    source_prefix: str = opt("summarize: ", "prefix added to every source")
    max_source_length: int = opt(1024, "source tokens")
    max_target_length: int = opt(128, "target tokens, and the decoding limit")

    # > models
    policy_model: str = opt("t5-small", "seq2seq policy, fine-tuned whole")
    reward_model: str = opt("t5-small", "seq2seq backbone of the token reward model")

    # > policy
    batch_size: int = opt(8, "articles per micro-batch")
    grad_accum: int = opt(4, "micro-batches per update (articles per update = batch_size x grad_accum: 32 by default)")
    policy_lr: float = opt(5e-5, "AdamW learning rate, constant")
    grad_clip: float = opt(5.0, "gradient-norm clip, both models")
    epochs: float = opt(5.0, "policy epochs")
    exp_weights: bool = opt(False, "weights exp(r) instead of r (exp_in_wmle)")
    use_q: bool = opt(False, "weight tokens by reward-to-go Q_t instead of r_t")
    reinforce_coeff: float = opt(0.0, "weight of an on-policy REINFORCE term (0 = off)")
    entropy_coeff: float = opt(0.0, "weight of an entropy term on sampled summaries (0 = off)")
    reset_optim: bool = opt(False, "reset the policy AdamW after each reward retraining")
    parity_last_update: bool = opt(False, "parity: divide an epoch's last, shorter update by grad_accum as the "
                                          "original (under-weighting it); default by its own micro-batch count")

    # > token reward model
    reward_hidden: int = opt(2048, "hidden width of the reward head")
    squash: str = opt("softplus", "softplus | sigmoid", ("softplus", "sigmoid"))
    agg: str = opt("avg", "avg | sum | min | max", ("avg", "sum", "min", "max"))
    agg_temp: float = opt(2.0, "temperature of soft-min / soft-max")
    reward_k: int = opt(3, "K: summaries sampled per article and ranked")
    reward_top_k: int = opt(50, "top-k when sampling reward data (the original's silent HF default)")
    reward_batch: int = opt(8, "articles per reward micro-batch")
    reward_grad_accum: int = opt(4, "reward micro-batches per update")
    reward_lr: float = opt(5e-5, "Adam learning rate of the reward model (fresh each training)")
    reward_backbone_lr: float = opt(1.0, BACKBONE_LR_HELP)
    reward_epochs: float = opt(0.1, "fraction of an epoch per reward training")
    reward_retrain_every: float = opt(0.5, "retrain period in epochs, during the first two epochs")
    reward_val_fraction: float = opt(0.2, "fraction of validation batches in the reward validation loss")
    max_queries: int = opt(0, "cap on the preference queries (summaries scored, reward validation included): once "
                              "spent, the reward model stops training and is not retrained; WMLE goes on, as it "
                              "queries nothing (mle spends none); 0 = no budget")
    true_score: str = opt("meteor", "sequence-level preference per (summary, reference): meteor (the original's) "
                                    "| rouge1 | rouge2 | rougeL | rougeLsum (F1)",
                          ("meteor", "rouge1", "rouge2", "rougeL", "rougeLsum"))
    reference: str = opt("tokenized", "what summaries are scored against: tokenized (the target tokenized, "
                                      "truncated to max_target_length and decoded, as the original; default) | "
                                      "raw (the dataset's text)", ("tokenized", "raw"))
    parity_start_token: bool = opt(False, "parity: feed the reward model labels without the start token "
                                          "during policy training, as the original; default [start]+y always")

    # > preferences from people (pgg only; docs/rankings.md)
    preference: str = opt("auto", "who orders the K sequences of a reward list: auto (the automatic score, as the "
                                  "paper; default) | human (people rank them in pgg-tui, or a rankings_file) | "
                                  "mixed (human_share of each reward update's lists by people, the rest auto)",
                          ("auto", "human", "mixed"))
    human_share: float = opt(0.25, "mixed: share of each reward update's lists taken from the people-ranked ones")
    rank_lists: int = opt(8, "lists of K sent to rankers at each reward training (human, mixed); the run "
                             "waits for them, then trains on every list ranked so far in the run")
    rank_heldout: float = opt(0.25, "share of the ranked lists kept out of training: the grounding quality "
                                    "against people (reward/human_tau) is measured on them")
    rank_timeout: float = opt(0.0, "minutes a reward training waits for its rankings (0 = until ranked)")
    rank_fallback: str = opt("auto", "when rank_timeout passes: auto (order the unranked lists by the automatic "
                                     "score; default) | fail (the run fails)", ("auto", "fail"))
    rankings_file: str = opt("", "JSON Lines of ranked lists (pgg rankings export) to ground on instead of "
                                 "asking people (human, mixed)")

    # > evaluation
    eval_every: float = opt(1.0, "validation period in epochs (logged: R1 + 2 R2 + RLsum)")
    checkpoint_every: int = opt(1000, "save a resumable checkpoint every N updates")

    # > runtime
    device: str = opt("auto", "auto | cpu | cuda | cuda:N")
    bf16: bool = opt(True, "bf16 autocast for generation on CUDA (trained forwards stay float32)")
    bf16_test: bool = opt(False, "bf16 for the test split's greedy decoding too; default float32, as the "
                                 "original (bf16 stays for training-time sampling and validation)")
    time_limit: float = opt(0.0, "seconds a run may take before its worker stops it, recorded failed and "
                                 "resumable (0 = no limit); catches a scorer that never returns")
    score_workers: int = opt(0, "processes for METEOR / ROUGE (0 = min(8, cores))")
    threads: int = opt(1, THREADS_HELP)
    memory_budget_gb: float = opt(24.0, MEMORY_HELP)


TaskConfig = PromptConfig | SummarizeConfig


def field_help(cls: type) -> dict[str, tuple[Any, str]]:
    """name -> (default, help) for every field of a config class, in declaration order."""
    return {f.name: (f.default, f.metadata.get("help", "")) for f in dataclasses.fields(cls)}


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)  # resolving them costs ~0.1 ms a field: once per class, not per value


def _coerce(cls: type, name: str, raw: Any) -> Any:
    """Turn a `--set key=value` string (or a JSON value) into the field's declared type."""
    kind = _hints(cls)[name]
    if not isinstance(raw, str):
        value = raw
    elif kind is bool:
        low = raw.strip().lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{name}={raw!r}: expected true or false")
    elif kind is int:
        try:
            return int(raw)
        except ValueError:
            raise ConfigError(f"{name}={raw!r}: expected an integer") from None
    elif kind is float:
        try:
            return float(raw)
        except ValueError:
            raise ConfigError(f"{name}={raw!r}: expected a number") from None
    else:
        value = raw
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind):
        raise ConfigError(f"{name}={raw!r}: expected {kind.__name__}")
    return value


def parse_overrides(pairs: list[str]) -> dict[str, str]:
    """`["agg=min", "top_k=64"]` -> {"agg": "min", "top_k": "64"}; malformed pairs raise ConfigError."""
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key or not key.replace("_", "").isalnum():
            raise ConfigError(f"malformed --set {pair!r}: expected key=value, e.g. --set agg=min")
        out[key] = value.strip()
    return out


def build_config(cls: type, values: dict[str, Any]) -> Any:
    """Build and validate a config of class `cls` from raw values; unknown keys raise ConfigError."""
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, raw in values.items():
        if key not in names:
            close = difflib.get_close_matches(key, sorted(names), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"unknown setting {key!r}{hint}; `pgg options TASK` lists them")
        kwargs[key] = _coerce(cls, key, raw)
    cfg = cls(**kwargs)
    validate(cfg)
    return cfg


DEVICE = re.compile(r"^(auto|cpu|cuda(:\d+)?|mps)$")


def validate(cfg: Any) -> None:
    """Range and choice checks shared by queueing and the run entry: whatever can be known before a run
    starts is refused here, with one line, instead of minutes into it."""
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        choices = f.metadata.get("choices")
        if choices and value not in choices:
            raise ConfigError(f"{f.name}={value!r}: choose one of {', '.join(choices)}")
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{f.name}={value!r}: must be a finite number")
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value < 0 \
                and f.name not in ("seed",):
            raise ConfigError(f"{f.name}={value!r}: must not be negative")
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 2 ** 63:
            raise ConfigError(f"{f.name}={value!r}: out of range")
    common = ("policy_lr", "reward_lr", "grad_clip", "agg_temp", "reward_hidden", "reward_k")
    if isinstance(cfg, PromptConfig):
        positive: tuple[str, ...] = common + ("prompt_length", "policy_batch", "max_steps", "eval_every", "reward_candidates",
                             "reward_lists", "reward_epochs", "reward_max_steps", "reward_valid_draws",
                             "reward_retrain_every", "val_draws", "val_prompts", "greedy_every", "top_k",
                             "final_samples", "final_candidates", "final_top", "checkpoint_every", "sql_batch",
                             "tau_candidates", "adaptor_hidden", "score_batch", "train_score_every")
        unit: tuple[str, ...] = ("reward_subset", "lr_decay")
        models: tuple[str, ...] = ("policy_model",) + (() if cfg.scorer else ("task_model",))
        if cfg.scorer:
            check_scorer(cfg.scorer)
    else:
        positive = common + ("batch_size", "grad_accum", "reward_batch", "reward_grad_accum", "epochs",
                             "max_target_length", "max_source_length", "checkpoint_every", "reward_epochs",
                             "reward_retrain_every", "eval_every", "reward_top_k")
        unit = ("reward_val_fraction",)
        models = ("policy_model",) + (("reward_model",) if cfg.method == "pgg" else ())
    if cfg.preference != "auto":
        if cfg.method != "pgg":
            raise ConfigError(f"preference={cfg.preference} trains the token reward model: it needs method=pgg")
        if not 0 < cfg.human_share <= 1:
            raise ConfigError(f"human_share={cfg.human_share}: must be in (0, 1]")
        if not 0 <= cfg.rank_heldout < 1:
            raise ConfigError(f"rank_heldout={cfg.rank_heldout}: must be in [0, 1)")
        if cfg.rank_lists <= 0 and not cfg.rankings_file:
            raise ConfigError(f"rank_lists={cfg.rank_lists}: must be positive")
    if cfg.method == "pgg" and cfg.reward_k < 2:
        raise ConfigError("reward_k must be at least 2: ListMLE ranks K >= 2 sequences")
    for name in positive:
        if getattr(cfg, name) <= 0:
            raise ConfigError(f"{name}={getattr(cfg, name)}: must be positive")
    for name in unit:
        if not 0 < getattr(cfg, name) <= 1:
            raise ConfigError(f"{name}={getattr(cfg, name)}: must be in (0, 1]")
    for name in models:
        if not str(getattr(cfg, name)).strip():
            raise ConfigError(f"{name} is empty: name a hub id, a local folder or a built-in model")
    if not DEVICE.match(cfg.device):
        raise ConfigError(f"device={cfg.device!r}: choose auto, cpu, cuda or cuda:N")
    check_sizes(cfg)


def vocab_estimate(model: str, seq2seq: bool = False) -> int:
    """The logit width a model name implies, without loading it: pgg's tiny models use a 1,024-token
    tokenizer; anything else is taken at GPT-2's (or T5's) vocabulary."""
    if model.startswith(("tiny-", "toy-")):
        return 1024
    return 32128 if seq2seq else 50257


def check_sizes(cfg: Any) -> None:
    """Sizes that would exhaust the machine are refused before a run is queued: lengths by what the models
    can read, the largest batch of logits (with log-softmax and gradients: 4 copies, float32) against
    memory_budget_gb."""
    if isinstance(cfg, PromptConfig):
        if cfg.prompt_length > 128:
            raise ConfigError(f"prompt_length={cfg.prompt_length}: at most 128 tokens (RLPrompt's prompts are 2-5; "
                              "the task LM reads each beside a sentence within its 512 positions)")
        seqs = max(cfg.policy_batch, cfg.sql_batch, cfg.reward_candidates, cfg.tau_candidates,
                   cfg.val_draws * cfg.val_prompts, cfg.final_samples)
        need = seqs * cfg.prompt_length * vocab_estimate(cfg.policy_model) * 16
        what = "the largest prompt batch"
    else:
        if cfg.max_target_length > 4096 or cfg.max_source_length > 65536:
            raise ConfigError(f"max_target_length={cfg.max_target_length}, max_source_length={cfg.max_source_length}: "
                              "at most 4,096 and 65,536 tokens")
        seqs = max(cfg.batch_size, cfg.batch_size * 4, cfg.reward_batch * cfg.reward_k)
        need = seqs * cfg.max_target_length * vocab_estimate(cfg.policy_model, seq2seq=True) * 16
        what = "the largest batch of summaries"
    if need > cfg.memory_budget_gb * 1e9:
        raise ConfigError(f"{what} ({seqs:,} sequences) would need about {need / 1e9:,.0f} GB for its logits and "
                          f"gradients, over memory_budget_gb={cfg.memory_budget_gb:g}; lower the batch or raise "
                          "the budget")


def check_scorer(spec: str) -> None:
    """`package.module:function` whose module can be found (it is imported only when a run starts).
    Note: a scorer is code the worker runs; whoever can queue runs can run code as the worker's user."""
    module, sep, name = spec.partition(":")
    if not sep or not module or not name.isidentifier():
        raise ConfigError(f"scorer={spec!r}: expected package.module:function")
    try:
        found = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        found = None
    if found is None:
        raise ConfigError(f"scorer={spec!r}: no module {module!r} on the Python path of this process")


def to_json(cfg: Any) -> str:
    return json.dumps(dataclasses.asdict(cfg), sort_keys=True)


def from_json(cls: type, text: str) -> Any:
    """Rebuild a stored config; keys the current class no longer knows are dropped with their values."""
    data = json.loads(text)
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in data.items() if k in names})
