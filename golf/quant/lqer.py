"""LQER: a low-rank correction of the quantization error, as the T3 record (2026-04-27) computes and stores it.

After quantization, the top_k matrices with the largest error E = W - dequant(codes) (Frobenius norm) get E ~ A @ B
with A = U_r diag(S_r) (rows x r) and B = Vh_r (r x cols) from E's SVD, r = min(rank, the number of singular values).
The factors are stored as integers with fp16 scales:
- asymmetric (the record's default; used when B's element count divides by `group`): A on one scale for the whole
  factor, codes in [-2**(a_bits-1), 2**(a_bits-1) - 1] on the scale max|A| / (2**(a_bits-1) - 0.5) (int2: [-2, 1],
  max / 1.5); B flattened in groups of `group` values with one scale each, b_bits codes the same way (int4: [-8, 7],
  max / 7.5);
- symmetric otherwise: A and B one scale per row, factor_bits codes in [-qmax, qmax], scale max|row| / qmax.
The loader adds dequant(A) @ dequant(B) to the dequantized weight, in fp32 as the record's dequantize_mixed does.
Scales stay within fp16's [2**-24, 65504] (an all-zero factor gives zeros, not NaN); otherwise the codes, scales and
corrected weights are the record's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import torch
from torch import Tensor

from golf.quant.config import LQERConfig
from golf.quant.quantize import FP16_MAX, FP16_MIN_POSITIVE


@dataclass
class LowRankFactors:
    a: Tensor  # int8 codes of A, rows x r
    a_scale: Tensor  # fp16: one scalar (asymmetric) or one per row of A (symmetric)
    b: Tensor  # int8 codes of B, r x cols
    b_scale: Tensor  # fp16: one per group of B's flattened values (asymmetric) or one per row of B (symmetric)
    asym: bool

    def correction(self) -> Tensor:
        """dequant(A) @ dequant(B) in fp32: what the loader adds to the dequantized weight."""
        if self.asym:
            a = self.a.float() * self.a_scale.float()
            group = self.b.numel() // self.b_scale.numel()
            b = (self.b.reshape(-1, group).float() * self.b_scale.float().view(-1, 1)).reshape(self.b.shape)
        else:
            a = self.a.float() * self.a_scale.float().view(-1, 1)
            b = self.b.float() * self.b_scale.float().view(-1, 1)
        return a @ b


def _fp16_scale(top: Tensor, divisor: float) -> Tensor:
    return (top.clamp_min(1e-10) / divisor).to(torch.float16).clamp(FP16_MIN_POSITIVE, FP16_MAX)


def _codes(x: Tensor, scale16: Tensor, low: int, high: int) -> Tensor:
    return torch.clamp(torch.round(x / scale16.float()), low, high).to(torch.int8)


def pack_asymmetric(a: Tensor, b: Tensor, group: int, a_bits: int = 2, b_bits: int = 4) -> LowRankFactors:
    """A on one scale, B in groups of `group` flattened values (B.numel() must divide by group)."""
    half_a, half_b = 2 ** (a_bits - 1), 2 ** (b_bits - 1)
    a_scale = _fp16_scale(a.abs().amax(), half_a - 0.5)
    flat = b.reshape(-1, group)
    b_scale = _fp16_scale(flat.abs().amax(dim=-1, keepdim=True), half_b - 0.5).reshape(-1)
    b_codes = _codes(flat, b_scale.reshape(-1, 1), -half_b, half_b - 1).reshape(b.shape)
    return LowRankFactors(_codes(a, a_scale, -half_a, half_a - 1), a_scale, b_codes, b_scale, asym=True)


def pack_symmetric(a: Tensor, b: Tensor, bits: int) -> LowRankFactors:
    """A and B one scale per row, codes in [-qmax, qmax]."""
    qmax = 2 ** (bits - 1) - 1
    a_scale = _fp16_scale(a.abs().amax(dim=1), qmax)
    b_scale = _fp16_scale(b.abs().amax(dim=1), qmax)
    return LowRankFactors(_codes(a, a_scale.view(-1, 1), -qmax, qmax), a_scale,
                          _codes(b, b_scale.view(-1, 1), -qmax, qmax), b_scale, asym=False)


def low_rank(error: Tensor, rank: int) -> tuple[Tensor, Tensor]:
    """(A, B) with A @ B the best rank-`rank` approximation of the 2-D `error`: A = U_r diag(S_r), B = Vh_r."""
    u, s, vh = torch.linalg.svd(error.float(), full_matrices=False)
    r = min(rank, s.numel())
    return (u[:, :r] * s[:r]).contiguous(), vh[:r, :].contiguous()


def factorize(error: Tensor, cfg: LQERConfig) -> LowRankFactors:
    """The stored factors of one matrix's quantization error: asymmetric when cfg.asym and B's element count divides
    by cfg.group, else symmetric with cfg.factor_bits (the record's fallback)."""
    a, b = low_rank(error, cfg.rank)
    if cfg.asym and b.numel() % cfg.group == 0:
        return pack_asymmetric(a, b, cfg.group, cfg.a_bits, cfg.b_bits)
    return pack_symmetric(a, b, cfg.factor_bits)


class ErrorRanking:
    """The top_k (name, error) pairs offered, by Frobenius norm; ties keep the order offered (the record sorts its
    candidates stably in state-dict order). Holds at most top_k errors, so an export can offer every matrix."""

    def __init__(self, top_k: int):
        self.top_k = top_k
        self._kept: list[tuple[float, int, str, Tensor]] = []
        self._offered = 0

    def offer(self, name: str, error: Tensor) -> None:
        self._kept.append((-float(error.float().norm()), self._offered, name, error))
        self._offered += 1
        self._kept.sort(key=lambda item: item[:2])
        del self._kept[self.top_k:]

    def chosen(self) -> list[tuple[str, Tensor]]:
        """(name, error), largest first."""
        return [(name, error) for _, _, name, error in self._kept]


def largest_errors(errors: Iterable[tuple[str, Tensor]], top_k: int) -> list[tuple[str, Tensor]]:
    """The top_k (name, error) pairs by Frobenius norm, largest first (ErrorRanking over `errors`)."""
    ranking = ErrorRanking(top_k)
    for name, error in errors:
        ranking.offer(name, error)
    return ranking.chosen()


def correct_largest(errors: Iterable[tuple[str, Tensor]], cfg: LQERConfig) -> dict[str, LowRankFactors]:
    """name -> factors for the cfg.top_k matrices with the largest quantization error, largest first."""
    return {name: factorize(error, cfg) for name, error in largest_errors(errors, cfg.top_k)}
