"""The baseline's optimizer split: Muon on block matrices, Adam on the embedding, head and scalars."""

from typing import Optional

import torch

from golf.model.gpt import GPT
from golf.model.names import CONTROL_PARAM_PATTERNS
from golf.optim.config import OptimConfig
from golf.optim.muon import Muon


TABLES = ("bigram.table.weight", "value_embed.table.weight")  # with the embedding, at its lr
NS_DTYPES = {"bfloat16": torch.bfloat16, "float32": torch.float32}


def build_optimizers(model: GPT, cfg: OptimConfig, device_type: str = "cpu") -> list[torch.optim.Optimizer]:
    """The baseline's split, one optimizer per role: Adam on the embedding (and the record stack's token tables,
    bigram.table and value_embed.table, at the embedding's lr), Muon on block matrices, Adam on the scalars, vectors,
    control tensors (skip_weights included) and the small matrices outside the blocks (the tables' projections, the
    shared blocks' LoRA factors), and Adam on the head when it is untied.

    Per group: the embedding and scalar Adams become AdamW with optim.embed_wd / optim.scalar_wd > 0 (the head never
    decays, as in the records), and each Adam may have its own beta2 (optim.embed_beta2, scalar_beta2, head_beta2).
    Every parameter lands in exactly one group; each group carries "base_lr" (for set_lr_scale) and a "name".
    On CUDA the Adams are fused (one kernel for the whole step) and Muon's Newton-Schulz is compiled.
    """
    if cfg.muon_ns_dtype not in NS_DTYPES:
        raise ValueError(f"optim.muon_ns_dtype must be one of {sorted(NS_DTYPES)}, got {cfg.muon_ns_dtype!r}")
    embed, head, matrices, scalars = [], [], [], []
    for name, p in model.named_parameters():
        if name == "tok_emb.weight" or name in TABLES:  # the token embedding and the record stack's token tables
            embed.append(p)
        elif name == "lm_head.weight":
            head.append(p)
        elif name.startswith("blocks.") and p.ndim == 2 and not any(pat in name for pat in CONTROL_PARAM_PATTERNS):
            matrices.append(p)
        else:  # vectors, control tensors, skip_weights, and the small matrices outside the blocks (the tables'
            scalars.append(p)  # projections, the shared blocks' LoRA factors): Muon's orthogonalization is for blocks

    def adam(params: list[torch.Tensor], lr: float, name: str, weight_decay: float = 0.0,
             beta2: Optional[float] = None) -> torch.optim.Optimizer:
        # decoupled decay makes it AdamW, as the records run their embedding and scalars (p *= 1 - lr*wd with the
        # group's current lr); without decay plain Adam, so the defaults stay the baseline's exactly
        adam_class = torch.optim.AdamW if weight_decay > 0 else torch.optim.Adam
        return adam_class(
            [{"params": params, "lr": lr, "base_lr": lr, "name": name}],
            betas=(cfg.beta1, cfg.beta2 if beta2 is None else beta2), eps=cfg.adam_eps, weight_decay=weight_decay,
            fused=device_type == "cuda",
        )

    embed_lr = cfg.tied_embed_lr if model.cfg.tie_embeddings else cfg.embed_lr
    optimizers: list[torch.optim.Optimizer] = [adam(embed, embed_lr, "embed", cfg.embed_wd, cfg.embed_beta2)]
    if matrices:
        optimizers.append(Muon(
            [{"params": matrices, "lr": cfg.matrix_lr, "base_lr": cfg.matrix_lr, "name": "matrix"}],
            lr=cfg.matrix_lr, momentum=cfg.muon_momentum, backend_steps=cfg.muon_backend_steps,
            ns_dtype=NS_DTYPES[cfg.muon_ns_dtype], weight_decay=cfg.muon_wd, compile_ns=device_type == "cuda",
            row_normalize=cfg.muon_row_normalize, ns_coefficients=cfg.muon_ns_coefficients,
            arithmetic=cfg.muon_arithmetic,
        ))
    if scalars:
        optimizers.append(adam(scalars, cfg.scalar_lr, "scalar", cfg.scalar_wd, cfg.scalar_beta2))
    if head:
        optimizers.append(adam(head, cfg.head_lr, "head", 0.0, cfg.head_beta2))
    return optimizers


def set_lr_scale(optimizers: list[torch.optim.Optimizer], scale: float) -> None:
    """lr = base_lr * scale in every group (the schedule's multiplier)."""
    for opt in optimizers:
        for group in opt.param_groups:
            group["lr"] = group["base_lr"] * scale


def set_muon_momentum(optimizers: list[torch.optim.Optimizer], momentum: float) -> None:
    for opt in optimizers:
        if isinstance(opt, Muon):
            for group in opt.param_groups:
                group["momentum"] = momentum
