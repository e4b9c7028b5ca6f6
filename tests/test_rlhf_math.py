"""engine/rlhf/ppo_math.py against brute-force per-row loops written from rlhf.md's formulas (DR, TRL, OpenRLHF),
plus a few hand-computed numbers. Tensors are right-padded with varying lengths (including length-1 responses)
and garbage in the padding, so any read past a row's end index shows up."""

import math
import statistics

import numpy as np
import pytest
import torch

from engine.rlhf.ppo_math import (
    bandit_token_rewards,
    bradley_terry_loss,
    dense_token_rewards,
    end_index,
    fit_location_normaliser,
    gae,
    kl_k3,
    kl_penalised_rewards,
    location_normalise,
    n_segments,
    pair_accuracy,
    policy_loss,
    segment_ends,
    segment_ids,
    segment_lengths,
    segment_values,
    sequence_score,
    token_entropy,
    value_loss,
    whiten,
)

LENGTHS = [6, 4, 1, 3, 7, 2]  # response lengths incl. the end token; T = 7, so one row has no padding
T = 7
GARBAGE = 123.0  # written into every padded slot


def make_mask(lengths=LENGTHS, t=T):
    return torch.tensor([[j < n for j in range(t)] for n in lengths])


def padded(x, mask, fill=GARBAGE):
    return torch.where(mask, x, torch.full_like(x, fill))


def rand(seed, *shape):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def row(x, b, n):
    """The first n entries of row b as a Python list (the real tokens)."""
    return x[b, :n].tolist()


# ---------------------------------------------------------------------------------------------------
# brute-force references


def dr_segment_ends(h, n, c, bandit):
    """DR's segment_data_peak on one response of n tokens (rlhf.md §2), response-relative, end token at n - 1.

    Scan every response position j (end token included): j is an end iff H_j > c. Tail: an end at the end token
    is dropped (if end-1 is already an end) or moved to end-1; otherwise end-1 is appended; no ends -> [end-1].
    Bandit: [end]. pgg's guard: a length-1 response has its end token as the single end (DR would read -1).
    """
    if n == 0:
        return []
    e = n - 1
    if bandit or n == 1:
        return [e]
    ends = [j for j in range(n) if h[j] > c]
    if not ends:
        return [e - 1]
    if ends[-1] == e:
        if len(ends) >= 2 and ends[-2] == e - 1:
            ends.pop()
        else:
            ends[-1] = e - 1
    elif ends[-1] != e - 1:
        ends.append(e - 1)
    return ends


def segments_of(ends):
    """[(start, end)] of each segment: segment 1 starts at 0, segment k at e_{k-1} + 1."""
    out, prev = [], -1
    for e in ends:
        out.append((prev + 1, e))
        prev = e
    return out


def ends_lists(ends, lengths=LENGTHS):
    return [[j for j in range(n) if ends[b, j]] for b, n in enumerate(lengths)]


# ---------------------------------------------------------------------------------------------------
# Bradley-Terry


def test_bradley_terry_loss_hand_values_and_brute_force():
    zero = bradley_terry_loss(torch.tensor([0.3, -1.0]), torch.tensor([0.3, -1.0]))
    assert zero.item() == pytest.approx(math.log(2))  # s_w - s_l = 0 -> ln 2
    c, r = rand(0, 9), rand(1, 9)
    brute = sum(math.log1p(math.exp(-(cw - rl))) for cw, rl in zip(c.tolist(), r.tolist())) / 9  # -log sigma(d)
    assert bradley_terry_loss(c, r).item() == pytest.approx(brute, rel=1e-12)
    m = rand(2, 9).abs()
    brute_m = sum(math.log1p(math.exp(-(cw - rl - mm))) for cw, rl, mm in zip(c.tolist(), r.tolist(), m.tolist())) / 9
    assert bradley_terry_loss(c, r, margin=m).item() == pytest.approx(brute_m, rel=1e-12)  # trl RewardTrainer margin
    assert bradley_terry_loss(c, r, margin=0.5).item() > bradley_terry_loss(c, r).item()


