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


THREADS_HELP = (
    "CPU threads for torch's own kernels (torch.set_num_threads), fixed so that a seed gives the same "
    "numbers whatever OMP_NUM_THREADS or the machine's core count: 1 (default); 0 = whatever the "
    "process was given (the worker's share of the cores), numbers then depend on it"
)
MEMORY_HELP = (
    "the memory (GB) a run's largest training tensors may take by pgg's estimate (sequences x length x "
    "vocabulary, with their gradients), checked when a run is queued so a size that would exhaust the "
    "machine is refused in one line; raise it on a larger GPU"
)
BACKBONE_LR_HELP = (
    "the reward backbone's learning rate as a multiple of reward_lr: 1 (default) trains every "
    "parameter at one rate, as the original; below 1 keeps a pretrained backbone's features "
    "while the head learns (0 freezes the backbone)"
)


# The options of preferences from people, the same for the prompt and the summarization tasks: declared here once.
PEOPLE: dict[str, tuple[Any, str, tuple[str, ...] | None]] = {
    "preference": (
        "auto",
        "who orders the K sequences of a reward list: auto (the automatic score, as the "
        "paper; default) | human (people rank them in pgg-tui, or a rankings_file) | "
        "mixed (human_share of each reward update's lists by people, the rest auto)",
        ("auto", "human", "mixed"),
    ),
    "human_share": (0.25, "mixed: share of each reward update's lists taken from the people-ranked ones", None),
    "rank_lists": (
        8,
        "lists of K sent to rankers at each reward training (human, mixed); the run "
        "waits for them, then trains on every list ranked so far in the run",
        None,
    ),
    "rank_heldout": (
        0.25,
        "share of the ranked lists kept out of training: the grounding quality "
        "against people (reward/human_tau) is measured on them",
        None,
    ),
    "rank_timeout": (0.0, "minutes a reward training waits for its rankings (0 = until ranked)", None),
    "rank_fallback": (
        "auto",
        "when rank_timeout passes: auto (order the unranked lists by the automatic "
        "score; default) | fail (the run fails)",
        ("auto", "fail"),
    ),
    "rankings_file": (
        "",
        "JSON Lines of ranked lists (pgg rankings export) to ground on instead of asking people (human, mixed)",
        None,
    ),
}


