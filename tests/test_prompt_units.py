"""Prompt task pieces: schedule, data, models, scorer, policy, reward model."""

import sys
from pathlib import Path

import pytest
import torch

from engine.config import PromptConfig
from engine.errors import EngineError
from engine.models import load_model, load_tokenizer, tiny_tokenizer
from engine.prompt.data import MASKED_TEMPLATE, TOPIC_TEMPLATE, kshot, load_splits
from engine.prompt.policy import PromptPolicy
from engine.registry import plan_runs
from engine.report import MemoryReporter
from engine.prompt.scorer import PieceEncoder, TaskLMScorer, UserScorer
from engine.prompt.train import is_greedy_step, is_reward_retrain_step, special_ids
from engine.reward_model import TokenRewardModel
from support.paths import SHARED_DATA

sys.path.insert(0, str(Path(__file__).parent))


def test_schedule_matches_the_original():
    cfg = PromptConfig()  # paper defaults: 12000 steps
    retrains = [n for n in range(1, 12001) if is_reward_retrain_step(cfg, n)]
    assert retrains == [1000, 2000, 3000, 4000, 5000, 6000]  # + the one before step 1 = 7 trainings
    assert [n for n in range(1, 12001) if n % cfg.eval_every == 0] == list(range(500, 12001, 500))
    greedy = [n for n in range(1, 12001) if is_greedy_step(cfg, n, early_stop_left=7)]
    assert greedy[0] == 11000 and greedy[-1] == 12000 and len(greedy) == 101
    assert is_greedy_step(cfg, 4010, early_stop_left=2)  # near early stopping, greedy starts early
    assert not is_greedy_step(cfg, 4010, early_stop_left=3)
    seq = PromptConfig(method="seq-reinforce")
    assert not any(is_reward_retrain_step(seq, n) for n in range(1, 12001))
    assert is_greedy_step(PromptConfig(method="rlprompt"), 10, early_stop_left=7)
    assert PromptConfig().reward_max_steps // PromptConfig().reward_epochs == 100  # steps per reward epoch


def test_the_loop_retrains_when_the_schedule_says(monkeypatch, tmp_path):
    """The loop asks is_reward_retrain_step (up to and including max_steps/2); no other test of the
    schedule would see a loop that asked something else."""
    from engine.prompt import train as prompt_train
    from engine.registry import plan_runs
    from engine.report import NullReporter

    (spec,) = plan_runs(
        "prompt",
        "toy-sentiment",
        "pgg",
        preset="tiny",
        overrides=["max_steps=80", "eval_every=20", "reward_retrain_every=20"],
    )
    trained = []

    def fake_reward(ctx):
        trained.append(ctx.state.step)
        ctx.state.reward_trainings += 1

    monkeypatch.setattr(prompt_train, "train_reward_model", fake_reward)
    monkeypatch.setattr(prompt_train, "policy_step", lambda ctx, n: None)
    monkeypatch.setattr(prompt_train, "validate", lambda ctx, n: None)
    monkeypatch.setattr(prompt_train, "greedy_candidate", lambda ctx, n: None)
    monkeypatch.setattr(prompt_train, "save_checkpoint", lambda ctx: None)
    monkeypatch.setattr(prompt_train, "final_choice", lambda ctx: {"steps": ctx.state.step})
    assert prompt_train.train(spec.config, NullReporter(), tmp_path) == {"steps": 80}
    assert trained == [0, 20, 40] == [0] + [n for n in range(1, 81) if is_reward_retrain_step(spec.config, n)]


def test_fewshot_layout_and_columns():
    sst = load_splits("sst-2", 0, str(SHARED_DATA))
    assert (len(sst.train), len(sst.dev), len(sst.test)) == (32, 32, 1821)
    ag = load_splits("agnews", 3, str(SHARED_DATA))  # train/dev use `text`, test uses `sentence`
    assert (len(ag.train), len(ag.test)) == (64, 7600) and {e.label for e in ag.train} == {0, 1, 2, 3}
    yelp = load_splits("yelp-2", 1, str(SHARED_DATA))
    assert yelp.test == [] and len(yelp.train) == 32
    assert load_splits("toy-sentiment", 0, max_test=10).test.__len__() == 10
    with pytest.raises(EngineError, match="no folder"):
        load_splits("sst-2", 0, "/tmp")


