"""Row encoders, by name (`quant.encoder`): how a matrix becomes int codes and one fp16 scale per row.

A registry, so a new quantizer (GPTQ, SDClip, ...) is one class and one entry: the exporter asks the chosen encoder
for each matrix's codes and scales and stores them the same way, and the loader dequantizes them the same way
(q * scale per row), whatever encoder made them. Tensors that are not matrices, and everything kept in float, do not
go through an encoder (golf/quant/quantize.py plan_encoding).
"""

from __future__ import annotations

from typing import Protocol

from torch import Tensor

from golf.quant.config import ENCODERS, QuantConfig
from golf.quant.quantize import quantize_rows


class RowEncoder(Protocol):
    name: str

    def quantize_rows(self, name: str, w: Tensor, bits: int, cfg: QuantConfig) -> tuple[Tensor, Tensor]:
        """(int8 codes with w's shape, fp16 scale per row) for the finite 2-D float `w`, the state dict's `name`."""
        ...


class RoundToNearest:
    """The challenge's export, generalized to 2..8 bits: per-row percentile clip, round to nearest
    (golf/quant/quantize.py has the arithmetic; QAT fakes exactly this)."""

    name = "rtn"

    def quantize_rows(self, name: str, w: Tensor, bits: int, cfg: QuantConfig) -> tuple[Tensor, Tensor]:
        return quantize_rows(w, bits, cfg.clip_percentile, cfg.clip_floor)


REGISTRY: dict[str, RowEncoder] = {}


def register(encoder: RowEncoder) -> RowEncoder:
    if encoder.name not in ENCODERS:  # the light config lists the names it accepts (no torch import there)
        raise ValueError(f"encoder {encoder.name!r} is not listed in golf.quant.config.ENCODERS")
    REGISTRY[encoder.name] = encoder
    return encoder


register(RoundToNearest())


def get(name: str) -> RowEncoder:
    if name not in REGISTRY:
        raise ValueError(f"unknown quant.encoder {name!r}; expected {', '.join(REGISTRY)}")
    return REGISTRY[name]
