"""GPTQ-lite: each row tries a few clip percentiles and keeps the one whose round trip is closest to it.

For every percentile p of quant.lite_percentiles: clip = the p-th percentile of |row| (100: its maximum; the same
interpolation as the rtn encoder), scale = max(clip, quant.clip_floor) / qmax stored in fp16, codes = clamp(round(w /
scale16), -qmax, qmax); the row keeps the codes and scale with the least squared error sum((w - q * scale16)^2), the
first listed on a tie. The 2026-03-22/23 records searched five percentiles with one choice per tensor (by the whole
tensor's mean squared error); per row the error of every row is at most theirs. No calibration data is needed.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from golf.quant.quantize import _rows_per_block, _scales, qmax_of, row_quantile


def _search_block(w: Tensor, qmax: int, percentiles: Sequence[float], clip_floor: float) -> tuple[Tensor, Tensor]:
    best_q = best_s = best_err = None
    for p in percentiles:
        clip = row_quantile(w.abs(), p)
        s16 = _scales(clip, qmax, clip_floor)[1]
        q = torch.clamp(torch.round(w / s16.float()[:, None]), -qmax, qmax)
        err = (w - q * s16.float()[:, None]).square().sum(dim=1)
        if best_err is None:
            best_q, best_s, best_err = q, s16, err
            continue
        better = err < best_err
        best_q = torch.where(better[:, None], q, best_q)
        best_s = torch.where(better, s16, best_s)
        best_err = torch.where(better, err, best_err)
    return best_q.to(torch.int8), best_s


def gptq_lite_rows(w: Tensor, bits: int, percentiles: Sequence[float],
                   clip_floor: float = 0.0) -> tuple[Tensor, Tensor]:
    """(int8 codes with w's shape, fp16 scale per row) of the finite 2-D w by the per-row percentile search."""
    if not percentiles:
        raise ValueError("GPTQ-lite needs at least one clip percentile")
    qmax = qmax_of(bits)
    rows, cols = w.shape
    if rows == 0 or cols == 0:
        return torch.zeros(rows, cols, dtype=torch.int8), _scales(torch.zeros(rows), qmax, clip_floor)[1]
    step = _rows_per_block(cols)
    parts = []
    with torch.no_grad():
        for i in range(0, rows, step):
            parts.append(_search_block(w[i:i + step].float(), qmax, percentiles, clip_floor))
    return torch.cat([q for q, _ in parts]), torch.cat([s for _, s in parts])
