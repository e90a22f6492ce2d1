"""The baseline GPT of the Parameter Golf challenge (FACTS.md), every dimension from ModelConfig.

Read top to bottom: the config, the small modules (linear layer, rotary embedding, attention, MLP, block), the model,
then the closed-form parameter count. Linear weights are kept in fp32 and cast to the activations' dtype at matmul
time, so bf16 autocast on a GPU works while the optimizers update fp32 master weights.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn


@dataclass
class ModelConfig:
    name: str = "tiny"
    num_layers: int = 4
    model_dim: int = 128
    num_heads: int = 4
    num_kv_heads: int = 2
    mlp_mult: int = 2
    tie_embeddings: bool = True
    tied_embed_init_std: float = 0.005
    logit_softcap: float = 30.0
    rope_base: float = 10000.0
    qk_gain_init: float = 1.5


# Small control tensors: the optimizer split sends them to Adam (as scalars), never to Muon, even when 2-D.
CONTROL_PARAM_PATTERNS = ("attn_scale", "mlp_scale", "resid_mix", "q_gain", "skip_weights")


def check_shape(cfg: ModelConfig, vocab_size: int) -> None:
    """Raise ValueError when the dimensions cannot make the baseline's model."""
    if vocab_size < 1:
        raise ValueError(f"vocab_size must be >= 1, got {vocab_size}")
    for key in ("num_layers", "model_dim", "num_heads", "num_kv_heads", "mlp_mult"):
        if getattr(cfg, key) < 1:
            raise ValueError(f"model.{key} must be >= 1, got {getattr(cfg, key)}")
    if cfg.model_dim % cfg.num_heads != 0:
        raise ValueError(f"model.model_dim ({cfg.model_dim}) must be divisible by model.num_heads ({cfg.num_heads})")
    if cfg.num_heads % cfg.num_kv_heads != 0:
        raise ValueError(f"model.num_heads ({cfg.num_heads}) must be divisible by model.num_kv_heads "
                         f"({cfg.num_kv_heads}): each KV head serves a whole group of query heads")
    head_dim = cfg.model_dim // cfg.num_heads
    if head_dim % 2 != 0:
        raise ValueError(f"head dim model.model_dim / model.num_heads = {head_dim} must be even: RoPE rotates pairs")


def rms_norm(x: Tensor) -> Tensor:
    """RMSNorm over the last dimension, without a learnable weight (as everywhere in the baseline)."""
    return F.rms_norm(x, (x.size(-1),))


class CastedLinear(nn.Linear):
    """A bias-free linear layer whose fp32 weight is cast to the input's dtype at matmul time."""

    def __init__(self, in_features: int, out_features: int, zero_init: bool = False):
        super().__init__(in_features, out_features, bias=False)
        self.zero_init = zero_init  # output projections start at zero: every block starts as the identity
        # quantization-aware training sets this to the exporter's fake quantization (golf/quant/qat.py)
        self.weight_transform: Optional[Callable[[Tensor], Tensor]] = None

    def forward(self, x: Tensor) -> Tensor:
        weight = self.weight if self.weight_transform is None else self.weight_transform(self.weight)
        return F.linear(x, weight.to(x.dtype))


class Rotary(nn.Module):
    """RoPE tables for the rotate-half convention. Built per call from constants: no buffers, so the model can be
    built on the meta device and moved with to_empty() without leaving garbage tables behind."""

    def __init__(self, head_dim: int, base: float):
        super().__init__()
        self.head_dim = head_dim
        self.base = base

    def forward(self, seq_len: int, device: torch.device) -> tuple[Tensor, Tensor]:
        exponents = torch.arange(0, self.head_dim, 2, device=device, dtype=torch.float32) / self.head_dim
        inv_freq = 1.0 / (self.base ** exponents)
        angles = torch.outer(torch.arange(seq_len, device=device, dtype=torch.float32), inv_freq)  # (T, head_dim/2)
        return angles.cos()[None, None], angles.sin()[None, None]  # broadcast over (B, heads)


