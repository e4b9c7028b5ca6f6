"""The rlhf task's maths as pure functions of tensors: Bradley-Terry, entropy segmentation, segment rewards,
the location-aware normaliser, KL-penalised rewards, GAE, whitening and the clipped PPO losses.

Reference: rlhf.md (Yin et al. 2025, "Segmenting Text and Learning Their Rewards for Improved RLHF", as
implemented in DR = DenseRewardRLHF-PPO, an OpenRLHF fork; TRL's PPO for the conventions). No model, config or
I/O here; every function is tested on hand-made tensors against brute-force loops (tests/test_rlhf_math.py).

Dimension letters: B batch, T response tokens, K segments, V vocabulary.

Padding convention (rlhf.md §7 "Padding and indices"): tensors are *right*-padded. ``mask`` (B, T) is True on
the response's real tokens, one contiguous block per row, the last of which is the end-of-turn token. The end
index of each row is computed from the mask (its last True column), never assumed to be column T-1. DR
left-pads and reads S-1 / S-2; these functions never do. A row whose mask is all False (an empty response)
gets no segment, no reward and no loss, instead of reading index -1.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

BANDIT_THRESHOLD = 1000.0
"""DR's bandit sentinel c = 1000 (rlhf.md §1 item 4, §2). Here any c >= 1000 (math.inf included) is bandit."""

REDUCTIONS = ("sequence", "token")


def _f32(x: Tensor) -> Tensor:
    """Upcast half precision for softmax-type reductions; leave float32 and float64 as they are."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def _float(x: Tensor) -> Tensor:
    """A floating tensor: integer and bool tensors become float32, floating ones keep their dtype."""
    return x if x.is_floating_point() else x.float()


def _positions(mask: Tensor) -> Tensor:
    """Column indices 0..T-1 broadcast to mask's (B, T) shape."""
    return torch.arange(mask.shape[-1], device=mask.device).expand(mask.shape)


def end_index(mask: Tensor) -> Tensor:
    """Per-row index of the last real token (the end token): (B,) long; -1 for a row with no real token."""
    m = mask.bool()
    return torch.where(m, _positions(m), torch.full_like(_positions(m), -1)).max(-1).values


def _masked_reduce(x: Tensor, mask: Tensor, reduce: str) -> Tensor:
    """Scalar masked mean of (B, T) x.

    "sequence": masked mean per row, then the mean over rows (DR/OpenRLHF ``masked_mean(dim=-1).mean()``,
    rlhf.md §3.4); a row with no real token contributes 0 (OpenRLHF would give NaN). "token": one masked mean
    over all real tokens of the batch (TRL's ``masked_mean``, rlhf.md §4).
    """
    m = mask.to(x.dtype)
    if reduce == "sequence":
        return ((x * m).sum(-1) / m.sum(-1).clamp(min=1)).mean()
    if reduce == "token":
        return (x * m).sum() / m.sum().clamp(min=1)
    raise ValueError(f"unknown reduction {reduce!r}; expected one of {REDUCTIONS}")


# ---------------------------------------------------------------------------------------------------
# reward model: Bradley-Terry


def bradley_terry_loss(chosen: Tensor, rejected: Tensor, margin: Tensor | float | None = None) -> Tensor:
    """Mean over pairs of -log sigma(s_w - s_l [- margin]) (rlhf.md §2 "Aggregation and loss"; §4 RewardTrainer).

    chosen, rejected: (B,) sequence scores s(x, y_w), s(x, y_l). DR's ``PairWiseLoss`` with the margin off;
    TRL's RewardTrainer subtracts an optional per-pair margin. At s_w = s_l the loss is ln 2.
    """
    diff = chosen - rejected
    if margin is not None:
        diff = diff - margin
    return -F.logsigmoid(diff).mean()


def pair_accuracy(chosen: Tensor, rejected: Tensor) -> Tensor:
    """Share of pairs with s_w > s_l, *strictly*: a tie counts 0, as in DR (rlhf.md §2). Scalar float tensor."""
    return (chosen > rejected).float().mean()


# ---------------------------------------------------------------------------------------------------
# segmentation (rlhf.md §1 item 1, §2 "Segmentation", §3.2)