def people_opt(name: str) -> Any:
    """One of PEOPLE's options as a config field."""
    default, text, choices = PEOPLE[name]
    return opt(default, text, choices)


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
    task_model_kind: str = opt(
        "auto", "auto | masked | causal: how the task LM reads the template", ("auto", "masked", "causal")
    )
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
    reward_baseline: str = opt(
        "none",
        "pgg: the token weights as the original, raw r (none, default; all "
        "positive, no baseline) | center (minus the batch mean per position) | "
        "zscore (and divided by the batch std)",
        ("none", "center", "zscore"),
    )
    block_special_tokens: bool = opt(
        False,
        "never sample the policy tokenizer's special tokens (the original "
        "may sample <|endoftext|>; the tiny preset blocks them)",
    )

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
    reward_valid_fixed: bool = opt(
        False,
        "draw the validation candidates once per reward training, so early "
        "stopping compares epochs on the same lists (algorithm.md §7 #15); "
        "default fresh draws each epoch, as the original",
    )
    reward_replay: int = opt(
        0,
        "each reward step also trains on this many earlier reward steps' scored "
        "prompts (drawn at random from the run's last 10,000, with fresh lists; no "
        "new queries); 0 (default) uses each scored prompt for one step, as the original",
    )
    reward_retrain_every: int = opt(1000, "retrain the reward model every N policy steps, up to max_steps/2")
    tau_candidates: int = opt(
        64,
        "fresh prompts scored on dev after each reward training for the grounding "
        "quality (Kendall tau of model vs true score; logging only)",
    )
    parity_reward_dropout: bool = opt(
        False,
        "parity: keep the reward model in train mode (dropout) when "
        "it weights the policy loss, as the original does; default eval mode",
    )

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
    train_score_every: int = opt(
        10,
        "log the true train score of 16 sampled prompts every N steps "
        "(the original does it every step; it is logging only)",
    )
    checkpoint_every: int = opt(500, "save a resumable checkpoint every N policy steps")
    parity_improvement_test: bool = opt(
        False,
        "parity: the original's `score > best*(1+1e-4)` test, wrong for negative scores; default `best + 1e-4*|best|`",
    )

    # > final prompt choice
    final_samples: int = opt(
        16,
        "prompts sampled from the best checkpoint as final candidates (not rlprompt: "
        "RLPrompt chooses among its greedy prompts only)",
    )
    final_candidates: int = opt(16, "candidates (best by score) evaluated on test")
    final_top: int = opt(3, "test accuracy reported = mean over the top-N candidates")
    parity_test_prompt: bool = opt(
        False,
        "parity: test each candidate as the original's Hydra override parses "
        "it (surrounding spaces stripped; a prompt with , = ( ) [ ] { } quotes "
        "or ~ fails there and is dropped before the top-N mean); default the "
        "prompt as trained",
    )
    parity_final_scores: bool = opt(
        False,
        "parity: rank sampled candidates (the best checkpoint's and the "
        "last step's 16) by train score and greedy ones by dev score "
        "together, as the original; default all on dev, no last-step ones",
    )

    # > preferences from people (pgg only; docs/rankings.md): declared once, in PEOPLE
    preference: str = people_opt("preference")
    human_share: float = people_opt("human_share")
    rank_lists: int = people_opt("rank_lists")
    rank_heldout: float = people_opt("rank_heldout")
    rank_timeout: float = people_opt("rank_timeout")
    rank_fallback: str = people_opt("rank_fallback")
    rankings_file: str = people_opt("rankings_file")

    # > preference source (gap reward)
    correct_coeff: float = opt(200.0, "gap reward coefficient when the prediction is right")
    incorrect_coeff: float = opt(180.0, "gap reward coefficient when the prediction is wrong")

    # > budget (fair comparisons: docs/cli.md "Comparing methods fairly")
    max_queries: int = opt(
        0,
        "end training once this many preference queries (query_unit) are spent, validation "
        "included; the reward training under way keeps its best validated weights and the "
        "final choice follows (0 = no budget)",
    )
    query_unit: str = opt(
        "pairs",
        "what max_queries counts: pairs (one per (prompt, example) the preference "
        "scores: the task LM's verdicts; default) | prompts (one per prompt scored, "
        "however many examples: neutral where the preference ignores the examples, "
        "since pgg's reward steps score an 80% subset and the baselines all of it)",
        ("pairs", "prompts"),
    )

    # > baselines
    zscore: bool = opt(True, "seq-reinforce / rlprompt: z-score true rewards across the batch (population std)")
    sql_batch: int = opt(16, "rlprompt: prompts per step")
    sql_tau: float = opt(0.001, "rlprompt: Polyak rate of the target network")
    sql_reward_scale: float = opt(5.0, "rlprompt: reward shaping [0,1] -> [0, scale]")

    # > runtime
    device: str = opt("auto", "auto | cpu | cuda | cuda:N")
    bf16: bool = opt(True, "bf16 autocast for the frozen forwards on CUDA (verbalizer logits stay float32)")
    bf16_test: bool = opt(
        False,
        "bf16 for the test split's scoring too; default float32, as the original's "
        "evaluator (bf16 stays for training-time work)",
    )
    time_limit: float = opt(
        0.0,
        "seconds a run may take before its worker stops it, recorded failed and "
        "resumable (0 = no limit); catches a scorer that never returns",
    )
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
    parity_last_update: bool = opt(
        False,
        "parity: divide an epoch's last, shorter update by grad_accum as the "
        "original (under-weighting it); default by its own micro-batch count",
    )

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
    max_queries: int = opt(
        0,
        "cap on the preference queries (summaries scored, reward validation included): once "
        "spent, the reward model stops training and is not retrained; WMLE goes on, as it "
        "queries nothing (mle spends none); 0 = no budget",
    )
    true_score: str = opt(
        "meteor",
        "sequence-level preference per (summary, reference): meteor (the original's) "
        "| rouge1 | rouge2 | rougeL | rougeLsum (F1)",
        ("meteor", "rouge1", "rouge2", "rougeL", "rougeLsum"),
    )
    reference: str = opt(
        "tokenized",
        "what summaries are scored against: tokenized (the target tokenized, "
        "truncated to max_target_length and decoded, as the original; default) | "
        "raw (the dataset's text)",
        ("tokenized", "raw"),
    )
    parity_start_token: bool = opt(
        False,
        "parity: feed the reward model labels without the start token "
        "during policy training, as the original; default [start]+y always",
    )

    # > preferences from people (pgg only; docs/rankings.md): declared once, in PEOPLE
    preference: str = people_opt("preference")
    human_share: float = people_opt("human_share")
    rank_lists: int = people_opt("rank_lists")
    rank_heldout: float = people_opt("rank_heldout")
    rank_timeout: float = people_opt("rank_timeout")
    rank_fallback: str = people_opt("rank_fallback")
    rankings_file: str = people_opt("rankings_file")

    # > evaluation
    eval_every: float = opt(1.0, "validation period in epochs (logged: R1 + 2 R2 + RLsum)")
    checkpoint_every: int = opt(1000, "save a resumable checkpoint every N updates")

    # > runtime
    device: str = opt("auto", "auto | cpu | cuda | cuda:N")
    bf16: bool = opt(True, "bf16 autocast for generation on CUDA (trained forwards stay float32)")
    bf16_test: bool = opt(
        False,
        "bf16 for the test split's greedy decoding too; default float32, as the "
        "original (bf16 stays for training-time sampling and validation)",
    )
    time_limit: float = opt(
        0.0,
        "seconds a run may take before its worker stops it, recorded failed and "
        "resumable (0 = no limit); catches a scorer that never returns",
    )
    score_workers: int = opt(0, "processes for METEOR / ROUGE (0 = min(8, cores))")
    threads: int = opt(1, THREADS_HELP)
    memory_budget_gb: float = opt(24.0, MEMORY_HELP)


