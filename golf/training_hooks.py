"""The trainer's step hooks a config asks for: QAT switch-on, weight averaging, the layer loop's switch-on, Reptile.

Order matters and is fixed: QAT first (it changes the forward the others see), then the averager (it averages the
step's weights), then the loop switch, then Reptile (its meta-step moves weights the next optimizer step starts from).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, ContextManager, Optional, Sequence

import torch

from golf.data.loader import DistributedTokenLoader
from golf.optim.reptile import Reptile
from golf.model.sharing import LoopSwitch, loop_schedule
from golf.optim.averaging import WeightAverager, build_averager
from golf.quant.qat import qat_touches_nothing
from golf.quant.qat_switch import QATSwitch


class TrainingBatches:
    """Training batches of this rank, on the device, from a loader of its own (Reptile's inner steps): it starts at
    the beginning of the training stream, so it reads tokens the main loop also trains on, never validation tokens."""

    def __init__(self, train_files: Sequence[Any], rank: int, world: int, batch_tokens: int, seq_len: int,
                 grad_accum_steps: int, device: torch.device):
        self.loader = DistributedTokenLoader(train_files, rank, world)
        self.shape = (batch_tokens, seq_len, grad_accum_steps)
        self.device = device

    def __call__(self) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = self.loader.next_batch(*self.shape)
        return x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)

    def state_dict(self) -> dict[str, int]:
        return self.loader.state_dict()

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.loader.load_state_dict(state)


@dataclass
class TrainingHooks:
    qat: QATSwitch
    averager: Optional[WeightAverager]
    loop: Optional[LoopSwitch]
    reptile: Optional[Reptile]

    def all(self) -> tuple:
        return tuple(h for h in (self.qat, self.averager, self.loop, self.reptile) if h is not None)


def build_hooks(cfg: Any, model: torch.nn.Module, fraction_done: Callable[[int], float],
                reptile_batches: Callable[[], TrainingBatches], autocast: Callable[[], ContextManager],
                log: Callable[[str], None]) -> TrainingHooks:
    """`cfg` is the GolfConfig; `fraction_done(step)` how much of training `step` steps are (the trainer's clock)."""
    loop = None
    m = cfg.model
    if m.loop_repeats > 0 and (m.loop_from > 0 or m.loop_phases):
        schedule = loop_schedule(m.loop_repeats, m.loop_from, list(m.loop_phases))
        loop = LoopSwitch(model, schedule, progress=fraction_done, log=log, priming_steps=m.loop_priming_steps)
        log("layer loop off until " + ", then ".join(f"{r} repeat(s) at {f:.0%}" for f, r in schedule)
            + " of training" + (f"; {m.loop_priming_steps} priming steps with it on" if m.loop_priming_steps else ""))
    reptile = None
    if cfg.optim.reptile.enabled:
        reptile = Reptile(cfg.optim.reptile, reptile_batches(), autocast)
        log(f"reptile: {cfg.optim.reptile.inner_steps} inner steps on {cfg.optim.reptile.params} parameters every "
            f"{cfg.optim.reptile.every} steps, on training batches")
    nothing = qat_touches_nothing(model, cfg.quant)
    if nothing:  # said before training, not when the warm-down switches QAT on
        log(f"WARNING: {nothing}")
    return TrainingHooks(QATSwitch(cfg.quant, log), build_averager(cfg.optim, model), loop, reptile)