def test_pair_accuracy_is_strict():
    acc = pair_accuracy(torch.tensor([1.0, 2.0, 3.0, 0.0]), torch.tensor([0.0, 2.0, 4.0, -1.0]))
    assert acc.item() == pytest.approx(0.5)  # the tie counts 0, not 0.5


# ---------------------------------------------------------------------------------------------------
# entropy and segmentation


def test_token_entropy_brute_force_and_uniform():
    mask = make_mask()
    logits = rand(3, len(LENGTHS), T, 5)
    h = token_entropy(logits, mask)
    for b, n in enumerate(LENGTHS):
        for t in range(T):
            if t >= n:
                assert h[b, t].item() == 0.0
                continue
            z = logits[b, t].tolist()
            zs = sum(math.exp(v) for v in z)
            p = [math.exp(v) / zs for v in z]
            assert h[b, t].item() == pytest.approx(-sum(q * math.log(q) for q in p), rel=1e-10)
    assert token_entropy(torch.zeros(1, 1, 8), torch.ones(1, 1)).item() == pytest.approx(math.log(8), abs=1e-6)
    half = token_entropy(logits.to(torch.bfloat16), mask)
    assert half.dtype == torch.float32  # upcast


def test_segment_ends_hand_example():
    h = torch.tensor([[0.5, 2.0, 0.1, 3.0, 0.2, 5.0, 9.0]])  # 6 real tokens, end token at 5, then padding
    mask = make_mask([6])
    assert segment_ends(h, mask, 1.0)[0].nonzero().flatten().tolist() == [1, 3, 4]  # peaks 1, 3; forced end-1 = 4
    assert segment_ends(h, mask, 0.0)[0].nonzero().flatten().tolist() == [0, 1, 2, 3, 4]  # token level
    assert segment_ends(h, mask, 999.0)[0].nonzero().flatten().tolist() == [4]  # c = 999: dense, one segment
    for bandit in (segment_ends(h, mask, math.inf), segment_ends(h, mask, 1000.0), segment_ends(h, mask, 0.0, True)):
        assert bandit[0].nonzero().flatten().tolist() == [5]  # the end token itself
    assert segment_ends(h, mask, 1000.0, bandit=False)[0].nonzero().flatten().tolist() == [4]


@pytest.mark.parametrize("c", [0.0, 0.8, 1.3, 2.5, 999.0, 1000.0, math.inf])
def test_segment_ends_equal_dr_list_procedure(c):
    mask = make_mask()
    h = padded(rand(4, len(LENGTHS), T).abs() * 2, mask, fill=50.0)  # padding entropies above every c < 1000
    ends = segment_ends(h, mask, c)
    assert ends.dtype == torch.bool and not (ends & ~mask).any()
    for b, n in enumerate(LENGTHS):
        assert ends_lists(ends)[b] == dr_segment_ends(row(h, b, n), n, c, bandit=c >= 1000)


def test_segment_ends_never_assume_the_last_column():
    # a variant that reads the end token at column T-1 (DR's left-padding assumption) differs on padded rows
    mask = make_mask()
    h = torch.zeros(len(LENGTHS), T, dtype=torch.float64)
    ends = segment_ends(h, mask, 1.0)
    assert ends_lists(ends) == [[n - 2] if n > 1 else [0] for n in LENGTHS]
    assert not ends[:, T - 2][torch.tensor(LENGTHS) < T].any()


