"""The checklist of algorithm.md §9, on hand-made tensors."""

import itertools
import math

import pytest
import torch

from engine.losses import (
    aggregate,
    gap_reward,
    group_mean_length,
    listmle,
    neg_entropy,
    reinforce_loss,
    reverse_cumsum,
    sql_loss,
    squash,
    token_nll,
    wmle_loss,
    wmle_weights,
)


def test_squash_init_value_and_range():
    z = torch.tensor([-1e-4])
    assert squash(z).item() == pytest.approx(0.5487, abs=1e-4)
    wide = squash(torch.linspace(-50, 50, 1001))
    assert wide.min() > 1e-8 - 1e-12 and wide.max() < 1e-8 + math.log1p(math.e) + 1e-6
    assert wide.max() > 1.3 and wide.max() < 1.3134  # not bounded to 1: the original's range
    assert squash(torch.tensor([0.0]), "sigmoid").item() == 0.5
    assert squash(torch.tensor([float("nan")])).item() == 0.0


def brute_force_pl_nll(scores, order):
    """-log P_PL(order | scores) enumerated from the definition."""
    nll = 0.0
    rest = list(order)
    for i in order:
        nll -= scores[i] - math.log(sum(math.exp(scores[j]) for j in rest))
        rest.remove(i)
    return nll


@pytest.mark.parametrize("k", [2, 3, 4])
def test_listmle_equals_brute_force_plackett_luce(k):
    g = torch.Generator().manual_seed(k)
    y_pred = torch.randn(6, k, generator=g, dtype=torch.float64)
    y_true = torch.randn(6, k, generator=g, dtype=torch.float64)
    expected = (
        sum(brute_force_pl_nll(y_pred[b].tolist(), y_true[b].argsort(descending=True).tolist()) for b in range(6)) / 6
    )
    assert listmle(y_pred, y_true).item() == pytest.approx(expected, abs=1e-8)
    for perm in itertools.permutations(range(k)):  # no ties: invariant to the column shuffle
        assert listmle(y_pred, y_true, perm=torch.tensor(perm)).item() == pytest.approx(expected, abs=1e-8)


def test_listmle_k2_is_bradley_terry():
    y_pred = torch.tensor([[1.5, 0.2]], dtype=torch.float64)
    y_true = torch.tensor([[0.0, 1.0]], dtype=torch.float64)  # the second is preferred
    assert listmle(y_pred, y_true).item() == pytest.approx(-math.log(torch.sigmoid(torch.tensor(0.2 - 1.5)).item()))


def test_listmle_ties_are_broken_at_random():
    y_pred = torch.tensor([[0.0, 3.0]], dtype=torch.float64)
    y_true = torch.tensor([[1.0, 1.0]], dtype=torch.float64)
    a = listmle(y_pred, y_true, perm=torch.tensor([0, 1])).item()
    b = listmle(y_pred, y_true, perm=torch.tensor([1, 0])).item()
    assert {round(a, 6), round(b, 6)} == {
        round(brute_force_pl_nll([0.0, 3.0], [0, 1]), 6),
        round(brute_force_pl_nll([0.0, 3.0], [1, 0]), 6),
    }


def test_prompt_avg_equals_sum_for_length_5():
    r = torch.rand(4, 5)
    mask = torch.ones(4, 5, dtype=torch.bool)
    assert torch.allclose(aggregate(r, mask, "avg", scale=5), aggregate(r, mask, "sum"))


def test_soft_min_max_and_padding():
    r = torch.tensor([[0.2, 0.9, 0.5, 7.0], [0.1, 0.3, 0.0, 0.0]])
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]], dtype=torch.bool)
    mx = aggregate(r, mask, "max", temp=2.0, scale=torch.tensor([3.0, 2.0]))
    mn = aggregate(r, mask, "min", temp=2.0, scale=torch.tensor([3.0, 2.0]))
    exp_max0 = 3 * 2 * math.log(sum(math.exp(x / 2) for x in (0.2, 0.9, 0.5)))
    exp_min1 = 2 * -2 * math.log(sum(math.exp(x / -2) for x in (0.1, 0.3)))
    assert mx[0].item() == pytest.approx(exp_max0, rel=1e-6)  # the 7.0 under the pad does not count
    assert mn[1].item() == pytest.approx(exp_min1, rel=1e-6)
    assert mn[0] < aggregate(r, mask, "avg", scale=torch.tensor([3.0, 2.0]))[0] < mx[0]
    avg = aggregate(r, mask, "avg", scale=torch.tensor([3.0, 2.0]))
    assert avg[1].item() == pytest.approx(2 * 0.2)