def test_kshot_is_deterministic_and_disjoint():
    texts = [f"t{i}" for i in range(200)]
    labels = [i % 2 for i in range(200)]
    a = kshot(texts, labels, 16, seed=3)
    assert a == kshot(texts, labels, 16, seed=3) and a != kshot(texts, labels, 16, seed=4)
    train, dev = a
    assert len(train) == len(dev) == 32 and not {e.text for e in train} & {e.text for e in dev}
    assert sum(e.label for e in train) == 16
    with pytest.raises(EngineError, match="needed"):
        kshot(texts[:20], labels[:20], 16, 0)


def test_models_load_from_local_folders(tmp_path):
    model = load_model("tiny-gpt2", "causal", "policy", "policy_model")
    tok = tiny_tokenizer("causal")
    model.save_pretrained(tmp_path / "m")
    tok.save_pretrained(tmp_path / "m")
    again = load_model(str(tmp_path / "m"), "causal", "policy", "policy_model")
    assert torch.equal(again.transformer.wte.weight, model.transformer.wte.weight)
    assert load_tokenizer(str(tmp_path / "m"), "policy", "policy_model").tokenize(" great") == ["Ġgreat"]
    base = load_model(str(tmp_path / "m"), "base", "reward", "reward_model")  # the backbone for the reward model
    assert base.config.n_layer == 2


def test_unreachable_hub_model_is_one_clear_line():
    with pytest.raises(EngineError) as err:
        load_model("distilgpt2", "causal", "policy", "policy_model")
    msg = str(err.value)
    assert "distilgpt2" in msg and "--set policy_model=" in msg and "\n" not in msg
    with pytest.raises(EngineError, match="does not exist"):
        load_model("/no/such/model", "causal", "policy", "policy_model")


def test_an_unreachable_hub_is_asked_once_and_fails_fast(monkeypatch):
    """Offline without HF_HUB_OFFLINE, transformers retried each file for ~50 s; one 3 s probe decides instead."""
    import socket

    from engine import models
    from transformers import AutoTokenizer

    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    probes, calls = [], []

    def no_network(address, timeout=None):
        probes.append((address, timeout))
        raise OSError("Name or service not known")

    def spy(name, **kwargs):
        calls.append(kwargs)
        raise OSError("not in the cache")

    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(AutoTokenizer, "from_pretrained", spy)
    models.hub_reachable.cache_clear()
    try:
        for _ in range(2):
            with pytest.raises(EngineError, match="hub is not reachable"):
                load_tokenizer("distilgpt2", "policy", "policy_model")
    finally:
        models.hub_reachable.cache_clear()
    assert len(probes) == 1 and probes[0][1] <= 5  # asked once, briefly
    assert calls == [{"local_files_only": True}] * 2  # the cache only: no retrying downloads


def test_piece_encoder_equals_whole_string_tokenization():
    tok = tiny_tokenizer("masked")
    prompts = [" film great", "Rated Grade", "x  two", "end ", " <mask> ", "a\nb", "é!?", ""]
    for template in (MASKED_TEMPLATE, TOPIC_TEMPLATE):
        tok.truncation_side = "left" if template.endswith("{mask} .") else "right"
        sentences = [e.text for e in load_splits("sst-2", 0, str(SHARED_DATA)).train] + ["ends with space ", "x" * 2000]
        got = PieceEncoder(tok, template).encode(prompts, sentences)
        want = [
            tok(template.format(sentence_1=s, prompt=p, mask=tok.mask_token), truncation=True)["input_ids"]
            for p in prompts
            for s in sentences
        ]
        assert got == want


@pytest.fixture(scope="module")
def splits():
    return load_splits("toy-sentiment", 0)


