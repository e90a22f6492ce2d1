"""The model's settings (model.*) and their checks: the baseline's dimensions and the record stack's options, every
option off by default. No torch here; golf/model/gpt.py builds the model from this."""

import math
from dataclasses import dataclass, field
from typing import Any

from golf.problems import Problems

MLP_ACTIVATIONS = ("relu2", "leaky_relu2", "swiglu")  # golf/model/mlp.py implements each
SKIP_GATE_FORMS = ("scale", "lerp")  # x + sigmoid(g) w skip (golf's first form) | lerp(w skip, x, sigmoid(g)) (T2, T3)
PARALLEL_RESIDUALS = ("none", "gptj", "two_lane")  # golf/model/parallel.py
ATTN_GATES = ("none", "output", "dense", "sparse")  # golf/model/attention.py HeadGate
ATTN_GATE_SOURCES = ("x", "q")  # what the output gate reads: the attention's input, or c_q's output
LOOP_SKIPS = ("first_pass", "virtual")  # golf/model/sharing.py unet_plan


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
    # the frontier's options (the 2026-03-23, 04-09 and 04-27 records; README "Model options"), every one off here
    bos_mask: bool = True  # BigramHash and SmearGate see no previous token at a BOS (False: T1's cross-document form)
    bigram_scale: float = 0.0  # > 0: BigramHash as T1 builds it: zero table, a learned output scale starting here
    value_embed_scale: float = 0.0  # > 0: the value embedding times a learned shared scale starting here (T1: 0.1)
    smear_gate_window: int = 0  # with smear_gate, k > 0: T3's input-dependent gate on the first k embedding channels
    skip_gate_form: str = "scale"  # with skip_gates: scale | lerp (the records' form)
    parallel_residual: str = "none"  # none | gptj | two_lane, from layer parallel_from (golf/model/parallel.py)
    parallel_from: int = 0
    attn_gate: str = "none"  # none | output | dense | sparse: a per-head sigmoid gate on the attention output
    attn_gate_window: int = 12  # output and sparse gates read the first k channels of their source
    attn_gate_scale: float = 1.0  # sparse: g = sigmoid(scale * W x[:k]) (T3: 0.5)
    attn_gate_init_std: float = 0.0  # dense and sparse: W ~ N(0, std^2), 0 = zeros (T3's dense GatedAttn: 0.01)
    attn_gate_source: str = "x"  # output gate: x (the attention's input) | q (c_q's output)
    doc_mask: bool = False  # attention never crosses a BOS (VarLen; golf/model/attention.py)
    loop_skips: str = "first_pass"  # first_pass (golf's loop) | virtual (U-Net over the virtual layers, the records)
    loop_phases: list[float] = field(default_factory=list)  # repeat k switches on at loop_phases[k - 1] of training
    loop_priming_steps: int = 0  # priming steps run with the loop on, after train.priming_steps (then undone)


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
    frontier_problems(cfg, p, head_dim)
    return p


def frontier_problems(cfg: ModelConfig, p: Problems, head_dim: int) -> None:
    """The checks of the frontier's options (the keys after lora_rank)."""
    n = cfg.num_layers
    p.need(cfg.bigram_scale >= 0 and math.isfinite(cfg.bigram_scale), "bigram_scale", cfg.bigram_scale,
           "0 (no scale) or a number > 0")
    p.need(cfg.value_embed_scale >= 0 and math.isfinite(cfg.value_embed_scale), "value_embed_scale",
           cfg.value_embed_scale, "0 (no scale) or a number > 0")
    p.need(0 <= cfg.smear_gate_window <= cfg.model_dim and (cfg.smear_gate_window == 0 or cfg.smear_gate),
           "smear_gate_window", cfg.smear_gate_window,
           f"0, or an integer in [1, model.model_dim={cfg.model_dim}] together with model.smear_gate=true")
    p.choice("skip_gate_form", cfg.skip_gate_form, SKIP_GATE_FORMS)
    p.choice("parallel_residual", cfg.parallel_residual, PARALLEL_RESIDUALS)
    p.need(0 <= cfg.parallel_from < n, "parallel_from", cfg.parallel_from, f"a layer index in [0, {n - 1}]")
    if cfg.parallel_residual == "two_lane" and cfg.loop_repeats > 0:
        p.need(cfg.parallel_from >= cfg.loop_end, "parallel_from", cfg.parallel_from,
               f"a layer after the loop (>= model.loop_end={cfg.loop_end}) for the two-lane form, whose lanes run "
               "to the end")
    p.choice("attn_gate", cfg.attn_gate, ATTN_GATES)
    p.need(cfg.attn_gate not in ("output", "sparse") or 1 <= cfg.attn_gate_window <= cfg.model_dim, "attn_gate_window", cfg.attn_gate_window,
           f"an integer in [1, model.model_dim={cfg.model_dim}]")
    p.need(math.isfinite(cfg.attn_gate_scale), "attn_gate_scale", cfg.attn_gate_scale, "a finite number")
    p.at_least("attn_gate_init_std", cfg.attn_gate_init_std, 0.0)
    p.choice("attn_gate_source", cfg.attn_gate_source, ATTN_GATE_SOURCES)
    p.choice("loop_skips", cfg.loop_skips, LOOP_SKIPS)
    phases = list(cfg.loop_phases)
    if phases:
        p.need(len(phases) == cfg.loop_repeats and all(a < b for a, b in zip([0.0] + phases, phases))
               and phases[-1] < 1.0 and cfg.loop_from == 0.0, "loop_phases", cfg.loop_phases,
               f"model.loop_repeats={cfg.loop_repeats} increasing fractions in (0, 1), one per repeat, with "
               "model.loop_from=0")
    p.need(cfg.loop_priming_steps >= 0 and (cfg.loop_priming_steps == 0 or cfg.loop_from > 0 or bool(phases)),
           "loop_priming_steps", cfg.loop_priming_steps,
           "0, or an integer >= 1 with a loop that switches on during training (model.loop_from > 0 or "
           "model.loop_phases)")
