"""Per-row scales set from a row's spread rather than its extremes, and the rounding onto a stored scale.

SDClip (the records since April 2026): scale_i = k * std(row_i) / qmax, k per tensor category (quant.sdclip); values
beyond qmax scales saturate. std is the unbiased standard deviation (torch.std), as in the records. Hessian-aware
SDClip (the 2026-04-06 entry, quant.gptq.hessian_clip_lambda) multiplies row i's clip by 1 + lambda * (r_i - 1),
where r_i = mean_j |W_ij| c_j with c = diag(H) / mean(diag(H)), and r normalized to mean 1: rows whose large
weights meet high-energy inputs get a wider grid.

Every scale is stored in fp16, and the codes are rounded against that stored scale (not the fp32 one), so a row
dequantizes to exactly what the rounding aimed at: q = clamp(round(w / scale16), -qmax, qmax). Scales are kept within
[2**-24, 65504] as everywhere in golf (an all-zero row gives zeros; the records' clamp_min(1e-10) underflows fp16).
absmax (the records' int8 gates): scale_i = max|row_i| / qmax.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from golf.quant.quantize import _scales


def sdclip_clip(w: Tensor, k: float, row_factor: Optional[Tensor] = None) -> Tensor:
    """k * std(row) per row of the 2-D w (times row_factor, Hessian-aware SDClip), in fp32."""
    clip = k * w.float().std(dim=1)
    return clip if row_factor is None else clip * row_factor


def hessian_row_factor(w: Tensor, hessian_diag: Tensor, lam: float) -> Tensor:
    """1 + lam * (r - 1), r the rows' importance under the (damped) Hessian's diagonal, both normalized to mean 1."""
    diag = hessian_diag.float().clamp_min(1e-8)
    column = diag / diag.mean()
    importance = (w.float().abs() * column.unsqueeze(0)).mean(dim=1)
    importance = importance / importance.mean()
    return 1.0 + lam * (importance - 1.0)


def stored_scales(clip: Tensor, qmax: int) -> Tensor:
    """The fp16 scale per row that clip / qmax rounds to (kept within fp16's positive range)."""
    return _scales(clip, qmax)[1]


def round_to_scales(w: Tensor, scale16: Tensor, qmax: int) -> Tensor:
    """int8 codes of the rows of w on their stored fp16 scales: clamp(round(w / scale), -qmax, qmax)."""
    with torch.no_grad():
        return torch.clamp(torch.round(w.float() / scale16.float()[:, None]), -qmax, qmax).to(torch.int8)


def absmax_clip(w: Tensor) -> Tensor:
    return w.float().abs().amax(dim=1) if w.size(1) else torch.zeros(w.size(0), device=w.device)