def token_entropy(logits: Tensor, mask: Tensor) -> Tensor:
    """H_t = -sum_v p log p in nats of softmax(logits[:, t]), (B, T, V) -> (B, T); 0 where mask is False.

    rlhf.md §1 item 1 and §7: the entropy at response token t uses the reference model's logits *at* t (the
    distribution of the next token), not the shifted logits that give log pi(y_t). Half precision is upcast to
    float32 (float64 stays).
    """
    logp = torch.log_softmax(_f32(logits), -1)
    h = -(logp.exp() * logp).sum(-1)
    return h * mask.to(h.dtype)


def segment_ends(entropy: Tensor, mask: Tensor, threshold: float, bandit: bool | None = None) -> Tensor:
    """Segment-end flags (B, T) bool on response-relative positions (rlhf.md §2 ``segment_data_peak``, §3.2).

    Dense (c < 1000): position j ends a segment iff H_j > c, over the real tokens *before* the end token; the
    last segment is forced to close at the token before the end token (end-1), so the end token is in no
    segment. This is DR's tail rule (an end at the end token is dropped or moved to end-1; end-1 is appended
    otherwise; with no ends the list is [end-1]). c = 0 gives token-level RLHF (every token but the end token).

    Bandit: the only end is the end token itself. ``bandit=None`` infers it as ``threshold >= 1000`` (DR's
    sentinel, and pgg's ``math.inf``); note that DR treats only c == 1000 exactly as bandit, so a DR c = 1001
    would be dense there and is bandit here. ``bandit=True/False`` overrides. (c = 999 stays dense: one
    segment closing at end-1, as in DR; rlhf.md §7.)

    A response of length 1 (only the end token) has the end token as its single end, in both regimes (DR
    would read index -1). An empty row has no end. Vectorised; no loop over tokens.
    """
    m = mask.bool()
    pos = _positions(m)
    last = end_index(m).unsqueeze(-1)  # (B, 1)
    is_last = m & (pos == last)
    if bandit is None:
        bandit = threshold >= BANDIT_THRESHOLD
    if bandit:
        return is_last
    n = m.sum(-1, keepdim=True)  # (B, 1) response lengths
    peaks = m & (pos < last) & (entropy > threshold)
    forced = m & (pos == last - 1) & (n >= 2)
    single = is_last & (n == 1)
    return peaks | forced | single


def n_segments(ends: Tensor) -> Tensor:
    """K per row: the number of segment ends, (B,) long."""
    return ends.bool().sum(-1)


def segment_ids(ends: Tensor, mask: Tensor) -> Tensor:
    """0-based segment index of each token, (B, T) long; -1 for tokens in no segment (rlhf.md §7: boundary mask ->
    cumulative segment id).

    Token j is in segment k when k ends precede it strictly (k = cumsum(ends) - ends). Tokens after the last end
    (the end token in the dense regime) and padding get -1.
    """
    e = ends.bool() & mask.bool()
    ids = e.long().cumsum(-1) - e.long()
    inside = mask.bool() & (ids < e.sum(-1, keepdim=True))
    return torch.where(inside, ids, torch.full_like(ids, -1))


def _segment_table(x: Tensor, ends: Tensor) -> Tensor:
    """x at each segment end, gathered to (B, K_max) in segment order; zero-padded past each row's K."""
    e = ends.bool()
    k_max = int(e.sum(-1).max().item()) if e.numel() else 0
    out = torch.zeros(e.shape[0], k_max, dtype=x.dtype, device=x.device)
    rows, cols = e.nonzero(as_tuple=True)
    k = (e.long().cumsum(-1) - 1)[rows, cols]
    out[rows, k] = x[rows, cols]
    return out


def segment_lengths(ends: Tensor, mask: Tensor) -> Tensor:
    """L_k: the number of tokens of each segment, (B, K_max) long, zero-padded past each row's K (rlhf.md §1, §3.2).

    Segment 1 starts at the row's first real token; segment k at e_{k-1} + 1.
    """
    ids = segment_ids(ends, mask)
    k_max = int(n_segments(ends.bool() & mask.bool()).max().item()) if ids.numel() else 0
    out = torch.zeros(ids.shape[0], k_max, dtype=torch.long, device=ids.device)
    return out.scatter_add(-1, ids.clamp(min=0), (ids >= 0).long()) if k_max else out


