"""The evaluation edges as the original code has them, and each parity_* option's two behaviours.

Each test here failed on the code before it: bf16 ties, accuracy on ties, TSV quoting, the summarization
preference source, shuffles, reward epochs, start tokens, the z-score, final candidates, early stopping.
"""

import math
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from engine.config import PromptConfig, build_config
from engine.errors import EngineError
from engine.losses import gap_reward, grounding_tau, kendall_tau, listmle, listmle_chance, zscore
from engine.models import load_model, load_tokenizer, stream_seed
from engine.prompt import train as prompt_train
from engine.prompt.data import Example, load_splits, read_tsv
from engine.prompt.scorer import TaskLMScorer
from engine.registry import TASKS
from engine.report import MemoryReporter, NullReporter
from engine.summarize import train as sum_train
from engine.summarize.metrics import postprocess, rouge_one
from support.paths import SHARED_DATA

sys.path.insert(0, str(Path(__file__).parent))


def tiny(task: str, **over):
    spec = TASKS[task]
    base = {"dataset": "toy-sentiment"} if task == "prompt" else {"dataset": "toy-news"}
    return build_config(spec.config_cls, {**spec.presets["tiny"], **base, **over})


# ---------------------------------------------------------------------------------------------------
# data


def test_fewshot_texts_read_as_the_original_reads_them():
    """pandas' defaults (the original's reader): quoted fields unquoted, "" -> " (1,440 rows differed)."""
    files = sorted(SHARED_DATA.glob("*/*/*.tsv"))
    assert len(files) == 40
    unquoted = 0
    for path in files:
        df = pd.read_csv(path, sep="\t")
        texts = (df.text if "text" in df else df.sentence).tolist()
        ours = read_tsv(path)
        assert [e.text for e in ours] == texts, path
        assert [e.label for e in ours] == df.label.tolist(), path
        unquoted += sum(line.split("\t")[0].startswith('"') for line in path.read_text().splitlines()[1:])
    assert unquoted > 1000  # the shipped files do quote: the comparison above is not vacuous


def test_quoted_fields_and_bad_files(tmp_path):
    good = tmp_path / "good.tsv"
    good.write_text('sentence\tlabel\n"a ""quoted"" word"\t1\nplain "inner" quote\t0\n\nNA\t1\n')
    assert read_tsv(good) == [Example('a "quoted" word', 1), Example('plain "inner" quote', 0), Example("NA", 1)]
    cases = {
        "utf16.tsv": ("sentence\tlabel\nhello\t1\n".encode("utf-16"), "not UTF-8"),
        "binary.tsv": (b"\x00\x01\x02\xff\xfe", "not UTF-8|NUL"),
        "short.tsv": (b"sentence\tlabel\nonly text\n", r"short.tsv:2: 1 fields"),
        "label.tsv": (b"sentence\tlabel\nok\tpositive\n", r"label.tsv:2: label 'positive'"),
        "empty.tsv": (b"sentence\tlabel\n", "has no examples"),
        "columns.tsv": (b"review\tstars\nx\t1\n", "expected columns"),
    }
    for name, (data, message) in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(EngineError, match=message):
            read_tsv(tmp_path / name)
    folder = tmp_path / "sst-2" / "16-100"
    folder.mkdir(parents=True)
    (folder / "train.tsv").write_text("sentence\tlabel\nx\t0\n")
    with pytest.raises(EngineError, match="dev.tsv does not exist"):
        load_splits("sst-2", 0, str(tmp_path))
    (folder / "dev.tsv").write_text("sentence\tlabel\nx\t7\n")
    with pytest.raises(EngineError, match="dev split, example 1: label 7"):
        load_splits("sst-2", 0, str(tmp_path))


# ---------------------------------------------------------------------------------------------------
# the task-LM scorer


def task_scorer(name="tiny-roberta"):
    info = load_splits("toy-sentiment", 0).info
    return TaskLMScorer(
        load_model(name, "masked", "task", "task_model"),
        load_tokenizer(name, "task", "task_model"),
        "masked",
        info,
        torch.device("cpu"),
        256,
        True,
    )