def test_masked_scorer_reads_the_mask_and_computes_the_gap(splits):
    model = load_model("tiny-roberta", "masked", "task", "task_model")
    tok = load_tokenizer("tiny-roberta", "task", "task_model")
    sc = TaskLMScorer(model, tok, "masked", splits.info, torch.device("cpu"), batch=7)
    prompts = ["great film", "terrible"]
    probs = sc.class_probs(prompts, splits.dev[:5])  # (P, N, C)
    text = MASKED_TEMPLATE.format(sentence_1=splits.dev[2].text, prompt=prompts[1], mask=tok.mask_token)
    enc = tok(text, return_tensors="pt")
    logits = model(**enc).logits[0, (enc["input_ids"][0] == tok.mask_token_id).nonzero()[0, 0]]
    assert torch.allclose(probs[1, 2], logits[sc.verbalizer_ids].softmax(-1), atol=1e-5)
    s = sc.score(prompts, splits.dev[:5])
    p_label = probs[0, torch.arange(5), torch.tensor([e.label for e in splits.dev[:5]])]
    gap = 2 * p_label - 1  # two classes: p[label] - p[other]
    expected = torch.where(gap > 0, gap * 200, gap * 180).mean()
    assert s.score[0].item() == pytest.approx(expected.item(), rel=1e-5)
    assert s.accuracy[0].item() == pytest.approx((gap > 0).float().mean().item())


def test_causal_scorer_cache_equals_full_forward(splits):
    model = load_model("tiny-gpt2", "causal", "task", "task_model")
    tok = load_tokenizer("tiny-gpt2", "task", "task_model")
    sc = TaskLMScorer(model, tok, "causal", splits.info, torch.device("cpu"), batch=5)
    prompts = ["movie was", "great film ok really", "x"]
    got = sc.class_probs(prompts, splits.train[:4])
    for i, p in enumerate(prompts):
        for j, e in enumerate(splits.train[:4]):
            ids = tok(e.text + " " + p, return_tensors="pt", add_special_tokens=False)
            want = model(**ids).logits[0, -1, sc.verbalizer_ids].softmax(-1)
            assert torch.allclose(got[i, j], want, atol=1e-5)


def test_user_scorer(splits):
    s = UserScorer("support.synthetic_scorer:vowel_fraction").score(["aaa", "xyz"], splits.dev)
    assert s.score.tolist() == [1.0, 0.0] and s.accuracy is None
    with pytest.raises(EngineError, match="returned 1 scores for 2"):
        UserScorer("support.synthetic_scorer:wrong_length").score(["a", "b"], splits.dev)
    for bad in ("nomodule:fn", "support.synthetic_scorer:missing", "no_colon"):
        with pytest.raises(EngineError):
            UserScorer(bad)


def test_policy_samples_from_top_k_and_recomputes_its_logits():
    torch.manual_seed(0)
    backbone = load_model("tiny-gpt2", "causal", "policy", "policy_model")
    policy = PromptPolicy(backbone, 32, source_id=5, bf16=False)
    torch.nn.init.normal_(policy.mlp[2].weight, std=0.5)  # a peaked distribution, so top-k matters
    roll = policy.rollout(64, 5, top_k=8)
    logits = policy.logits(roll.hidden)  # (B, T, V) with gradients
    assert roll.ids.shape == (64, 5) and logits.shape[:2] == (64, 5) and logits.requires_grad
    kth = logits.topk(8, -1).values[..., -1]
    chosen = logits.gather(-1, roll.ids.unsqueeze(-1)).squeeze(-1)
    assert (chosen >= kth - 1e-5).all()  # every sampled token is inside the top-k of the same logits
    greedy = policy.rollout(3, 5, top_k=None)
    assert (greedy.ids == policy.logits(greedy.hidden).argmax(-1)).all()
    assert (greedy.ids[0] == greedy.ids[1]).all()
    assert not any(p.requires_grad for p in policy.backbone.parameters())
    assert sum(p.numel() for p in policy.parameters() if p.requires_grad) == 64 * 32 + 32 + 32 * 64 + 64


