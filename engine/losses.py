"""The method's maths as pure functions of tensors: squash, aggregation, ListMLE, the policy objectives.

No model, config or I/O here, so every function is tested on hand-made tensors (tests/test_losses.py).
Dimension letters: B batch of sequences, T tokens, V vocabulary, K sequences per ranked list,
C classes, N examples.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def _f32(x: Tensor) -> Tensor:
    """Upcast half precision for softmax-type reductions; leave float32 and float64 as they are."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


# ---------------------------------------------------------------------------------------------------
# sampling


def top_k_filter(logits: Tensor, k: int, fill: float = float("-inf")) -> Tensor:
    """`logits` with everything below the k-th largest of the last dimension set to `fill` (ties with the k-th
    stay; k is capped at the vocabulary). The prompt policy samples from it with fill -inf; summarization's
    reward-weighted loss reads it with the original's -1e4."""
    kth = logits.topk(min(k, logits.shape[-1]), -1).values[..., -1:]
    return logits.masked_fill(logits < kth, fill)


# ---------------------------------------------------------------------------------------------------
# token reward model output


def squash(z: Tensor, kind: str = "softplus", max_r: float = 1.0, min_r: float = 1e-8) -> Tensor:
    """Map the reward head's raw output to a positive token reward (algorithm.md §2.1).

    softplus: the original's double soft clamp u = max_r - softplus(max_r - z), r = min_r + softplus(u - min_r).
    Its range is (min_r, min_r + softplus(max_r)) ~ (1e-8, 1.3133), not [1e-8, 1]; at z ~ 0 it gives 0.5487.
    NaNs become 0 as in the original.
    """
    if kind == "softplus":
        u = max_r - F.softplus(max_r - z)
        r = min_r + F.softplus(u - min_r)
    elif kind == "sigmoid":
        r = torch.sigmoid(z)
    else:
        raise ValueError(f"unknown squash {kind!r}")
    return torch.nan_to_num(r, nan=0.0)


def aggregate(r: Tensor, mask: Tensor, how: str, temp: float = 2.0, scale: Tensor | float = 1.0) -> Tensor:
    """Sequence score e = f({r_t}) over the valid tokens of each row (algorithm.md §1, §2.3).

    r: (B, T) token rewards; mask: (B, T) bool, True on valid tokens; scale: C, the average length of the
    sequences being compared, a scalar or (B,). sum has no length factor; avg = C * mean;
    max / min = C * beta * logsumexp(r / beta) with beta = +temp / -temp.
    """
    mask = mask.bool()
    if how == "sum":
        return (r * mask).sum(1)
    if how == "avg":
        return (r * mask).sum(1) / mask.sum(1).clamp(min=1) * scale
    if how in ("max", "min"):
        beta = temp if how == "max" else -temp
        pad = float("-inf") if how == "max" else float("inf")  # padded tokens vanish from the logsumexp
        return beta * torch.logsumexp(r.masked_fill(~mask, pad) / beta, dim=1) * scale
    raise ValueError(f"unknown aggregation {how!r}")


def group_mean_length(mask: Tensor, k: int) -> Tensor:
    """C_g: the mean valid length over each group of K consecutive rows, repeated per row. (B,) from (B, T)."""
    lengths = mask.sum(1).float().view(-1, k)  # (B/K, K)
    return lengths.mean(1, keepdim=True).expand(-1, k).reshape(-1)


def reverse_cumsum(x: Tensor) -> Tensor:
    """Q_t = sum_{t' >= t} x_t' along the last dimension (reward-to-go, no discount)."""
    return x.flip(-1).cumsum(-1).flip(-1)


# ---------------------------------------------------------------------------------------------------
# preference grounding


def listmle(y_pred: Tensor, y_true: Tensor, perm: Tensor | None = None, eps: float = 1e-10) -> Tensor:
    """Plackett-Luce negative log-likelihood of the true ordering under the predicted scores (§2.2).

    y_pred, y_true: (B, K). One random column permutation shared by all rows breaks ties at random, as
    the original does. Loss_row = sum_k [log(sum_{j >= k} exp(s_j - m) + eps) - (s_k - m)], mean over rows.
    """
    k = y_pred.shape[1]
    perm = torch.randperm(k, device=y_pred.device) if perm is None else perm
    y_pred, y_true = y_pred[:, perm], y_true[:, perm]
    order = y_true.argsort(dim=1, descending=True)
    s = y_pred.gather(1, order)  # (B, K) predicted scores, best-true first
    s = s - s.max(dim=1, keepdim=True).values
    tail = s.exp().flip(1).cumsum(1).flip(1)  # (B, K) sum_{j >= k} exp(s_j)
    return (torch.log(tail + eps) - s).sum(1).mean()


# ---------------------------------------------------------------------------------------------------
# policy objectives


def token_nll(logits: Tensor, actions: Tensor) -> Tensor:
    """-log pi(a_t | s_t): (B, T) from logits (B, T, V) and actions (B, T)."""
    return -torch.log_softmax(_f32(logits), -1).gather(-1, actions.unsqueeze(-1)).squeeze(-1)


def neg_entropy(logits: Tensor) -> Tensor:
    """sum_v p log p per position, with p = softmax + 1e-8 as in the original: (B, T)."""
    p = torch.softmax(_f32(logits), -1) + 1e-8
    return (p * p.log()).sum(-1)


def reinforce_loss(logits: Tensor, actions: Tensor, weights: Tensor, entropy_coeff: float) -> tuple[Tensor, Tensor]:
    """Prompt task policy loss (§3.5): mean(w * NLL) + alpha * mean(sum p log p).

    logits: (B, T, V) *unfiltered* logits (sampling was top-k filtered; the loss is not); weights: (B, T),
    the token rewards (or Q), no baseline. Returns (loss, mean entropy) with the entropy detached.
    """
    nll = token_nll(logits, actions)  # (B, T)
    negh = neg_entropy(logits)  # (B, T)
    loss = (weights * nll).mean() + entropy_coeff * negh.mean()
    return loss, -negh.mean().detach()