def test_verbalizer_logits_stay_float32_under_bf16_autocast():
    """On CUDA the task LM runs under bf16 autocast; bf16 verbalizer logits tie often and every tie is a
    reward (the gap rule). The head must compute in float32 whatever autocast is on."""
    scorer = task_scorer()
    seen = []
    scorer.head.decoder.register_forward_hook(lambda _m, _i, out: seen.append(out.dtype))
    splits = load_splits("toy-sentiment", 0)
    prompts = ["it was", "great fun", "the plot", "simply", "honestly it", "a b c"]
    exact = scorer.class_probs(prompts, splits.test)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = scorer.class_probs(prompts, splits.test)
    assert seen and set(seen) == {torch.float32}
    assert mixed.dtype == torch.float32
    assert (mixed[..., 0] == mixed[..., 1]).sum() == (exact[..., 0] == exact[..., 1]).sum() == 0
    assert (mixed - exact).abs().mean() < 0.05  # the body ran in bf16: close, not equal


def test_accuracy_is_argmax_over_verbalizers_not_the_gap_sign(monkeypatch):
    scorer = task_scorer()
    probs = torch.tensor([[[0.5, 0.5], [0.5, 0.5], [0.2, 0.8], [0.9, 0.1]]])  # two exact ties
    monkeypatch.setattr(scorer, "class_probs", lambda prompts, examples: probs)
    examples = [Example("a", 1), Example("b", 0), Example("c", 1), Example("d", 1)]
    s = scorer.score(["p"], examples)
    _, correct = gap_reward(probs, torch.tensor([[1, 0, 1, 1]]))
    assert correct.tolist() == [[True, True, True, False]]  # the gap rule calls both ties right
    assert s.accuracy.tolist() == [0.5]  # argmax takes class 0 on a tie: right for b, wrong for a


def test_zscore_uses_the_population_std():
    x = torch.tensor([1.0, 2.0, 4.0, 9.0])
    mean = x.mean()
    std0 = math.sqrt(sum((v - mean.item()) ** 2 for v in x.tolist()) / 4)
    assert torch.allclose(zscore(x), (x - mean) / (std0 + 1e-4))


def test_kendall_tau_and_chance_level():
    assert kendall_tau(torch.tensor([1.0, 2, 3, 4]), torch.tensor([10.0, 20, 30, 40])).item() == pytest.approx(1)
    assert kendall_tau(torch.tensor([1.0, 2, 3, 4]), torch.tensor([4.0, 3, 2, 1])).item() == pytest.approx(-1)
    # tau-b with a tie: 5 concordant, 0 discordant; pairs untied: 6 in x, 5 in y -> 5 / sqrt(30)
    assert kendall_tau(torch.tensor([1.0, 2, 3, 4]), torch.tensor([1.0, 1, 2, 3])).item() == pytest.approx(5 / 30**0.5)
    assert math.isnan(kendall_tau(torch.tensor([1.0, 1, 1]), torch.tensor([1.0, 2, 3])).item())
    rows = kendall_tau(torch.tensor([[1.0, 2, 3], [3.0, 2, 1]]), torch.tensor([[1.0, 2, 3], [1.0, 2, 3]]))
    assert rows.tolist() == pytest.approx([1, -1])
    flat = listmle(torch.zeros(64, 5), torch.randn(64, 5)).item()  # a constant model sits at ln(K!)
    assert flat == pytest.approx(listmle_chance(5), abs=1e-6) and listmle_chance(5) == pytest.approx(math.log(120))


def test_grounding_tau_counts_a_model_that_orders_nothing_as_chance():
    """tau-b is undefined for a constant model; a reward model that learned nothing must show as 0, not vanish."""
    flat_model = grounding_tau(torch.tensor([[0.5, 0.5, 0.5], [1.0, 2, 3]]), torch.tensor([[1.0, 2, 3], [1.0, 2, 3]]))
    assert flat_model.tolist() == [0.0, pytest.approx(1.0)]
    assert math.isnan(grounding_tau(torch.tensor([1.0, 2, 3]), torch.tensor([4.0, 4, 4])).item())  # nothing to rank
    x, y = torch.randn(8, 6), torch.randn(8, 6)
    assert torch.equal(grounding_tau(x, y), kendall_tau(x, y))  # defined: tau-b itself


