"""The tasks pgg knows, their datasets, methods and presets, and the one place a queue request is validated.

The CLI and the app take every name from here, so a new task, dataset or method shows up everywhere by
being registered once. Stdlib only (the training code is named by a "module:function" string).
"""

from __future__ import annotations

import itertools
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.config import PromptConfig, RlhfConfig, SummarizeConfig, build_config, parse_overrides
from engine.errors import ConfigError

# 16-shot folder of each dataset seed, as in the original code (fsc_helpers.py:59).
DATASET_SEED_DIRS = {0: "16-100", 1: "16-13", 2: "16-21", 3: "16-42", 4: "16-87"}


@dataclass(frozen=True)
class TaskSpec:
    name: str
    help: str
    config_cls: type
    trainer: str  # "module:function" called as fn(cfg, reporter, run_dir) -> results dict
    methods: dict[str, str]
    datasets: dict[str, str]
    presets: dict[str, dict[str, Any]]
    dataset_paths: bool = False  # True: --dataset may also be a path to local files
    result_metric: str = "test/accuracy"
    # the validation number a sweep's best configuration is chosen by (never a test number); higher is better.
    # The prompt task's is the dev mean of the candidates whose test mean is reported (top final_top).
    select_metric: str = "dev/top_score"
    # shown beside the headline in the app's groups, and the results its Compare screen cycles through
    second_metric: str = "dev/score"
    compare_metrics: tuple[str, ...] = ("test/accuracy", "test/score", "dev/score")

    @property
    def default_method(self) -> str:
        """The method a request that names none gets: the task's first (pgg's own where the task has it)."""
        return next(iter(self.methods))


_TINY_PROMPT = dict(
    policy_model="tiny-gpt2",
    task_model="toy-roberta",
    adaptor_hidden=64,
    reward_hidden=64,
    top_k=64,
    policy_batch=16,
    policy_lr=3e-3,
    reward_lr=1e-3,
    max_steps=60,
    eval_every=20,
    val_draws=2,
    val_prompts=8,
    greedy_every=5,
    checkpoint_every=20,
    reward_epochs=12,
    reward_max_steps=120,
    reward_valid_draws=4,
    reward_valid_fixed=True,
    reward_retrain_every=20,
    reward_lists=16,
    train_score_every=5,
    final_samples=8,
    final_candidates=4,
    max_test_examples=64,
    score_batch=256,
    block_special_tokens=True,
)

_TINY_SUMMARIZE = dict(
    policy_model="tiny-t5",
    reward_model="tiny-t5",
    reward_hidden=64,
    batch_size=4,
    grad_accum=2,
    policy_lr=1e-3,
    reward_lr=3e-3,
    epochs=4.0,
    max_source_length=96,
    max_target_length=24,
    reward_batch=4,
    reward_grad_accum=2,
    reward_epochs=2.0,
    reward_val_fraction=1.0,
    max_val_examples=8,
    max_test_examples=8,
    checkpoint_every=4,
)

# A random 2-layer chat GPT-2 warmed up on the toy responses, then reward model and PPO: on 2 CPU cores the
# whole run takes well under a minute (docs: tests/test_rlhf_train.py measures it).
_TINY_RLHF = dict(
    policy_model="tiny-gpt2",
    sft_epochs=4.0,
    sft_lr=3e-3,
    rm_lr=1e-3,
    rm_epochs=4.0,
    rm_batch=32,
    max_prompt_len=48,
    max_response_len=24,
    max_new_tokens=16,
    seg_entropy=3.4,
    actor_lr=2e-4,
    critic_lr=1e-3,
    kl_coef=0.05,
    rollout_batch=32,
    minibatch=16,
    ppo_epochs=2,
    micro_batch=32,
    gen_batch=64,
    episodes=12.0,
    max_rollouts=40,
    lr_schedule="constant",
    eval_prompts=0,
    val_prompts=0,
    eval_samples=8,
    sample_every=10,
    checkpoint_every=20,
    max_heldout_pairs=0,
)
# SmolLM2-135M-Instruct (a ChatML chat model) from a local folder: set it with
# `--set policy_model=/path/to/SmolLM2-135M-Instruct` (`hf download HuggingFaceTB/SmolLM2-135M-Instruct
# --local-dir ...` where the hub is reachable). Sizes for one GPU or a patient CPU (rlhf.md §6).
_SMOLLM2_RLHF = dict(
    policy_model="/path/to/SmolLM2-135M-Instruct",
    rm_lr=1e-5,
    rm_epochs=1.0,
    rm_batch=32,
    max_prompt_len=256,
    max_response_len=256,
    max_new_tokens=64,
    actor_lr=1e-6,
    critic_lr=1e-5,
    rollout_batch=64,
    minibatch=16,
    micro_batch=4,
    gen_batch=16,
    max_pairs=20000,
    eval_prompts=200,
    val_prompts=64,
)

