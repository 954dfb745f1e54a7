"""Mean pooling of token vectors: the sentence embedding every kind computes the way sentence-transformers'
``Pooling(mean)`` does (the embed kind's loss, the tagger's document embedding, the classifier's input)."""

from __future__ import annotations

import torch


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Mean of the token vectors ``(batch, tokens, dim)`` over the attention mask ``(batch, tokens)``."""
    mask = attention_mask.to(hidden.device).unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