# ---------------------------------------------------------------------------------------------------
# prompt task: schedule edges and the final choice


def test_early_stop_on_a_retrain_step_stops_before_retraining(monkeypatch, tmp_path):
    """The original validates, breaks on early stopping, and only then retrains."""
    cfg = tiny("prompt", max_steps=80, eval_every=20, reward_retrain_every=20, early_stop=1)
    trained = []

    def fake_reward(ctx):
        trained.append(ctx.state.step)
        ctx.state.reward_trainings += 1

    def fake_validate(ctx, n):
        ctx.state.early_stop_left = 0 if n == 40 else 1

    monkeypatch.setattr(prompt_train, "train_reward_model", fake_reward)
    monkeypatch.setattr(prompt_train, "policy_step", lambda ctx, n: None)
    monkeypatch.setattr(prompt_train, "validate", fake_validate)
    monkeypatch.setattr(prompt_train, "greedy_candidate", lambda ctx, n: None)
    monkeypatch.setattr(prompt_train, "final_choice", lambda ctx: {"steps": ctx.state.step})
    assert prompt_train.train(cfg, NullReporter(), tmp_path) == {"steps": 40}
    assert trained == [0, 20]  # before step 1 and at 20; not at 40, where early stopping fired


def test_rank_candidates_keeps_the_first_entry_of_a_repeated_prompt():
    cands = [dict(prompt="a", score=1.0), dict(prompt="b", score=2.0), dict(prompt="a", score=5.0)]
    assert [(c["prompt"], c["score"]) for c in prompt_train.rank_candidates(cands)] == [("b", 2.0), ("a", 1.0)]


def final_rows(method, tmp_path, **over):
    rep = MemoryReporter()
    prompt_train.train(tiny("prompt", method=method, reward_max_steps=10, reward_epochs=1, **over), rep, tmp_path)
    return [r["extra"] for r in rep.sample_rows if r["kind"] == "final"]


@pytest.mark.slow
def test_final_candidates_per_method_and_parity(tmp_path):
    rl = final_rows("rlprompt", tmp_path / "rl")
    assert rl and {x["source"] for x in rl} == {"greedy"}  # RLPrompt chooses among greedy prompts only
    default = final_rows("seq-reinforce", tmp_path / "d")
    assert {x["split"] for x in default} == {"dev"} and "last step" not in {x["source"] for x in default}
    parity = final_rows("seq-reinforce", tmp_path / "p", parity_final_scores=True, final_candidates=64)
    sources = {x["source"]: x["split"] for x in parity}
    assert sources == {"greedy": "dev", "best checkpoint": "train", "last step": "train"}


@pytest.mark.slow
def test_parity_reward_dropout_and_improvement_test(tmp_path):
    cfg = tiny("prompt", reward_max_steps=4, reward_epochs=1)
    ctx = prompt_train.setup(cfg, NullReporter(), tmp_path)
    ids = ctx.policy.rollout(8, cfg.prompt_length, cfg.top_k).ids
    torch.nn.init.normal_(ctx.reward_model.head[0].weight)  # make the head's input matter
    torch.nn.init.normal_(ctx.reward_model.head[2].weight)
    ev = prompt_train.token_rewards(ctx, ids)
    assert torch.equal(ev, prompt_train.token_rewards(ctx, ids))  # eval mode: deterministic
    torch.manual_seed(0)
    dropped = prompt_train.token_rewards(ctx, ids, train_mode=True)
    assert not torch.equal(ev, dropped)  # parity: the original's dropout is on
    # improvement test on a negative best score: the original accepts a slightly worse score
    for parity, expect_better in ((True, True), (False, False)):
        ctx.cfg.parity_improvement_test = parity
        ctx.state.best_score, ctx.state.early_stop_left = -100.0, 7
        monkey_score = -100.005  # worse than -100, yet > -100 * (1 + 1e-4) = -100.01
        ctx.policy.rollout = lambda *a, **k: type(
            "R", (), {"ids": ids[:1].repeat(cfg.val_draws * cfg.val_prompts, 1)}
        )()
        ctx.scorer.score = lambda prompts, ex, v=monkey_score: prompt_train.Scores(torch.full((len(prompts),), v), None)
        prompt_train.validate(ctx, 20)
        assert (ctx.state.best_score != -100.0) is expect_better


