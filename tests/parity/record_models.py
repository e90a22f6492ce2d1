"""The model classes of the 2026-04 records (T2, T3), taken out of their scripts as oracles: the top-level
definitions of the model only (script_parts.load_parts), so that neither T3's Triton imports nor T2's Python 3.12
f-strings stand in the way. FlashAttention's functions are the CPU stand-ins: reference_scripts.flash_attn_func for
the dense kernel, varlen_stand_in below for the varlen one (each document attended alone)."""

from __future__ import annotations

import types
import uuid
from pathlib import Path
from typing import Mapping

import torch
from torch import Tensor

from golf.data.tokenizer import BOS_ID
from reference_scripts import flash_attn_func
from script_parts import load_parts

MODEL_PARTS = ("Hyperparameters", "RMSNorm", "CastedLinear", "Rotary", "apply_rotary_emb", "CausalSelfAttention",
               "MLP", "Block", "GPT")


def varlen_stand_in(q: Tensor, k: Tensor, v: Tensor, cu_seqlens_q: Tensor, cu_seqlens_k: Tensor, max_seqlen_q: int,
                    max_seqlen_k: int, causal: bool = True, **_unused) -> Tensor:
    """FlashAttention's varlen interface on packed (total, heads, D) tensors: each [cu[i], cu[i+1]) segment attended
    alone through the dense stand-in."""
    out = torch.empty_like(q)
    bounds = cu_seqlens_q.tolist()
    for start, end in zip(bounds[:-1], bounds[1:]):
        if end > start:
            out[start:end] = flash_attn_func(q[None, start:end], k[None, start:end], v[None, start:end],
                                             causal=causal)[0]
    return out


def record_model(record: Path, env: Mapping[str, object]) -> types.SimpleNamespace:
    """The record's model classes and Hyperparameters, with `env` as the script's environment."""
    extra = dict(uuid=uuid, Path=Path, flash_attn_3_func=flash_attn_func, flash_attn_varlen_func=varlen_stand_in,
                 BOS_ID=BOS_ID)
    return load_parts(record, MODEL_PARTS, env=env, extra=extra)


def build(m: types.SimpleNamespace) -> torch.nn.Module:
    """GPT(h) as the script's main() builds it, in fp32 and off the fused kernels (T3's are Triton, CUDA only)."""
    model = m.GPT(m.Hyperparameters())
    for module in model.modules():
        if hasattr(module, "use_fused"):
            module.use_fused = False
        if hasattr(module, "fused_ce_enabled"):
            module.fused_ce_enabled = False
    return model


def unbank(name: str, t: Tensor, num_layers: int, out: dict[str, Tensor]) -> bool:
    """T1's and T3's banked weights under golf's names, into `out`: qo_bank[i] is layer i's Q and qo_bank[n + i] its
    output projection, kv_bank[i] its K and kv_bank[n + i] its V, the MLP banks by layer. False for any other name."""
    n = num_layers
    if name in ("qo_bank", "kv_bank"):
        first, second = ("c_q", "proj") if name == "qo_bank" else ("c_k", "c_v")
        for i in range(n):
            out[f"blocks.{i}.attn.{first}.weight"], out[f"blocks.{i}.attn.{second}.weight"] = t[i], t[n + i]
        return True
    if name in ("mlp_up_bank", "mlp_down_bank"):
        for i in range(n):
            out[f"blocks.{i}.mlp.{'fc' if name == 'mlp_up_bank' else 'proj'}.weight"] = t[i]
        return True
    return False
