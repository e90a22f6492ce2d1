"""When quantization-aware training runs: switched on late in the warm-down, as the research entries did."""

from __future__ import annotations

from typing import Callable, Optional

import torch

from golf.quant.config import QuantConfig
from golf.quant.qat import attach_qat, detach_qat, set_qat_temperature, soft_round_alpha


class QATSwitch:
    """A trainer hook: attaches fake quantization once quant.qat.start of the warm-down has passed, then (soft-round
    variant) anneals the rounding sharpness from temperature_start to temperature_end by the end of training."""

    def __init__(self, cfg: QuantConfig, log: Callable[[str], None] = print):
        self.cfg = cfg
        self.log = log
        self.started_at_step: Optional[int] = None
        self.alpha: Optional[float] = None  # the soft-round sharpness last set

    def update(self, model: torch.nn.Module, step: int, warmdown_progress: float) -> None:
        qat = self.cfg.qat
        if not qat.enabled:
            return
        if self.started_at_step is None and warmdown_progress >= qat.start:
            names = attach_qat(model, self.cfg)
            self.started_at_step = step
            self.log(f"QAT on from step {step}: {len(names)} matrices fake-quantized"
                     f"{' (soft round)' if qat.soft_round else ''}")
        if self.started_at_step is not None and qat.soft_round:
            progress = (warmdown_progress - qat.start) / max(1.0 - qat.start, 1e-9)
            alpha = soft_round_alpha(min(max(progress, 0.0), 1.0), qat)
            set_qat_temperature(model, alpha)
            self.alpha = alpha

    def state_dict(self) -> dict:
        return {"started_at_step": self.started_at_step, "alpha": self.alpha}

    def restore(self, model: torch.nn.Module, state: dict) -> None:
        """A resumed training: fake quantization attached again where it was, at the same sharpness."""
        self.started_at_step, self.alpha = state["started_at_step"], state["alpha"]
        if self.started_at_step is not None:
            attach_qat(model, self.cfg)
            if self.alpha is not None:
                set_qat_temperature(model, self.alpha)

    def detach(self, model: torch.nn.Module) -> None:
        detach_qat(model)
