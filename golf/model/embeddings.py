"""Extra input embeddings of the record stack: BigramHash, SmearGate and value embeddings.

All three see only input tokens (positions <= t for position t), never targets, and none crosses a document boundary:
a document starts with BOS (golf.data.tokenizer.BOS_ID), and at a BOS position the previous token is ignored.

- BigramHash (model.bigram_buckets, model.bigram_dim): a table row chosen by a hash of (previous token, current
  token), projected to the model width and added to the token embedding. Position 0 and BOS positions use the
  reserved last bucket. The projection starts at zero, so a fresh model is unchanged by it.
- SmearGate (model.smear_gate): x_t <- (1 - g) * x_t + g * x_{t-1}, g = sigmoid(per-channel gate), with x_{t-1} = 0
  at position 0 and at BOS positions.
- Value embeddings (model.value_embed_layers, model.value_embed_dim): one shared table of width value_embed_dim,
  projected to the attention's value width and added, times a per-layer learned scale, to the values of the chosen
  layers. The projection starts at zero.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from golf.data.tokenizer import BOS_ID

HASH_A, HASH_B = 36313, 27191  # the records' multipliers


def previous_tokens(ids: Tensor) -> tuple[Tensor, Tensor]:
    """(ids shifted right by one, mask of positions that have a previous token in the same document)."""
    prev = torch.roll(ids, 1, dims=-1)
    valid = ids != BOS_ID
    valid[..., 0] = False
    return prev, valid


def bigram_hash(ids: Tensor, buckets: int) -> Tensor:
    """Bucket of (previous, current) input token in [0, buckets - 2]; buckets - 1 where there is no previous token."""
    prev, valid = previous_tokens(ids)
    mod = buckets - 1
    h = torch.bitwise_xor(HASH_A * ids.long(), HASH_B * prev.long()) % max(mod, 1)
    return torch.where(valid, h, torch.full_like(h, mod))


class BigramHash(nn.Module):
    def __init__(self, buckets: int, dim: int, model_dim: int, linear):
        super().__init__()
        self.buckets = buckets
        self.table = nn.Embedding(buckets, dim)
        self.proj = linear(dim, model_dim, zero_init=True)

    def post_init(self) -> None:  # after the generic reset (nn.Embedding's own is N(0, 1))
        nn.init.normal_(self.table.weight, std=0.02)

    def forward(self, ids: Tensor) -> Tensor:
        return self.proj(self.table(bigram_hash(ids, self.buckets)))


class SmearGate(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(dim))

    def reset_parameters(self) -> None:
        nn.init.zeros_(self.weight)

    def forward(self, x: Tensor, ids: Tensor) -> Tensor:
        _, valid = previous_tokens(ids)
        x_prev = torch.roll(x, 1, dims=1) * valid.unsqueeze(-1).to(x.dtype)
        g = torch.sigmoid(self.weight.to(x.dtype))
        return x + g * (x_prev - x)


class ValueEmbedding(nn.Module):
    def __init__(self, vocab_size: int, dim: int, kv_dim: int, num_layers: int, linear):
        super().__init__()
        self.table = nn.Embedding(vocab_size, dim)
        self.proj = linear(dim, kv_dim, zero_init=True)
        self.ve_scales = nn.Parameter(torch.ones(num_layers))

    def post_init(self) -> None:
        nn.init.normal_(self.table.weight, std=1.0)
        nn.init.ones_(self.ve_scales)

    def forward(self, ids: Tensor) -> Tensor:
        """The shared value embedding (B, T, kv_dim); layer j adds ve_scales[j] times it to its values."""
        return self.proj(self.table(ids))