def final_test_calls(tmp_path, **over):
    """final_choice on four hand-made greedy candidates; returns (prompts the test split was scored on, with
    the scorer's bf16 at that moment) and the results."""
    cfg = tiny("prompt", method="rlprompt", **over)
    ctx = prompt_train.setup(cfg, NullReporter(), tmp_path)
    texts = [" good film", " bad, film", " ok (yes)", " fine"]
    ctx.state.candidates = [
        dict(prompt=t, ids=[5, 6], score=4.0 - i, step=1, split="dev", source="greedy") for i, t in enumerate(texts)
    ]
    calls = []

    def spy(prompts, examples):
        if examples is ctx.splits.test:
            calls.append((list(prompts), ctx.scorer.bf16))
        acc = torch.tensor([10.0 * (i + 1) for i in range(len(prompts))]) / 100
        return prompt_train.Scores(torch.zeros(len(prompts)), acc)

    ctx.scorer.score = spy
    return calls, prompt_train.final_choice(ctx)


def test_parity_test_prompt_tests_what_the_originals_hydra_parse_leaves(tmp_path):
    """The original passes each final prompt to its evaluator as an unquoted Hydra override: the leading
    space is lost, and a prompt with a comma or a parenthesis fails there and is dropped before the top-3 mean."""
    calls, res = final_test_calls(tmp_path / "default")
    assert calls == [([" good film", " bad, film", " ok (yes)", " fine"], False)]
    assert res["test/accuracy"] == pytest.approx(20.0)  # mean of 10, 20, 30
    assert res["dev/top_score"] == pytest.approx(3.0) and res["dev/score"] == 4.0  # its validation counterpart
    calls, res = final_test_calls(tmp_path / "parity", parity_test_prompt=True, final_top=3)
    assert calls[0][0] == ["good film", "fine"]
    assert res["test/accuracy"] == pytest.approx(15.0)  # only two survive the parse: mean of 10, 20


def test_the_test_split_is_scored_in_float32_unless_asked(tmp_path):
    """bf16 is for training-time work; the original's evaluator is float32 (on CPU autocast is a no-op,
    so the flag the scorer is called with is what is checked)."""
    assert final_test_calls(tmp_path / "a")[0][0][1] is False
    assert final_test_calls(tmp_path / "b", bf16_test=True)[0][0][1] is True
    assert final_test_calls(tmp_path / "c", bf16=False, bf16_test=True)[0][0][1] is False


def test_summaries_of_the_test_split_decode_in_float32_unless_asked(sum_ctx, monkeypatch):
    seen = []
    real = sum_train.autocast
    monkeypatch.setattr(sum_train, "autocast", lambda device, enabled: seen.append(enabled) or real(device, enabled))
    sum_train.evaluate_test(sum_ctx())
    assert seen and not any(seen)
    seen.clear()
    sum_train.evaluate_test(sum_ctx(bf16_test=True))
    assert seen and all(seen)


# ---------------------------------------------------------------------------------------------------
# summarization


@pytest.fixture
def sum_ctx(tmp_path):
    def make(**over):
        cfg = tiny("summarize", method="pgg", **over)
        return sum_train.setup(cfg, NullReporter(), tmp_path / str(len(over)) / "_".join(map(str, over.values())))

    return make