def test_segment_ids_lengths_values_and_score():
    mask = make_mask()
    h = padded(rand(5, len(LENGTHS), T).abs() * 2, mask, fill=50.0)
    values = padded(rand(6, len(LENGTHS), T), mask)
    for c in (0.0, 1.2, math.inf):
        ends = segment_ends(h, mask, c)
        ids, lens, vals = segment_ids(ends, mask), segment_lengths(ends, mask), segment_values(values, ends)
        k_max = max(len(e) for e in ends_lists(ends))
        assert lens.shape == vals.shape == (len(LENGTHS), k_max)
        assert n_segments(ends).tolist() == [len(e) for e in ends_lists(ends)]
        for b, _n in enumerate(LENGTHS):
            e_list = ends_lists(ends)[b]
            segs = segments_of(e_list)
            expect_ids = [-1] * T
            for k, (s, e) in enumerate(segs):
                for j in range(s, e + 1):
                    expect_ids[j] = k
            assert ids[b].tolist() == expect_ids
            assert lens[b].tolist() == [e - s + 1 for s, e in segs] + [0] * (k_max - len(segs))
            assert vals[b].tolist() == [values[b, e].item() for e in e_list] + [0.0] * (k_max - len(segs))
            r = [values[b, e].item() for e in e_list]
            assert sequence_score(values, ends, "avg")[b].item() == pytest.approx(sum(r) / len(r))
            assert sequence_score(values, ends, "sum")[b].item() == pytest.approx(sum(r))
        if c == math.inf:  # bandit: the value at the end token
            assert sequence_score(values, ends)[:].tolist() == [values[b, n - 1].item() for b, n in enumerate(LENGTHS)]
        if c == 0.0:  # token level: the mean of the values except the end token (the end token alone if n = 1)
            assert sequence_score(values, ends).tolist() == pytest.approx(
                [statistics.fmean(row(values, b, max(n - 1, 1))) for b, n in enumerate(LENGTHS)]
            )


def test_empty_rows_have_no_end_and_no_reward():
    mask = make_mask([0, 3])
    h = torch.full((2, T), 5.0)
    assert end_index(mask).tolist() == [-1, 2]
    for c in (1.0, math.inf):
        ends = segment_ends(h, mask, c)
        assert not ends[0].any()
    assert bandit_token_rewards(torch.tensor([4.0, 2.0]), mask)[0].abs().sum() == 0
    assert dense_token_rewards(torch.ones(2, T), segment_ends(h, mask, 1.0), mask)[0].abs().sum() == 0


# ---------------------------------------------------------------------------------------------------
# location-aware normaliser


def test_location_normalise_brute_force_and_floor():
    a_mu, b_mu, a_s, b_s = 1.7340, 1.3212, 0.9906, 5.4513  # DR's Llama-3-SFT token-level fit (rlhf.md §3.3)
    K = torch.tensor([1, 3, 300, 2])
    k_idx = torch.tensor([[1, 0, 0], [1, 2, 3], [1, 2, 300], [2, 1, 0]])
    v = rand(7, 4, 3)
    out = location_normalise(v, k_idx, K, a_mu, b_mu, a_s, b_s, sigma_floor=1e-2)
    for b in range(4):
        for i in range(3):
            k, n = k_idx[b, i].item(), K[b].item()
            if k < 1:
                assert out[b, i].item() == 0.0
                continue
            p = k / n
            sigma = max(a_s * math.log(p) + b_s, 1e-2)
            assert out[b, i].item() == pytest.approx((v[b, i].item() - (a_mu * math.log(p) + b_mu)) / sigma, rel=1e-10)
    # p = 1/300 < 0.0041: the raw sigma is negative; the floor keeps the sign of r - mu
    raw = location_normalise(v, k_idx, K, a_mu, b_mu, a_s, b_s, sigma_floor=None)
    assert a_s * math.log(1 / 300) + b_s < 0
    assert torch.sign(raw[2, 0]) != torch.sign(out[2, 0])


def test_fit_location_normaliser_recovers_exact_log_linear_data():
    a_mu, b_mu, a_s, b_s = 0.7668, 0.4705, 0.2569, 2.8339
    vals, pos = [], []
    for K in (1, 2, 4, 5, 8):  # p = k/K exact at 3 decimals (1/3 would be keyed 0.333, as in DR)
        for k in range(1, K + 1):
            p = k / K
            mu, sd = a_mu * math.log(p) + b_mu, a_s * math.log(p) + b_s
            vals += [mu - sd, mu + sd]  # mean mu, population std sd
            pos += [p, p]
    fit = fit_location_normaliser(torch.tensor(vals), torch.tensor(pos))
    assert fit == pytest.approx((a_mu, b_mu, a_s, b_s), abs=1e-5)


