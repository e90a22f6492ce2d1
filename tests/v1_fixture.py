"""The state dict and settings of tests/data/artifact_v1.golf, a version-1 artifact written by golf's version-1
writer (golf/quant/artifact.py before the version-2 format): every kind of entry version 1 stores, from weights
made by arithmetic (no random generator), so any golf can rebuild them and compare."""

from __future__ import annotations

import torch

from golf.quant.config import QuantBits, QuantConfig

V1_CONFIG = QuantConfig(name="v1-fixture", bits=QuantBits(embed=8, attn=6, mlp=16, other=8), passthrough_numel=100,
                        compressor="zlib", level=9)


def wave(*shape: int, scale: float, phase: float = 0.0) -> torch.Tensor:
    n = 1
    for d in shape:
        n *= d
    return (torch.sin(torch.arange(n, dtype=torch.float64) * 0.37 + phase) * scale).float().reshape(shape)


def v1_state() -> dict[str, torch.Tensor]:
    return {
        "tok_emb.weight": wave(48, 20, scale=1.7),  # int8 per row
        "blocks.0.attn.c_q.weight": wave(24, 20, scale=0.4, phase=1.0),  # int6 per row
        "blocks.0.mlp.fc.weight": wave(30, 20, scale=0.2, phase=2.0),  # fp16 (16 bits)
        "blocks.0.attn_scale": wave(20, scale=1.0, phase=3.0),  # control: fp32
        "blocks.0.vector": wave(300, scale=2.0, phase=4.0),  # int8, one scale for the tensor
        "small": wave(7, scale=0.5, phase=5.0),  # passthrough: fp16
        "counter": torch.tensor([3, -7, 1 << 20]),  # non-float: fp32
    }
