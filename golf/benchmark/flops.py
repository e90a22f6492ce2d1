"""Model FLOPs per token (a formula, stated below) and the machine's peak FLOP/s (measured with a large matmul).

    model_flops_per_token = 6 * N + 12 * L * T * d_attn

- N: the parameters that multiply an activation in a matmul, once per use: every linear weight of every virtual
  layer the forward runs (a looped layer counts once per pass; a shared block once per layer that runs it), the
  output head (with tied embeddings the embedding matrix counts once, as the head: a lookup costs no FLOPs), and the
  record stack's projections (bigram, value embedding). Scalars, norms, softcap, RoPE and the loss are elementwise
  and left out (well under 1%); so are the shared blocks' LoRA deviations.
  6 = 2 FLOPs a multiply-add x 3 (the forward matmul, and in the backward one for the input's gradient and one for
  the weight's): the forward alone is 2 * N.
- 12 * L * T * d_attn: attention's two matmuls (Q K^T and A V), 2 * T * d_attn FLOPs each per token and layer in the
  forward, times 3 for training; L virtual layers, T = train.seq_len, d_attn = num_heads * head_dim = model_dim.
  This is PaLM's convention (Chowdhery et al. 2022, appendix B, as nanoGPT uses it): the full T x T score matrix,
  although causal attention (flash) computes about half of it. So MFU is comparable with published figures; the
  attention term is reported on its own (attention_flops_per_token) for anyone who wants the causal count.

The FLOP counter of torch (torch.utils.flop_counter) counts exactly 6 * N for a training step on CPU, where it sees
the matmuls but not the fused attention; tests/test_bench.py checks the formula against it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from torch import nn

from golf.model.gpt import GPT, CastedLinear


@dataclass(frozen=True)
class ModelFlops:
    matmul_params: int  # N
    attention_flops_per_token: int  # 12 * L * T * d_attn
    seq_len: int

    @property
    def per_token(self) -> int:  # training: forward + backward
        return 6 * self.matmul_params + self.attention_flops_per_token

    @property
    def forward_per_token(self) -> int:  # evaluation: a third of the training count
        return 2 * self.matmul_params + self.attention_flops_per_token // 3


def _linear_params(module: nn.Module) -> int:
    return sum(m.weight.numel() for m in module.modules() if isinstance(m, (nn.Linear, CastedLinear)))


def model_flops(model: GPT, seq_len: int) -> ModelFlops:
    """The formula above for `model` as built (its layer plan included) at sequence length seq_len."""
    cfg = model.cfg
    layers = model.layer_order()  # virtual layers run by one forward, loops unrolled
    blocks = len(model.blocks)
    n = sum(_linear_params(model.blocks[layer % blocks]) for layer in layers)
    head = model.tok_emb.weight if model.lm_head is None else model.lm_head.weight
    n += head.numel()
    for extra in (model.bigram, model.value_embed):  # their projections are matmuls; their tables are lookups
        if extra is not None:
            n += _linear_params(extra)
    d_attn = cfg.num_heads * (cfg.model_dim // cfg.num_heads)
    return ModelFlops(n, 12 * len(layers) * seq_len * d_attn, seq_len)


def model_flops_per_token(model: GPT, seq_len: int) -> int:
    return model_flops(model, seq_len).per_token


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def default_matmul_size(device: torch.device) -> int:
    return 8192 if device.type == "cuda" else 2048


@torch.no_grad()
def peak_matmul_flops(device: torch.device, dtype: torch.dtype, n: int = 0, seconds: float = 1.0) -> tuple[float, int]:
    """The fastest of repeated n x n x n matmuls in `dtype` on `device`, as FLOP/s (2 n^3 per matmul); measured here,
    now, so it reflects this machine (and, on a shared CPU, its load). Returns (FLOP/s, n)."""
    n = n or default_matmul_size(device)
    gen = torch.Generator(device="cpu").manual_seed(0)
    a = torch.randn(n, n, generator=gen).to(device=device, dtype=dtype)
    b = torch.randn(n, n, generator=gen).to(device=device, dtype=dtype)
    out = torch.empty(n, n, device=device, dtype=dtype)
    inner = 10 if device.type == "cuda" else 1  # launches between clock reads on a GPU
    torch.matmul(a, b, out=out)  # warm-up: library load, kernel choice
    _sync(device)
    best, spent, repeats = float("inf"), 0.0, 0
    while repeats < 3 or spent < seconds:
        start = time.perf_counter()
        for _ in range(inner):
            torch.matmul(a, b, out=out)
        _sync(device)
        elapsed = time.perf_counter() - start
        best = min(best, elapsed / inner)
        spent += elapsed
        repeats += 1
        if repeats >= 1000:
            break
    return 2.0 * n ** 3 / best, n