def test_fit_location_normaliser_brute_force():
    g = np.random.default_rng(0)
    pos = g.choice([1 / 3, 2 / 3, 1.0, 0.25, 0.5, 0.75, 0.1], size=200)
    vals = g.normal(size=200) * 2 + np.log(pos)
    groups = {}
    for p, v in zip(pos.tolist(), vals.tolist()):  # DR: key round(p, 3), mean and population std per key
        groups.setdefault(round(p, 3), []).append(v)
    keys = sorted(groups)
    x = [math.log(k + 1e-10) for k in keys]
    a_mu, b_mu = np.polyfit(x, [statistics.fmean(groups[k]) for k in keys], 1)
    a_s, b_s = np.polyfit(x, [statistics.pstdev(groups[k]) for k in keys], 1)
    fit = fit_location_normaliser(torch.tensor(vals), torch.tensor(pos))
    assert fit == pytest.approx((a_mu, b_mu, a_s, b_s), rel=1e-9, abs=1e-12)


# ---------------------------------------------------------------------------------------------------
# per-token rewards


NORM = (0.8345, 0.8798, 0.4780, 3.7358)  # Llama-3.1 segment fit, in location_normalise's argument order


def brute_dense(values, ends, mode, norm, interpolate):
    """EM get_segment_rewards (rlhf.md §3.2) per row; interpolation is pgg's option, from the docstring's formula."""
    out = torch.zeros(len(LENGTHS), T, dtype=torch.float64)
    for b, _n in enumerate(LENGTHS):
        e_list = ends_lists(ends)[b]
        K = len(e_list)
        r = []
        for k, e in enumerate(e_list, start=1):
            v = values[b, e].item()
            if norm is not None:
                a_mu, b_mu, a_s, b_s = norm
                p = k / K
                v = (v - (a_mu * math.log(p) + b_mu)) / max(a_s * math.log(p) + b_s, 1e-2)
            r.append(v)
        prev_e, prev_r = -1, 0.0
        for k, (s, e) in enumerate(segments_of(e_list)):
            L = e - s + 1
            for j in range(s, e + 1):
                w = prev_r + (j - prev_e) / L * (r[k] - prev_r) if interpolate else r[k]
                if mode == "segment_normalization":
                    out[b, j] = w / L
                elif mode == "same_segment_last" or j == e:
                    out[b, j] = w
            prev_e, prev_r = e, r[k]
    return out


@pytest.mark.parametrize("mode", ["segment_normalization", "every_segment_last", "same_segment_last"])
@pytest.mark.parametrize("norm", [None, NORM])
@pytest.mark.parametrize("interpolate", [False, True])
def test_dense_token_rewards_brute_force(mode, norm, interpolate):
    if interpolate and mode == "every_segment_last":
        with pytest.raises(ValueError):
            dense_token_rewards(torch.zeros(1, 2), torch.ones(1, 2), torch.ones(1, 2), mode, interpolate=True)
        return
    mask = make_mask()
    h = padded(rand(8, len(LENGTHS), T).abs() * 2, mask, fill=50.0)
    values = padded(rand(9, len(LENGTHS), T), mask)
    for c in (0.0, 1.2, math.inf):
        ends = segment_ends(h, mask, c)
        got = dense_token_rewards(values, ends, mask, mode, normaliser=norm, interpolate=interpolate)
        assert torch.allclose(got, brute_dense(values, ends, mode, norm, interpolate), rtol=1e-10, atol=1e-12)
        if c < 1000:  # the end token and padding get 0 in the dense regime
            for b, n in enumerate(LENGTHS):
                if n > 1:
                    assert got[b, n - 1 :].abs().sum() == 0