def test_reward_model_starts_at_the_squash_of_minus_1e4():
    rm = TokenRewardModel(load_model("tiny-gpt2", "base", "reward", "reward_model"), hidden=32)
    rm.eval()
    r = rm(torch.randint(0, 500, (4, 5)))
    assert r.shape == (4, 5)
    assert torch.allclose(r, torch.full_like(r, 0.5487), atol=2e-4)
    t5 = TokenRewardModel(load_model("tiny-t5", "base", "reward", "reward_model"), hidden=32).eval()
    out = t5(
        torch.randint(2, 500, (2, 9)),
        torch.ones(2, 9, dtype=torch.long),
        decoder_input_ids=torch.randint(2, 500, (2, 4)),
    )
    assert out.shape == (2, 4)


def test_a_prompt_spelling_the_mask_does_not_move_the_verdict(splits):
    model = load_model("tiny-roberta", "masked", "task", "task_model")
    tok = load_tokenizer("tiny-roberta", "task", "task_model")
    sc = TaskLMScorer(model, tok, "masked", splits.info, torch.device("cpu"))
    got = sc.class_probs(["sneaky <mask> prompt"], splits.dev[:3])[0]  # (N, C)
    for j, e in enumerate(splits.dev[:3]):
        enc = tok(
            MASKED_TEMPLATE.format(sentence_1=e.text, prompt="sneaky <mask> prompt", mask=tok.mask_token),
            return_tensors="pt",
        )
        last = (enc["input_ids"][0] == tok.mask_token_id).nonzero()[-1, 0]  # the template's own mask
        want = model(**enc).logits[0, last, sc.verbalizer_ids].softmax(-1)
        assert torch.allclose(got[j], want, atol=1e-5)


def test_blocked_special_tokens_are_never_sampled():
    torch.manual_seed(0)
    tok = tiny_tokenizer("causal")
    backbone = load_model("tiny-gpt2", "causal", "policy", "policy_model")
    specials = special_ids(tok)
    # the shared tiny vocabulary's <s>, </s> and <mask> are special too, though no GPT-2 role names them
    assert {"<s>", "</s>", "<mask>"} <= set(tok.convert_ids_to_tokens(specials))
    policy = PromptPolicy(backbone, 32, source_id=tok.eos_token_id, bf16=False, blocked_ids=specials)
    torch.nn.init.normal_(policy.mlp[2].weight, std=0.5)
    with torch.no_grad():  # make the specials the most likely tokens: blocking must still win
        policy.backbone.get_output_embeddings().weight[specials] *= 50
    roll = policy.rollout(256, 5, top_k=16)
    assert not torch.isin(roll.ids, torch.tensor(specials)).any()
    assert torch.isinf(policy.logits(roll.hidden)[..., specials]).all()


def test_checkpoints_saved_in_bf16_load_and_train(tmp_path):
    """A bf16 checkpoint (SmolLM2's dtype) used to fail at the first policy step: float adaptor vs bf16 head."""
    from engine.prompt.train import policy_step, setup
    from engine.registry import plan_runs
    from engine.report import MemoryReporter

    for name, kind, style in (("tiny-gpt2", "causal", "causal"), ("tiny-roberta", "masked", "masked")):
        load_model(name, kind, "x", "x").to(torch.bfloat16).save_pretrained(tmp_path / name)
        tiny_tokenizer(style).save_pretrained(tmp_path / name)
    assert (
        next(load_model(str(tmp_path / "tiny-gpt2"), "causal", "policy", "policy_model").parameters()).dtype
        == torch.float32
    )
    (spec,) = plan_runs(
        "prompt",
        "toy-sentiment",
        "pgg",
        preset="tiny",
        overrides=[f"policy_model={tmp_path / 'tiny-gpt2'}", f"task_model={tmp_path / 'tiny-roberta'}"],
    )
    rep = MemoryReporter()
    ctx = setup(spec.config, rep, tmp_path / "run")
    policy_step(ctx, 1)
    assert rep.series("policy/loss") and rep.series("train/score")


def test_a_reward_training_reports_its_own_steps(tmp_path):
    """Reward trainings are most of a pgg run; the progress bar stood still through them."""
    from engine.prompt.train import setup, train_reward_model
    from engine.registry import plan_runs
    from engine.report import MemoryReporter

    (spec,) = plan_runs(
        "prompt",
        "toy-sentiment",
        "pgg",
        preset="tiny",
        overrides=["reward_max_steps=6", "reward_epochs=2", "early_stop=100", "tau_candidates=4"],
    )
    rep = MemoryReporter()
    ctx = setup(spec.config, rep, tmp_path / "run")
    train_reward_model(ctx)
    assert rep.phase_steps == [("reward 1", n, 6) for n in range(1, 7)]


