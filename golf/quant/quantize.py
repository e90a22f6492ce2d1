"""How each tensor is stored in the artifact, and the symmetric integer quantizer the exporter and QAT share.

The challenge's int8 export, generalized to 2..8 bits, with its arithmetic: qmax = 2**(bits-1) - 1; per row of a
matrix (one scale for any other shape), clip = the clip_percentile-th percentile of |w| (torch.quantile's linear
interpolation); scale = max(clip, clip_floor) / qmax in fp32; q = clamp(round(clamp(w, -clip, clip) / scale), -qmax,
qmax) stored in int8; the scale stored as fp16 (round to nearest); dequantized as q * fp16 scale in fp32. With 8 bits
and clip_floor=1 the codes and the dequantized weights are the challenge's, bit for bit. QAT's fake quantization runs
the same arithmetic, so the exporter, the loader and QAT agree bit for bit too.

The floor (the challenge's clamp_min(1/qmax) on per-row scales, quant.clip_floor = 1.0 by default) gives rows whose
clip is below 1 the fixed grid of step 1/qmax: coarser than their own range, much smaller once compressed; this is
why the baseline's int8 + zlib artifact is 15.8 MB and not more. clip_floor=0 gives every row its own grid. Values are
still clamped at the row's own clip. Error: |clamp(w) - q * scale16| <= scale/2 + qmax * |scale - scale16|, the second
term from storing the scale in fp16 (at most qmax * 2**-11 of the scale). Scales are kept within [2**-24, 65504]
(all-zero rows give zeros, not NaN; magnitudes beyond qmax * 65504 saturate).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from golf.model.names import is_control
from golf.quant.config import QuantConfig

INT_BITS = range(2, 9)
FP16_MIN_POSITIVE = 2.0 ** -24  # smallest positive (subnormal) fp16
FP16_MAX = 65504.0
TOPK_MAX = 64  # percentiles this close to the top are read from torch.topk instead of two selections
BLOCK_ELEMENTS = 1 << 22  # rows are processed in blocks of about this many elements to bound temporary memory

_ATTN_WEIGHT = re.compile(r"blocks\.\d+\.attn\.(c_q|c_k|c_v|proj)\.weight")
EMBED_TABLES = ("bigram.table.weight", "value_embed.table.weight")  # the record stack's extra token tables
_MLP_WEIGHT = re.compile(r"blocks\.\d+\.mlp\.[^.]+\.weight")


def category_of(name: str) -> str:
    """The size-budget category of a parameter: "embed", "attn", "mlp" or "other"."""
    if name in ("tok_emb.weight", "lm_head.weight") or name in EMBED_TABLES:
        return "embed"
    if _ATTN_WEIGHT.fullmatch(name):
        return "attn"
    if _MLP_WEIGHT.fullmatch(name):
        return "mlp"
    return "other"


@dataclass(frozen=True)
class Encoding:
    kind: str  # "int" | "fp16" | "fp32"
    bits: int  # 2..8 for "int", 16, 32
    per_row: bool  # int only: one scale per row of a 2-D tensor (else one scale for the tensor)
    encoder: str = ""  # per-row int only: the row encoder that must make the codes ("": quant.encoder)


GATE_INT8 = Encoding("int", 8, True, "absmax")


def is_gate(name: str, tensor: Tensor) -> bool:
    """A small gate matrix (quant.gates_int8): 2-D, "gate" in its name, not an MLP matrix (SwiGLU's mlp.gate)."""
    return tensor.dim() == 2 and "gate" in name and category_of(name) == "other"


FP16 = Encoding("fp16", 16, False)
FP32 = Encoding("fp32", 32, False)


def plan_encoding(name: str, tensor: Tensor, cfg: QuantConfig) -> Encoding:
    """How the exporter stores `tensor` (named as in the state dict).

    - non-float tensors: fp32 (the exporter refuses values that fp32 cannot hold exactly);
    - at most cfg.passthrough_numel elements: control tensors (CONTROL_PARAM_PATTERNS) fp32, others fp16 as in the
      challenge, except that a category configured as 32 bits stays fp32 (so quant "none" is lossless);
    - larger tensors: the category's bits (2..8 integers, 16 fp16, 32 fp32);
    - with cfg.gates_int8, small gate matrices (is_gate) are int8 per row on absmax scales instead of float.
    """
    if not tensor.is_floating_point():
        return FP32
    category_bits = getattr(cfg.bits, category_of(name))
    if tensor.numel() <= cfg.passthrough_numel:
        if cfg.gates_int8 and is_gate(name, tensor) and tensor.numel():
            return GATE_INT8
        return FP32 if is_control(name) or category_bits == 32 else FP16
    if category_bits in INT_BITS:
        return Encoding("int", category_bits, tensor.dim() == 2)
    if category_bits == 16:
        return FP16
    if category_bits == 32:
        return FP32
    raise ValueError(f"quant.bits.{category_of(name)} = {category_bits}: expected 2..8, 16 or 32")


def qmax_of(bits: int) -> int:
    if bits not in INT_BITS:
        raise ValueError(f"integer quantization needs 2..8 bits, got {bits}")
    return 2 ** (bits - 1) - 1


def row_quantile(a: Tensor, clip_percentile: float) -> Tensor:
    """torch.quantile(a, clip_percentile / 100, dim=1) with linear interpolation, bit for bit, for any size
    (torch.quantile refuses more than 2**24 elements). Ranks are computed in float32 as torch does."""
    if not 0.0 < clip_percentile <= 100.0:
        raise ValueError(f"clip_percentile must be in (0, 100], got {clip_percentile}")
    n = a.size(1)
    rank = np.float32(clip_percentile / 100.0) * np.float32(n - 1)
    below = min(int(rank), n - 1)
    above = min(int(np.ceil(rank)), n - 1)
    weight = float(rank - np.float32(below))
    if n - below <= TOPK_MAX:  # clip percentiles near 100: the few largest entries, much faster than selection
        top = torch.topk(a, n - below, dim=1).values  # descending: column -1 has rank `below`, -2 rank `below + 1`
        low, high = top[:, -1], top[:, -2 if above != below else -1]
    else:
        low = torch.kthvalue(a, below + 1, dim=1).values
        high = torch.kthvalue(a, above + 1, dim=1).values if above != below else low
    return low if above == below else torch.lerp(low, high, weight)


def _scales(clip: Tensor, qmax: int, clip_floor: float = 0.0) -> tuple[Tensor, Tensor]:
    """(the fp32 scale that quantizes, the fp16 scale that is stored and dequantizes), both within [2**-24, 65504]."""
    scale = (clip.clamp(min=clip_floor) / qmax).clamp(min=FP16_MIN_POSITIVE, max=FP16_MAX)
    return scale, scale.to(torch.float16).clamp(min=FP16_MIN_POSITIVE)


def _rows_per_block(cols: int) -> int:
    return max(1, BLOCK_ELEMENTS // max(cols, 1))


def clip_and_scale_rows(w: Tensor, bits: int, clip_percentile: float,
                        clip_floor: float = 0.0) -> tuple[Tensor, Tensor, Tensor]:
    """Per row of the 2-D `w`: the clip, the fp32 scale that quantizes and the fp16 scale that is stored."""
    if w.dim() != 2:
        raise ValueError(f"expected a 2-D tensor, got shape {tuple(w.shape)}")
    qmax = qmax_of(bits)
    rows, cols = w.shape
    if rows == 0 or cols == 0:
        clip = torch.zeros(rows, dtype=torch.float32, device=w.device)
    else:
        step = _rows_per_block(cols)
        with torch.no_grad():
            clip = torch.cat([row_quantile(w[i:i + step].float().abs(), clip_percentile)
                              for i in range(0, rows, step)])
    return (clip, *_scales(clip, qmax, clip_floor))


def _quantize_block(x: Tensor, clip: Tensor, scale: Tensor, qmax: int) -> Tensor:
    """int8 codes of the values x (any float dtype) given a broadcastable fp32 clip and fp32 scale."""
    y = x.to(torch.float32, copy=True)
    y = torch.maximum(torch.minimum(y, clip, out=y), -clip, out=y)
    return y.div_(scale).round_().clamp_(-qmax, qmax).to(torch.int8)


def quantize_rows(w: Tensor, bits: int, clip_percentile: float, clip_floor: float = 0.0) -> tuple[Tensor, Tensor]:
    """Per-row quantization of a finite 2-D float tensor: (int8 codes with w's shape, fp16 scale per row)."""
    clip, scale, scale16 = clip_and_scale_rows(w, bits, clip_percentile, clip_floor)
    qmax = qmax_of(bits)
    rows, cols = w.shape
    q = torch.empty((rows, cols), dtype=torch.int8, device=w.device)
    step = _rows_per_block(cols)
    with torch.no_grad():
        for i in range(0, rows, step):
            q[i:i + step] = _quantize_block(w[i:i + step], clip[i:i + step, None], scale[i:i + step, None], qmax)
    return q, scale16


def dequantize_rows(q: Tensor, scale: Tensor) -> Tensor:
    """q * scale per row, in fp32 (exact: an 8-bit integer times an fp16 fits in fp32's mantissa)."""
    return q.float() * scale.float()[:, None]


def quantize_tensor(w: Tensor, bits: int, clip_percentile: float) -> tuple[Tensor, Tensor]:
    """Like quantize_rows with one scale for the whole tensor (any shape): (int8 codes with w's shape, fp16 scalar).
    No clip floor: the challenge floors per-row scales only."""
    qmax = qmax_of(bits)
    flat = w.reshape(-1)
    with torch.no_grad():
        clip = row_quantile(flat.float().abs()[None], clip_percentile)[0] if flat.numel() \
            else torch.zeros((), dtype=torch.float32, device=w.device)
        scale, scale16 = _scales(clip, qmax)
        q = torch.empty(flat.shape, dtype=torch.int8, device=w.device)
        for i in range(0, flat.numel(), BLOCK_ELEMENTS):
            q[i:i + BLOCK_ELEMENTS] = _quantize_block(flat[i:i + BLOCK_ELEMENTS], clip, scale, qmax)
    return q.view(w.shape), scale16


def dequantize_tensor(q: Tensor, scale: Tensor) -> Tensor:
    return q.float() * scale.float()


def fake_quantize_rows(w: Tensor, bits: int, clip_percentile: float, clip_floor: float = 0.0) -> Tensor:
    """dequantize_rows(quantize_rows(w)) in w's dtype, without gradient: the exporter's round trip, bit for bit."""
    q, scale = quantize_rows(w.detach(), bits, clip_percentile, clip_floor)
    return dequantize_rows(q, scale).to(w.dtype)


def prune_smallest(w: Tensor, frac: float) -> Tensor:
    """A copy of w with the round(frac * numel) smallest-|w| entries set to zero; ties go to the lower flat index."""
    if not 0.0 <= frac <= 1.0:
        raise ValueError(f"prune fraction must be in [0, 1], got {frac}")
    count = round(frac * w.numel())
    out = w.detach().clone().contiguous()
    if count:
        order = torch.sort(out.reshape(-1).abs(), stable=True).indices  # stable: equal magnitudes keep index order
        out.view(-1)[order[:count]] = 0
    return out
