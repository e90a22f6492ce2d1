"""Reptile meta-learning of a chosen parameter subset, on training data only (optim.reptile).

Every `every` steps once the warm-down has progressed `start` of the way (start = 0: from the first step), the
chosen parameters theta take `inner_steps` plain SGD steps of size `inner_lr` on fresh training batches, reaching
theta'; then theta <- theta + outer_lr * (theta' - theta) (outer_lr = 1 keeps theta'). Every other parameter is
untouched, the main optimizers' state is untouched, and the parameters' .grad come back as they were. Under
torch.distributed the step theta' - theta is averaged over ranks, so every rank keeps the same weights.

`params` picks the subset as TTT does (golf/evaluate/ttt/params.py): "all", "attn", "mlp" or "norms" (the blocks'
control tensors). The research entries meta-learned the TTT parameters this way (-0.011 bpb with SmearGate models).

Compliance: the audit's warning applies. An entry that shaped weights toward the validation set by meta-learning was
judged non-compliant (docs/rules.md). This class only ever sees the batches of the callable it is given; golf passes it
training batches and never validation data (docs/rules.md: validation never reaches meta-learning).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable, ContextManager

import torch
from torch import Tensor, nn

from golf.collectives import all_reduce_
from golf.model.names import block_of, kind_of
from golf.optim.config import ReptileConfig, reptile_problems

def reptile_parameters(model: nn.Module, params: str) -> list[tuple[str, nn.Parameter]]:
    if params == "all":
        return list(model.named_parameters())
    return [(n, p) for n, p in model.named_parameters() if block_of(n) is not None and kind_of(n) == params]


class Reptile:
    """A trainer StepHook. `batches()` returns one training batch (input_ids, target_ids) per call (and when it has
    state_dict / load_state_dict, its position is checkpointed); `autocast()` gives the context the forward runs in
    (the trainer's bf16 autocast on a GPU)."""

    def __init__(self, cfg: ReptileConfig, batches: Callable[[], tuple[Tensor, Tensor]],
                 autocast: Callable[[], ContextManager] = contextlib.nullcontext):
        for key, value, allowed in reptile_problems(cfg):
            raise ValueError(f"{key} = {value!r} is not allowed; allowed: {allowed}")
        self.cfg = cfg
        self.batches = batches
        self.autocast = autocast
        self.runs = 0

    def state_dict(self) -> dict:
        batches_state = getattr(self.batches, "state_dict", None)
        return {"runs": self.runs, "batches": batches_state() if batches_state else None}

    def restore(self, model: nn.Module, state: dict) -> None:
        self.runs = state["runs"]
        if state["batches"] is not None:
            self.batches.load_state_dict(state["batches"])

    def due(self, step: int, warmdown_progress: float) -> bool:
        cfg = self.cfg
        return cfg.enabled and step > 0 and step % cfg.every == 0 and warmdown_progress >= cfg.start

    def update(self, model: nn.Module, step: int, warmdown_progress: float) -> None:
        if self.due(step, warmdown_progress):
            self.meta_step(model)

    def meta_step(self, model: nn.Module) -> float:
        """One Reptile outer step; returns the mean inner loss."""
        chosen = [p for _, p in reptile_parameters(model, self.cfg.params)]
        if not chosen:
            return float("nan")
        all_params = list(model.parameters())
        saved_grads = [p.grad for p in all_params]
        saved_flags = [p.requires_grad for p in all_params]
        start = [p.detach().clone() for p in chosen]
        keep = {id(p) for p in chosen}
        losses = []
        was_training = model.training
        try:
            model.train()
            for p in all_params:
                p.requires_grad_(id(p) in keep)
                p.grad = None
            for _ in range(self.cfg.inner_steps):
                x, y = self.batches()
                with self.autocast():
                    loss = model(x, y)
                grads = torch.autograd.grad(loss, chosen)
                with torch.no_grad():
                    for p, g in zip(chosen, grads):
                        p.add_(g, alpha=-self.cfg.inner_lr)
                losses.append(loss.detach())
            with torch.no_grad():
                for p, p0 in zip(chosen, start):
                    delta = p - p0
                    all_reduce_(delta, op="avg")
                    p.copy_(p0 + self.cfg.outer_lr * delta)
        finally:
            for p, g, flag in zip(all_params, saved_grads, saved_flags):
                p.grad = g
                p.requires_grad_(flag)
            model.train(was_training)
        self.runs += 1
        return float(torch.stack(losses).mean()) if losses else float("nan")