def test_param_groups_put_the_backbone_at_its_own_rate():
    rm = TokenRewardModel(load_model("tiny-gpt2", "base", "reward", "reward_model"), hidden=8)
    (one,) = rm.param_groups(1e-3, 1.0)  # the original: one optimizer, one rate
    assert one["lr"] == 1e-3 and len(one["params"]) == len(list(rm.parameters()))
    head, backbone = rm.param_groups(1e-3, 0.05)
    assert head["lr"] == 1e-3 and backbone["lr"] == pytest.approx(5e-5)
    assert {id(p) for p in head["params"]} == {id(p) for p in rm.head.parameters()}
    assert {id(p) for p in backbone["params"]} == {id(p) for p in rm.backbone.parameters()}


@pytest.mark.parametrize("scale", [0.0, 1.0])
def test_reward_backbone_lr_zero_freezes_the_backbone_and_one_trains_it(tmp_path, scale):
    from engine.prompt.train import setup, train_reward_model
    from engine.registry import plan_runs
    from engine.report import MemoryReporter

    (spec,) = plan_runs(
        "prompt",
        "toy-sentiment",
        "pgg",
        preset="tiny",
        overrides=[
            "reward_max_steps=4",
            "reward_epochs=1",
            "early_stop=100",
            "tau_candidates=4",
            f"reward_backbone_lr={scale}",
        ],
    )
    ctx = setup(spec.config, MemoryReporter(), tmp_path / "run")
    rm = ctx.reward_model
    before = {n: p.detach().clone() for n, p in rm.named_parameters()}
    train_reward_model(ctx)
    moved = {n for n, p in rm.named_parameters() if not torch.equal(p, before[n])}
    backbone = {n for n in before if n.startswith("backbone.")}
    assert moved >= {n for n in before if n.startswith("head.")}
    if scale == 0:
        assert not moved & backbone
    else:  # every block and the embeddings learn (unused position rows aside, wpe moves too)
        assert {"backbone.wte.weight", "backbone.h.0.attn.c_attn.weight", "backbone.h.1.mlp.c_fc.weight"} <= moved


def _reward_ctx(tmp_path, *overrides):
    from engine.prompt.train import setup
    from engine.registry import plan_runs
    from engine.report import MemoryReporter

    (spec,) = plan_runs(
        "prompt",
        "toy-sentiment",
        "pgg",
        preset="tiny",
        overrides=["reward_max_steps=4", "reward_epochs=1", "early_stop=100", "tau_candidates=4", *overrides],
    )
    return setup(spec.config, MemoryReporter(), tmp_path / "run")


def test_replay_averages_the_step_with_earlier_steps_lists_counted_alike(tmp_path):
    """With K = C every list of a set holds the whole set, so its ListMLE is that of the set's full order:
    the replayed loss is known without knowing which lists were drawn."""
    from engine.losses import listmle
    from engine.prompt.train import RankedLists, sequence_score, with_replay
    from engine.prompt.policy import Rollout

    ctx = _reward_ctx(tmp_path, "reward_replay=3", "reward_candidates=4", "reward_k=4")
    ctx.reward_model.eval()
    old_ids, old_true = torch.randint(10, 200, (4, 5)), torch.tensor([0.3, -1.0, 2.0, 0.5])
    ctx.replay = [(old_ids, old_true)]
    new_ids = torch.randint(10, 200, (4, 5))
    data = RankedLists(
        Rollout(new_ids, torch.zeros(4, 5, 1)),
        torch.tensor([1.0, 0.0, -2.0, 3.0]),
        torch.tensor([[0, 1, 2, 3], [3, 2, 1, 0]]),
    )
    fresh = torch.tensor(0.7)
    with torch.no_grad():
        got = with_replay(ctx, data, fresh)
        full = listmle(sequence_score(ctx, ctx.reward_model(old_ids))[None], old_true[None])
    assert got.item() == pytest.approx(((fresh + 3 * full) / 4).item(), rel=1e-6)
    assert len(ctx.replay) == 2 and torch.equal(ctx.replay[1][0], new_ids)  # this step's prompts join