def test_true_score_rouge_is_the_preference_source(sum_ctx):
    ctx = sum_ctx(true_score="rouge2", reference="raw")
    pairs = ctx.pairs.train[:3]
    try:
        _, seqs, true = sum_train.sample_and_score(ctx, pairs)
        texts = [postprocess(t) for t in ctx.tok.batch_decode(seqs, skip_special_tokens=True)]
        refs = [postprocess(t) for _, t in pairs for _ in range(ctx.cfg.reward_k)]
        expected = [rouge_one(h, r, "rouge2") for h, r in zip(texts, refs)]
        assert true.flatten().tolist() == pytest.approx(expected)
        assert ctx.state.queries["signal"] == 3 * ctx.cfg.reward_k
    finally:
        ctx.true_score.close()


def test_references_tokenized_by_default_raw_on_request(sum_ctx):
    long = ("word " * 200).strip()
    ctx = sum_ctx()
    assert ctx.cfg.reference == "tokenized"
    tokenized = sum_train.references(ctx, [("src", long)])[0]
    assert len(tokenized.split()) < ctx.cfg.max_target_length < 200  # truncated as the policy sees it
    ctx.cfg.reference = "raw"
    assert sum_train.references(ctx, [("src", long)])[0] == long


def test_policy_and_reward_shuffles_are_separate_streams():
    a = torch.randperm(50, generator=sum_train.generator(0, "policy epoch", 0))
    b = torch.randperm(50, generator=sum_train.generator(0, "reward training", 0))
    assert not torch.equal(a, b)
    assert stream_seed(0, "x", 1) != stream_seed(0, "x", 2) and stream_seed(3, "x", 1) == stream_seed(3, "x", 1)


@pytest.mark.slow
def test_reward_epochs_beyond_one_run_fresh_passes(sum_ctx):
    ctx = sum_ctx(reward_epochs=2.0)
    rep = ctx.reporter = MemoryReporter()
    try:
        sum_train.train_reward_model(ctx)
    finally:
        ctx.true_score.close()
    n_batches = math.ceil(len(ctx.pairs.train) / ctx.cfg.reward_batch)
    assert (
        len(rep.series("reward/loss")) == sum_train.reward_updates(n_batches, ctx.cfg) == 2 * math.ceil(n_batches / 2)
    )
    assert len(rep.series("reward/tau")) == 1 and len(rep.series("reward/chance_loss")) == 1


def test_parity_start_token_changes_what_the_reward_model_reads(sum_ctx, monkeypatch):
    """Both the WMLE weights and the optional REINFORCE term follow parity_start_token."""
    ctx = sum_ctx(reinforce_coeff=1.0)
    torch.nn.init.normal_(ctx.reward_model.head[0].weight)
    torch.nn.init.normal_(ctx.reward_model.head[2].weight)
    src, labels = sum_train.encode(ctx, ctx.pairs.train[:2])
    seen = []
    forward = ctx.reward_model.forward
    monkeypatch.setattr(
        ctx.reward_model,
        "forward",
        lambda *a, **k: (seen.append(k["decoder_input_ids"][:, 0].tolist()), forward(*a, **k))[1],
    )
    start = sum_train.start_id(ctx)
    for parity in (False, True):
        ctx.cfg.parity_start_token = parity
        seen.clear()
        sum_train.token_weights(ctx, src, labels)
        torch.manual_seed(0)
        sum_train.sampled_terms(ctx, src)
        firsts = [row[0] == start for row in seen]  # does each decoder input begin with the start token?
        assert firsts == ([False, False] if parity else [True, True])
    ctx.true_score.close()


def test_policy_forward_is_float32_under_bf16(sum_ctx, monkeypatch):
    """bf16 covers generation only: the trained forward stays float32 even with autocast asked for."""
    ctx = sum_ctx()
    monkeypatch.setattr(sum_train, "autocast", lambda device, enabled: torch.autocast("cpu", dtype=torch.bfloat16))
    dtypes = []
    ctx.policy.lm_head.register_forward_hook(lambda _m, _i, out: dtypes.append(out.dtype))
    sum_train.policy_loss(ctx, ctx.pairs.train[:2])
    assert dtypes == [torch.float32]
    sum_train.sample_summaries(ctx, sum_train.encode(ctx, ctx.pairs.train[:1])[0], 2, 5)
    assert torch.bfloat16 in dtypes  # generation did run under autocast
    ctx.true_score.close()