def test_summarization_mask_and_group_length():
    pad = 0
    ids = torch.tensor(
        [
            [0, 5, 6, 1, 0],
            [0, 7, 1, 0, 0],
            [0, 8, 9, 9, 1],  # article 1: K=3 samples
            [0, 4, 1, 0, 0],
            [0, 4, 4, 1, 0],
            [0, 1, 0, 0, 0],
        ]
    )  # article 2
    mask = ids != pad  # drops the start token at 0 and trailing pads, keeps EOS (1)
    assert mask[:, 0].sum() == 0
    assert mask.sum(1).tolist() == [3, 2, 4, 2, 3, 1]
    assert group_mean_length(mask, 3).tolist() == pytest.approx([3, 3, 3, 2, 2, 2])


def test_reverse_cumsum():
    assert reverse_cumsum(torch.tensor([[1.0, 2.0, 3.0]])).tolist() == [[6.0, 5.0, 3.0]]


def test_wmle_weights_sum_to_one_and_constant_reward_is_mean_nll():
    r = torch.rand(3, 6) + 0.1
    mask = torch.tensor([[1] * 6, [1] * 4 + [0] * 2, [1] * 2 + [0] * 4], dtype=torch.bool)
    for use_q in (False, True):
        w = wmle_weights(r, mask, use_q=use_q)
        assert torch.allclose(w.sum(1), torch.ones(3))
        assert (w[~mask] == 0).all()
    nll = torch.rand(3, 6) * mask
    w = wmle_weights(torch.full((3, 6), 0.7), mask)
    per_seq_mean = torch.stack([nll[i][mask[i]].mean() for i in range(3)]).mean()
    assert wmle_loss(nll, w).item() == pytest.approx(per_seq_mean.item())


def test_policy_loss_uses_unfiltered_logits():
    torch.manual_seed(0)
    logits = torch.randn(2, 5, 11, requires_grad=True)
    actions = torch.randint(0, 11, (2, 5))
    w = torch.rand(2, 5)
    loss, ent = reinforce_loss(logits, actions, w, 0.125)
    logp = torch.log_softmax(logits, -1)
    nll = -logp.gather(-1, actions[..., None]).squeeze(-1)
    p = logp.exp() + 1e-8
    expected = (w * nll).mean() + 0.125 * (p * p.log()).sum(-1).mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    assert ent.item() == pytest.approx(-(p * p.log()).sum(-1).mean().item(), rel=1e-6)
    # a top-k filter applied to the logits would change the NLL of the same actions: the loss must not see it
    filtered = logits.detach().clone()
    filtered[filtered < filtered.topk(3, -1).values[..., -1:]] = -float("inf")
    assert not torch.allclose(token_nll(filtered, actions).nan_to_num(), nll.detach())
    loss.backward()
    assert logits.grad.abs().sum() > 0


def test_sql_loss_against_a_hand_computation():
    torch.manual_seed(1)
    B, T, V = 2, 3, 4
    logits = torch.randn(B, T, V, dtype=torch.float64, requires_grad=True)
    target = torch.randn(B, T, V, dtype=torch.float64)
    actions = torch.randint(0, V, (B, T))
    R = torch.tensor([2.0, -1.0], dtype=torch.float64)
    total = 0.0
    for b in range(B):
        A = [(logits[b, t, actions[b, t]] - torch.logsumexp(logits[b, t], 0)).item() for t in range(T)]
        Vt = [torch.logsumexp(target[b, t], 0).item() for t in range(T)] + [0.0]
        for t in range(T):
            r_t = R[b].item() if t == T - 1 else 0.0
            l2 = (A[t] - (r_t + Vt[t + 1] - Vt[t])) ** 2
            l3 = (sum(A[t:]) - (R[b].item() - Vt[t])) ** 2
            total += (l2 + l3) / 2
    assert sql_loss(logits, target, actions, R).item() == pytest.approx(total / B, rel=1e-9)


def test_gap_reward_coefficients_and_multiclass_max():
    R2, c2 = gap_reward(torch.tensor([[0.7, 0.3], [0.4, 0.6]]), torch.tensor([0, 0]))
    assert R2.tolist() == pytest.approx([0.4 * 200, -0.2 * 180]) and c2.tolist() == [True, False]
    R4, c4 = gap_reward(torch.tensor([[0.1, 0.5, 0.3, 0.1]]), torch.tensor([2]))
    assert R4.item() == pytest.approx((0.3 - 0.5) * 180) and not c4.item()
    # quirk: a class tied with the label is left out of the max (replaced by -1)
    Rt, ct = gap_reward(torch.tensor([[0.5, 0.5]]), torch.tensor([1]))
    assert Rt.item() == pytest.approx((0.5 + 1) * 200) and ct.item()


def test_neg_entropy_of_uniform():
    assert neg_entropy(torch.zeros(1, 1, 8)).item() == pytest.approx(-math.log(8), abs=1e-6)
