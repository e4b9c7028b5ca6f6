"""Queue-time validation: seeds, overrides, names, presets."""

import dataclasses
import re

import pytest

from engine.config import PromptConfig, SummarizeConfig, build_config, from_json, parse_overrides, to_json
from engine.errors import ConfigError
from engine.registry import TASKS, parse_seeds, plan_runs


@pytest.mark.parametrize(
    "text,seeds", [("0", [0]), ("0-4", [0, 1, 2, 3, 4]), ("0,2,5", [0, 2, 5]), ("0-1,7", [0, 1, 7]), (" 3 ", [3])]
)
def test_parse_seeds(text, seeds):
    assert parse_seeds(text) == seeds


@pytest.mark.parametrize("text", ["3-1", "a", "", "1-", "-1", "0,0", "1.5"])
def test_parse_seeds_rejects(text):
    with pytest.raises(ConfigError):
        parse_seeds(text)


def test_defaults_are_the_papers():
    c = PromptConfig()
    assert (c.prompt_length, c.top_k, c.policy_batch, c.policy_lr, c.entropy_coeff) == (5, 256, 64, 5e-5, 0.125)
    assert (c.reward_k, c.reward_candidates, c.reward_lists, c.max_steps, c.eval_every) == (5, 16, 64, 12000, 500)
    assert (c.reward_retrain_every, c.correct_coeff, c.incorrect_coeff, c.agg_temp) == (1000, 200, 180, 2.0)
    s = SummarizeConfig()
    assert (s.reward_k, s.batch_size, s.grad_accum, s.epochs, s.reward_epochs, s.reward_top_k) == (
        3,
        8,
        4,
        5.0,
        0.1,
        50,
    )


def test_overrides_are_typed_and_checked():
    cfg = build_config(PromptConfig, parse_overrides(["agg=min", "top_k=64", "use_q=yes", "policy_lr=1e-4"]))
    assert (cfg.agg, cfg.top_k, cfg.use_q, cfg.policy_lr) == ("min", 64, True, 1e-4)
    for bad in (["agg=median"], ["top_k=many"], ["use_q=maybe"], ["top_kk=3"], ["policy_batch=0"]):
        with pytest.raises(ConfigError):
            build_config(PromptConfig, parse_overrides(bad))
    for bad in (["agg"], ["=3"], ["a b=3"]):
        with pytest.raises(ConfigError, match="malformed"):
            parse_overrides(bad)


def test_unknown_key_suggests_the_close_one():
    with pytest.raises(ConfigError, match="did you mean 'top_k'"):
        build_config(PromptConfig, {"topk": "5"})


def test_plan_expands_sweeps_and_round_trips():
    runs = plan_runs("prompt", "toy-sentiment", "pgg", "0-2", "0,1", "tiny", "", ["agg=max"])
    assert [(r.dataset_seed, r.seed) for r in runs] == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]
    cfg = runs[4].config
    assert (cfg.seed, cfg.dataset_seed, cfg.agg, cfg.policy_model) == (1, 1, "max", "tiny-gpt2")
    assert from_json(PromptConfig, to_json(cfg)) == cfg


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(task="translate", dataset="sst-2"), "unknown task"),
        (dict(task="prompt", dataset="imdb"), "unknown dataset"),
        (dict(task="prompt", dataset="sst-2", method="ppo"), "unknown method"),
        (dict(task="prompt", dataset="sst-2", preset="huge"), "unknown preset"),
        (dict(task="prompt", dataset="sst-2", data_dir="/nonexistent/dir"), "does not exist"),
        (dict(task="prompt", dataset="sst-2", seeds="3-1"), "bad seeds"),
        (dict(task="prompt", dataset="sst-2", overrides=["seed=3"]), "own option"),
        (dict(task="summarize", dataset="/no/such/file.jsonl"), "does not exist"),
    ],
)
def test_plan_rejects(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        plan_runs(**kwargs)


def test_presets_build():
    """Every preset of every task plans one run whose config is the task's defaults with the preset's values
    on top: none dropped, none leaking into another setting."""
    for spec in TASKS.values():
        dataset, method = next(iter(spec.datasets)), next(iter(spec.methods))
        defaults = dataclasses.asdict(spec.config_cls())
        for preset, values in spec.presets.items():
            (run,) = plan_runs(spec.name, dataset, method, preset=preset)
            assert (type(run.config), run.preset) == (spec.config_cls, preset)
            expected = {
                **defaults,
                **values,
                "dataset": dataset,
                "method": method,
                "seed": 0,
                "dataset_seed": 0,
                "data_dir": "",
            }
            assert dataclasses.asdict(run.config) == expected, (spec.name, preset)


def test_plan_errors_lists_every_problem_at_once():
    from engine.registry import plan_errors, plan_runs

    errors = plan_errors("prompt", "imdb", "ppo", "3-1", "x", "huge", overrides=["agg"])
    assert len(errors) == 6, errors
    for part in ("unknown method", "unknown preset", "unknown dataset", "bad seeds", "bad dataset seeds", "malformed"):
        assert sum(part in e for e in errors) == 1, (part, errors)
    assert plan_errors("prompt", "toy-sentiment", overrides=["agg=median"]) == [
        str(pytest.raises(ConfigError, plan_runs, "prompt", "toy-sentiment", overrides=["agg=median"]).value)
    ]
    assert plan_errors("prompt", "toy-sentiment", "pgg", "0-2", preset="tiny") == []


@pytest.mark.parametrize(
    "task, setting, says",
    [
        ("prompt", "policy_batch=100000000", "would need about 402,056 GB"),
        ("prompt", "prompt_length=1000000", "prompt_length=1000000: at most 128 tokens"),
        ("prompt", "reward_candidates=10000000", "over memory_budget_gb=24"),
        ("summarize", "batch_size=100000", "the largest batch of summaries (400,000 sequences)"),
        ("summarize", "max_target_length=100000", "at most 4,096"),
    ],
)
def test_sizes_that_would_exhaust_the_machine_are_refused_at_queue_time(task, setting, says):
    from engine.registry import plan_runs

    dataset = "toy-sentiment" if task == "prompt" else "toy-news"
    with pytest.raises(ConfigError, match=re.escape(says)):
        plan_runs(task, dataset, overrides=[setting])
    if "length" not in setting:  # a stated budget: a bigger machine says so
        plan_runs(task, dataset, overrides=[setting, "memory_budget_gb=1000000"])


def test_an_allocation_that_fails_at_run_time_is_one_line(db, monkeypatch, capsys):
    from engine.__main__ import execute
    from engine.config import to_json
    from engine.registry import plan_runs
    from engine.store import Store

    st = Store.open(db)
    (rid,) = st.queue(plan_runs("prompt", "toy-sentiment", preset="tiny"), to_json)

    def boom(*a, **k):
        raise RuntimeError(
            "[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: not enough memory: "
            "you tried to allocate 25600000000 bytes."
        )

    monkeypatch.setattr("engine.prompt.train.train", boom)
    assert execute(st, rid) == 1
    run = st.get(rid)
    assert run.status == "failed" and "Traceback" not in run.error and "\n" not in run.error
    assert run.error.startswith("out of memory ([enforce fail") and "memory_budget_gb" in run.error
    assert capsys.readouterr().err.strip().count("\n") == 0