def segment_values(values: Tensor, ends: Tensor) -> Tensor:
    """r_k = r_phi(x, y_<=e_k): the reward model's value at each segment end, (B, T) -> (B, K_max), zero-padded
    past each row's K (rlhf.md §1 item 2, §3.2 "segment k takes the RM value at e_k")."""
    return _segment_table(values, ends)


def sequence_score(values: Tensor, ends: Tensor, agg: str = "avg") -> Tensor:
    """s(x, y) = (1/K) sum_k r_k ("avg", DR's only aggregation) or sum_k r_k ("sum"), (B,) (rlhf.md §1 item 2, §2).

    values: (B, T) reward-model values at every response position. In the bandit regime this is the value at the
    end token; with c = 0 the mean of the per-token values except the end token. An empty row scores 0.
    """
    e = ends.bool().to(values.dtype)
    total = (values * e).sum(-1)
    if agg == "sum":
        return total
    if agg == "avg":
        return total / e.sum(-1).clamp(min=1)
    raise ValueError(f"unknown aggregation {agg!r}; expected 'avg' or 'sum'")


# ---------------------------------------------------------------------------------------------------
# location-aware normaliser (rlhf.md §3.3)


def location_normalise(
    seg_values: Tensor,
    seg_index: Tensor,
    n_segments: Tensor,
    a_mu: float,
    b_mu: float,
    a_sigma: float,
    b_sigma: float,
    sigma_floor: float | None = 1e-2,
) -> Tensor:
    """r~_k = (r_k - mu(p_k)) / sigma(p_k), p_k = k/K with k the 1-based segment index (rlhf.md §1 item 3, §3.3).

    mu(p) = a_mu ln p + b_mu; sigma(p) = max(a_sigma ln p + b_sigma, sigma_floor). The floor is pgg's guard
    (rlhf.md §7 "Normaliser": DR's Llama-3-SFT token fit gives sigma <= 0 for p < ~0.0041); None disables it.
    Note the argument order differs from DR's param.json, which stores [a_mu, a_sigma, b_mu, b_sigma].

    seg_values and seg_index share a shape, e.g. (B, K) or (B, T) per token; n_segments is (B,) (broadcast over
    the last dimension) or the same shape. Entries with seg_index < 1 or > K (padding, tokens in no segment)
    give 0.
    """
    v = _float(seg_values)
    k = seg_index.to(v.dtype)
    n = n_segments.to(v.dtype)
    if n.dim() == k.dim() - 1:
        n = n.unsqueeze(-1)
    valid = (k >= 1) & (k <= n)
    p = torch.where(valid, k / n.clamp(min=1), torch.ones_like(k))
    lp = torch.log(p)
    mu = a_mu * lp + b_mu
    sigma = a_sigma * lp + b_sigma
    if sigma_floor is not None:
        sigma = sigma.clamp(min=sigma_floor)
    return torch.where(valid, (v - mu) / sigma, torch.zeros_like(v))


def _least_squares_line(x: Tensor, y: Tensor) -> tuple[float, float]:
    """(slope, intercept) of the ordinary least-squares line y ~ a x + b; slope 0 when x is constant."""
    xm, ym = x.mean(), y.mean()
    sxx = ((x - xm) ** 2).sum()
    a = ((x - xm) * (y - ym)).sum() / sxx if sxx.item() > 0 else torch.zeros((), dtype=x.dtype)
    b = ym - a * xm
    return float(a.item()), float(b.item())


def fit_location_normaliser(values: Tensor, positions: Tensor, decimals: int = 3) -> tuple[float, float, float, float]:
    """Fit (a_mu, b_mu, a_sigma, b_sigma) for ``location_normalise`` from raw segment values (rlhf.md §3.3 "Fit").

    values, positions: any shape, flattened together; positions are p = k/K. As DR: each value is keyed by p
    rounded to ``decimals`` (3; torch.round, half to even), each key gets its mean and *population* std, and the
    means and stds are each regressed on ln(p + 1e-10), unweighted across keys. DR uses sklearn's HuberRegressor
    (epsilon 1.35); this is plain least squares (robustness to outlying keys is lost; exact log-linear data is
    recovered exactly by both). With a single key the slopes are 0.
    """
    v = values.detach().double().flatten()
    p = positions.detach().double().flatten()
    if v.numel() == 0 or v.shape != p.shape:
        raise ValueError("values and positions must be non-empty and of the same size")
    scale = 10.0**decimals
    keys, inverse = torch.unique(torch.round(p * scale) / scale, return_inverse=True)
    count = torch.zeros_like(keys).scatter_add(0, inverse, torch.ones_like(v))
    mean = torch.zeros_like(keys).scatter_add(0, inverse, v) / count
    var = torch.zeros_like(keys).scatter_add(0, inverse, (v - mean[inverse]) ** 2) / count
    x = torch.log(keys + 1e-10)
    a_mu, b_mu = _least_squares_line(x, mean)
    a_sigma, b_sigma = _least_squares_line(x, var.sqrt())
    return a_mu, b_mu, a_sigma, b_sigma


