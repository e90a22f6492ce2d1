"""Export settings: how each tensor category is stored, how the payload is compressed, and QAT."""

from dataclasses import dataclass, field

QUANT_SCHEMES = ("none", "int8_zlib", "int6_zstd", "int5_zstd", "mixed")
COMPRESSORS = ("zlib", "zstd", "lzma", "none")
# bits per category: 2..8 quantize to integers (per row for matrices); 16 keeps fp16; 32 keeps fp32
ALLOWED_BITS = (2, 3, 4, 5, 6, 7, 8, 16, 32)
CATEGORIES = ("embed", "attn", "mlp", "other")


@dataclass
class QuantBits:
    embed: int = 32  # token embedding (tied head), untied head
    attn: int = 32  # c_q, c_k, c_v, proj of every block
    mlp: int = 32  # fc, proj of every block
    other: int = 32  # every other tensor (control tensors, skip weights)


@dataclass
class QATConfig:
    enabled: bool = False
    start: float = 0.5  # switch on once this fraction of the warm-down has passed (the research entries: 0.5)
    soft_round: bool = False  # differentiable soft rounding instead of straight-through hard rounding
    temperature_start: float = 1.0  # soft-round sharpness alpha at switch-on ...
    temperature_end: float = 20.0  # ... annealed to this at the end of training (alpha -> inf is hard rounding)


@dataclass
class QuantConfig:
    name: str = "none"
    bits: QuantBits = field(default_factory=QuantBits)
    clip_percentile: float = 99.99984  # per-row clip of |w| before scaling (the challenge's int8 export)
    clip_floor: float = 1.0  # per-row scale >= clip_floor / qmax, as the challenge's clamp_min(1/qmax); 0 = own grid
    prune_frac: float = 0.0  # zero this fraction of the smallest-magnitude weights of each quantized tensor
    passthrough_numel: int = 65536  # tensors with at most this many elements are kept in float (fp16; fp32 for control)
    compressor: str = "zlib"
    level: int = 9
    qat: QATConfig = field(default_factory=QATConfig)
