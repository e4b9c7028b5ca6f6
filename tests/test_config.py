"""Queue-time validation: seeds, overrides, names, presets."""

import pytest

from engine.config import PromptConfig, SummarizeConfig, build_config, from_json, parse_overrides, to_json
from engine.errors import ConfigError
from engine.registry import TASKS, parse_seeds, plan_runs


@pytest.mark.parametrize("text,seeds", [("0", [0]), ("0-4", [0, 1, 2, 3, 4]), ("0,2,5", [0, 2, 5]),
                                        ("0-1,7", [0, 1, 7]), (" 3 ", [3])])
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
    assert (s.reward_k, s.batch_size, s.grad_accum, s.epochs, s.reward_epochs, s.reward_top_k) == (3, 8, 4, 5.0, 0.1, 50)


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


@pytest.mark.parametrize("kwargs,match", [
    (dict(task="translate", dataset="sst-2"), "unknown task"),
    (dict(task="prompt", dataset="imdb"), "unknown dataset"),
    (dict(task="prompt", dataset="sst-2", method="ppo"), "unknown method"),
    (dict(task="prompt", dataset="sst-2", preset="huge"), "unknown preset"),
    (dict(task="prompt", dataset="sst-2", data_dir="/nonexistent/dir"), "does not exist"),
    (dict(task="prompt", dataset="sst-2", seeds="3-1"), "bad seeds"),
    (dict(task="prompt", dataset="sst-2", overrides=["seed=3"]), "own option"),
    (dict(task="summarize", dataset="/no/such/file.jsonl"), "does not exist"),
])
def test_plan_rejects(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        plan_runs(**kwargs)


def test_presets_build():
    for spec in TASKS.values():
        for preset in spec.presets:
            plan_runs(spec.name, next(iter(spec.datasets)), preset=preset)


def test_plan_errors_lists_every_problem_at_once():
    from engine.registry import plan_errors, plan_runs

    errors = plan_errors("prompt", "imdb", "ppo", "3-1", "x", "huge", overrides=["agg"])
    assert len(errors) == 6, errors
    for part in ("unknown method", "unknown preset", "unknown dataset", "bad seeds", "bad dataset seeds", "malformed"):
        assert sum(part in e for e in errors) == 1, (part, errors)
    assert plan_errors("prompt", "toy-sentiment", overrides=["agg=median"]) == [
        str(pytest.raises(Exception, plan_runs, "prompt", "toy-sentiment", overrides=["agg=median"]).value)]
    assert plan_errors("prompt", "toy-sentiment", "pgg", "0-2", preset="tiny") == []