# ---------------------------------------------------------------------------------------------------
# per-token rewards (rlhf.md §3.2, §4)

DENSE_MODES = ("segment_normalization", "every_segment_last", "same_segment_last")


def dense_token_rewards(
    values: Tensor,
    ends: Tensor,
    mask: Tensor,
    mode: str = "segment_normalization",
    normaliser: tuple[float, float, float, float] | None = None,
    interpolate: bool = False,
    sigma_floor: float | None = 1e-2,
) -> Tensor:
    """Per-token rewards (B, T) from the reward model's values (B, T) at every response position (rlhf.md §3.2).

    r_k is the value at segment end e_k, normalised to r~_k by ``location_normalise`` when ``normaliser`` =
    (a_mu, b_mu, a_sigma, b_sigma) is given (rlhf.md §3.3; None keeps r_k, i.e. DR's silent (0, 1) fallback).
    Modes (DR's ``--ppo_reward_type``):
      "segment_normalization" (DR's default): r~_k / L_k on each token of segment k;
      "every_segment_last": r~_k only at e_k;
      "same_segment_last": r~_k on every token of segment k.
    Tokens in no segment get 0: padding and, in the dense regime, the end token. In the bandit regime the one
    segment includes the end token, so "segment_normalization" spreads the score over the whole response.

    interpolate (pgg's named option, off by default; DR's code has *no* interpolation, rlhf.md §3.2, §8): the
    value on token j of segment k becomes w_j = r~_{k-1} + (j - e_{k-1}) / L_k * (r~_k - r~_{k-1}), linear
    between the previous segment end's value and this one's, with r~_0 = 0 at the virtual end e_0 just before
    the first response token; w = r~_k at e_k. The modes then use w_j instead of r~_k ("segment_normalization":
    w_j / L_k), which no longer preserves each segment's total. It has no meaning for "every_segment_last"
    (ValueError).
    """
    if mode not in DENSE_MODES:
        raise ValueError(f"unknown dense reward mode {mode!r}; expected one of {DENSE_MODES}")
    if interpolate and mode == "every_segment_last":
        raise ValueError("interpolate changes only the tokens inside a segment; every_segment_last has none")
    v = _float(values)
    m = mask.bool()
    e = ends.bool() & m
    seg = segment_values(v, e)  # (B, K)
    if seg.shape[-1] == 0:
        return torch.zeros_like(v)
    n = n_segments(e)
    if normaliser is not None:
        k1 = torch.arange(1, seg.shape[-1] + 1, device=seg.device).expand(seg.shape)
        seg = location_normalise(seg, k1, n, *normaliser, sigma_floor=sigma_floor)
    ids = segment_ids(e, m)
    inside = ids >= 0
    idx = ids.clamp(min=0)
    zero = torch.zeros_like(v)
    r_k = torch.where(inside, seg.gather(-1, idx), zero)  # (B, T) r~_k on each token of segment k
    if mode == "every_segment_last":
        return torch.where(e, r_k, zero)
    lengths = segment_lengths(e, m).to(v.dtype).gather(-1, idx)  # (B, T) L_k on each token of segment k
    if interpolate:
        pos = _positions(m)
        end_pos = _segment_table(pos, e)  # (B, K) e_k
        first = torch.where(m, pos, torch.full_like(pos, m.shape[-1])).min(-1, keepdim=True).values  # (B, 1)
        prev_end = torch.cat([first - 1, end_pos[:, :-1]], -1).gather(-1, idx)  # (B, T) e_{k-1}
        prev_val = torch.cat([torch.zeros_like(seg[:, :1]), seg[:, :-1]], -1).gather(-1, idx)  # r~_{k-1}
        frac = (pos - prev_end).to(v.dtype) / lengths.clamp(min=1)
        r_k = torch.where(inside, prev_val + frac * (r_k - prev_val), zero)
    if mode == "same_segment_last":
        return r_k
    return torch.where(inside, r_k / lengths.clamp(min=1), zero)


