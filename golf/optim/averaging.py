"""Weight averaging before export: the stronger entries export an EMA or a late SWA of the weights, not the last ones.

An averager is a trainer hook: `update` runs after every optimizer step, and at the end the job loads
`averaged_state_dict()` into the model before scoring and export. Averages are kept in fp32 on the model's device.
Under DDP every rank holds the same weights, so every rank averages on its own and no communication is needed.
EMA and SWA are alternatives: turning both on is a config error (config validation rejects it, build_averager too).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, Optional

import torch
from torch import Tensor

from golf.optim.config import EMAConfig, SWAConfig

if TYPE_CHECKING:
    from golf.optim.config import OptimConfig


class WeightAverager(ABC):
    """An average of a model's floating-point state (parameters and float buffers), in fp32.

    Bound to the model it is built on: that model's state_dict names the tensors, and anything not averaged (integer
    buffers) is taken from it as it is when `averaged_state_dict` is called.
    """

    kind: str

    def __init__(self, model: torch.nn.Module):
        state = model.state_dict()
        self._model = model
        self._keys = list(state)
        self._averaged_keys = [k for k, t in state.items() if t.is_floating_point()]
        self._average = [state[k].detach().float().clone() for k in self._averaged_keys]
        self.num_updates = 0

    @abstractmethod
    def update(self, model: torch.nn.Module, step: int, warmdown_progress: float) -> None:
        """Called after every optimizer step; warmdown_progress is 0 before the warm-down and 1 at its end."""

    def averaged_state_dict(self) -> dict[str, Tensor]:
        """The model's state_dict with the averages in place of the floating-point tensors (fp32 copies)."""
        return self._state_dict_with(dict(zip(self._averaged_keys, self._average)))

    def state_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "num_updates": self.num_updates,
                "average": dict(zip(self._averaged_keys, self._average))}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["kind"] != self.kind:
            raise ValueError(f"a {state['kind']} state cannot be loaded into a {self.kind} averager")
        if list(state["average"]) != self._averaged_keys:
            raise ValueError("the saved average does not cover the same tensors as this model")
        torch._foreach_copy_(self._average, [state["average"][k] for k in self._averaged_keys])
        self.num_updates = state["num_updates"]

    def restore(self, model: torch.nn.Module, state: dict[str, Any]) -> None:
        """A resumed training's hook state (the trainer's checkpoint protocol)."""
        self.load_state_dict(state)

    def _weights(self, model: torch.nn.Module) -> list[Tensor]:
        """The model's current averaged tensors, as fp32 (foreach ops need the averages' dtype)."""
        state = model.state_dict()
        return [state[k] if state[k].dtype == torch.float32 else state[k].float() for k in self._averaged_keys]

    def _state_dict_with(self, averaged: dict[str, Tensor]) -> dict[str, Tensor]:
        current = self._model.state_dict()
        return {k: averaged[k].clone() if k in averaged else current[k].detach().clone() for k in self._keys}


class EMA(WeightAverager):
    """shadow = decay * shadow + (1 - decay) * weights after every step, starting from the weights at construction.

    The start weights keep a share of decay**n after n steps: negligible over a full run (0.997**5000 ~ 3e-7), not over
    a few hundred steps, where a smaller decay suits.
    """

    kind = "ema"

    def __init__(self, model: torch.nn.Module, decay: float):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay must be in (0, 1), got {decay}")
        super().__init__(model)
        self.decay = decay

    def update(self, model: torch.nn.Module, step: int, warmdown_progress: float) -> None:
        torch._foreach_lerp_(self._average, self._weights(model), 1.0 - self.decay)
        self.num_updates += 1


class SWA(WeightAverager):
    """The uniform mean of snapshots taken at steps that are multiples of `every` once warmdown_progress >= start.

    Before the first snapshot the average is the model's current weights.
    """

    kind = "swa"

    def __init__(self, model: torch.nn.Module, start: float, every: int):
        if not 0.0 <= start <= 1.0:
            raise ValueError(f"SWA start must be a fraction of the warm-down in [0, 1], got {start}")
        if every < 1:
            raise ValueError(f"SWA every must be >= 1, got {every}")
        super().__init__(model)
        self.start = start
        self.every = every

    def update(self, model: torch.nn.Module, step: int, warmdown_progress: float) -> None:
        if warmdown_progress < self.start or step % self.every != 0:
            return
        self.num_updates += 1
        # running mean: avg += (w - avg) / n; the first snapshot (weight 1) replaces the construction weights
        torch._foreach_lerp_(self._average, self._weights(model), 1.0 / self.num_updates)

    def averaged_state_dict(self) -> dict[str, Tensor]:
        if self.num_updates == 0:
            return self._state_dict_with(dict(zip(self._averaged_keys, self._weights(self._model))))
        return super().averaged_state_dict()


def build_averager(cfg: OptimConfig, model: torch.nn.Module) -> Optional[WeightAverager]:
    """The averager the config asks for, or None when neither EMA nor SWA is on."""
    ema_on, swa_on = cfg.ema.decay > 0, cfg.swa.enabled
    if ema_on and swa_on:
        raise ValueError("optim.ema and optim.swa are alternatives: turn one of them off")
    if ema_on:
        return EMA(model, cfg.ema.decay)
    if swa_on:
        return SWA(model, cfg.swa.start, cfg.swa.every)
    return None
