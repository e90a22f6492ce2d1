"""The baseline GPT of the Parameter Golf challenge (docs/rules.md), every dimension from ModelConfig.

Read top to bottom: the config, the small modules (linear layer, rotary embedding, attention, block), the model,
then the closed-form parameter count. The record stack's options live in their own modules beside this one: mlp.py
(activations), embeddings.py (BigramHash, SmearGate, value embeddings), attention.py (XSA, head gates, document
masking), parallel.py (parallel residuals), sharing.py (the layer plan: looping, the U-Net over it, shared blocks
with LoRA deviations); every option is off by default. Linear weights are kept in fp32 and cast to the activations' dtype at matmul
time, so bf16 autocast on a GPU works while the optimizers update fp32 master weights.
"""

from __future__ import annotations

from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from golf.model.attention import Documents, HeadGate, attend, exclusive
from golf.model.embeddings import BigramHash, InputSmearGate, SmearGate, ValueEmbedding
from golf.model.config import ModelConfig, model_problems
from golf.model.mlp import MLP, mlp_parameter_count
from golf.model.parallel import LaneLambdas, lanes_output
from golf.model.sharing import (SharedBlockDeviation, deviation_shapes, deviations_applied, layer_order, skip_count,
                                unet_plan)


def check_shape(cfg: ModelConfig, vocab_size: int) -> None:
    """Raise ValueError when the config cannot make a model (the checks of golf/model/config.py)."""
    if vocab_size < 1:
        raise ValueError(f"vocab_size must be >= 1, got {vocab_size}")
    for key, value, allowed in model_problems(cfg):
        raise ValueError(f"{key} = {value!r} is not allowed; allowed: {allowed}")


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
    """Rotate pairs (x[i], x[i + d/2]) by position-dependent angles, in the challenge script's direction
    (its checkpoints give the same logits here; the opposite direction would be equally good but not compatible).
    d is the tables' 2 * cos.size(-1): the whole head, or its first model.rope_dims dims (partial RoPE)."""
    rotated = 2 * cos.size(-1)
    if rotated < x.size(-1):
        return torch.cat((apply_rotary(x[..., :rotated], cos, sin), x[..., rotated:]), dim=-1)
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
        self.q_gain = nn.Parameter(torch.full((cfg.num_heads,), cfg.qk_gain_init))  # one gain per head
        self.qk_gain_init = cfg.qk_gain_init
        self.attn_gate = None if cfg.attn_gate == "none" else HeadGate(
            cfg.attn_gate, cfg.model_dim, cfg.num_heads, cfg.attn_gate_window, cfg.attn_gate_scale,
            cfg.attn_gate_init_std, cfg.attn_gate_source)

    def reset_parameters(self) -> None:
        nn.init.constant_(self.q_gain, self.qk_gain_init)

    def forward(self, x: Tensor, cos: Tensor, sin: Tensor, ve: Optional[Tensor] = None, xsa: bool = False,
                docs: Optional[Documents] = None) -> Tensor:
        """ve: a value embedding (B, T, kv_dim) added to the values; xsa: remove each token's own value direction;
        docs: attend within documents only (model.doc_mask)."""
        B, T, C = x.shape
        q_raw = self.c_q(x)
        q = q_raw.view(B, T, self.num_heads, self.head_dim).transpose(1, 2)  # (B, H, T, D)
        k = self.c_k(x).view(B, T, self.num_kv_heads, self.head_dim).transpose(1, 2)  # (B, KV, T, D)
        v = self.c_v(x)
        if ve is not None:
            v = v + ve
        v = v.view(B, T, self.num_kv_heads, self.head_dim).transpose(1, 2)
        # QK-norm bounds the attention logits; the learned per-head gain then sets their sharpness
        q = apply_rotary(rms_norm(q), cos, sin)
        k = apply_rotary(rms_norm(k), cos, sin)
        q = q * self.q_gain.to(q.dtype)[None, :, None, None]
        y = attend(q, k, v, docs)
        if xsa:
            y = exclusive(y, v)
        if self.attn_gate is not None:  # (B, T, H) gates, one per head
            y = y * self.attn_gate(x, q_raw).transpose(1, 2)[..., None]
        return self.proj(y.transpose(1, 2).reshape(B, T, C))


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.attn = CausalSelfAttention(cfg)
        self.mlp = MLP(cfg.model_dim, cfg.mlp_mult * cfg.model_dim, cfg.mlp_act, cfg.mlp_leaky_slope, CastedLinear)
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

    def forward(self, x: Tensor, x0: Tensor, cos: Tensor, sin: Tensor, ve: Optional[Tensor] = None,
                xsa: bool = False, norm_scale: float = 1.0, parallel: bool = False,
                docs: Optional[Documents] = None) -> Tensor:
        """parallel: GPT-J style (model.parallel_residual=gptj): attention and MLP both read the normed x_in."""
        mix = self.resid_mix.to(x.dtype)
        x = mix[0] * x + mix[1] * x0
        h = rms_norm(x)
        h = h if norm_scale == 1.0 else h * norm_scale
        attn_out = self.attn_scale.to(x.dtype) * self.attn(h, cos, sin, ve, xsa, docs)
        if parallel:
            return x + attn_out + self.mlp_scale.to(x.dtype) * self.mlp(h)
        x = x + attn_out
        h = rms_norm(x)
        x = x + self.mlp_scale.to(x.dtype) * self.mlp(h if norm_scale == 1.0 else h * norm_scale)
        return x

    def lane_outputs(self, a: Tensor, m: Tensor, x0: Tensor, cos: Tensor, sin: Tensor, ve: Optional[Tensor],
                     xsa: bool, norm_scale: float, docs: Optional[Documents]) -> tuple[Tensor, Tensor]:
        """The two-lane form (golf/model/parallel.py): the attention reads resid_mix(a, x0), the MLP reads m;
        returns their scaled outputs for LaneLambdas.mix."""
        mix = self.resid_mix.to(a.dtype)
        h = rms_norm(mix[0] * a + mix[1] * x0)
        attn_out = self.attn_scale.to(a.dtype) * self.attn(h if norm_scale == 1.0 else h * norm_scale, cos, sin, ve,
                                                           xsa, docs)
        h = rms_norm(m)
        mlp_out = self.mlp_scale.to(a.dtype) * self.mlp(h if norm_scale == 1.0 else h * norm_scale)
        return attn_out, mlp_out