def sql_loss(logits: Tensor, target_logits: Tensor, actions: Tensor, reward: Tensor) -> Tensor:
    """RLPrompt's soft Q-learning loss, "v2_v2r_v3_v3r" with the reversed parts inactive (§6).

    logits: (B, T, V) Q-values of the policy (with grad); target_logits: (B, T, V) of the Polyak target
    (no grad); actions: (B, T); reward: (B,) shaped sparse reward at the last token.
    v2 (single step): (A_t - [r_t + V'(s_{t+1}) - V'(s_t)])^2 with V'(s_T) = 0 and r_t = 0 before the end;
    v3 (multi step): (sum_{t' >= t} A_t' - [R - V'(s_t)])^2. Loss = sum_t (v2 + v3)/2, mean over B.
    """
    logits = _f32(logits)
    v = torch.logsumexp(logits, -1)  # (B, T)
    adv = logits.gather(-1, actions.unsqueeze(-1)).squeeze(-1) - v  # (B, T) A_t
    with torch.no_grad():
        vt = torch.logsumexp(_f32(target_logits), -1)  # (B, T) V'(s_t)
        vt_next = torch.cat([vt[:, 1:], torch.zeros_like(vt[:, :1])], 1)  # V'(s_{t+1}), 0 after the end
        r = torch.zeros_like(vt)
        r[:, -1] = reward
        target2 = r + vt_next - vt
        target3 = reward.unsqueeze(1) - vt
    loss2 = (adv - target2) ** 2
    loss3 = (reverse_cumsum(adv) - target3) ** 2
    return ((loss2 + loss3) / 2).sum(1).mean()


def zscore(x: Tensor, eps: float = 1e-4) -> Tensor:
    """(x - mean) / (std + eps) over the batch, with the population std (ddof 0) as RLPrompt computes it."""
    return (x - x.mean()) / (x.std(correction=0) + eps)


def wmle_weights(r: Tensor, mask: Tensor, use_q: bool = False, exp: bool = False) -> Tensor:
    """Per-sequence normalised token weights w_t = r_t / sum_t' r_t' over valid tokens (§4.4). (B, T)."""
    w = (r.exp() if exp else r) * mask
    if use_q:
        w = reverse_cumsum(w) * mask
    return w / w.sum(1, keepdim=True).clamp(min=1e-12)


def wmle_loss(nll: Tensor, weights: Tensor) -> Tensor:
    """Reward-weighted MLE: mean over sequences of sum_t w_t * NLL_t. With constant r: the mean per-sequence NLL."""
    return (weights * nll).sum(1).mean()


# ---------------------------------------------------------------------------------------------------
# the classification preference source


def gap_reward(
    probs: Tensor, labels: Tensor, correct_coeff: float = 200.0, incorrect_coeff: float = 180.0
) -> tuple[Tensor, Tensor]:
    """RLPrompt's piecewise gap reward (§3.2). probs: (..., C) verbalizer probabilities; labels: (...,).

    gap = p[label] - max of the other classes, where (quirk kept) any class whose probability equals the
    label's exactly is also left out of the max, by replacing it with -1. R = gap * (200 if gap > 0 else 180).
    Returns (R, correct), both shaped like labels.
    """
    p_label = probs.gather(-1, labels.unsqueeze(-1))  # (..., 1)
    others = torch.where(probs == p_label, torch.full_like(probs, -1.0), probs)
    gap = p_label.squeeze(-1) - others.max(-1).values
    correct = gap > 0
    return gap * torch.where(correct, correct_coeff, incorrect_coeff), correct


# ---------------------------------------------------------------------------------------------------
# grounding quality


def kendall_tau(x: Tensor, y: Tensor) -> Tensor:
    """Kendall's tau-b between the last dimensions of x and y: (..., n) -> (...).

    (concordant - discordant pairs) / sqrt(pairs untied in x * pairs untied in y); NaN where either side
    is constant. 1: the model orders the sequences as the true score does; 0: no better than chance.
    """
    x, y = x.double(), y.double()
    dx = torch.sign(x.unsqueeze(-1) - x.unsqueeze(-2))  # (..., n, n)
    dy = torch.sign(y.unsqueeze(-1) - y.unsqueeze(-2))
    n = x.shape[-1]
    upper = torch.ones(n, n, dtype=torch.bool, device=x.device).triu(1)
    s = (dx * dy * upper).sum((-1, -2))
    tx = (dx.ne(0) & upper).sum((-1, -2))
    ty = (dy.ne(0) & upper).sum((-1, -2))
    return s / (tx * ty).double().sqrt()


def grounding_tau(model: Tensor, true: Tensor) -> Tensor:
    """Kendall's tau-b of model scores against true scores, as a grounding quality: (..., n) -> (...).

    Where the model scores every sequence of a list alike but their true scores differ, tau-b is undefined;
    here it is 0 (the model orders nothing: chance), so a reward model that learned nothing shows as 0
    instead of vanishing from the record. NaN only where the true scores are all alike (nothing to rank).
    """
    tau = kendall_tau(model, true)
    nothing_to_rank = (true == true[..., :1]).all(-1)
    return torch.where(tau.isnan() & ~nothing_to_rank, torch.zeros_like(tau), tau)


def listmle_chance(k: int) -> float:
    """ListMLE of a model that scores every sequence alike: sum_k log k = ln(K!)."""
    return float(torch.lgamma(torch.tensor(k + 1.0)))