def test_replay_is_kept_across_reward_trainings_and_in_the_checkpoint(tmp_path):
    from engine.prompt.train import load_checkpoint, save_checkpoint, train_reward_model

    ctx = _reward_ctx(tmp_path, "reward_replay=2")
    train_reward_model(ctx)
    train_reward_model(ctx)
    assert len(ctx.replay) == 8  # every automatic step of both trainings
    save_checkpoint(ctx)
    kept = ctx.replay
    ctx.replay = []
    load_checkpoint(ctx)
    assert len(ctx.replay) == 8
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(kept, ctx.replay))
    off = _reward_ctx(tmp_path / "off")
    train_reward_model(off)
    assert off.replay == []  # the default keeps nothing


def test_grounding_records_zero_for_a_constant_reward_model_and_nothing_when_nothing_ranks(tmp_path, monkeypatch):
    """Before, both cases recorded NaN, which the store drops: the runs table then showed the previous phase's tau."""
    from engine.prompt.train import grounding

    ctx = _reward_ctx(tmp_path)
    monkeypatch.setattr(type(ctx.reward_model), "forward", lambda self, ids: torch.full(ids.shape, 0.5))
    out = grounding(ctx)
    assert out["reward/tau"] == 0.0 and ctx.state.tau == 0.0
    from engine.prompt.scorer import Scores

    monkeypatch.setattr(
        type(ctx.scorer), "score", lambda self, prompts, examples: Scores(torch.ones(len(prompts)), None)
    )
    ctx.state.tau = 0.3  # the previous phase's
    out = grounding(ctx)
    assert "reward/tau" not in out and ctx.state.tau is None
    assert "nothing to rank" in ctx.reporter.log_rows[-1]


@pytest.mark.parametrize(
    "method, unit, budget, batch",
    [
        ("seq-reinforce", "pairs", 6000, 512),  # a step: 16 prompts x 32 train sentences; a validation 16 x 32 dev
        ("rlprompt", "pairs", 6000, 512),
        ("pgg", "pairs", 6000, 4 * 16 * 26),  # a reward step 16 x 26 (80% subset); its validation 4 draws of that
        ("pgg", "prompts", 400, 4 * 16),
    ],
)
def test_max_queries_ends_every_method_within_one_batch_of_the_budget(tmp_path, method, unit, budget, batch):
    """One budget for every method, validation queries included: training ends at the first query batch that
    reaches it, and the final choice follows; what was spent is recorded beside policy samples and time."""
    from engine.prompt.train import train

    (spec,) = plan_runs(
        "prompt", "toy-sentiment", method, preset="tiny", overrides=[f"max_queries={budget}", f"query_unit={unit}"]
    )
    rep = MemoryReporter()
    res = train(spec.config, rep, tmp_path)
    (spent,) = rep.series("budget/spent")
    assert budget <= spent < budget + batch
    assert res["budget_spent"] is True and res["steps"] < spec.config.max_steps
    assert any("query budget reached" in line for line in rep.log_rows)
    assert res["samples/policy"] == res["steps"] * (16 if method != "pgg" else spec.config.policy_batch)
    assert res["time/train_s"] > 0 and "test/accuracy" in res
    # the final choice scores its candidates after the budget, counted on top of it
    unit_total = res["queries/signal"] if unit == "pairs" else res["queries/prompts"]
    assert unit_total >= spent


def test_without_a_budget_a_run_spends_what_its_schedule_takes(tmp_path):
    from engine.prompt.train import train

    (spec,) = plan_runs("prompt", "toy-sentiment", "seq-reinforce", preset="tiny", overrides=["max_steps=4"])
    rep = MemoryReporter()
    res = train(spec.config, rep, tmp_path)
    assert res["steps"] == 4 and res["budget_spent"] is False and not rep.series("budget/spent")
    assert res["queries/prompts"] * 32 == res["queries/signal"]  # every signal prompt on the 32 sentences here