def apply_rotary(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate pairs (x[i], x[i + head_dim/2]) by position-dependent angles, in the challenge script's direction
    (its checkpoints give the same logits here; the opposite direction would be equally good but not compatible)."""
    half = x.size(-1) // 2
    x1, x2 = x[..., :half], x[..., half:]
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    return torch.cat((x1 * cos + x2 * sin, x2 * cos - x1 * sin), dim=-1)


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.num_heads = cfg.num_heads
        self.num_kv_heads = cfg.num_kv_heads
        self.head_dim = cfg.model_dim // cfg.num_heads
        kv_dim = cfg.num_kv_heads * self.head_dim
        self.c_q = CastedLinear(cfg.model_dim, cfg.model_dim)
        self.c_k = CastedLinear(cfg.model_dim, kv_dim)
        self.c_v = CastedLinear(cfg.model_dim, kv_dim)
        self.proj = CastedLinear(cfg.model_dim, cfg.model_dim, zero_init=True)
        self.q_gain = nn.Parameter(torch.full((cfg.num_heads,), cfg.qk_gain_init))
        self.qk_gain_init = cfg.qk_gain_init

    def reset_parameters(self) -> None:
        nn.init.constant_(self.q_gain, self.qk_gain_init)

    def forward(self, x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
        B, T, C = x.shape
        q = self.c_q(x).view(B, T, self.num_heads, self.head_dim).transpose(1, 2)  # (B, H, T, D)
        k = self.c_k(x).view(B, T, self.num_kv_heads, self.head_dim).transpose(1, 2)  # (B, KV, T, D)
        v = self.c_v(x).view(B, T, self.num_kv_heads, self.head_dim).transpose(1, 2)
        # QK-norm bounds the attention logits; the learned per-head gain then sets their sharpness
        q = apply_rotary(rms_norm(q), cos, sin)
        k = apply_rotary(rms_norm(k), cos, sin)
        q = q * self.q_gain.to(q.dtype)[None, :, None, None]
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=self.num_kv_heads != self.num_heads)
        return self.proj(y.transpose(1, 2).reshape(B, T, C))


class MLP(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.fc = CastedLinear(cfg.model_dim, cfg.mlp_mult * cfg.model_dim)
        self.proj = CastedLinear(cfg.mlp_mult * cfg.model_dim, cfg.model_dim, zero_init=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(F.relu(self.fc(x)).square())


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.attn = CausalSelfAttention(cfg)
        self.mlp = MLP(cfg)
        self.attn_scale = nn.Parameter(torch.ones(cfg.model_dim))
        self.mlp_scale = nn.Parameter(torch.ones(cfg.model_dim))
        # row 0 weighs the running stream, row 1 the embedding x0: starts as "stream only"
        self.resid_mix = nn.Parameter(torch.stack((torch.ones(cfg.model_dim), torch.zeros(cfg.model_dim))))

    def reset_parameters(self) -> None:
        nn.init.ones_(self.attn_scale)
        nn.init.ones_(self.mlp_scale)
        with torch.no_grad():
            self.resid_mix[0].fill_(1.0)
            self.resid_mix[1].fill_(0.0)

    def forward(self, x: Tensor, x0: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
        mix = self.resid_mix.to(x.dtype)
        x = mix[0] * x + mix[1] * x0
        x = x + self.attn_scale.to(x.dtype) * self.attn(rms_norm(x), cos, sin)
        x = x + self.mlp_scale.to(x.dtype) * self.mlp(rms_norm(x))
        return x


class GPT(nn.Module):
    def __init__(self, cfg: ModelConfig, vocab_size: int):
        super().__init__()
        check_shape(cfg, vocab_size)
        self.cfg = cfg
        self.vocab_size = vocab_size
        self.num_encoder_layers = cfg.num_layers // 2
        self.num_decoder_layers = cfg.num_layers - self.num_encoder_layers
        num_skips = min(self.num_encoder_layers, self.num_decoder_layers)

        self.tok_emb = nn.Embedding(vocab_size, cfg.model_dim)
        self.rotary = Rotary(cfg.model_dim // cfg.num_heads, cfg.rope_base)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.num_layers))
        self.skip_weights = nn.Parameter(torch.ones(num_skips, cfg.model_dim))
        self.lm_head = None if cfg.tie_embeddings else CastedLinear(cfg.model_dim, vocab_size, zero_init=True)
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """(Re)initialize every parameter; also serves a model built on the meta device and moved with to_empty()."""
        for module in self.modules():
            if module is not self and hasattr(module, "reset_parameters"):
                module.reset_parameters()  # nn.Embedding: N(0, 1); linears: PyTorch's default; blocks: control tensors
            if isinstance(module, CastedLinear) and module.zero_init:
                nn.init.zeros_(module.weight)
        if self.cfg.tie_embeddings:
            nn.init.normal_(self.tok_emb.weight, mean=0.0, std=self.cfg.tied_embed_init_std)
        nn.init.ones_(self.skip_weights)

    def forward(self, input_ids: Tensor, target_ids: Tensor | None = None, reduction: str = "mean") -> Tensor:
        """Logits (B, T, V) in fp32 without targets; with targets the cross-entropy in nats: a scalar for
        reduction="mean", per-token (B, T) for reduction="none"."""
        if reduction not in ("mean", "none"):
            raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")
        cos, sin = self.rotary(input_ids.size(1), input_ids.device)
        x = rms_norm(self.tok_emb(input_ids))
        x0 = x

        # U-Net: the encoder half pushes its outputs, the decoder half adds them back in reverse order
        skips: list[Tensor] = []
        for block in self.blocks[: self.num_encoder_layers]:
            x = block(x, x0, cos, sin)
            skips.append(x)
        for i, block in enumerate(self.blocks[self.num_encoder_layers:]):
            if skips:
                x = x + self.skip_weights[i].to(x.dtype) * skips.pop()
            x = block(x, x0, cos, sin)

        x = rms_norm(x)
        head_weight = self.tok_emb.weight if self.lm_head is None else self.lm_head.weight
        logits = F.linear(x, head_weight.to(x.dtype)).float()
        softcap = self.cfg.logit_softcap
        logits = softcap * torch.tanh(logits / softcap)
        if target_ids is None:
            return logits
        loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), target_ids.reshape(-1), reduction=reduction)
        return loss if reduction == "mean" else loss.view(target_ids.shape)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def expected_parameter_count(cfg: ModelConfig, vocab_size: int) -> int:
    """The parameter count in closed form from the dimensions (the baseline: 17,059,912)."""
    dim = cfg.model_dim
    kv_dim = cfg.num_kv_heads * (dim // cfg.num_heads)
    hidden = cfg.mlp_mult * dim
    attention = 2 * dim * dim + 2 * dim * kv_dim + cfg.num_heads  # c_q, proj; c_k, c_v; q_gain
    mlp = 2 * dim * hidden  # fc, proj
    controls = 2 * dim + 2 * dim  # attn_scale, mlp_scale; resid_mix
    num_skips = min(cfg.num_layers // 2, cfg.num_layers - cfg.num_layers // 2)
    embeddings = vocab_size * dim * (1 if cfg.tie_embeddings else 2)
    return embeddings + cfg.num_layers * (attention + mlp + controls) + num_skips * dim
