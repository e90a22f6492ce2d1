"""Extra input embeddings of the record stack: BigramHash, SmearGate and value embeddings.

All three see only input tokens (positions <= t for position t), never targets. With model.bos_mask (the default)
none crosses a document boundary: a document starts with BOS (golf.data.tokenizer.BOS_ID), and at a BOS position
the previous token is ignored. model.bos_mask=false is T1's form (2026-03-23), which hashes and smears across
documents (ruled a leak later; kept for parity with that record).

- BigramHash (model.bigram_buckets, model.bigram_dim): a table row chosen by a hash of (previous token, current
  token), projected to the model width and added to the token embedding. Position 0 (and BOS positions, with
  bos_mask) use the reserved last bucket. golf's first form: table N(0, 0.02^2), projection at zero. With
  model.bigram_scale = s > 0, T1's form: the table starts at zero, the projection is drawn like the blocks' matrices
  (orthogonal under model.ortho_init), and the output is multiplied by a learned scalar `bigram.scale` starting at s.
- SmearGate (model.smear_gate), after the embedding norm: x_t <- (1 - g) * x_t + g * x_{t-1}, g = sigmoid(per-channel
  gate), with x_{t-1} = 0 at position 0 (and at BOS positions, with bos_mask).
- Input-dependent SmearGate (model.smear_gate_window = k > 0; T3, 2026-04-27), before the embedding norm:
  x_t <- x_t + lambda * sigmoid(w . x_t[:k]) * x_{t-1}, w (1 x k) and lambda both starting at zero (the identity at
  init); nothing at position 0 and (with bos_mask, as T3) at BOS positions.
- Value embeddings (model.value_embed_layers, model.value_embed_dim): one shared table of width value_embed_dim,
  projected to the attention's value width and added, times a per-layer learned scale, to the values of the chosen
  layers. The projection starts at zero. With model.value_embed_scale = s > 0, T1's form: the table starts
  N(0, 0.01^2), the projection is drawn like the blocks' matrices, and a learned shared scalar `value_embed.scale`
  (starting at s) multiplies the projection's output before the per-layer scales.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from golf.data.tokenizer import BOS_ID

HASH_A, HASH_B = 36313, 27191  # the records' multipliers


def previous_tokens(ids: Tensor, bos_mask: bool = True) -> tuple[Tensor, Tensor]:
    """(ids shifted right by one, mask of positions that have a previous token: in the same document with
    bos_mask, anywhere but position 0 without)."""
    prev = torch.roll(ids, 1, dims=-1)
    valid = ids != BOS_ID if bos_mask else torch.ones_like(ids, dtype=torch.bool)
    valid[..., 0] = False
    return prev, valid


def bigram_hash(ids: Tensor, buckets: int, bos_mask: bool = True) -> Tensor:
    """Bucket of (previous, current) input token in [0, buckets - 2]; buckets - 1 where there is no previous token."""
    prev, valid = previous_tokens(ids, bos_mask)
    mod = buckets - 1
    h = torch.bitwise_xor(HASH_A * ids.long(), HASH_B * prev.long()) % max(mod, 1)
    return torch.where(valid, h, torch.full_like(h, mod))


class BigramHash(nn.Module):
    def __init__(self, buckets: int, dim: int, model_dim: int, linear, scale: float = 0.0, bos_mask: bool = True):
        super().__init__()
        self.buckets = buckets
        self.bos_mask = bos_mask
        self.init_scale = scale
        self.table = nn.Embedding(buckets, dim)
        self.proj = linear(dim, model_dim, zero_init=scale == 0)  # T1's form learns through a zero table
        self.scale = nn.Parameter(torch.tensor(float(scale))) if scale > 0 else None

    def post_init(self) -> None:  # after the generic reset (nn.Embedding's own is N(0, 1))
        if self.scale is None:
            nn.init.normal_(self.table.weight, std=0.02)
        else:
            nn.init.zeros_(self.table.weight)
            nn.init.constant_(self.scale, self.init_scale)

    def forward(self, ids: Tensor) -> Tensor:
        h = self.proj(self.table(bigram_hash(ids, self.buckets, self.bos_mask)))
        return h if self.scale is None else h * self.scale.to(h.dtype)


class SmearGate(nn.Module):
    def __init__(self, dim: int, bos_mask: bool = True):
        super().__init__()
        self.bos_mask = bos_mask
        self.weight = nn.Parameter(torch.zeros(dim))

    def reset_parameters(self) -> None:
        nn.init.zeros_(self.weight)

    def forward(self, x: Tensor, ids: Tensor) -> Tensor:
        _, valid = previous_tokens(ids, self.bos_mask)
        x_prev = torch.roll(x, 1, dims=1) * valid.unsqueeze(-1).to(x.dtype)
        g = torch.sigmoid(self.weight.to(x.dtype))
        return (1 - g) * x + g * x_prev


class InputSmearGate(nn.Module):
    """T3's SmearGate: the gate reads the current token's first `window` channels (model.smear_gate_window)."""

    def __init__(self, window: int, bos_mask: bool = True):
        super().__init__()
        self.window = window
        self.bos_mask = bos_mask
        self.weight = nn.Parameter(torch.zeros(1, window))  # both zero: the identity at init
        self.scale = nn.Parameter(torch.zeros(1))

    def reset_parameters(self) -> None:
        nn.init.zeros_(self.weight)
        nn.init.zeros_(self.scale)

    def forward(self, x: Tensor, ids: Tensor) -> Tensor:
        _, valid = previous_tokens(ids, self.bos_mask)
        cur = x[:, 1:]
        g = self.scale.to(x.dtype) * torch.sigmoid(F.linear(cur[..., : self.window], self.weight.to(x.dtype)))
        smeared = cur + g * x[:, :-1] * valid[:, 1:, None].to(x.dtype)
        return torch.cat((x[:, :1], smeared), dim=1)


class ValueEmbedding(nn.Module):
    def __init__(self, vocab_size: int, dim: int, kv_dim: int, num_layers: int, linear, scale: float = 0.0):
        super().__init__()
        self.init_scale = scale
        self.table = nn.Embedding(vocab_size, dim)
        self.proj = linear(dim, kv_dim, zero_init=scale == 0)
        self.ve_scales = nn.Parameter(torch.ones(num_layers))
        self.scale = nn.Parameter(torch.tensor(float(scale))) if scale > 0 else None

    def post_init(self) -> None:
        nn.init.normal_(self.table.weight, std=1.0 if self.scale is None else 0.01)
        nn.init.ones_(self.ve_scales)
        if self.scale is not None:
            nn.init.constant_(self.scale, self.init_scale)

    def forward(self, ids: Tensor) -> Tensor:
        """The shared value embedding (B, T, kv_dim); layer j adds ve_scales[j] times it to its values."""
        h = self.proj(self.table(ids))
        return h if self.scale is None else h * self.scale.to(h.dtype)
