"""The parameter-name contract: what a state-dict name says about its tensor.

The optimizer split, quantization, test-time training, Reptile and the diagnostics all sort parameters by name; they
read it here, so a new model option that follows these names is routed the same way everywhere.

- blocks.<i>.… is a tensor of block i (block_of); inside a block, attn.… and mlp.… are the two kinds of matrices,
  and the control tensors below are "norms" (kind_of).
- control tensors (CONTROL_PARAM_PATTERNS) are small per-channel gains, scales and gates: Adam, never Muon, even
  when 2-D (the head gates' (heads x k) weights); kept in fp32 in the artifact.
- embedding tables (EMBEDDING_NAMES): the token embedding (and the tied head), an untied head, and the record
  stack's bigram and value-embedding tables.
"""

from __future__ import annotations

from typing import Optional

from torch import nn

CONTROL_PARAM_PATTERNS = ("attn_scale", "mlp_scale", "resid_mix", "q_gain", "skip_weights", "skip_gates",
                          "smear_gate", "ve_scales", "lora_gamma",
                          # the frontier's: head gates, the two-lane lambdas, T1's bigram and value-embedding scales
                          "attn_gate", "lane_resid", "lane_post", "bigram.scale", "value_embed.scale")
EMBEDDING_NAMES = ("tok_emb", "lm_head", "bigram", "value_embed")


def block_of(name: str) -> Optional[int]:
    """The block index in a dotted name like 'blocks.3.mlp.fc.weight' (wrappers' prefixes allowed), else None."""
    parts = name.split(".")
    for i, part in enumerate(parts[:-1]):
        if part == "blocks" and parts[i + 1].isdigit():
            return int(parts[i + 1])
    return None


def is_control(name: str) -> bool:
    return any(pattern in name for pattern in CONTROL_PARAM_PATTERNS)


def kind_of(name: str) -> str:
    """norms | attn | mlp for a block tensor (or module) name; other for anything else."""
    if is_control(name):
        return "norms"
    parts = name.split(".")
    if "mlp" in parts:
        return "mlp"
    if "attn" in parts:
        return "attn"
    return "other"


def is_embedding(name: str) -> bool:
    return any(part.startswith(EMBEDDING_NAMES) for part in name.split("."))


def num_blocks(model: nn.Module) -> int:
    indices = [block_of(name) for name, _ in model.named_parameters()]
    return 1 + max((i for i in indices if i is not None), default=-1)