RLHF_METHODS = ("token-ppo", "segment-ppo", "bandit-ppo")


@dataclass
class RlhfConfig:
    """Segment-, token- and bandit-level RLHF PPO (Yin et al. 2025), reference/rlhf.md.

    Defaults are the paper's code (DR) at Llama-3.1-8B-Instruct (rlhf.md §2, §3): the `paper` preset. The
    method fixes the segmentation threshold c: token-ppo c = 0 (every token a segment), bandit-ppo one
    reward at the end token (DR's c = 1000), segment-ppo c = seg_entropy.
    """

    # > what is trained, on what
    dataset: str = opt(
        "trl-lib/ultrafeedback_binarized",
        "preference pairs: toy-prefs | toy-prefs-xor (built in) | "
        "a .jsonl/.csv/.parquet file or a folder of them (TRL "
        "preference rows) | a Hugging Face hub id",
    )
    dataset_seed: int = opt(0, "seed of the splits by prompt (held-out prompts, the gold half, validation vs test)")
    seed: int = opt(0, "random seed of the run")
    method: str = opt(
        "segment-ppo",
        "token-ppo (c = 0) | segment-ppo (c = seg_entropy) | bandit-ppo (one reward "
        "on the end token, the classical RLHF baseline)",
        RLHF_METHODS,
    )
    data_dir: str = opt("", "unused: name a local dataset by its path")
    test_split: str = opt(
        "test",
        "split of the held-out pairs (reward accuracy) and prompts (validation and test "
        "win rates): a file <split>.jsonl/.csv/.parquet beside a local file, or the hub "
        "split; empty = hold out heldout_fraction of the train prompts instead",
    )
    heldout_fraction: float = opt(0.1, "share of the train prompts held out when test_split is empty or absent")
    val_fraction: float = opt(
        0.5,
        "share of the held-out prompts kept for validation (val/win_rate, what a sweep "
        "selects by); the rest are test prompts (test/win_rate)",
    )
    max_pairs: int = opt(0, "cap on the train pairs read, the first N (0 = all)")
    max_heldout_pairs: int = opt(2000, "cap on the held-out pairs read (0 = all)")

    # > models (a hub id, a local folder, or the built-in tiny-gpt2: random weights, a ChatML tokenizer)
    policy_model: str = opt(
        "meta-llama/Llama-3.1-8B-Instruct",
        "the SFT chat model: initial policy, frozen reference (also the segmenter), critic backbone",
    )
    reward_model: str = opt(
        "",
        "backbone of the reward model (fully fine-tuned, per-token scalar head); empty "
        "= the policy model. Must share the policy's tokenizer",
    )
    judge: str = opt(
        "auto",
        "who decides the win rate: auto (toy-prefs: engine.rlhf.data:toy_preference, "
        "toy-prefs-xor: its XOR function, anything else: gold) | gold (a bandit reward model "
        "trained on a held-out half of the train pairs by prompt, Gao et al.; the proxy "
        "reward model then trains on the other half) | package.module:function(prompt "
        "messages, response text) -> float",
    )
    gold_model: str = opt("", "backbone of the gold reward model (judge=gold); empty = the reward model's")
    gold_fraction: float = opt(0.5, "judge=gold: share of the train prompts whose pairs train the gold model")

    # > segmentation and reward model (rlhf.md §2)
    seg_entropy: float = opt(
        2.0,
        "segment-ppo's threshold c (nats): a token closes a segment when the "
        "reference's next-token entropy exceeds it (DR: 2.0 Llama, 1.75 Phi-3); token-ppo "
        "uses 0 and bandit-ppo the end token whatever this says",
    )
    agg: str = opt(
        "avg", "sequence score from segment rewards: avg (DR's, the mean over segments) | sum", ("avg", "sum")
    )
    rm_lr: float = opt(1e-6, "reward model learning rate (DR's script: 1e-6; cosine to 0.1x after 3% warmup)")
    rm_epochs: float = opt(1.0, "passes over the train pairs (DR: 1)")
    rm_batch: int = opt(128, "pairs per reward update (DR: 128)")
    max_prompt_len: int = opt(1024, "prompt tokens, left-truncated (DR: 1024 for PPO)")
    max_response_len: int = opt(1024, "tokens of a preference response, right-truncated with the end token last")

    # > rewards for PPO (rlhf.md §3.2, §3.3)
    reward_norm: str = opt(
        "location",
        "location (default, DR's --normalize_reward: (r - mu(p)) / sigma(p), mu "
        "and sigma log-linear in p = k/K, fitted on the reward model's scores of "
        "the train responses; for bandit-ppo p = 1: the score's mean and std) | none",
        ("location", "none"),
    )
    sigma_floor: float = opt(0.01, "floor of the normaliser's sigma(p) (pgg's guard: DR's fits reach sigma <= 0)")
    reward_type: str = opt(
        "segment_normalization",
        "dense token rewards: segment_normalization (r_k / L_k on "
        "each token of segment k; DR's) | every_segment_last (r_k at "
        "the segment's end) | same_segment_last (r_k on each token)",
        ("segment_normalization", "every_segment_last", "same_segment_last"),
    )
    interpolate: bool = opt(
        False, "pgg's option: token rewards interpolate linearly between segment ends (DR's code has none; default off)"
    )
    reward_clip: float = opt(10.0, "per-token reward clamp +-clip before the KL term (DR: 10)")

    # > PPO (rlhf.md §3.4)
    actor_lr: float = opt(5e-7, "policy learning rate (DR: 5e-7; cosine to 0.1x after 3% warmup)")
    critic_lr: float = opt(9e-6, "value model learning rate (DR: 9e-6)")
    kl_coef: float = opt(0.01, "beta of the per-token k1 KL penalty to the reference, fixed (DR: 0.01; TRL 0.05)")
    gamma: float = opt(1.0, "GAE discount (DR, TRL: 1)")
    lam: float = opt(0.95, "GAE lambda (DR, TRL: 0.95)")
    eps_clip: float = opt(0.2, "PPO ratio clip (DR, TRL: 0.2)")
    value_clip: float = opt(0.0, "critic clip range; 0 (default) = DR's per method: 0.25 dense, 0.2 bandit")
    rollout_batch: int = opt(1024, "prompts per rollout, one response each (DR: 1024)")
    minibatch: int = opt(128, "responses per PPO update (DR's train batch: 128, so 8 updates per rollout)")
    ppo_epochs: int = opt(1, "passes over each rollout (DR: 1; TRL: 4)")
    micro_batch: int = opt(2, "rows per forward pass (gradient accumulation inside a minibatch; memory only)")
    episodes: float = opt(1.0, "passes over the train prompts (DR: 1 Llama, 2 Phi-3)")
    max_rollouts: int = opt(0, "cap on rollouts (PPO steps; 0 = what episodes give)")
    max_new_tokens: int = opt(
        1024, "response tokens sampled (DR: 1024); a response cut there gets the end token in its last slot, as DR"
    )
    temperature: float = opt(1.0, "sampling temperature, rollouts and evaluation (DR: 1.0, top_p 1)")
    gen_batch: int = opt(4, "prompts per generate call (memory only; DR's micro rollout batch: 4)")
    lr_schedule: str = opt(
        "cosine", "cosine (DR's cosine_with_min_lr: 3% warmup, floor 0.1x) | constant", ("cosine", "constant")
    )
    grad_clip: float = opt(1.0, "gradient-norm clip, every model (DR: 1.0)")
    sft_epochs: float = opt(
        0.0,
        "supervised warm-up of the policy on the train responses (chosen and rejected "
        "alike) before anything else; it then is the reference. 0 (default): the policy "
        "model already is the SFT model, as in the paper; the tiny preset's random model "
        "needs it",
    )
    sft_lr: float = opt(1e-3, "sft_epochs: learning rate of the warm-up (constant)")

    # > PGG's alternation: the reward model retrained on the policy's own responses (not in the paper)
    reward_retrain_every: int = opt(
        0,
        "retrain the reward model every N rollouts, during the first half of training, "
        "on the policy's own responses ranked by `preference` (0 = never, as the paper)",
    )
    preference: str = opt(
        "",
        "who ranks the policy's responses for reward_retrain_every: judge (the run's judge: "
        "its function or the gold model) | human (people, in pgg-tui's Rank screen: a prompt and its "
        "retrain_k responses, coloured by the reward model's token rewards) | "
        "package.module:function(prompt messages, response text) -> float",
    )
    rank_timeout: float = opt(
        0.0,
        "preference=human: minutes a retraining waits for people (0 = as long as it takes); the lists left "
        "unranked then are ordered by the run's judge",
    )
    retrain_prompts: int = opt(64, "train prompts whose responses are ranked at each retraining")
    retrain_k: int = opt(2, "responses sampled per prompt and ranked; every pair with distinct scores is used")

    # > evaluation
    eval_prompts: int = opt(500, "test prompts (0 = all held-out test prompts)")
    val_prompts: int = opt(100, "validation prompts (0 = all held-out validation prompts)")
    eval_samples: int = opt(1, "responses per prompt from the policy and from the reference, compared pairwise")
    eval_every: int = opt(0, "validation win rate every N PPO steps (0 = only at the end)")
    sample_every: int = opt(10, "record a few rollouts with their token rewards every N PPO steps")
    checkpoint_every: int = opt(5, "save a resumable checkpoint every N PPO steps (DR: 5)")

    # > runtime
    device: str = opt("auto", "auto | cpu | cuda | cuda:N")
    bf16: bool = opt(True, "bf16 autocast on CUDA for sampling and the frozen forwards (trained forwards float32)")
    lora_rank: int = opt(
        0,
        "LoRA rank of the policy and the critic (peft, on every linear layer, alpha = 2 x rank): only the adapters "
        "and the value head train, for models too large to train whole; 0 (default) = full fine-tuning, as DR",
    )
    grad_checkpoint: bool = opt(
        False, "gradient checkpointing in the policy and the critic: less activation memory, ~1/3 more compute"
    )
    time_limit: float = opt(
        0.0, "seconds a run may take before its worker stops it, recorded failed and resumable (0 = no limit)"
    )
    threads: int = opt(1, THREADS_HELP)
    memory_budget_gb: float = opt(24.0, MEMORY_HELP)


