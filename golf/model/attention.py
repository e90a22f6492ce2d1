"""Attention options of the record stack, as small functions the attention module calls.

- Partial RoPE (model.rope_dims = d > 0): only the first d dims of each head are rotated; the rest carry no position.
- XSA (model.xsa_last = k): on the last k virtual layers, each token's attention output has its own value direction
  removed: y_t <- y_t - (y_t . v_t / |v_t|^2) v_t, per head (with grouped KV heads, v_t of the head's KV head).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def exclusive(y: Tensor, v: Tensor) -> Tensor:
    """XSA. y: (B, H, T, D) attention output; v: (B, KV, T, D) values, H a multiple of KV."""
    B, H, T, D = y.shape
    kv = v.size(1)
    y_g = y.reshape(B, kv, H // kv, T, D)
    vn = F.normalize(v, dim=-1).unsqueeze(2)  # (B, KV, 1, T, D)
    return (y_g - (y_g * vn).sum(-1, keepdim=True) * vn).reshape(B, H, T, D)
