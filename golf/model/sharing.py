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
  1 + loop_repeats times in a row (the records' LOOP_START=3, LOOP_END=5 inclusive, NUM_LOOPS=2 are loop_start=3,
  loop_end=6, loop_repeats=2: [0,1,2] + [3,4,5] x 3 + [6..10], 17 virtual layers).
- The U-Net over a looped plan (model.loop_skips, unet_plan):
  - first_pass (golf's first loop): skips connect layers as without looping: a layer pushes or pops a skip only on
    its first pass; num_layers // 2 skips whatever the loop.
  - virtual (the records, T2/T3): the encoder is the first half of the plan's positions, the decoder the rest; every
    encoder position pushes, decoder position j pops into skip weight j; min(encoder, decoder) skip weights over the
    whole plan (8 for T2's 17 virtual layers). With the loop off, the plan is the plain layers and the first
    num_layers // 2 skip weights are used, as in the records.
- Switching on during training: model.loop_from > 0 trains without the loop until that fraction of training;
  model.loop_phases = [f1, .., fR] (R = loop_repeats) adds one repeat at each fraction (progressive). GPT starts with
  the loop on (what evaluation and the exported model use); LoopSwitch (a trainer step hook) turns it off at
  construction and on again on schedule. The fraction is the trainer's: by steps, or by the wall clock when
  train.max_wallclock_s ends training sooner (the records' ENABLE_LOOPING_AT). model.loop_priming_steps = P runs P
  priming steps with the whole loop on after the trainer's own priming steps, then undoes them like those (the
  records prime the looped graph this way so its compilation is not timed).
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


def skip_count(num_layers: int, loop_start: int, loop_end: int, loop_repeats: int, loop_skips: str) -> int:
    """How many U-Net skip weights the model has (model.loop_skips)."""
    length = num_layers
    if loop_skips == "virtual":
        length = len(layer_order(num_layers, loop_start, loop_end, loop_repeats))
    return min(length // 2, length - length // 2)


def unet_plan(order: list[int], num_layers: int, loop_skips: str) -> list[tuple[int, bool, int, bool]]:
    """(layer, pushes a skip after it, index of the skip weight it pops before it or -1, in the decoder) for each
    position of `order` (model.loop_skips: first_pass or virtual)."""
    plan = []
    if loop_skips == "virtual":
        n_enc = len(order) // 2
        for pos, layer in enumerate(order):
            plan.append((layer, pos < n_enc, pos - n_enc if pos >= n_enc else -1, pos >= n_enc))
        return plan
    n_enc, seen = num_layers // 2, set()
    for layer in order:
        first = layer not in seen
        seen.add(layer)
        plan.append((layer, first and layer < n_enc, layer - n_enc if first and layer >= n_enc else -1,
                     layer >= n_enc))
    return plan


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


def loop_schedule(loop_repeats: int, loop_from: float, loop_phases: list[float]) -> list[tuple[float, int]]:
    """(fraction of training, repeats on from then) in order: [(loop_from, R)], or [(f_k, k)] for loop_phases."""
    if loop_phases:
        return [(float(f), k + 1) for k, f in enumerate(loop_phases)]
    return [(float(loop_from), loop_repeats)]


class LoopSwitch:
    """A trainer StepHook for a loop that switches on during training (model.loop_from > 0 or model.loop_phases):
    no repeats from construction; from each scheduled fraction of training on, that many repeats. `progress` maps
    steps done to the fraction of training done (by steps or wall clock). With priming_steps > 0 the trainer's
    priming calls prime(): that many steps with every repeat on, which the trainer then undoes."""

    def __init__(self, model: nn.Module, schedule: list[tuple[float, int]], progress: Callable[[int], float],
                 log: Callable[[str], None] = lambda message: None, priming_steps: int = 0):
        self.schedule = schedule
        self.progress = progress
        self.log = log
        self.priming_steps = priming_steps
        self.model = model
        self.repeats = self.due(0.0)
        model.set_loop_repeats(self.repeats)

    def due(self, fraction: float) -> int:
        return max((repeats for start, repeats in self.schedule if fraction >= start), default=0)

    @property
    def active(self) -> bool:
        return self.repeats > 0

    def update(self, model: nn.Module, step: int, warmdown_progress: float) -> None:
        repeats = self.due(self.progress(step))
        if repeats != self.repeats:
            self.log(f"layer loop: {repeats} repeat(s) on from step {step}")
        self.repeats = repeats
        model.set_loop_repeats(self.repeats)

    def prime(self, run_step: Callable[[int], object]) -> None:
        """The looped forward's own priming steps (the trainer restores weights, optimizers and data after)."""
        self.model.set_loop_active(True)
        try:
            for i in range(self.priming_steps):
                run_step(i)
        finally:
            self.model.set_loop_repeats(self.repeats)
        self.log(f"layer loop: {self.priming_steps} priming steps with the loop on")

    def state_dict(self) -> dict:
        return {"repeats": self.repeats}

    def restore(self, model: nn.Module, state: dict) -> None:
        if "repeats" in state:
            self.repeats = int(state["repeats"])
        else:  # a checkpoint written before progressive phases: on or off
            self.repeats = self.schedule[-1][1] if state["active"] else 0
        model.set_loop_repeats(self.repeats)