def validate_rlhf(cfg: RlhfConfig) -> None:
    """The rlhf task's checks, beyond the ranges every config gets (`validate`)."""
    positive = (
        "rm_lr",
        "rm_epochs",
        "rm_batch",
        "max_prompt_len",
        "max_response_len",
        "actor_lr",
        "critic_lr",
        "eps_clip",
        "rollout_batch",
        "minibatch",
        "ppo_epochs",
        "micro_batch",
        "episodes",
        "max_new_tokens",
        "temperature",
        "gen_batch",
        "grad_clip",
        "sigma_floor",
        "reward_clip",
        "eval_samples",
        "sample_every",
        "checkpoint_every",
    )
    for name in positive:
        if getattr(cfg, name) <= 0:
            raise ConfigError(f"{name}={getattr(cfg, name)}: must be positive")
    for name in ("gamma", "lam"):
        if not 0 <= getattr(cfg, name) <= 1:
            raise ConfigError(f"{name}={getattr(cfg, name)}: must be in [0, 1]")
    for name in ("heldout_fraction", "val_fraction", "gold_fraction"):
        if not 0 < getattr(cfg, name) < 1:
            raise ConfigError(f"{name}={getattr(cfg, name)}: must be in (0, 1)")
    if cfg.minibatch > cfg.rollout_batch:
        raise ConfigError(
            f"minibatch={cfg.minibatch} is larger than rollout_batch={cfg.rollout_batch}: a PPO "
            "update takes its responses from one rollout"
        )
    if cfg.lora_rank < 0:
        raise ConfigError(f"lora_rank={cfg.lora_rank}: 0 (full fine-tuning) or a positive rank")
    if cfg.lora_rank and cfg.sft_epochs > 0:
        raise ConfigError(
            "lora_rank with sft_epochs: LoRA trains adapters on a chat model as it is; the warm-up (for the tiny "
            "random model) trains every weight: set sft_epochs=0"
        )
    if cfg.lora_rank and importlib.util.find_spec("peft") is None:
        raise ConfigError("lora_rank needs the peft package: pip install peft")
    if cfg.sft_epochs > 0 and cfg.sft_lr <= 0:
        raise ConfigError(f"sft_lr={cfg.sft_lr}: must be positive when sft_epochs > 0")
    if bool(cfg.reward_retrain_every) != bool(cfg.preference):
        raise ConfigError(
            "reward_retrain_every and preference go together: retraining the reward model on the "
            "policy's responses needs someone to rank them (preference=judge, human or module:function), and a "
            "preference is used only when reward_retrain_every > 0"
        )
    if cfg.reward_retrain_every and (cfg.retrain_k < 2 or cfg.retrain_prompts < 1):
        raise ConfigError(
            f"retrain_k={cfg.retrain_k}, retrain_prompts={cfg.retrain_prompts}: a retraining ranks at "
            "least 2 responses of at least 1 prompt"
        )
    if cfg.preference not in ("", "judge", "human"):
        try:
            check_scorer(cfg.preference)
        except ConfigError as err:
            raise ConfigError(str(err).replace("scorer=", "preference=", 1) + " (or judge, or human)") from None
    if cfg.rank_timeout < 0:
        raise ConfigError(f"rank_timeout={cfg.rank_timeout:g}: minutes, 0 or more (0 = wait as long as it takes)")
    if cfg.interpolate and cfg.reward_type == "every_segment_last":
        raise ConfigError(
            "interpolate changes the tokens inside a segment; reward_type=every_segment_last rewards "
            "only segment ends: pick another reward_type or interpolate=false"
        )
    if cfg.judge not in ("auto", "gold"):
        try:
            check_scorer(cfg.judge)
        except ConfigError as err:
            raise ConfigError(str(err).replace("scorer=", "judge=", 1) + " (or auto, or gold)") from None
    if not re.fullmatch(r"[\w.-]*", cfg.test_split):
        raise ConfigError(f"test_split={cfg.test_split!r}: a split name such as test, or empty")
    if not str(cfg.policy_model).strip():
        raise ConfigError("policy_model is empty: name a hub id, a local folder or tiny-gpt2")
    if not DEVICE.match(cfg.device):
        raise ConfigError(f"device={cfg.device!r}: choose auto, cpu, cuda or cuda:N")
    if max(cfg.max_prompt_len, cfg.max_response_len, cfg.max_new_tokens) > 131072:
        raise ConfigError(
            f"max_prompt_len={cfg.max_prompt_len}, max_response_len={cfg.max_response_len}, "
            f"max_new_tokens={cfg.max_new_tokens}: at most 131,072 tokens each"
        )
    # the largest logits of one forward: a micro-batch of pairs (reward model) or of rollouts (policy, reference)
    rows = max(
        2 * cfg.micro_batch * (cfg.max_prompt_len + cfg.max_response_len),
        cfg.micro_batch * (cfg.max_prompt_len + cfg.max_new_tokens),
    )
    need = rows * vocab_estimate(cfg.policy_model) * 16
    if need > cfg.memory_budget_gb * 1e9:
        raise ConfigError(
            f"a micro-batch ({cfg.micro_batch} rows of up to {cfg.max_prompt_len} + "
            f"{max(cfg.max_response_len, cfg.max_new_tokens)} tokens) would need about {need / 1e9:,.0f} "
            f"GB for its logits and gradients, over memory_budget_gb={cfg.memory_budget_gb:g}; lower "
            "micro_batch or the lengths, or raise the budget"
        )


