"""Export settings: how each tensor category is stored, how the payload is compressed, and QAT; and their checks.

No torch here: the top-level config imports this to check quant.* (quant_problems). `quant=` presets in
conf/quant/ are only YAML over these keys; quant.name is their label.
"""

import math
from dataclasses import dataclass, field
from typing import Any

from golf.quant import compressors

# golf/quant/encoders.py registers one encoder under each name (a test checks they agree): rtn = round to nearest
# after a percentile clip (the challenge's); sdclip = round to nearest on the scale k * std(row) / qmax; gptq_lite =
# per-row search over clip percentiles by reconstruction error; gptq = full-Hessian GPTQ on SDClip scales (needs
# calibration Hessians); absmax = round to nearest on the scale max|row| / qmax (the records' int8 gates)
ENCODERS = ("rtn", "sdclip", "gptq_lite", "gptq", "absmax")
HESSIAN_ENCODERS = ("gptq",)  # the export needs per-tensor Hessians (golf/quant/calibration.py) for these
# bits per category: 2..8 quantize to integers (per row for matrices); 16 keeps fp16; 32 keeps fp32
CALIBRATION_SOURCES = ("train", "generated")
ALLOWED_BITS = (2, 3, 4, 5, 6, 7, 8, 16, 32)
CATEGORIES = ("embed", "attn", "mlp", "other")
INT_FACTOR_BITS = range(2, 9)  # LQER's factor codes are int8 values


@dataclass
class QuantBits:
    embed: int = 32  # token embedding (tied head), untied head
    attn: int = 32  # c_q, c_k, c_v, proj of every block
    mlp: int = 32  # fc, proj of every block
    other: int = 32  # every other tensor (control tensors, skip weights)


@dataclass
class ClipSigmas:
    """SDClip's k per category: a row's scale is k * std(row) / qmax (the T2 record: 12.85 for matrices, 20 for the
    int8 embedding; T3: MLP 11.5, attention 13.0, other 12.85, int7 embedding 14.0)."""
    embed: float = 20.0
    attn: float = 12.85
    mlp: float = 12.85
    other: float = 12.85


@dataclass
class GPTQConfig:
    block_size: int = 128  # columns per block of the lazy-batch update
    damp: float = 0.01  # added to diag(H): this fraction of its mean
    calibration_batches: int = 64  # training batches whose activations make the Hessians (T2: 64, T3: 16)
    # Hessian-aware SDClip: row i's scale times 1 + lambda * (importance_i - 1), importance = mean_j |W_ij| diag(H)_j,
    # both normalized to mean 1 (the 2026-04-06 entry: 0.175); 0 = plain SDClip
    hessian_clip_lambda: float = 0.0
    # where the calibration inputs come from: "train" = training batches (the rules count reading them as training:
    # the job stops training reserve_s early so calibration ends inside train.max_wallclock_s); "generated" = sequences
    # the trained model samples itself (no data is read, so the clock does not apply)
    calibration: str = "train"
    reserve_s: float = 0.0  # seconds of train.max_wallclock_s kept for calibration (T2: 12; T3: 4, rerun 8)
    temperature: float = 1.0  # calibration=generated: sampling temperature (0 = greedy)


@dataclass
class LQERConfig:
    """LQER (golf/quant/lqer.py): the top_k quantized matrices with the largest error get a rank-`rank` correction
    A @ B of that error, stored as integers (T3: rank 4, top 3, asymmetric int2 A / int4 B in groups of 64)."""
    enabled: bool = False
    rank: int = 4  # rank of the correction (at most the matrix's smaller side)
    top_k: int = 3  # how many matrices get one: those with the largest Frobenius norm of W - dequant(codes)
    asym: bool = True  # A on one scale (a_bits), B on one scale per `group` values (b_bits); else per row, factor_bits
    group: int = 64  # values of the flattened B per scale; B's element count must divide by it, else symmetric
    a_bits: int = 2  # asymmetric A: codes in [-2**(a_bits-1), 2**(a_bits-1) - 1]
    b_bits: int = 4  # asymmetric B: the same with b_bits
    factor_bits: int = 4  # symmetric factors: codes in [-(2**(bits-1) - 1), 2**(bits-1) - 1], one scale per row


@dataclass
class QATConfig:
    enabled: bool = False
    start: float = 0.5  # switch on once this fraction of the warm-down has passed (the research entries: 0.5)
    soft_round: bool = False  # differentiable soft rounding instead of straight-through hard rounding
    temperature_start: float = 1.0  # soft-round sharpness alpha at switch-on ...
    temperature_end: float = 20.0  # ... annealed to this at the end of training (alpha -> inf is hard rounding)


