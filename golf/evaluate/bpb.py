"""Exact val_bpb, FACTS.md's formula: sum of NLL (nats) / (ln 2 * sum of bytes), both sums in float64.

bytes_i = base[y_i] + (has_leading_space[y_i] and not is_boundary[x_i]) for target y_i after token x_i; boundary
tokens (BOS, control, unknown) count 0 bytes but their loss still counts. The standard evaluation cuts the
validation stream into non-overlapping sequences of eval.seq_len with no context carried over and drops the tail.
Memory depends on eval.batch_seqs, never on the size of the validation set: sequences stream from the memmap.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
import torch
import torch.distributed as dist

from golf.data.shards import TokenArray
from golf.data.tokenizer import ByteTables


@dataclass
class EvalResult:
    val_loss: float  # mean NLL per scored token, nats
    val_bpb: float
    tokens: int  # scored targets
    bytes: int  # bytes those targets stand for
    time_s: float
    token_nll: Optional[np.ndarray] = None  # float64 per scored target, validation order (when asked)
    token_bytes: Optional[np.ndarray] = None


def bits_per_byte(nll_sum: float, byte_sum: float) -> float:
    return nll_sum / (math.log(2.0) * byte_sum)


class ByteCounter:
    """FACTS.md's byte tables on the evaluation device."""

    def __init__(self, tables: ByteTables, device: torch.device):
        self.base = torch.as_tensor(tables.base_bytes, dtype=torch.int64, device=device)
        self.leading_space = torch.as_tensor(tables.has_leading_space, dtype=torch.bool, device=device)
        self.boundary = torch.as_tensor(tables.is_boundary, dtype=torch.bool, device=device)

    def __call__(self, prev_ids: torch.Tensor, target_ids: torch.Tensor) -> torch.Tensor:
        return self.base[target_ids] + (self.leading_space[target_ids] & ~self.boundary[prev_ids]).long()


def _rank_world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


@torch.no_grad()
def evaluate_standard(
    model: torch.nn.Module,
    val: TokenArray,
    tables: ByteTables,
    seq_len: int,
    batch_seqs: int,
    device: torch.device,
    autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
    save_token_nll: bool = False,
) -> EvalResult:
    """Score floor((N-1)/L)*L targets; ranks take contiguous ranges of sequences and their sums are reduced."""
    start_time = time.perf_counter()
    rank, world = _rank_world()
    total_seqs = (len(val) - 1) // seq_len
    if total_seqs < 1:
        raise ValueError(f"the validation set has {len(val)} tokens, fewer than one sequence of {seq_len} + 1")
    first, last = total_seqs * rank // world, total_seqs * (rank + 1) // world
    counter = ByteCounter(tables, device)
    sums = torch.zeros(3, dtype=torch.float64, device=device)  # nll, tokens, bytes
    nll_parts: list[np.ndarray] = []
    byte_parts: list[np.ndarray] = []
    was_training = model.training
    model.eval()
    for seq in range(first, last, batch_seqs):
        end = min(seq + batch_seqs, last)
        window = torch.from_numpy(val.read(seq * seq_len, end * seq_len + 1)).to(device)
        x = window[:-1].view(-1, seq_len)
        y = window[1:].view(-1, seq_len)
        with autocast():
            nll = model(x, y, reduction="none")
        nll = nll.double()
        nbytes = counter(x, y)
        sums += torch.stack([nll.sum(), torch.tensor(float(y.numel()), dtype=torch.float64, device=device),
                             nbytes.sum().double()])
        if save_token_nll:
            nll_parts.append(nll.flatten().cpu().numpy())
            byte_parts.append(nbytes.flatten().cpu().numpy().astype(np.float64))
    model.train(was_training)
    if world > 1:
        dist.all_reduce(sums)
    nll_sum, tokens, nbytes_total = (float(v) for v in sums.tolist())
    return EvalResult(
        val_loss=nll_sum / tokens,
        val_bpb=bits_per_byte(nll_sum, nbytes_total),
        tokens=int(tokens),
        bytes=int(nbytes_total),
        time_s=time.perf_counter() - start_time,
        token_nll=np.concatenate(nll_parts) if save_token_nll else None,
        token_bytes=np.concatenate(byte_parts) if save_token_nll else None,
    )
