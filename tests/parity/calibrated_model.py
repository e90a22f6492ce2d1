"""The golf model and Hessians the quantizer parity tests hand to both golf and a record: matrices above the records'
65,536-element passthrough, Hessians collected by golf's collector on random token batches."""

from __future__ import annotations

import torch

from golf.model.gpt import GPT, ModelConfig
from golf.quant.calibration import collect_hessians, hessian_targets
from golf.quant.config import QuantBits, QuantConfig


def calibrated_model(vocab: int) -> tuple[ModelConfig, dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """(model config, state dict, Hessians) of a 2-layer width-288 GPT with weights moved off their init."""
    torch.manual_seed(0)
    cfg = ModelConfig(name="parity", num_layers=2, model_dim=288, num_heads=4, num_kv_heads=2)
    model = GPT(cfg, vocab)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    batches = [torch.randint(0, vocab, (2, 64), generator=torch.Generator().manual_seed(i)) for i in range(3)]
    quant = QuantConfig(encoder="gptq", bits=QuantBits(8, 6, 6, 6))
    hessians = collect_hessians(model, batches, hessian_targets(model, quant))
    return cfg, {k: v.detach().clone() for k, v in model.state_dict().items()}, hessians