TASKS: dict[str, TaskSpec] = {
    "prompt": TaskSpec(
        name="prompt",
        help="discrete prompt generation for few-shot text classification (scored by a task LM)",
        config_cls=PromptConfig,
        trainer="engine.prompt.train:train",
        methods={
            "pgg": "token-level reward model (ListMLE) + reward-weighted REINFORCE",
            "seq-reinforce": "REINFORCE weighted by the sequence's true score",
            "rlprompt": "RLPrompt: soft Q-learning on the sparse sequence reward",
        },
        datasets={
            "sst-2": "SST-2, 2 classes",
            "yelp-2": "Yelp Polarity, 2 classes",
            "agnews": "AG News, 4 classes",
            "mr": "Movie Review, 2 classes",
            "cr": "Customer Review, 2 classes",
            "sst-5": "SST-5, 5 classes",
            "toy-sentiment": "built-in toy sentiment set (offline demos and tests)",
        },
        presets={"paper": {}, "tiny": _TINY_PROMPT},
        result_metric="test/accuracy",
    ),
    "summarize": TaskSpec(
        name="summarize",
        help="summarization with reward-weighted MLE guided by a learned token reward",
        config_cls=SummarizeConfig,
        trainer="engine.summarize.train:train",
        methods={"pgg": "token-level reward model + reward-weighted MLE", "mle": "plain MLE fine-tuning (Sup)"},
        datasets={
            "cnn_dailymail": "CNN/DailyMail 3.0.0",
            "xsum": "XSum",
            "toy-news": "built-in toy article/summary pairs (offline demos and tests)",
        },
        presets={"paper": {}, "tiny": _TINY_SUMMARIZE},
        dataset_paths=True,
        result_metric="test/rouge1",
        select_metric="val/score",
        second_metric="test/meteor",
        compare_metrics=("test/rouge1", "test/rouge2", "test/rougeL", "test/rougeLsum", "test/meteor"),
    ),
    "rlhf": TaskSpec(
        name="rlhf",
        help="RLHF PPO with token-, segment- or bandit-level rewards learned from preference pairs (Yin et al. 2025)",
        config_cls=RlhfConfig,
        trainer="engine.rlhf.train:train",
        methods={
            "token-ppo": "a reward per token (c = 0), dense PPO",
            "segment-ppo": "a reward per segment cut where the reference is uncertain (c = seg_entropy), dense PPO",
            "bandit-ppo": "one reward at the end token: classical RLHF PPO (the baseline)",
        },
        datasets={
            "toy-prefs": "built-in toy pairs with a known additive word preference (offline demos and tests)",
            "toy-prefs-xor": "built-in toy pairs with a non-additive (XOR) preference",
            "trl-lib/ultrafeedback_binarized": "UltraFeedback pairs in TRL's format (hub)",
            "Anthropic/hh-rlhf": "Anthropic's helpful-harmless pairs (hub)",
        },
        # paper: Yin et al.'s Llama-3.1-8B-Instruct settings, the config's defaults (rlhf.md §2-§3)
        presets={"paper": {}, "tiny": _TINY_RLHF, "smollm2": _SMOLLM2_RLHF},
        dataset_paths=True,
        result_metric="test/win_rate",
        select_metric="val/win_rate",
        second_metric="test/kl",
        compare_metrics=("test/win_rate", "test/judge_reward", "test/kl", "test/length", "reward/accuracy"),
    ),
}

# Datasets that ship with pgg: they need neither --data-dir nor the hub.
BUILTIN_DATASETS = {"toy-sentiment", "toy-news", "toy-prefs", "toy-prefs-xor"}


def get_task(name: str) -> TaskSpec:
    if name not in TASKS:
        raise ConfigError(f"unknown task {name!r}; choose one of: {', '.join(TASKS)}")
    return TASKS[name]


