"""The token reward model r_phi(s_t, a_t): a trainable backbone with an MLP head on every position (§2.1).

Causal backbones (prompt task) read the token sequence itself; encoder-decoder backbones
(summarization) read the article in the encoder and the summary in the decoder. The value at position
t comes from the hidden state after reading tokens 0..t, so it scores a_t given s_t = a_<t.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from engine.losses import squash
from engine.models import small_init


class TokenRewardModel(nn.Module):
    def __init__(self, backbone: nn.Module, hidden: int = 2048, squash_kind: str = "softplus"):
        super().__init__()
        self.backbone = backbone  # fully fine-tuned, as the original's optimizer takes all parameters
        cfg = backbone.config
        d = getattr(cfg, "d_model", None) or getattr(cfg, "hidden_size", None) or cfg.n_embd
        self.head = nn.Sequential(nn.Linear(d, hidden), nn.ReLU(), nn.Linear(hidden, 1))
        small_init(self.head)  # raw output ~ -1e-4 everywhere at init
        self.squash_kind = squash_kind
        self.is_seq2seq = bool(getattr(cfg, "is_encoder_decoder", False))

    def forward(
        self,
        input_ids: Tensor,
        attention_mask: Tensor | None = None,
        decoder_input_ids: Tensor | None = None,
        encoder_hidden: Tensor | None = None,
    ) -> Tensor:
        """Token rewards (B, T) for input_ids (causal) or decoder_input_ids (seq2seq)."""
        if self.is_seq2seq:
            if encoder_hidden is None:
                encoder_hidden = self.encode(input_ids, attention_mask)
            h = self.backbone.decoder(
                input_ids=decoder_input_ids, encoder_hidden_states=encoder_hidden, encoder_attention_mask=attention_mask
            ).last_hidden_state
        else:
            if attention_mask is None:
                attention_mask = torch.ones_like(input_ids)
            h = self.backbone(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return squash(self.head(h.float()).squeeze(-1), self.squash_kind)

    def encode(self, input_ids: Tensor, attention_mask: Tensor | None) -> Tensor:
        """Encoder states of the articles, computed once and expanded for their K samples by the caller."""
        return self.backbone.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    def param_groups(self, lr: float, backbone_scale: float) -> list[dict[str, Any]]:
        """Adam parameter groups: the head at lr, the backbone at lr * backbone_scale (one group at 1, as the
        original's single optimizer). A frozen backbone (0) stays in the optimizer at lr 0, so zero_grad
        still clears its gradients."""
        if backbone_scale == 1.0:
            return [{"params": list(self.parameters()), "lr": lr}]
        return [
            {"params": list(self.head.parameters()), "lr": lr},
            {"params": list(self.backbone.parameters()), "lr": lr * backbone_scale},
        ]