TaskConfig = PromptConfig | SummarizeConfig | RlhfConfig


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
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value < 0 and f.name not in ("seed",):
            raise ConfigError(f"{f.name}={value!r}: must not be negative")
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 2**63:
            raise ConfigError(f"{f.name}={value!r}: out of range")
    if isinstance(cfg, RlhfConfig):
        validate_rlhf(cfg)
        return
    common = ("policy_lr", "reward_lr", "grad_clip", "agg_temp", "reward_hidden", "reward_k")
    if isinstance(cfg, PromptConfig):
        positive: tuple[str, ...] = common + (
            "prompt_length",
            "policy_batch",
            "max_steps",
            "eval_every",
            "reward_candidates",
            "reward_lists",
            "reward_epochs",
            "reward_max_steps",
            "reward_valid_draws",
            "reward_retrain_every",
            "val_draws",
            "val_prompts",
            "greedy_every",
            "top_k",
            "final_samples",
            "final_candidates",
            "final_top",
            "checkpoint_every",
            "sql_batch",
            "tau_candidates",
            "adaptor_hidden",
            "score_batch",
            "train_score_every",
        )
        unit: tuple[str, ...] = ("reward_subset", "lr_decay")
        models: tuple[str, ...] = ("policy_model",) + (() if cfg.scorer else ("task_model",))
        if cfg.scorer:
            check_scorer(cfg.scorer)
    else:
        positive = common + (
            "batch_size",
            "grad_accum",
            "reward_batch",
            "reward_grad_accum",
            "epochs",
            "max_target_length",
            "max_source_length",
            "checkpoint_every",
            "reward_epochs",
            "reward_retrain_every",
            "eval_every",
            "reward_top_k",
        )
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
            raise ConfigError(
                f"prompt_length={cfg.prompt_length}: at most 128 tokens (RLPrompt's prompts are 2-5; "
                "the task LM reads each beside a sentence within its 512 positions)"
            )
        seqs = max(
            cfg.policy_batch,
            cfg.sql_batch,
            cfg.reward_candidates,
            cfg.tau_candidates,
            cfg.val_draws * cfg.val_prompts,
            cfg.final_samples,
        )
        need = seqs * cfg.prompt_length * vocab_estimate(cfg.policy_model) * 16
        what = "the largest prompt batch"
    else:
        if cfg.max_target_length > 4096 or cfg.max_source_length > 65536:
            raise ConfigError(
                f"max_target_length={cfg.max_target_length}, max_source_length={cfg.max_source_length}: "
                "at most 4,096 and 65,536 tokens"
            )
        seqs = max(cfg.batch_size, cfg.batch_size * 4, cfg.reward_batch * cfg.reward_k)
        need = seqs * cfg.max_target_length * vocab_estimate(cfg.policy_model, seq2seq=True) * 16
        what = "the largest batch of summaries"
    if need > cfg.memory_budget_gb * 1e9:
        raise ConfigError(
            f"{what} ({seqs:,} sequences) would need about {need / 1e9:,.0f} GB for its logits and "
            f"gradients, over memory_budget_gb={cfg.memory_budget_gb:g}; lower the batch or raise "
            "the budget"
        )


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