@dataclass
class QuantConfig:
    name: str = "none"  # a label (the preset's name): it selects nothing
    encoder: str = "rtn"  # how matrices become int codes (golf/quant/encoders.py): rtn = round to nearest
    bits: QuantBits = field(default_factory=QuantBits)
    clip_percentile: float = 99.99984  # per-row clip of |w| before scaling (the challenge's int8 export)
    clip_floor: float = 1.0  # per-row scale >= clip_floor / qmax, as the challenge's clamp_min(1/qmax); 0 = own grid
    prune_frac: float = 0.0  # zero this fraction of the smallest-magnitude weights of each quantized tensor
    passthrough_numel: int = 65536  # tensors with at most this many elements are kept in float (fp16; fp32 for control)
    compressor: str = "zlib"
    level: int = 9
    sdclip: ClipSigmas = field(default_factory=ClipSigmas)  # encoders sdclip and gptq
    gptq: GPTQConfig = field(default_factory=GPTQConfig)
    # encoder gptq_lite: the clip percentiles of |w| each row tries (100 = its max); the row keeps the least error
    lite_percentiles: list[float] = field(default_factory=lambda: [99.9, 99.95, 99.99, 99.999, 100.0])
    # small 2-D gate tensors (names with "gate", at most passthrough_numel elements) as int8 per row (absmax scale)
    # instead of float passthrough (the T3 record's attention gates)
    gates_int8: bool = False
    qat: QATConfig = field(default_factory=QATConfig)
    lqer: LQERConfig = field(default_factory=LQERConfig)


def quant_problems(quant: QuantConfig) -> list[tuple[str, Any, str]]:
    """(key, value, what is allowed) for every quant.* value that cannot run; empty when all is well."""
    problems: list[tuple[str, Any, str]] = []

    def need(ok: bool, key: str, value: Any, allowed: str) -> None:
        if not ok:
            problems.append((f"quant.{key}", value, allowed))

    need(quant.encoder in ENCODERS, "encoder", quant.encoder, "one of " + ", ".join(ENCODERS))
    for category in CATEGORIES:
        bits = getattr(quant.bits, category)
        need(bits in ALLOWED_BITS, f"bits.{category}", bits, "2..8 (integers, per row), 16 (fp16) or 32 (fp32)")
    need(math.isfinite(quant.clip_percentile) and 0.0 < quant.clip_percentile <= 100.0, "clip_percentile",
         quant.clip_percentile, "a number in (0.0, 100.0]")
    need(math.isfinite(quant.clip_floor) and quant.clip_floor >= 0.0, "clip_floor", quant.clip_floor,
         "a number >= 0.0")
    need(0.0 <= quant.prune_frac < 1.0, "prune_frac", quant.prune_frac, "a fraction in [0, 1)")
    need(quant.passthrough_numel >= 0, "passthrough_numel", quant.passthrough_numel, "a number >= 0")
    if quant.compressor not in compressors.names():
        need(False, "compressor", quant.compressor, "one of " + ", ".join(compressors.names()))
    else:
        low, high = compressors.get(quant.compressor).levels
        need(low <= quant.level <= high, "level", quant.level,
             f"an integer in [{low}, {high}] for quant.compressor={quant.compressor}")
    for category in CATEGORIES:
        k = getattr(quant.sdclip, category)
        need(math.isfinite(k) and k > 0, f"sdclip.{category}", k, "a number > 0 (standard deviations of the row)")
    gptq = quant.gptq
    need(gptq.block_size >= 1, "gptq.block_size", gptq.block_size, "an integer >= 1 (128 in the records)")
    need(math.isfinite(gptq.damp) and gptq.damp > 0, "gptq.damp", gptq.damp, "a number > 0 (0.01 in the records)")
    need(gptq.calibration_batches >= 1, "gptq.calibration_batches", gptq.calibration_batches, "an integer >= 1")
    need(math.isfinite(gptq.hessian_clip_lambda) and 0.0 <= gptq.hessian_clip_lambda < 1.0,
         "gptq.hessian_clip_lambda", gptq.hessian_clip_lambda, "a number in [0, 1) (0 = plain SDClip)")
    need(gptq.calibration in CALIBRATION_SOURCES, "gptq.calibration", gptq.calibration,
         "one of " + ", ".join(CALIBRATION_SOURCES))
    need(math.isfinite(gptq.reserve_s) and gptq.reserve_s >= 0.0, "gptq.reserve_s", gptq.reserve_s,
         "a number of seconds >= 0")
    need(math.isfinite(gptq.temperature) and gptq.temperature >= 0.0, "gptq.temperature", gptq.temperature,
         "a number >= 0 (0 = greedy)")
    lite = list(quant.lite_percentiles)
    need(bool(lite) and all(math.isfinite(p) and 0.0 < p <= 100.0 for p in lite), "lite_percentiles", lite,
         "a non-empty list of percentiles in (0, 100]")
    qat = quant.qat
    need(0.0 <= qat.start <= 1.0, "qat.start", qat.start, "a fraction of the warm-down in [0, 1]")
    need(0 < qat.temperature_start <= qat.temperature_end, "qat.temperature_start", qat.temperature_start,
         f"a number > 0 and <= quant.qat.temperature_end={qat.temperature_end} (sharpness grows)")
    lqer = quant.lqer
    need(lqer.rank >= 1, "lqer.rank", lqer.rank, "an integer >= 1 (4 in the T3 record)")
    need(lqer.top_k >= 1, "lqer.top_k", lqer.top_k, "an integer >= 1 (3 in the T3 record)")
    need(lqer.group >= 1, "lqer.group", lqer.group, "an integer >= 1 (64 in the T3 record)")
    for key in ("a_bits", "b_bits", "factor_bits"):
        need(getattr(lqer, key) in INT_FACTOR_BITS, f"lqer.{key}", getattr(lqer, key), "an integer in 2..8")
    return problems