def parse_seeds(text: str, what: str = "seeds") -> list[int]:
    """'0-4' -> [0..4], '0,2,5' -> [0, 2, 5], '3' -> [3]; ranges and lists mix ('0-2,7')."""
    seeds: list[int] = []
    for part in text.replace(" ", "").split(","):
        lo, sep, hi = part.partition("-")
        try:
            a = int(lo)
            b = int(hi) if sep else a
        except ValueError:
            raise ConfigError(f"bad {what} {text!r}: expected N, A-B or a comma list such as 0-4 or 0,2,5") from None
        if a < 0 or b < a:
            raise ConfigError(f"bad {what} {text!r}: a range A-B needs 0 <= A <= B")
        seeds.extend(range(a, b + 1))
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"bad {what} {text!r}: a seed is listed twice")
    return seeds


@dataclass
class RunSpec:
    """One run of a sweep, validated and ready to be queued."""

    task: str
    dataset: str
    method: str
    seed: int
    dataset_seed: int
    preset: str
    config: Any  # the task's config dataclass
    overrides: dict[str, str] = field(default_factory=dict)


def plan_runs(
    task: str,
    dataset: str,
    method: str = "",
    seeds: str = "0",
    dataset_seeds: str = "0",
    preset: str = "paper",
    data_dir: str = "",
    overrides: list[str] | None = None,
) -> list[RunSpec]:
    """Validate a queue request and expand it into one RunSpec per (dataset seed, seed).

    Everything is checked before anything is written: a bad request raises ConfigError and queues nothing.
    """
    spec = get_task(task)
    method = method or spec.default_method
    if method not in spec.methods:
        raise ConfigError(f"unknown method {method!r} for task {task}; choose one of: {', '.join(spec.methods)}")
    if preset not in spec.presets:
        raise ConfigError(f"unknown preset {preset!r}; choose one of: {', '.join(spec.presets)}")
    check_dataset(spec, dataset, data_dir)
    seed_list = parse_seeds(seeds, "seeds")
    dseed_list = parse_seeds(dataset_seeds, "dataset seeds")
    if task == "prompt" and data_dir:
        bad = [s for s in dseed_list if s not in DATASET_SEED_DIRS]
        if bad:
            raise ConfigError(f"dataset seed {bad[0]} has no 16-shot folder; use 0-4")
    extra = parse_overrides(overrides or [])
    for fixed in ("dataset", "method", "seed", "dataset_seed", "data_dir"):
        if fixed in extra:
            raise ConfigError(f"set {fixed} with its own option, not --set {fixed}=...")
    if spec.dataset_paths and dataset not in spec.datasets and Path(dataset).expanduser().exists():
        dataset = os.path.abspath(os.path.expanduser(dataset))  # a worker runs elsewhere: the queuer's path
    if extra.get("rankings_file"):  # a worker runs elsewhere: the queuer's relative path, made absolute
        extra["rankings_file"] = os.path.abspath(os.path.expanduser(extra["rankings_file"]))
    runs = []
    checked: set[tuple[str, int]] = set()
    for dseed in dseed_list:
        for seed in seed_list:
            values: dict[str, Any] = dict(spec.presets[preset])
            values.update(extra)
            values.update(
                dataset=dataset,
                method=method,
                seed=seed,
                dataset_seed=dseed,
                data_dir=os.path.abspath(data_dir) if data_dir else "",
            )
            cfg = build_config(spec.config_cls, values)
            if getattr(cfg, "rankings_file", "") and (cfg.rankings_file, cfg.reward_k) not in checked:
                check_rankings_file(cfg.rankings_file, cfg.reward_k)
                checked.add((cfg.rankings_file, cfg.reward_k))
            runs.append(RunSpec(task, dataset, method, seed, dseed, preset, cfg, extra))
    return runs


def check_rankings_file(path: str, k: int) -> None:
    """A run's rankings_file, read through now (streamed) rather than failing the run when it starts: it exists,
    every record is well formed, and every list has the run's reward_k candidates."""
    from engine.rankings import iter_file  # torch-free

    if not Path(path).is_file():
        raise ConfigError(f"rankings_file {path!r} does not exist")
    n = sum(1 for _ in iter_file(path, k))
    if n == 0:
        raise ConfigError(f"rankings_file {path!r} holds no ranked list")


