"""The model's settings (model.*) and their checks: the baseline's dimensions and the record stack's options, every
option off by default. No torch here; golf/model/gpt.py builds the model from this."""

import math
from dataclasses import dataclass, field
from typing import Any

from golf.problems import Problems

MLP_ACTIVATIONS = ("relu2", "leaky_relu2", "swiglu")  # golf/model/mlp.py implements each


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
    # the record stack's options (README "Model options"); every default keeps the baseline exactly
    mlp_act: str = "relu2"  # relu2 | leaky_relu2 | swiglu (golf/model/mlp.py)
    mlp_leaky_slope: float = 0.5
    bigram_buckets: int = 0  # BigramHash table rows (0 = off; golf/model/embeddings.py)
    bigram_dim: int = 128
    smear_gate: bool = False
    value_embed_layers: list[int] = field(default_factory=list)  # virtual layers whose values get the value embedding
    value_embed_dim: int = 128
    xsa_last: int = 0  # XSA on the last k virtual layers (golf/model/attention.py)
    rope_dims: int = 0  # rotated dims per head (0 = all: full RoPE)
    ln_scale: bool = False  # block inputs' norms scaled by 1/sqrt(layer + 1)
    skip_gates: bool = False  # U-Net skips gated by sigmoid(per-channel gate)
    ortho_init: bool = False  # orthogonal init of the blocks' non-zero-initialized matrices
    loop_start: int = 0  # loop virtual layers [loop_start, loop_end) 1 + loop_repeats times (golf/model/sharing.py)
    loop_end: int = 0
    loop_repeats: int = 0
    loop_from: float = 0.0  # fraction of training after which the loop is on (needs sharing.LoopSwitch)
    shared_blocks: int = 0  # K > 0: K blocks shared by the num_layers virtual layers (layer v runs block v % K)
    lora_rank: int = 0  # with shared_blocks: per-virtual-layer LoRA deviations of this rank, gated by gammas


def model_problems(cfg: ModelConfig) -> list[tuple[str, Any, str]]:
    """(key, value, what is allowed) for every model.* value that cannot make a model; empty when all is well."""
    p = Problems("model.")
    for key in ("num_layers", "num_heads", "num_kv_heads", "mlp_mult"):
        p.at_least(key, getattr(cfg, key), 1)
    p.at_least("model_dim", cfg.model_dim, 2)
    if p:
        return p  # the checks below divide by these
    p.need(cfg.model_dim % cfg.num_heads == 0, "num_heads", cfg.num_heads, f"a divisor of model.model_dim={cfg.model_dim}")
    head_dim = cfg.model_dim // cfg.num_heads
    p.need(head_dim % 2 == 0, "model_dim", cfg.model_dim,
           f"a width whose head dim (model_dim / num_heads = {head_dim}) is even, as RoPE rotates pairs")
    p.need(cfg.num_heads % cfg.num_kv_heads == 0, "num_kv_heads", cfg.num_kv_heads,
           f"a divisor of model.num_heads={cfg.num_heads}")
    p.at_least("tied_embed_init_std", cfg.tied_embed_init_std, 0.0)
    p.need(cfg.logit_softcap > 0, "logit_softcap", cfg.logit_softcap, "a number > 0")
    p.need(cfg.rope_base > 0, "rope_base", cfg.rope_base, "a number > 0")
    p.need(math.isfinite(cfg.qk_gain_init), "qk_gain_init", cfg.qk_gain_init, "a finite number")
    n = cfg.num_layers
    p.choice("mlp_act", cfg.mlp_act, MLP_ACTIVATIONS)
    p.need(cfg.mlp_leaky_slope >= 0, "mlp_leaky_slope", cfg.mlp_leaky_slope, "a number >= 0")
    p.need(cfg.bigram_buckets == 0 or cfg.bigram_buckets >= 2, "bigram_buckets", cfg.bigram_buckets, "0 (off) or >= 2")
    p.need(cfg.bigram_dim >= 1, "bigram_dim", cfg.bigram_dim, "an integer >= 1")
    layers = list(cfg.value_embed_layers)
    p.need(all(0 <= v < n for v in layers) and len(set(layers)) == len(layers), "value_embed_layers",
           cfg.value_embed_layers, f"distinct layer indices in [0, {n - 1}]")
    p.need(cfg.value_embed_dim >= 1, "value_embed_dim", cfg.value_embed_dim, "an integer >= 1")
    p.need(0 <= cfg.xsa_last <= n, "xsa_last", cfg.xsa_last, f"an integer in [0, model.num_layers={n}]")
    p.need(cfg.rope_dims == 0 or (0 < cfg.rope_dims <= head_dim and cfg.rope_dims % 2 == 0), "rope_dims",
           cfg.rope_dims, f"0 (all) or an even number in [2, head dim {head_dim}]")
    p.need(cfg.loop_repeats >= 0, "loop_repeats", cfg.loop_repeats, "an integer >= 0")
    if cfg.loop_repeats > 0:
        p.need(0 <= cfg.loop_start < cfg.loop_end <= n, "loop_end", cfg.loop_end,
               f"loop_start < loop_end <= model.num_layers={n} (loop_start >= 0)")
    p.need(0.0 <= cfg.loop_from < 1.0, "loop_from", cfg.loop_from, "a fraction of training in [0, 1)")
    p.need(cfg.shared_blocks == 0 or (cfg.shared_blocks >= 1 and n % cfg.shared_blocks == 0), "shared_blocks",
           cfg.shared_blocks, f"0 (off) or a divisor of model.num_layers={n}")
    p.need(cfg.lora_rank >= 0 and (cfg.lora_rank == 0 or cfg.shared_blocks > 0), "lora_rank", cfg.lora_rank,
           "0, or an integer >= 1 together with model.shared_blocks > 0")
    return p
