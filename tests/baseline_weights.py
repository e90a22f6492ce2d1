"""Weights for size measurements: baseline9l's parameters with trained-looking matrices, and quant presets read
from conf/quant/ as the config would merge them."""

from __future__ import annotations

import torch
from omegaconf import OmegaConf

from golf import REPO_ROOT
from golf.model.gpt import GPT, ModelConfig
from golf.quant.config import QuantConfig

VOCAB = 1024  # the challenge's sp1024


def preset(name: str) -> QuantConfig:
    return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(QuantConfig),
                                               OmegaConf.load(REPO_ROOT / "conf" / "quant" / f"{name}.yaml")))


def baseline9l_state(seed: int = 0) -> tuple[ModelConfig, dict[str, torch.Tensor]]:
    """baseline9l's parameters with trained-looking matrices: every matrix the export quantizes gets rows of
    N(0, s^2), s log-uniform in [0.3/e, 0.3 e], which puts the int8 + zlib file near the baseline's 15.8 MB."""
    cfg = ModelConfig(**{k: v for k, v in OmegaConf.to_container(
        OmegaConf.load(REPO_ROOT / "conf" / "model" / "baseline9l.yaml")).items()})
    torch.manual_seed(seed)
    state = {k: v.detach().clone() for k, v in GPT(cfg, VOCAB).state_dict().items()}
    g = torch.Generator().manual_seed(seed + 1)
    for t in state.values():
        if t.dim() == 2 and t.numel() > 65536:
            row_std = torch.empty(t.shape[0], 1).uniform_(-1.0, 1.0, generator=g).exp_() * 0.3
            t.copy_(torch.randn(t.shape, generator=g) * row_std)
    return cfg, state
