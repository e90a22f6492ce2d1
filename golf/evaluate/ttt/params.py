"""Which parameters test-time training adapts, with what learning-rate multiplier, and the optimizer over them.

Block tensors come in three kinds: "attn" (the attention matrices), "mlp" (the MLP matrices) and "norms" (the blocks'
small per-channel control tensors: attn_scale, mlp_scale, resid_mix, q_gain). ttt.params picks one kind, or "all":
every block tensor plus, outside the blocks, the skip weights and (unless ttt.freeze_embeddings) the embedding (with
the tied head), an untied head and any bigram table. ttt.freeze keeps the first N blocks fixed. Fixed tensors get
requires_grad=False for the run, so they never take a gradient and no optimizer holds them: they stay bit-identical.

ttt.layer_lr_mult is the last block's multiplier; block b gets 1 + (mult - 1) * b / (n_blocks - 1), a linear ramp from
1.0 at block 0 (the research found later layers want to move faster). A single block and parameters outside the
blocks get 1.0.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Iterator, Optional, Sequence

import torch
from torch import nn

from golf.evaluate.ttt.config import TTTConfig
from golf.model.names import block_of, is_embedding, kind_of, num_blocks


@dataclass
class Adaptable:
    name: str
    tensor: torch.Tensor  # a model parameter, or a LoRA factor
    block: Optional[int]  # None outside the blocks
    lr_mult: float


def layer_lr_multipliers(n_blocks: int, last_mult: float) -> list[float]:
    if n_blocks <= 1:
        return [1.0] * n_blocks
    return [1.0 + (last_mult - 1.0) * b / (n_blocks - 1) for b in range(n_blocks)]


def adapts(name: str, cfg: TTTConfig) -> bool:
    """Whether ttt.params / ttt.freeze / ttt.freeze_embeddings let this model parameter adapt."""
    block = block_of(name)
    if block is None:
        return cfg.params == "all" and not (cfg.freeze_embeddings and is_embedding(name))
    if block < cfg.freeze:
        return False
    return cfg.params == "all" or kind_of(name) == cfg.params


def select_adaptable(model: nn.Module, cfg: TTTConfig) -> list[Adaptable]:
    mults = layer_lr_multipliers(num_blocks(model), cfg.layer_lr_mult)
    chosen = []
    for name, param in model.named_parameters():
        if adapts(name, cfg):
            block = block_of(name)
            chosen.append(Adaptable(name, param, block, 1.0 if block is None else mults[block]))
    return chosen


@contextlib.contextmanager
def only_these_train(model: nn.Module, tensors: Sequence[torch.Tensor]) -> Iterator[None]:
    """requires_grad only on `tensors` among the model's parameters for the duration; the flags come back after."""
    keep = {id(t) for t in tensors}
    saved = [(p, p.requires_grad) for p in model.parameters()]
    try:
        for p, _ in saved:
            p.requires_grad_(id(p) in keep)
        yield
    finally:
        for p, flag in saved:
            p.requires_grad_(flag)


def build_optimizer(adaptables: Sequence[Adaptable], cfg: TTTConfig, beta2: float = 0.999,
                    eps: float = 1e-8) -> Optional[torch.optim.Optimizer]:
    """SGD(momentum) or AdamW(betas=(momentum, beta2), eps), one param group per lr multiplier (each group remembers
    its `lr_mult`). It holds no learning rate yet: set_lr gives every group lr * lr_mult before each step (the
    engine: the scheduled lr; per-document TTT: ttt.lr, with ttt.lora_beta2 and eps 1e-10 as the records).
    None when nothing adapts."""
    groups: dict[float, list[torch.Tensor]] = {}
    for a in adaptables:
        groups.setdefault(a.lr_mult, []).append(a.tensor)
    if not groups:
        return None
    param_groups = [{"params": tensors, "lr_mult": mult} for mult, tensors in groups.items()]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(param_groups, lr=0.0, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(param_groups, lr=0.0, betas=(cfg.momentum, beta2), eps=eps,
                                 weight_decay=cfg.weight_decay)
    raise ValueError(f"ttt.optimizer must be sgd or adamw, got {cfg.optimizer!r}")


def set_lr(optimizer: Optional[torch.optim.Optimizer], lr: float) -> None:
    """Every group's lr := lr * its multiplier (before each step, with the schedule's lr)."""
    if optimizer is not None:
        for group in optimizer.param_groups:
            group["lr"] = lr * group["lr_mult"]


def freeze_warnings(model: nn.Module, cfg: TTTConfig, adapted: int) -> list[str]:
    """What ttt.freeze leaves to adapt when it freezes every block (the tiny model has 4: ttt.freeze=4 is all), given
    the number of tensors that adapt."""
    blocks = num_blocks(model)
    if blocks == 0 or cfg.freeze < blocks:
        return []
    if not adapted:
        return [f"ttt.freeze={cfg.freeze} freezes every one of the model's {blocks} blocks and nothing outside them "
                f"adapts (ttt.params={cfg.params}, ttt.freeze_embeddings={cfg.freeze_embeddings}): TTT scores "
                "exactly as the evaluation without it"]
    return [f"ttt.freeze={cfg.freeze} freezes every one of the model's {blocks} blocks: only the "
            f"{adapted} tensors outside them adapt (embedding, head, skip weights)"]