def test_segment_normalization_hand_example_and_interpolation():
    values = torch.tensor([[0.0, 2.0, 0.0, 0.0, 6.0, 7.0, GARBAGE]])
    ends = torch.tensor([[False, True, False, False, True, False, False]])  # segments [0,1] and [2,4]; end token 5
    mask = make_mask([6])
    got = dense_token_rewards(values, ends, mask)
    assert got[0].tolist() == pytest.approx([1.0, 1.0, 2.0, 2.0, 2.0, 0.0, 0.0])  # r_k / L_k; segment sums 2 and 6
    interp = dense_token_rewards(values, ends, mask, "same_segment_last", interpolate=True)
    assert interp[0].tolist() == pytest.approx([1.0, 2.0, 2 + 4 / 3, 2 + 8 / 3, 6.0, 0.0, 0.0])


def test_bandit_token_rewards_brute_force():
    mask = make_mask()
    score = rand(10, len(LENGTHS))
    got = bandit_token_rewards(score, mask)
    for b, n in enumerate(LENGTHS):  # OpenRLHF: the scalar at the last action index (the end token)
        assert got[b].tolist() == [score[b].item() if j == n - 1 else 0.0 for j in range(T)]
    # equals the dense path in the bandit regime with every_segment_last
    values = padded(score[:, None].expand(-1, T).clone(), mask)
    ends = segment_ends(torch.zeros(len(LENGTHS), T), mask, math.inf)
    assert torch.equal(dense_token_rewards(values, ends, mask, "every_segment_last"), got)


# ---------------------------------------------------------------------------------------------------
# KL, GAE, whitening


def test_kl_penalised_rewards_brute_force():
    mask = make_mask()
    r = padded(rand(11, len(LENGTHS), T) * 8, mask)
    logp, ref = padded(rand(12, len(LENGTHS), T), mask), padded(rand(13, len(LENGTHS), T), mask)
    for est in ("k1", "k3"):
        out, kl = kl_penalised_rewards(r, logp, ref, mask, beta=0.01, clip=10.0, estimator=est)
        for b, n in enumerate(LENGTHS):
            for t in range(T):
                if t >= n:
                    assert out[b, t].item() == kl[b, t].item() == 0.0
                    continue
                lr = ref[b, t].item() - logp[b, t].item()
                k = -lr if est == "k1" else math.exp(lr) - 1 - lr  # trl: kl = -logr (k1), (exp(logr) - 1) - logr (k3)
                assert kl[b, t].item() == pytest.approx(k, rel=1e-10, abs=1e-12)
                assert out[b, t].item() == pytest.approx(min(max(r[b, t].item(), -10), 10) - 0.01 * k, rel=1e-10)
    assert (kl_k3(logp, ref, mask) >= 0).all()
    assert (r.abs() > 10).any()  # the clamp was exercised


def brute_gae(rewards, values, n, gamma, lam):
    """TRL PPO trainer's GAE loop on one row's n real tokens; nextvalues = 0 after the last one (no bootstrap)."""
    lastgaelam, adv = 0.0, []
    for t in reversed(range(n)):
        nextvalues = values[t + 1] if t < n - 1 else 0.0
        delta = rewards[t] + gamma * nextvalues - values[t]
        lastgaelam = delta + gamma * lam * lastgaelam
        adv.append(lastgaelam)
    adv = adv[::-1]
    return adv, [a + v for a, v in zip(adv, values)]


def test_gae_hand_computed_three_tokens():
    r = torch.tensor([[0.0, 0.0, 1.0, GARBAGE]], dtype=torch.float64)
    v = torch.tensor([[0.5, 0.4, 0.3, GARBAGE]], dtype=torch.float64)
    adv, ret = gae(r, v, make_mask([3], 4), gamma=1.0, lam=0.95)
    # delta_2 = 1 + 0 - 0.3 = 0.7; delta_1 = 0 + 0.3 - 0.4 = -0.1; delta_0 = 0 + 0.4 - 0.5 = -0.1
    # A_2 = 0.7; A_1 = -0.1 + 0.95 * 0.7 = 0.565; A_0 = -0.1 + 0.95 * 0.565 = 0.43675
    assert adv[0].tolist() == pytest.approx([0.43675, 0.565, 0.7, 0.0], abs=1e-12)
    assert ret[0].tolist() == pytest.approx([0.93675, 0.965, 1.0, 0.0], abs=1e-12)


