"""Depth options: the layer plan (which block each virtual layer runs, looping a range of layers) and shared blocks
with per-virtual-layer low-rank deviations (SharedBlockDeviation: part of the trained model, configured by
model.lora_rank; not to be confused with test-time training's LoRA adapters, ttt.method=lora, which exist only
during evaluation).

- Shared blocks (model.shared_blocks = K > 0): the model has K blocks and model.num_layers virtual layers; virtual
  layer v runs block v % K (the whole stack of K blocks repeated R = num_layers / K times). With model.lora_rank = r > 0
  each virtual layer v adds to every matrix W of its block a deviation gamma * B @ A (A: r x in, B: out x r, B starts
  at zero) with one learned shrinkage gamma per matrix (layer_lora.<v>.lora_gamma); GPT.lora_gammas() returns them
  for logging. The deviation goes through CastedLinear.weight_transform, composed with whatever is there (QAT's fake
  quantization, LoRA TTT), and only for the duration of that virtual layer's call.
- Looping (model.loop_start, model.loop_end, model.loop_repeats): virtual layers [loop_start, loop_end) run
  1 + loop_repeats times in a row. U-Net skips connect layers as without looping: a layer pushes or pops a skip only
  on its first pass. model.loop_from > 0 trains without the loop until that fraction of training: GPT starts with the
  loop on (what evaluation and the exported model use); LoopSwitch turns it off at construction and on again at
  loop_from.
"""

from __future__ import annotations

import contextlib
from typing import Callable, Iterator, Optional

import torch
from torch import Tensor, nn


def layer_order(num_layers: int, loop_start: int, loop_end: int, loop_repeats: int, active: bool = True) -> list[int]:
    """The virtual layers in execution order, repeats included."""
    order = list(range(num_layers))
    if not active or loop_repeats <= 0 or loop_end <= loop_start:
        return order
    loop = list(range(loop_start, loop_end))
    return order[:loop_start] + loop * (1 + loop_repeats) + order[loop_end:]


class SharedBlockDeviation(nn.Module):
    """One virtual layer's deviations: for each matrix of its block, B @ A (rank r) times a learned gamma."""

    def __init__(self, shapes: dict[str, tuple[int, int]], rank: int):
        super().__init__()
        self.keys = list(shapes)  # module paths inside the block with '.' -> '_', e.g. attn_c_q
        self.lora_a = nn.ParameterDict({k: nn.Parameter(torch.empty(rank, shapes[k][1])) for k in self.keys})
        self.lora_b = nn.ParameterDict({k: nn.Parameter(torch.zeros(shapes[k][0], rank)) for k in self.keys})
        self.lora_gamma = nn.Parameter(torch.ones(len(self.keys)))

    def post_init(self) -> None:
        for k in self.keys:
            nn.init.normal_(self.lora_a[k], std=self.lora_a[k].size(1) ** -0.5)
            nn.init.zeros_(self.lora_b[k])
        nn.init.ones_(self.lora_gamma)

    def delta(self, i: int) -> Tensor:
        k = self.keys[i]
        return self.lora_gamma[i] * (self.lora_b[k] @ self.lora_a[k])


def block_linears(block: nn.Module) -> list[tuple[str, nn.Module]]:
    from golf.model.gpt import CastedLinear
    return [(name.replace(".", "_"), m) for name, m in block.named_modules() if isinstance(m, CastedLinear)]


def deviation_shapes(block: nn.Module) -> dict[str, tuple[int, int]]:
    return {k: tuple(m.weight.shape) for k, m in block_linears(block)}


@contextlib.contextmanager
def deviations_applied(block: nn.Module, deviation: Optional[SharedBlockDeviation]) -> Iterator[None]:
    """For the duration: every matrix W of `block` acts as base(W) + deviation."""
    if deviation is None:
        yield
        return
    saved = []
    try:
        for i, (_, linear) in enumerate(block_linears(block)):
            base = linear.weight_transform
            saved.append((linear, base))

            def transform(w: Tensor, base=base, i=i) -> Tensor:
                return (w if base is None else base(w)) + deviation.delta(i).to(w.dtype)

            linear.weight_transform = transform
        yield
    finally:
        for linear, base in saved:
            linear.weight_transform = base


class LoopSwitch:
    """A trainer StepHook for model.loop_from > 0: the loop is off from construction until progress(step) reaches
    loop_from, then on. `progress` maps steps done to the fraction of training done (by steps or wall clock)."""

    def __init__(self, model: nn.Module, loop_from: float, progress: Callable[[int], float],
                 log: Callable[[str], None] = lambda message: None):
        self.loop_from = loop_from
        self.progress = progress
        self.log = log
        self.active = loop_from <= 0
        model.set_loop_active(self.active)

    def update(self, model: nn.Module, step: int, warmdown_progress: float) -> None:
        active = self.progress(step) >= self.loop_from
        if active and not self.active:
            self.log(f"layer loop on from step {step}")
        self.active = active
        model.set_loop_active(self.active)

    def state_dict(self) -> dict:
        return {"active": self.active}

    def restore(self, model: nn.Module, state: dict) -> None:
        self.active = state["active"]
        model.set_loop_active(self.active)