def plan_errors(
    task: str,
    dataset: str,
    method: str = "",
    seeds: str = "0",
    dataset_seeds: str = "0",
    preset: str = "paper",
    data_dir: str = "",
    overrides: list[str] | None = None,
) -> list[str]:
    """Every problem of a queue request at once, one line each (the queue form shows them all; `plan_runs`
    stops at the first). Empty when `plan_runs` would succeed."""
    errors: list[str] = []

    def check(fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except ConfigError as err:
            errors.append(str(err))
            return None

    spec = check(get_task, task)
    if spec is None:
        return errors
    method = method or spec.default_method
    if method not in spec.methods:
        errors.append(f"unknown method {method!r} for task {task}; choose one of: {', '.join(spec.methods)}")
    if preset not in spec.presets:
        errors.append(f"unknown preset {preset!r}; choose one of: {', '.join(spec.presets)}")
    check(check_dataset, spec, dataset, data_dir)
    check(parse_seeds, seeds, "seeds")
    check(parse_seeds, dataset_seeds, "dataset seeds")
    extra = check(parse_overrides, overrides or [])
    if not errors and extra:  # every bad value named, not only the first
        base = dict(spec.presets[preset], dataset=dataset, method=method)
        fixed = ("dataset", "method", "seed", "dataset_seed", "data_dir")
        settable = {k: v for k, v in extra.items() if k not in fixed}
        errors += value_errors(spec.config_cls, base, settable)
    if not errors:  # what only the whole request can show: settings together, seed folders
        check(plan_runs, task, dataset, method, seeds, dataset_seeds, preset, data_dir, overrides)
    return errors


def value_errors(cls: type, base: dict[str, Any], values: dict[str, str]) -> list[str]:
    """One line per bad setting of a request. The settings that are fine grow from those fine alone, then those
    fine beside them, one at a time or two together (settings that go together, such as reward_retrain_every
    and preference, are each refused alone); every setting left is named with its error in that company."""

    def error(extra: dict[str, str]) -> str | None:
        try:
            build_config(cls, {**base, **extra})
        except ConfigError as err:
            return str(err)
        return None

    good = {k: v for k, v in values.items() if error({k: v}) is None}
    grown = True
    while grown:
        grown = False
        rest = [k for k in values if k not in good]
        for k in rest:
            if error({**good, k: values[k]}) is None:
                good[k], grown = values[k], True
                break
        else:
            for a, b in itertools.combinations(rest, 2):
                if error({**good, a: values[a], b: values[b]}) is None:
                    good.update({a: values[a], b: values[b]})
                    grown = True
                    break
    out: list[str] = []
    for k in values:
        if k not in good and (msg := error({**good, k: values[k]})) is not None and msg not in out:
            out.append(msg)
    return out


def check_dataset(spec: TaskSpec, dataset: str, data_dir: str) -> None:
    """Unknown names and missing folders fail here, at queue time, not minutes into a run."""
    is_path = (
        spec.dataset_paths
        and dataset not in spec.datasets
        and (os.sep in dataset or dataset.endswith((".jsonl", ".json", ".csv", ".parquet")))
    )
    if is_path and spec.name == "rlhf":
        check_preference_source(dataset)
        return
    if is_path:
        if not Path(dataset).is_file():
            raise ConfigError(f"dataset file {dataset!r} does not exist")
        return
    if dataset not in spec.datasets:
        more = " or a path to a .jsonl/.csv file" if spec.dataset_paths else ""
        raise ConfigError(
            f"unknown dataset {dataset!r} for task {spec.name}; choose one of: {', '.join(spec.datasets)}{more}"
        )
    if data_dir:
        root = Path(data_dir)
        if not root.is_dir():
            raise ConfigError(f"data dir {data_dir!r} does not exist")
        if spec.name == "prompt" and not (root / dataset).is_dir():
            raise ConfigError(
                f"data dir {data_dir!r} has no folder {dataset!r} (expected {data_dir}/{dataset}/16-100/...)"
            )


def check_preference_source(dataset: str) -> None:
    """An rlhf dataset that is not listed: a local file or folder of .jsonl/.csv/.parquet files, read row by row
    now (streamed, the first 1,000 rows; every problem named, up to 20), or a hub id (org/name), trusted until
    the run loads it. engine.rlhf.data imports torch and datasets only inside the functions that tokenise or
    read the hub, which a local check never reaches: this module still starts without them."""
    from engine.rlhf.data import check_file

    path = Path(dataset).expanduser()
    if not path.exists():
        if re.fullmatch(r"[A-Za-z0-9][\w.-]*/[\w.-]+", dataset) and not path.suffix:
            return
        raise ConfigError(
            f"dataset {dataset!r} does not exist (a .jsonl/.csv/.parquet file, a folder of them, or "
            "a hub id such as trl-lib/ultrafeedback_binarized)"
        )
    problems = check_file(path, limit=1000)
    if problems:
        more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
        raise ConfigError(problems[0] + more)
