"""Quantization-aware training: the model's linear layers see their weights as the exporter will store them.

Hard mode (straight-through estimator): the forward weight is fake_quantize_rows(w), exactly the exporter's round
trip, and the gradient passes to w unchanged. Soft-round mode replaces the rounding by a differentiable soft round of
sharpness alpha (clip and scales as the exporter's, held constant):

    s(x) = floor(x) + 0.5 + tanh(alpha * (frac(x) - 0.5)) / (2 * tanh(alpha / 2)),   frac(x) = x - floor(x)

s is continuous (s = floor(x) at integers), tends to x as alpha -> 0 and to round(x) as alpha -> inf; alpha is
annealed from QATConfig.temperature_start to temperature_end (soft_round_alpha). Pruning is not simulated.
The embedding (tok_emb, and the tied head that reuses it) is no CastedLinear and is therefore not fake-quantized.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from golf.model.gpt import CastedLinear
from golf.quant.config import QATConfig, QuantConfig
from golf.quant.quantize import clip_and_scale_rows, fake_quantize_rows, plan_encoding, qmax_of


def soft_round(x: Tensor, alpha: float) -> Tensor:
    """The soft round s(x) above, differentiable in x; alpha > 0."""
    floor = torch.floor(x).detach()
    return floor + 0.5 + torch.tanh(alpha * (x - floor - 0.5)) / (2.0 * math.tanh(alpha / 2.0))


class FakeQuantizer:
    """A CastedLinear.weight_transform: the weight as the exporter stores it (per-row integers of `bits` bits)."""

    def __init__(self, bits: int, clip_percentile: float, soft: bool = False, alpha: float = 1.0,
                 clip_floor: float = 0.0):
        self.bits = bits
        self.qmax = qmax_of(bits)
        self.clip_percentile = clip_percentile
        self.clip_floor = clip_floor
        self.soft = soft
        self.alpha = alpha

    def set_temperature(self, alpha: float) -> None:
        if not alpha > 0:
            raise ValueError(f"soft-round alpha must be > 0, got {alpha}")
        self.alpha = alpha

    def __call__(self, w: Tensor) -> Tensor:
        if self.soft:
            return self._soft(w)
        # value: the exporter's round trip, bit for bit (w - w.detach() is exactly 0); gradient: identity
        return fake_quantize_rows(w, self.bits, self.clip_percentile, self.clip_floor) + (w - w.detach())

    def _soft(self, w: Tensor) -> Tensor:
        clip, scale, scale16 = clip_and_scale_rows(w.detach(), self.bits, self.clip_percentile, self.clip_floor)
        clip, scale, scale16 = clip[:, None], scale[:, None], scale16.float()[:, None]
        x = torch.maximum(torch.minimum(w.float(), clip), -clip) / scale
        return (soft_round(x, self.alpha).clamp(-self.qmax, self.qmax) * scale16).to(w.dtype)

    def __repr__(self) -> str:
        mode = f"soft, alpha={self.alpha:g}" if self.soft else "straight-through"
        return f"FakeQuantizer(int{self.bits}, clip {self.clip_percentile}%, {mode})"


def _casted_linears(model: nn.Module) -> list[tuple[str, CastedLinear]]:
    return [(name, m) for name, m in model.named_modules() if isinstance(m, CastedLinear)]


def _quantized_linears(model: nn.Module, cfg: QuantConfig) -> list[tuple[str, CastedLinear, int]]:
    """(weight name, module, bits) of every CastedLinear whose weight the exporter stores as integers."""
    out = []
    for module_name, module in _casted_linears(model):
        name = f"{module_name}.weight" if module_name else "weight"
        encoding = plan_encoding(name, module.weight, cfg)
        if encoding.kind == "int":
            out.append((name, module, encoding.bits))
    return out


def attach_qat(model: nn.Module, cfg: QuantConfig) -> list[str]:
    """Fake-quantize every CastedLinear whose weight the exporter stores as integers; returns those weights' names."""
    attached = []
    for name, module, bits in _quantized_linears(model, cfg):
        module.weight_transform = FakeQuantizer(bits, cfg.clip_percentile, soft=cfg.qat.soft_round,
                                                alpha=cfg.qat.temperature_start, clip_floor=cfg.clip_floor)
        attached.append(name)
    return attached


def qat_touches_nothing(model: nn.Module, cfg: QuantConfig) -> str | None:
    """The warning for QAT switched on where it would fake-quantize no matrix (the tiny model's are all within the
    65,536-element passthrough, kept in float by the export), else None."""
    if not cfg.qat.enabled or _quantized_linears(model, cfg):
        return None
    largest = max((m.weight.numel() for _, m in _casted_linears(model)), default=0)
    return (f"quant.qat.enabled=true, but QAT will fake-quantize 0 matrices: the export keeps every linear weight of "
            f"this model in float (the largest has {largest:,} elements, within quant.passthrough_numel="
            f"{cfg.passthrough_numel:,}, or its category's quant.bits are 16/32), so QAT changes nothing; set "
            f"quant.passthrough_numel below {largest:,} (e.g. {max(largest // 2, 1):,}) or train a larger model")


def detach_qat(model: nn.Module) -> None:
    for _, module in _casted_linears(model):
        module.weight_transform = None


def qat_active(model: nn.Module) -> bool:
    return any(isinstance(module.weight_transform, FakeQuantizer) for _, module in _casted_linears(model))


def set_qat_temperature(model: nn.Module, alpha: float) -> None:
    """Set the soft-round sharpness of every attached FakeQuantizer."""
    for _, module in _casted_linears(model):
        if isinstance(module.weight_transform, FakeQuantizer):
            module.weight_transform.set_temperature(alpha)


def soft_round_alpha(progress: float, qat: QATConfig) -> float:
    """alpha at `progress` (0 at QAT switch-on, 1 at the end of training, clamped): geometric interpolation from
    temperature_start to temperature_end."""
    if qat.temperature_start <= 0 or qat.temperature_end <= 0:
        raise ValueError(f"quant.qat temperatures must be > 0, got {qat.temperature_start} and {qat.temperature_end}")
    p = min(max(progress, 0.0), 1.0)
    return qat.temperature_start * (qat.temperature_end / qat.temperature_start) ** p