@pytest.mark.parametrize("gamma,lam", [(1.0, 0.95), (0.9, 0.8), (1.0, 1.0)])
def test_gae_brute_force_right_padding(gamma, lam):
    mask = make_mask()
    r = padded(rand(14, len(LENGTHS), T), mask)
    v = padded(rand(15, len(LENGTHS), T), mask)
    adv, ret = gae(r, v, mask, gamma, lam)
    for b, n in enumerate(LENGTHS):
        a_ref, ret_ref = brute_gae(row(r, b, n), row(v, b, n), n, gamma, lam)
        assert adv[b].tolist() == pytest.approx(a_ref + [0.0] * (T - n), rel=1e-10, abs=1e-12)
        assert ret[b].tolist() == pytest.approx(ret_ref + [0.0] * (T - n), rel=1e-10, abs=1e-12)
    if gamma == lam == 1.0:  # A_t = sum_{t' >= t} r_t' - V_t: Monte-Carlo return minus the value
        for b, n in enumerate(LENGTHS):
            assert ret[b, 0].item() == pytest.approx(sum(row(r, b, n)))


def test_gae_off_by_one_would_be_caught():
    """The brute-force comparison above is sensitive: two plausible bugs give different numbers on its data."""
    mask = make_mask()
    r, v = padded(rand(14, len(LENGTHS), T), mask), padded(rand(15, len(LENGTHS), T), mask)
    adv, _ = gae(r, v, mask)

    def mutant(shift, use_mask):  # the TRL loop on the padded tensors, optionally unmasked or reading V_t for V_{t+1}
        rr, vv = (r * mask, v * mask) if use_mask else (r, v)
        last, out = torch.zeros(len(LENGTHS), dtype=torch.float64), []
        for t in reversed(range(T)):
            nxt = vv[:, t + shift] if t + shift < T else torch.zeros_like(last)
            last = rr[:, t] + nxt - vv[:, t] + 0.95 * last
            out.append(last)
        return torch.stack(out[::-1], 1) * mask

    assert torch.allclose(mutant(1, True), adv)  # the correct loop agrees
    assert not torch.allclose(mutant(0, True), adv)  # off by one in the next value
    assert not torch.allclose(mutant(1, False), adv)  # bootstraps from the padding after the end token


def test_whiten_matches_trl_masked_whiten():
    mask = make_mask()
    x = padded(rand(16, len(LENGTHS), T) * 3 + 1, mask)
    real = [x[b, t].item() for b, n in enumerate(LENGTHS) for t in range(n)]
    mean, var = statistics.fmean(real), statistics.variance(real)  # trl masked_var: unbiased (Bessel) variance
    for shift in (True, False):
        got = whiten(x, mask, shift_mean=shift)
        for b, n in enumerate(LENGTHS):
            for t in range(T):
                expect = (x[b, t].item() - mean) / math.sqrt(var + 1e-8) + (0.0 if shift else mean)
                assert got[b, t].item() == pytest.approx(expect if t < n else 0.0, rel=1e-10, abs=1e-12)
    with pytest.raises(ValueError):
        whiten(x, make_mask([1, 0, 0, 0, 0, 0]))


# ---------------------------------------------------------------------------------------------------
# PPO losses


def reduce_rows(per_token, reduce):
    """OpenRLHF masked_mean(dim=-1).mean() ("sequence") or TRL's masked_mean over all tokens ("token")."""
    if reduce == "sequence":
        return statistics.fmean(statistics.fmean(row_) for row_ in per_token)
    return statistics.fmean(x for row_ in per_token for x in row_)