def bandit_token_rewards(score: Tensor, mask: Tensor) -> Tensor:
    """The sequence score scattered onto each row's last real token (the end token), zero elsewhere: (B,) -> (B, T).

    OpenRLHF's convention, applied to every scalar reward type (rlhf.md §4: DR's ``compute_reward`` scatters only
    for ``segment_last_logsumexp`` and adds a (B,) tensor to the (B, A) KL otherwise; TRL puts the score one slot
    *after* EOS). The end index comes from the mask; an empty row gets nothing.
    """
    s = _float(score)
    m = mask.bool()
    last = end_index(m)
    out = torch.zeros(m.shape, dtype=s.dtype, device=s.device)
    out = out.scatter(-1, last.clamp(min=0).unsqueeze(-1), s.unsqueeze(-1))
    return torch.where(m & (_positions(m) == last.unsqueeze(-1)), out, torch.zeros_like(out))


# ---------------------------------------------------------------------------------------------------
# KL penalty, advantages (rlhf.md §3.4, §4)


def kl_k3(logp: Tensor, ref_logp: Tensor, mask: Tensor) -> Tensor:
    """Per-token k3 estimator (exp(l) - 1) - l with l = log pi_ref - log pi_theta, masked (TRL's optional
    ``kl_estimator="k3"``, rlhf.md §4). Non-negative, unbiased for KL(pi_theta || pi_ref) on policy samples."""
    logr = ref_logp - logp
    return (torch.expm1(logr) - logr) * mask.to(logr.dtype)


def kl_penalised_rewards(
    rewards: Tensor,
    logp: Tensor,
    ref_logp: Tensor,
    mask: Tensor,
    beta: float,
    clip: float | None = 10.0,
    estimator: str = "k1",
) -> tuple[Tensor, Tensor]:
    """reward_t = clamp(r_t, +-clip) - beta * kl_t, masked; returns (rewards, kl), both (B, T) (rlhf.md §3.4).

    kl_t = log pi_theta(y_t) - log pi_ref(y_t) (k1, DR's and TRL's default) or ``kl_k3``. DR clamps at 10 and
    uses beta = 0.01; ``clip=None`` skips the clamp (TRL does not clamp).
    """
    m = mask.to(logp.dtype)
    if estimator == "k1":
        kl = (logp - ref_logp) * m
    elif estimator == "k3":
        kl = kl_k3(logp, ref_logp, mask)
    else:
        raise ValueError(f"unknown KL estimator {estimator!r}; expected 'k1' or 'k3'")
    r = _float(rewards)
    if clip is not None:
        r = r.clamp(-clip, clip)
    return (r - beta * kl) * m, kl


def gae(rewards: Tensor, values: Tensor, mask: Tensor, gamma: float = 1.0, lam: float = 0.95) -> tuple[Tensor, Tensor]:
    """Generalised advantage estimation: (advantages, returns), both (B, T), zero on padding (rlhf.md §3.4).

    Rewards and values are multiplied by the mask first, so the value after each row's last real token is 0:
    a truncated response is not bootstrapped (DR EM:531-587, OpenRLHF). delta_t = r_t + gamma V_{t+1} - V_t,
    A_t = delta_t + gamma lam A_{t+1}, returns = A + V. The reversed loop over T mirrors TRL's PPO trainer.
    """
    m = mask.to(values.dtype)
    r = rewards.to(values.dtype) * m
    v = values * m
    T = v.shape[-1]
    last = torch.zeros_like(v[..., 0])
    out = []
    for t in reversed(range(T)):
        nxt = v[..., t + 1] if t < T - 1 else torch.zeros_like(last)
        delta = r[..., t] + gamma * nxt - v[..., t]
        last = delta + gamma * lam * last
        out.append(last)
    adv = torch.stack(out[::-1], -1) * m
    return adv, (adv + v) * m


