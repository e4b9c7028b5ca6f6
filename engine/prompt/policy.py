"""The prompt policy: a frozen causal LM with a trainable MLP adaptor before its frozen LM head (§3.3).

logits_t = lm_head(MLP(h_t)), h_t the frozen LM's last hidden state after the source `<|endoftext|>` and
the prompt tokens sampled so far. Sampling runs entirely without gradients (the backbone is frozen and
the sampled ids are discrete) and keeps the hidden states; the loss then recomputes the logits from
them with gradients through the MLP only, which is exact and cheap. Sampled ids are fed back directly
(the original re-tokenized decoded strings: algorithm.md §7 #4).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from engine.losses import top_k_filter
from torch import Tensor, nn

from engine.models import autocast, small_init


@dataclass
class Rollout:
    ids: Tensor  # (B, T) sampled token ids
    hidden: Tensor  # (B, T, d) frozen hidden states that produced each token's logits


class PromptPolicy(nn.Module):
    def __init__(
        self, backbone: nn.Module, hidden: int, source_id: int, bf16: bool = True, blocked_ids: list[int] | None = None
    ):
        super().__init__()
        self.backbone = backbone.eval().requires_grad_(False)
        d = backbone.config.hidden_size if hasattr(backbone.config, "hidden_size") else backbone.config.n_embd
        self.mlp = nn.Sequential(nn.Linear(d, hidden), nn.ReLU(), nn.Linear(hidden, d))
        small_init(self.mlp)
        self.source_id = source_id
        self.bf16 = bf16
        # ids the policy may never emit (special tokens, optionally); -inf for sampling and loss alike
        self.register_buffer("blocked", torch.tensor(blocked_ids or [], dtype=torch.long), persistent=False)

    def train(self, mode: bool = True) -> PromptPolicy:
        super().train(mode)
        self.backbone.eval()  # frozen: dropout stays off
        return self

    def logits(self, hidden: Tensor, mlp: nn.Module | None = None) -> Tensor:
        """(B, T, d) -> (B, T, V) through the adaptor (or a target copy of it) and the frozen head."""
        logits = self.backbone.get_output_embeddings()((mlp or self.mlp)(hidden))
        if self.blocked.numel():
            logits = logits.index_fill(-1, self.blocked, float("-inf"))
        return logits

    @torch.no_grad()
    def rollout(self, batch: int, length: int, top_k: int | None) -> Rollout:
        """Sample `batch` prompts of `length` tokens with a top-k filter, or greedily when top_k is None."""
        device = next(self.mlp.parameters()).device
        body = self.backbone.base_model
        ids = torch.full((batch, 1), self.source_id, device=device)
        tokens, states = [], []
        cache = None
        for _ in range(length):
            with autocast(device, self.bf16):
                out = body(input_ids=ids, past_key_values=cache, use_cache=True)
            cache = out.past_key_values
            h = out.last_hidden_state[:, -1].float()  # (B, d)
            logits = self.logits(h)  # (B, V)
            if top_k is None:
                ids = logits.argmax(-1, keepdim=True)
            else:
                ids = torch.multinomial(top_k_filter(logits, top_k).softmax(-1), 1)  # (B, 1)
            tokens.append(ids)
            states.append(h)
        return Rollout(torch.cat(tokens, 1), torch.stack(states, 1))