@pytest.mark.parametrize("reduce", ["sequence", "token"])
def test_policy_loss_brute_force(reduce):
    mask = make_mask()
    logp = padded(rand(17, len(LENGTHS), T) * 0.3, mask)
    old = padded(rand(18, len(LENGTHS), T) * 0.3, mask)
    adv = padded(rand(19, len(LENGTHS), T), mask)
    loss, clipfrac, akl = policy_loss(logp, old, adv, mask, clip=0.2, reduce=reduce)
    losses, clipped, kls = [], [], []
    for b, n in enumerate(LENGTHS):  # OpenRLHF PolicyLoss / trl pg_losses, pg_losses2, pg_clipfrac, approxkl
        lr, cl, kr = [], [], []
        for t in range(n):
            ratio = math.exp(logp[b, t].item() - old[b, t].item())
            a = adv[b, t].item()
            l1, l2 = -a * ratio, -a * min(max(ratio, 0.8), 1.2)
            lr.append(max(l1, l2))
            cl.append(1.0 if l2 > l1 else 0.0)
            kr.append(0.5 * (logp[b, t].item() - old[b, t].item()) ** 2)
        losses.append(lr)
        clipped.append(cl)
        kls.append(kr)
    assert loss.item() == pytest.approx(reduce_rows(losses, reduce), rel=1e-10)
    assert clipfrac.item() == pytest.approx(reduce_rows(clipped, reduce), rel=1e-10)
    assert akl.item() == pytest.approx(reduce_rows(kls, reduce), rel=1e-10)
    assert 0 < clipfrac.item() < 1  # both branches exercised


def test_policy_loss_on_policy_is_minus_mean_advantage():
    adv = torch.tensor([[1.0, 3.0, 0.0], [2.0, 0.0, 0.0]])
    mask = make_mask([2, 1], 3)
    loss, clipfrac, akl = policy_loss(torch.zeros(2, 3), torch.zeros(2, 3), adv, mask)
    assert loss.item() == pytest.approx(-(2.0 + 2.0) / 2)  # rows: mean(1, 3) = 2, mean(2) = 2
    assert policy_loss(torch.zeros(2, 3), torch.zeros(2, 3), adv, mask, reduce="token")[0].item() == pytest.approx(-2.0)
    assert clipfrac.item() == akl.item() == 0.0


@pytest.mark.parametrize("reduce", ["sequence", "token"])
@pytest.mark.parametrize("clip", [0.2, None])
def test_value_loss_brute_force(reduce, clip):
    mask = make_mask()
    v = padded(rand(20, len(LENGTHS), T), mask)
    old = padded(v + rand(21, len(LENGTHS), T) * 0.4, mask)
    ret = padded(rand(22, len(LENGTHS), T), mask)
    loss, clipfrac = value_loss(v, old, ret, mask, clip=clip, reduce=reduce)
    losses, clipped = [], []
    for b, n in enumerate(LENGTHS):  # OpenRLHF ValueLoss / trl vf_losses1, vf_losses2, vf_clipfrac
        lr, cl = [], []
        for t in range(n):
            V, Vo, R = v[b, t].item(), old[b, t].item(), ret[b, t].item()
            l1 = (V - R) ** 2
            l2 = (Vo + min(max(V - Vo, -clip), clip) - R) ** 2 if clip is not None else l1
            lr.append(0.5 * max(l1, l2))
            cl.append(1.0 if l2 > l1 else 0.0)
        losses.append(lr)
        clipped.append(cl)
    assert loss.item() == pytest.approx(reduce_rows(losses, reduce), rel=1e-10)
    assert clipfrac.item() == pytest.approx(reduce_rows(clipped, reduce), rel=1e-10)
    if clip is not None:
        assert 0 < clipfrac.item() < 1


def test_losses_backpropagate():
    mask = make_mask()
    logp = rand(23, len(LENGTHS), T).requires_grad_()
    v = rand(24, len(LENGTHS), T).requires_grad_()
    loss, _, _ = policy_loss(logp, logp.detach() + 0.05, rand(25, len(LENGTHS), T), mask)
    vloss, _ = value_loss(v, v.detach() - 0.1, rand(26, len(LENGTHS), T), mask)
    (loss + vloss).backward()
    assert logp.grad is not None and v.grad is not None
    assert logp.grad[~mask].abs().sum() == 0 and logp.grad[mask].abs().sum() > 0
    assert v.grad[~mask].abs().sum() == 0 and v.grad[mask].abs().sum() > 0
