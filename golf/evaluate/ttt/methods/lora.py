"""Per-document LoRA TTT: low-rank weight deltas on the blocks' linear layers, trained while the base stays frozen.

Each targeted CastedLinear (attn: c_q, c_k, c_v, proj; mlp: fc, proj; blocks before ttt.freeze get none) computes
with W + B @ A, through the layer's `weight_transform` hook (composed with any transform already there, such as QAT's
fake quantizer). A (rank x in) starts small and random, B (out x rank) at zero, so the delta is zero and the model
starts exactly as loaded. reset() puts every adapter back to that start (the engine calls it at each new document,
together with a fresh optimizer); remove() restores the hooks that were there before, leaving the model with its base
weights and nothing attached. The factors are plain tensors, not registered modules: the model's state_dict never
sees them. A comes from a fixed seed, so every rank builds the same adapters.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Optional, Sequence

import torch
from torch import Tensor, nn

from golf.evaluate.ttt.config import Problem, TTTConfig
from golf.evaluate.ttt.method import Method, register
from golf.evaluate.ttt.params import Adaptable, layer_lr_multipliers
from golf.evaluate.ttt.plan import Piece
from golf.model.gpt import CastedLinear
from golf.model.names import block_of, kind_of, num_blocks
from golf.problems import Problems

LORA_TARGETS = ("attn", "mlp")

LORA_SEED = 0


class LoRADelta:
    """A CastedLinear.weight_transform: base(W) + B @ A."""

    def __init__(self, layer: CastedLinear, rank: int, generator: torch.Generator):
        out_features, in_features = layer.weight.shape
        bound = 1.0 / math.sqrt(in_features)
        init = (torch.rand(rank, in_features, generator=generator) * 2 - 1) * bound
        self.base: Optional[Callable[[Tensor], Tensor]] = layer.weight_transform
        self.a_init = init.to(layer.weight.device)
        self.a = self.a_init.clone().requires_grad_(True)
        self.b = torch.zeros(out_features, rank, device=layer.weight.device, requires_grad=True)

    def __call__(self, weight: Tensor) -> Tensor:
        base = weight if self.base is None else self.base(weight)
        return base + self.b @ self.a

    @torch.no_grad()
    def reset(self) -> None:
        self.a.copy_(self.a_init)
        self.b.zero_()


class LoRAAdapters:
    def __init__(self, model: nn.Module, targets: Sequence[str], rank: int, freeze: int = 0,
                 layer_lr_mult: float = 1.0):
        generator = torch.Generator().manual_seed(LORA_SEED)
        mults = layer_lr_multipliers(num_blocks(model), layer_lr_mult)
        self.layers: list[tuple[str, CastedLinear, LoRADelta]] = []
        self.adaptables: list[Adaptable] = []
        for name, module in model.named_modules():
            block = block_of(name + ".weight")
            if not isinstance(module, CastedLinear) or block is None or block < freeze or kind_of(name) not in targets:
                continue
            delta = LoRADelta(module, rank, generator)
            module.weight_transform = delta
            self.layers.append((name, module, delta))
            self.adaptables += [Adaptable(f"{name}.lora_a", delta.a, block, mults[block]),
                                Adaptable(f"{name}.lora_b", delta.b, block, mults[block])]

    def reset(self) -> None:
        for _, _, delta in self.layers:
            delta.reset()

    def remove(self) -> None:
        for _, module, delta in self.layers:
            module.weight_transform = delta.base
        self.layers.clear()


def attached(model: nn.Module) -> bool:
    return any(isinstance(m, CastedLinear) and isinstance(m.weight_transform, LoRADelta) for m in model.modules())


@register
class LoRA(Method):
    """Adapters on the blocks' linear layers (the base weights never train), reset with the optimizer at every
    document. Not compilable: the adapters patch the modules' weight transforms."""

    name = "lora"
    compilable = False
    follows_documents = True

    @staticmethod
    def problems(cfg: TTTConfig) -> list[Problem]:
        p = Problems("ttt.")
        p.at_least("lora_rank", cfg.lora_rank, 1)
        for target in cfg.lora_targets:
            p.choice("lora_targets", target, LORA_TARGETS)
        return p

    def __init__(self, model: nn.Module, cfg: TTTConfig):
        self.model, self.cfg = model, cfg
        self.adapters = LoRAAdapters(model, cfg.lora_targets, cfg.lora_rank, cfg.freeze, cfg.layer_lr_mult)
        self.adaptables = self.adapters.adaptables

    def warnings(self) -> list[str]:
        return []  # ttt.freeze only decides which blocks get adapters; nothing outside the blocks ever adapts

    def reset(self) -> None:
        self.adapters.reset()

    def record(self, piece: Piece, step_means: dict[Any, float]) -> dict[str, Any]:
        return {"document": piece.document}

    def close(self) -> None:
        self.adapters.remove()