def whiten(x: Tensor, mask: Tensor, shift_mean: bool = True) -> Tensor:
    """Masked whitening with TRL's ``masked_whiten`` semantics (rlhf.md §3.4, §4): mean and *unbiased* variance
    over the real tokens of the whole tensor, (x - mean) * rsqrt(var + 1e-8), + mean again when not shift_mean.

    Differences from TRL: padding is set to 0 in the result (TRL fills it with 0 right after), and fewer than
    two real tokens raise ValueError (TRL raises at 0 and divides by zero at 1).
    """
    m = mask.to(x.dtype)
    count = m.sum()
    if count.item() < 2:
        raise ValueError("whiten needs at least two real tokens (the unbiased variance divides by n - 1)")
    mean = (x * m).sum() / count
    var = (((x - mean) ** 2) * m).sum() / count * (count / (count - 1))
    out = (x - mean) * torch.rsqrt(var + 1e-8)
    if not shift_mean:
        out = out + mean
    return out * m


# ---------------------------------------------------------------------------------------------------
# PPO losses (rlhf.md §3.4, §4)


def policy_loss(
    logp: Tensor, old_logp: Tensor, advantages: Tensor, mask: Tensor, clip: float = 0.2, reduce: str = "sequence"
) -> tuple[Tensor, Tensor, Tensor]:
    """Clipped surrogate -min(rho A, clip(rho, 1 - eps, 1 + eps) A), rho = exp(logp - old_logp) (rlhf.md §3.4).

    Returns (loss, clip_fraction, approx_kl), scalars, each reduced the same way: "sequence" = masked mean per
    row then batch mean (DR/OpenRLHF ``PolicyLoss``), "token" = one masked mean over all real tokens (TRL).
    clip_fraction: share of tokens where the clipped term is strictly the larger loss (TRL's ``pg_clipfrac``);
    approx_kl: 0.5 (logp - old_logp)^2 (TRL's ``approxkl``). Statistics are detached.
    """
    log_ratio = logp - old_logp
    ratio = log_ratio.exp()
    loss1 = -advantages * ratio
    loss2 = -advantages * ratio.clamp(1.0 - clip, 1.0 + clip)
    loss = _masked_reduce(torch.max(loss1, loss2), mask, reduce)
    with torch.no_grad():
        clipfrac = _masked_reduce((loss2 > loss1).to(loss1.dtype), mask, reduce)
        approx_kl = _masked_reduce(0.5 * log_ratio**2, mask, reduce)
    return loss, clipfrac, approx_kl


def value_loss(
    values: Tensor,
    old_values: Tensor,
    returns: Tensor,
    mask: Tensor,
    clip: float | None = 0.2,
    reduce: str = "sequence",
) -> tuple[Tensor, Tensor]:
    """0.5 max((V - R)^2, (V_old + clip(V - V_old, +-vc) - R)^2), masked and reduced as ``policy_loss`` (rlhf.md §3.4).

    Returns (loss, value_clip_fraction): the share of tokens where the clipped term is strictly larger (TRL's
    ``vf_clipfrac``). ``clip=None``: 0.5 (V - R)^2 and a clip fraction of 0. DR's value_clip is 0.25 (dense) /
    0.2 (bandit); TRL's cliprange_value 0.2.
    """
    loss1 = (values - returns) ** 2
    if clip is None:
        return 0.5 * _masked_reduce(loss1, mask, reduce), torch.zeros((), dtype=values.dtype, device=values.device)
    clipped = old_values + (values - old_values).clamp(-clip, clip)
    loss2 = (clipped - returns) ** 2
    loss = 0.5 * _masked_reduce(torch.max(loss1, loss2), mask, reduce)
    with torch.no_grad():
        clipfrac = _masked_reduce((loss2 > loss1).to(loss1.dtype), mask, reduce)
    return loss, clipfrac


__all__ = [
    "BANDIT_THRESHOLD",
    "DENSE_MODES",
    "REDUCTIONS",
    "bandit_token_rewards",
    "bradley_terry_loss",
    "dense_token_rewards",
    "end_index",
    "fit_location_normaliser",
    "gae",
    "kl_k3",
    "kl_penalised_rewards",
    "location_normalise",
    "n_segments",
    "pair_accuracy",
    "policy_loss",
    "segment_ends",
    "segment_ids",
    "segment_lengths",
    "segment_values",
    "sequence_score",
    "token_entropy",
    "value_loss",
    "whiten",
]