class GPT(nn.Module):
    def __init__(self, cfg: ModelConfig, vocab_size: int):
        super().__init__()
        check_shape(cfg, vocab_size)
        self.cfg = cfg
        self.vocab_size = vocab_size
        self.num_encoder_layers = cfg.num_layers // 2
        self.num_decoder_layers = cfg.num_layers - self.num_encoder_layers
        num_skips = skip_count(cfg.num_layers, cfg.loop_start, cfg.loop_end, cfg.loop_repeats, cfg.loop_skips)
        self.num_skips = num_skips
        head_dim = cfg.model_dim // cfg.num_heads
        kv_dim = cfg.num_kv_heads * head_dim

        self.tok_emb = nn.Embedding(vocab_size, cfg.model_dim)
        self.bigram = BigramHash(cfg.bigram_buckets, cfg.bigram_dim, cfg.model_dim, CastedLinear, cfg.bigram_scale,
                                 cfg.bos_mask) if cfg.bigram_buckets else None
        self.smear_gate = None
        if cfg.smear_gate:
            self.smear_gate = InputSmearGate(cfg.smear_gate_window, cfg.bos_mask) if cfg.smear_gate_window \
                else SmearGate(cfg.model_dim, cfg.bos_mask)
        self.value_embed = ValueEmbedding(vocab_size, cfg.value_embed_dim, kv_dim, len(cfg.value_embed_layers),
                                          CastedLinear, cfg.value_embed_scale) if cfg.value_embed_layers else None
        self.rotary = Rotary(cfg.rope_dims or head_dim, cfg.rope_base)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.shared_blocks or cfg.num_layers))
        self.layer_lora = nn.ModuleList(SharedBlockDeviation(deviation_shapes(self.blocks[0]), cfg.lora_rank)
                                        for _ in range(cfg.num_layers)) if cfg.lora_rank else None
        self.skip_weights = nn.Parameter(torch.ones(num_skips, cfg.model_dim))
        self.skip_gates = nn.Parameter(torch.zeros(num_skips, cfg.model_dim)) if cfg.skip_gates else None
        self.lanes = LaneLambdas(cfg.num_layers) if cfg.parallel_residual == "two_lane" else None
        self.lm_head = None if cfg.tie_embeddings else CastedLinear(cfg.model_dim, vocab_size, zero_init=True)
        self.loop_repeats_active = cfg.loop_repeats  # evaluation and export always use the whole loop; see
        self.reset_parameters()  # sharing.LoopSwitch for training

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """(Re)initialize every parameter; also serves a model built on the meta device and moved with to_empty()."""
        for module in self.modules():
            if module is not self and hasattr(module, "reset_parameters"):
                module.reset_parameters()  # nn.Embedding: N(0, 1); linears: PyTorch's default; blocks: control tensors
            if isinstance(module, CastedLinear) and module.zero_init:
                nn.init.zeros_(module.weight)
            elif self.cfg.ortho_init and isinstance(module, CastedLinear) and not module.weight.is_meta:
                nn.init.orthogonal_(module.weight)  # model.ortho_init: the blocks' matrices (and T1's projections)
        for module in self.modules():
            if hasattr(module, "post_init"):  # tables and LoRA factors inside the option modules
                module.post_init()
        if self.cfg.tie_embeddings:
            nn.init.normal_(self.tok_emb.weight, mean=0.0, std=self.cfg.tied_embed_init_std)
        nn.init.ones_(self.skip_weights)
        if self.skip_gates is not None:
            nn.init.zeros_(self.skip_gates)

    # --- depth: the layer plan -----------------------------------------------------------------------------------
    def set_loop_active(self, active: bool) -> None:
        """Turn layer looping (model.loop_repeats) wholly on or off."""
        self.set_loop_repeats(self.cfg.loop_repeats if active else 0)

    def set_loop_repeats(self, repeats: int) -> None:
        """Run the loop 1 + repeats times (0: no loop); the trainer's LoopSwitch calls this."""
        self.loop_repeats_active = max(0, min(int(repeats), self.cfg.loop_repeats))

    @property
    def loop_active(self) -> bool:
        return self.loop_repeats_active > 0 or self.cfg.loop_repeats == 0

    def layer_order(self) -> list[int]:
        cfg = self.cfg
        return layer_order(cfg.num_layers, cfg.loop_start, cfg.loop_end, self.loop_repeats_active)

    def lora_gammas(self) -> dict[str, float]:
        """The shared-block deviations' shrinkage gammas by name (layer_lora.<v>.<matrix>), for logging."""
        if self.layer_lora is None:
            return {}
        return {f"layer_lora.{v}.{key}": float(dev.lora_gamma[i].detach())
                for v, dev in enumerate(self.layer_lora) for i, key in enumerate(dev.keys)}

    def run_layer(self, layer: int, x: Tensor, x0: Tensor, cos: Tensor, sin: Tensor, ve: Optional[Tensor],
                  docs: Optional[Documents] = None, lanes: Optional[tuple[Tensor, Tensor]] = None):
        """Layer `layer` on the stream x; or, given the two lanes (a, m), the lanes after it."""
        cfg = self.cfg
        block = self.blocks[layer % len(self.blocks)]
        if ve is not None and layer in cfg.value_embed_layers:
            ve = ve * self.value_embed.ve_scales[cfg.value_embed_layers.index(layer)].to(ve.dtype)
        else:
            ve = None
        xsa = layer >= cfg.num_layers - cfg.xsa_last
        norm_scale = (layer + 1) ** -0.5 if cfg.ln_scale else 1.0
        with deviations_applied(block, None if self.layer_lora is None else self.layer_lora[layer]):
            if lanes is not None:
                attn_out, mlp_out = block.lane_outputs(*lanes, x0, cos, sin, ve, xsa, norm_scale, docs)
                return self.lanes.mix(layer, *lanes, attn_out, mlp_out)
            parallel = cfg.parallel_residual == "gptj" and layer >= cfg.parallel_from
            return block(x, x0, cos, sin, ve, xsa, norm_scale, parallel, docs)

    def add_skip(self, x: Tensor, i: int, skip: Tensor) -> Tensor:
        """U-Net skip i into x: plain, gated (model.skip_gates) in golf's scale form or the records' lerp form."""
        weight = self.skip_weights[i].to(x.dtype)
        if self.skip_gates is None:
            return x + weight * skip
        gate = torch.sigmoid(self.skip_gates[i].to(x.dtype))
        if self.cfg.skip_gate_form == "lerp":
            return torch.lerp(weight * skip, x, gate)
        return x + (weight * gate) * skip

    def embed(self, input_ids: Tensor) -> Tensor:
        x = self.tok_emb(input_ids)
        if self.bigram is not None:
            x = x + self.bigram(input_ids)
        input_dependent = isinstance(self.smear_gate, InputSmearGate)
        if input_dependent:  # T3 smears the raw embedding, before the norm
            x = self.smear_gate(x, input_ids)
        x = rms_norm(x)
        if self.smear_gate is not None and not input_dependent:
            x = self.smear_gate(x, input_ids)
        return x

    def head_logits(self, x: Tensor) -> Tensor:
        """fp32 logits before the softcap from the final normed hidden x (per-document LoRA TTT adds its head delta
        here: golf/evaluate/ttt/doc_adapters.py)."""
        head_weight = self.tok_emb.weight if self.lm_head is None else self.lm_head.weight
        return F.linear(x, head_weight.to(x.dtype)).float()

    def forward(self, input_ids: Tensor, target_ids: Tensor | None = None, reduction: str = "mean",
                cu_seqlens: Optional[Tensor] = None) -> Tensor:
        """Logits (B, T, V) in fp32 without targets; with targets the cross-entropy in nats: a scalar for
        reduction="mean", per-token (B, T) for reduction="none". cu_seqlens: segment starts over the flattened
        batch (packed documents, golf/data/documents.py): attention stays within segments."""
        if reduction not in ("mean", "none"):
            raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")
        cos, sin = self.rotary(input_ids.size(1), input_ids.device)
        x = self.embed(input_ids)
        x0 = x
        ve = self.value_embed(input_ids) if self.value_embed is not None else None
        docs = Documents(input_ids, cu_seqlens) if self.cfg.doc_mask or cu_seqlens is not None else None

        # U-Net: the encoder pushes its outputs, the decoder adds them back in reverse order (sharing.unet_plan says
        # which positions of a looped plan push and pop); the two-lane form splits the stream in the decoder
        skips: list[Tensor] = []
        lanes: Optional[tuple[Tensor, Tensor]] = None
        for layer, push, pop, decoder in unet_plan(self.layer_order(), self.cfg.num_layers, self.cfg.loop_skips):
            if lanes is None and self.lanes is not None and decoder and layer >= self.cfg.parallel_from:
                lanes = (x, x)
            if 0 <= pop < self.num_skips and skips:
                if lanes is None:
                    x = self.add_skip(x, pop, skips.pop())
                else:
                    lanes = (self.add_skip(lanes[0], pop, skips.pop()), lanes[1])
            if lanes is None:
                x = self.run_layer(layer, x, x0, cos, sin, ve, docs)
            else:
                lanes = self.run_layer(layer, x, x0, cos, sin, ve, docs, lanes)
            if push:
                skips.append(x)
        if lanes is not None:
            x = lanes_output(*lanes)

        logits = self.head_logits(rms_norm(x))
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
    mlp = mlp_parameter_count(dim, hidden, cfg.mlp_act)  # fc, proj (and gate for SwiGLU)
    controls = 2 * dim + 2 * dim  # attn_scale, mlp_scale; resid_mix
    num_skips = skip_count(cfg.num_layers, cfg.loop_start, cfg.loop_end, cfg.loop_repeats, cfg.loop_skips)
    embeddings = vocab_size * dim * (1 if cfg.tie_embeddings else 2)
    num_blocks = cfg.shared_blocks or cfg.num_layers
    total = embeddings + num_blocks * (attention + mlp + controls) + num_skips * dim
    if cfg.skip_gates:
        total += num_skips * dim
    if cfg.bigram_buckets:
        total += cfg.bigram_buckets * cfg.bigram_dim + cfg.bigram_dim * dim  # table, projection
        total += 1 if cfg.bigram_scale > 0 else 0
    if cfg.smear_gate:
        total += cfg.smear_gate_window + 1 if cfg.smear_gate_window else dim  # window gate and its lambda, or gates
    if cfg.value_embed_layers:
        total += vocab_size * cfg.value_embed_dim + cfg.value_embed_dim * kv_dim + len(cfg.value_embed_layers)
        total += 1 if cfg.value_embed_scale > 0 else 0
    gate_width = {"none": 0, "dense": dim}.get(cfg.attn_gate, cfg.attn_gate_window)
    total += num_blocks * cfg.num_heads * gate_width  # a (heads x width) gate per block
    if cfg.parallel_residual == "two_lane":
        total += cfg.num_layers * (2 + 4)  # lane_resid, lane_post
    if cfg.lora_rank:
        # per virtual layer, for each matrix (out x in): A (r x in), B (out x r), and its gamma
        shapes = [(dim, dim), (kv_dim, dim), (kv_dim, dim), (dim, dim), (hidden, dim), (dim, hidden)]
        if cfg.mlp_act == "swiglu":
            shapes.append((hidden, dim))
        total += cfg.num_layers * sum(cfg.lora_rank * (out + inp) + 1 for out, inp in shapes)
    return total