@pytest.mark.slow
def test_parity_last_update_divides_by_grad_accum(sum_ctx):
    """The original divides an epoch's last, shorter update by grad_accum; pgg by its own count."""
    grads = {}
    for parity in (False, True):
        ctx = sum_ctx(parity_last_update=parity, grad_clip=1e9)
        torch.manual_seed(0)
        ctx.opt = torch.optim.SGD(ctx.policy.parameters(), lr=0.0)  # keep the weights: compare gradients
        sum_train.policy_update(ctx, [ctx.pairs.train[:2]])  # one micro-batch of grad_accum=2
        grads[parity] = next(p.grad.clone() for p in ctx.policy.parameters() if p.grad is not None)
        ctx.true_score.close()
    assert torch.allclose(grads[True] * ctx.cfg.grad_accum, grads[False], rtol=1e-4, atol=1e-7)


def test_reward_baseline_option_and_its_default(monkeypatch, tmp_path):
    """Default: the original's raw, all-positive token rewards; center / zscore subtract the batch mean."""
    seen = {}
    real = prompt_train.reinforce_loss

    def spy(logits, actions, weights, coeff):
        seen["w"] = weights.detach().clone()
        return real(logits, actions, weights, coeff)

    monkeypatch.setattr(prompt_train, "reinforce_loss", spy)
    assert PromptConfig().reward_baseline == "none"
    for mode in ("none", "center", "zscore"):
        ctx = prompt_train.setup(tiny("prompt", reward_baseline=mode), NullReporter(), tmp_path / mode)
        torch.manual_seed(0)
        for layer in (ctx.reward_model.head[0], ctx.reward_model.head[2]):  # rewards that vary
            torch.nn.init.normal_(layer.weight)
        prompt_train.policy_step(ctx, 2)
        w = seen["w"]
        if mode == "none":
            assert (w > 0).all()
        else:
            assert torch.allclose(w.mean(0), torch.zeros(w.shape[1]), atol=1e-5)
        if mode == "zscore":
            std = w.std(0, correction=0)
            assert ((std - 1).abs() < 1e-2).any() and (std < 1 + 1e-2).all()


@pytest.mark.slow
def test_a_summarization_reward_training_reports_its_own_steps(tmp_path):
    from engine.report import MemoryReporter

    rep = MemoryReporter()
    ctx = sum_train.setup(tiny("summarize", method="pgg"), rep, tmp_path / "run")
    try:
        sum_train.train_reward_model(ctx)
    finally:
        ctx.true_score.close()
        ctx.meteor.close()
    steps = sum_train.reward_updates(math.ceil(len(ctx.pairs.train) / ctx.cfg.reward_batch), ctx.cfg)
    assert steps > 1 and rep.phase_steps == [("reward 1", n, steps) for n in range(1, steps + 1)]


def test_results_say_when_meteor_ran_without_punkt_or_wordnet(sum_ctx, monkeypatch):
    from engine.summarize import metrics

    res = sum_train.evaluate_test(sum_ctx())  # as this machine has them (CI: neither)
    full = metrics.wordnet_available() and metrics.punkt_available()
    assert (res["meteor_wordnet"], res["meteor_punkt"], res["meteor_full"]) == (
        metrics.wordnet_available(),
        metrics.punkt_available(),
        full,
    )
    # (the flags alone: a metric run with data this machine lacks would fail)
    monkeypatch.setattr(metrics, "wordnet_available", lambda: True)
    monkeypatch.setattr(metrics, "_punkt", lambda: False)
    assert metrics.meteor_flags() == {"meteor_wordnet": True, "meteor_punkt": False, "meteor_full": False}
    monkeypatch.setattr(metrics, "_punkt", lambda: True)
    assert metrics.meteor_flags() == {"meteor_wordnet": True, "meteor_punkt": True, "meteor_full": True}
