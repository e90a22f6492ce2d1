"""Exact val_bpb, the formula of docs/bpb.md: sum of NLL (nats) / (ln 2 * sum of bytes), both sums in float64.

bytes_i = base[y_i] + (has_leading_space[y_i] and not is_boundary[x_i]) for target y_i after token x_i; boundary
tokens (BOS, control, unknown) count 0 bytes but their loss still counts. CaseOps data replaces the tables: its
validation set carries a byte sidecar (the original text's bytes per token), read by golf/evaluate/windows.py; a
CaseOps tokenizer's tables refuse to count. Which targets are scored and with what context is windows.py.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch

from golf.data.tokenizer import ByteTables
from golf.errors import DataError


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
    """The byte tables of docs/bpb.md on the evaluation device."""

    def __init__(self, tables: ByteTables, device: torch.device):
        self.base = torch.as_tensor(tables.base_bytes, dtype=torch.int64, device=device)
        self.leading_space = torch.as_tensor(tables.has_leading_space, dtype=torch.bool, device=device)
        self.boundary = torch.as_tensor(tables.is_boundary, dtype=torch.bool, device=device)
        self.needs_sidecar = tables.needs_sidecar

    def __call__(self, prev_ids: torch.Tensor, target_ids: torch.Tensor) -> torch.Tensor:
        if self.needs_sidecar:  # its pieces spell operators and lowercased text, not the text that is billed
            raise DataError("the tokenizer is a CaseOps tokenizer, whose byte table does not count the original "
                            "text's bytes, and these validation tokens came without their byte sidecar "
                            "(fineweb_val_bytes_*.bin); bits per byte need the sidecar: set data.transform=caseops "
                            "on a folder that holds it")
        return self.base[target_ids] + (self.leading_space[target_ids] & ~self.boundary[prev_ids]).long()

