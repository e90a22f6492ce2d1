"""Row encoders, by name (`quant.encoder`): how a matrix becomes int codes and one fp16 scale per row.

A registry, so a new quantizer is one class and one entry: the exporter asks the chosen encoder for each matrix's
codes and scales and stores them the same way, and the loader dequantizes them the same way (q * scale per row),
whatever encoder made them. Tensors that are not matrices, and everything kept in float, do not go through an
encoder (golf/quant/quantize.py plan_encoding); small gate matrices under quant.gates_int8 always use absmax.

An encoder that needs calibration (gptq) reads it from the ExportContext the caller hands to export_artifact: H = X^T X
per state-dict name (golf/quant/calibration.py collects them). The arithmetic modules are imported when an encoder
runs, not here: loading an artifact never encodes, and the loader's files count toward the 16,000,000 bytes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Mapping, Protocol

from torch import Tensor

from golf.quant.config import ENCODERS, QuantConfig
from golf.quant.quantize import category_of, qmax_of, quantize_rows

LOG = logging.getLogger("golf.quant")


@dataclass
class ExportContext:
    """What an export may need beyond the weights: calibration Hessians (state-dict name -> H = X^T X, cols x cols,
    of the inputs the matrix multiplies; for a tied embedding, of the final norm's output), and the notes the
    encoders leave (also logged as warnings)."""

    hessians: Mapping[str, Tensor] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def note(self, message: str) -> None:
        self.notes.append(message)
        LOG.warning(message)


class RowEncoder(Protocol):
    name: str

    def quantize_rows(self, name: str, w: Tensor, bits: int, cfg: QuantConfig,
                      context: ExportContext) -> tuple[Tensor, Tensor]:
        """(int8 codes with w's shape, fp16 scale per row) for the finite 2-D float `w`, the state dict's `name`."""
        ...


class RoundToNearest:
    """The challenge's export, generalized to 2..8 bits: per-row percentile clip, round to nearest
    (golf/quant/quantize.py has the arithmetic; QAT fakes exactly this)."""

    name = "rtn"

    def quantize_rows(self, name: str, w: Tensor, bits: int, cfg: QuantConfig,
                      context: ExportContext) -> tuple[Tensor, Tensor]:
        return quantize_rows(w, bits, cfg.clip_percentile, cfg.clip_floor)


class SDClip:
    """Round to nearest on the scale k * std(row) / qmax, k = quant.sdclip.<category> (golf/quant/sdclip.py)."""

    name = "sdclip"

    def quantize_rows(self, name: str, w: Tensor, bits: int, cfg: QuantConfig,
                      context: ExportContext) -> tuple[Tensor, Tensor]:
        from golf.quant import sdclip
        qmax = qmax_of(bits)
        scale16 = sdclip.stored_scales(sdclip.sdclip_clip(w, getattr(cfg.sdclip, category_of(name))), qmax)
        return sdclip.round_to_scales(w, scale16, qmax), scale16


class GPTQLite:
    """Per-row search over quant.lite_percentiles by reconstruction error (golf/quant/gptq_lite.py)."""

    name = "gptq_lite"

    def quantize_rows(self, name: str, w: Tensor, bits: int, cfg: QuantConfig,
                      context: ExportContext) -> tuple[Tensor, Tensor]:
        from golf.quant.gptq_lite import gptq_lite_rows
        return gptq_lite_rows(w, bits, cfg.lite_percentiles, cfg.clip_floor)


class GPTQ:
    """Full-Hessian GPTQ on SDClip scales (Hessian-aware with quant.gptq.hessian_clip_lambda > 0), as the T2/T3
    records. A matrix without a Hessian in the context (a lookup table such as the bigram table, which no
    calibration input multiplies) is rounded on its SDClip scales, which is GPTQ with H = I, and noted."""

    name = "gptq"

    def quantize_rows(self, name: str, w: Tensor, bits: int, cfg: QuantConfig,
                      context: ExportContext) -> tuple[Tensor, Tensor]:
        from golf.quant import gptq, sdclip
        qmax = qmax_of(bits)
        k = getattr(cfg.sdclip, category_of(name))
        hessian = context.hessians.get(name)
        if hessian is None:
            context.note(f"quant.encoder=gptq: no calibration Hessian for {name}; rounded on its SDClip scales "
                         "(GPTQ with an identity Hessian)")
            scale16 = sdclip.stored_scales(sdclip.sdclip_clip(w, k), qmax)
            return sdclip.round_to_scales(w, scale16, qmax), scale16
        prepared = gptq.prepare_hessian(hessian.to(w.device), cfg.gptq.damp)
        lam = cfg.gptq.hessian_clip_lambda
        factor = sdclip.hessian_row_factor(w, prepared.hessian.diag(), lam) if lam > 0 else None
        scale16 = sdclip.stored_scales(sdclip.sdclip_clip(w, k, factor), qmax)
        return gptq.gptq_codes(w, prepared, scale16, qmax, cfg.gptq.block_size), scale16


class AbsMax:
    """Round to nearest on the scale max|row| / qmax: the records' int8 per-row gates (quant.gates_int8)."""

    name = "absmax"

    def quantize_rows(self, name: str, w: Tensor, bits: int, cfg: QuantConfig,
                      context: ExportContext) -> tuple[Tensor, Tensor]:
        from golf.quant import sdclip
        qmax = qmax_of(bits)
        scale16 = sdclip.stored_scales(sdclip.absmax_clip(w), qmax)
        return sdclip.round_to_scales(w, scale16, qmax), scale16


REGISTRY: dict[str, RowEncoder] = {}


def register(encoder: RowEncoder) -> RowEncoder:
    if encoder.name not in ENCODERS:  # the light config lists the names it accepts (no torch import there)
        raise ValueError(f"encoder {encoder.name!r} is not listed in golf.quant.config.ENCODERS")
    REGISTRY[encoder.name] = encoder
    return encoder


for _encoder in (RoundToNearest(), SDClip(), GPTQLite(), GPTQ(), AbsMax()):
    register(_encoder)


def get(name: str) -> RowEncoder:
    if name not in REGISTRY:
        raise ValueError(f"unknown quant.encoder {name!r}; expected {', '.join(REGISTRY)}")
    return REGISTRY[name]
