"""How one matrix's LQER factors (golf/quant/lqer.py) are laid out in an artifact: a small JSON-able description
and one run of bytes, which the artifact places in its payload and records by offset and length.

The bytes are A's int8 codes (rows x rank), A's fp16 scales (one when asymmetric, else one per row), B's int8
codes (rank x cols), B's fp16 scales (one per `group` values when asymmetric, else one per row of B), little-endian.
Their length follows from the matrix's shape and the description alone, so a reader checks it before reading and a
damaged header cannot make it read beyond what it declares.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from golf.quant.lqer import LowRankFactors

_CODE = np.dtype("<i1")
_SCALE = np.dtype("<f2")


def describe(factors: LowRankFactors) -> dict[str, Any]:
    """The header's description of `factors`: rank, asym and (asymmetric) the group of B's values per scale."""
    group = factors.b.numel() // factors.b_scale.numel() if factors.asym else 0
    return {"rank": int(factors.a.shape[1]), "asym": bool(factors.asym), "group": int(group)}


def to_bytes(factors: LowRankFactors) -> bytes:
    parts = ((factors.a, _CODE), (factors.a_scale, _SCALE), (factors.b, _CODE), (factors.b_scale, _SCALE))
    return b"".join(t.detach().cpu().contiguous().numpy().astype(dtype).tobytes() for t, dtype in parts)


def check(description: Any, shape: list[int]) -> str:
    """'' when `description` is a valid one for a matrix of `shape`, else what is wrong with it."""
    if not isinstance(description, dict) or set(description) != {"rank", "asym", "group"}:
        return f"the LQER description {description!r} does not have exactly the keys rank, asym, group"
    rank, asym, group = description["rank"], description["asym"], description["group"]
    if len(shape) != 2:
        return f"LQER corrects matrices; the tensor's shape is {shape}"
    if not isinstance(rank, int) or isinstance(rank, bool) or not 1 <= rank <= min(shape):
        return f"LQER rank {rank!r} is not an integer in [1, {min(shape)}] for shape {shape}"
    if not isinstance(asym, bool):
        return f"LQER asym {asym!r} is not true or false"
    if not isinstance(group, int) or isinstance(group, bool) or group < 0 or asym != (group > 0) \
            or (asym and (rank * shape[1]) % group):
        return f"LQER group {group!r} does not divide B's {rank * shape[1]} values (asym={asym})"
    return ""


def nbytes(description: dict[str, Any], shape: list[int]) -> int:
    """The length of the bytes to_bytes writes for a checked description of a matrix of `shape`."""
    rows, cols = shape
    rank = description["rank"]
    scales = 1 + rank * cols // description["group"] if description["asym"] else rows + rank
    return (rows * rank + rank * cols) * _CODE.itemsize + scales * _SCALE.itemsize


def from_bytes(description: dict[str, Any], shape: list[int], data: bytes) -> LowRankFactors:
    """The factors back from to_bytes' bytes (exactly nbytes(description, shape) of them)."""
    rows, cols = shape
    rank, asym = description["rank"], description["asym"]
    counts = (rows * rank, 1 if asym else rows, rank * cols, rank * cols // description["group"] if asym else rank)
    tensors, offset = [], 0
    for count, dtype in zip(counts, (_CODE, _SCALE, _CODE, _SCALE)):
        values = np.frombuffer(data, dtype=dtype, count=count, offset=offset)
        tensors.append(torch.from_numpy(values.astype(dtype.newbyteorder("="))))
        offset += count * dtype.itemsize
    a, a_scale, b, b_scale = tensors
    return LowRankFactors(a.reshape(rows, rank), a_scale.reshape(()) if asym else a_scale,
                          b.reshape(rank, cols), b_scale, asym)
