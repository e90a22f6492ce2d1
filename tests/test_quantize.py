"""The integer quantizer and the per-tensor encoding plan: error bounds, adversarial tensors, categories, pruning."""

from __future__ import annotations

import pytest
import torch

from golf.model.gpt import GPT, ModelConfig
from golf.quant.config import QuantBits, QuantConfig
from golf.quant.quantize import (
    FP16_MIN_POSITIVE, row_quantile, category_of, clip_and_scale_rows, dequantize_rows, dequantize_tensor,
    fake_quantize_rows, plan_encoding, prune_smallest, quantize_rows, quantize_tensor,
)

CLIP = 99.99984  # the challenge's percentile
BASELINE = ModelConfig(name="baseline9l", num_layers=9, model_dim=512, num_heads=8, num_kv_heads=4, mlp_mult=2)
# Quantizing with the fp32 scale puts clamp(w) within scale/2 of q * scale; dequantizing with the stored fp16 scale
# adds |q| * |scale - scale16| <= qmax * |scale - scale16|. The only slack is fp32's rounding of w/scale before
# round(): a relative 2**-24 of |w|/scale <= qmax + 1, i.e. under 1e-5 of a scale step.
SLACK = 1e-5


def assert_within_half_step(w: torch.Tensor, bits: int, percentile: float = CLIP) -> None:
    q, scale16 = quantize_rows(w, bits, percentile)
    clip, scale, stored = clip_and_scale_rows(w, bits, percentile)
    qmax = 2 ** (bits - 1) - 1
    assert q.dtype == torch.int8 and scale16.dtype == torch.float16 and torch.equal(stored, scale16)
    assert q.shape == w.shape and scale16.shape == (w.shape[0],)
    assert int(q.abs().max()) <= qmax
    clipped = torch.maximum(torch.minimum(w.double(), clip.double()[:, None]), -clip.double()[:, None])
    err = (clipped - dequantize_rows(q, scale16).double()).abs()
    step = scale.double()[:, None]
    storage = qmax * (scale.double() - scale16.double()).abs()[:, None]
    assert torch.all(err <= step * (0.5 + SLACK) + storage), float((err / step).max())


@pytest.mark.parametrize("bits", [8, 6, 5, 4, 2])
@pytest.mark.parametrize("std", [0.02, 1.0])
def test_error_within_half_a_step(bits: int, std: float) -> None:
    torch.manual_seed(bits)
    assert_within_half_step(torch.randn(96, 300) * std, bits)
    assert_within_half_step(torch.rand(40, 77) * std, bits, percentile=99.0)  # a clip that bites


def test_quantile_matches_torch_quantile_bit_for_bit() -> None:
    torch.manual_seed(0)
    a = torch.randn(50, 513).abs()
    for percentile in (CLIP, 99.9, 50.0, 12.3, 100.0):
        assert torch.equal(row_quantile(a, percentile), torch.quantile(a, percentile / 100, dim=1))


def test_the_stored_scale_is_the_fp32_scale_rounded_to_the_nearest_fp16() -> None:
    torch.manual_seed(1)
    w = torch.randn(64, 100)
    clip, scale, scale16 = clip_and_scale_rows(w, 6, CLIP)
    assert torch.equal(scale, clip / 31) and torch.equal(scale16, (clip / 31).half())


def test_zero_rows_and_tensors_give_zeros() -> None:
    w = torch.randn(4, 10)
    w[1] = 0
    q, scale = quantize_rows(w, 8, CLIP)
    assert torch.all(q[1] == 0) and float(scale[1]) == FP16_MIN_POSITIVE
    out = dequantize_rows(*quantize_rows(torch.zeros(3, 5), 6, CLIP))
    assert torch.equal(out, torch.zeros(3, 5))
    q, scale = quantize_tensor(torch.zeros(7), 5, CLIP)
    assert torch.equal(dequantize_tensor(q, scale), torch.zeros(7))


def test_constant_rows_are_exact_up_to_the_scale() -> None:
    w = torch.tensor([[0.3] * 9, [-2.0] * 9, [1e-2] * 9])
    q, scale = quantize_rows(w, 6, CLIP)
    assert torch.all(q.abs() == 31)  # the constant is the clip, so it maps to +-qmax
    assert torch.allclose(dequantize_rows(q, scale), w, rtol=2 ** -10, atol=0)
    # below qmax * 2**-14 the fp16 scale is subnormal (steps of 2**-24): coarser relative precision, same bound
    assert_within_half_step(torch.full((2, 9), 1e-4), 6)


def test_huge_outlier_is_clipped_away_from_the_other_entries() -> None:
    torch.manual_seed(2)
    w = torch.randn(4, 1_000_000) * 0.02  # long rows: the 99.99984th percentile leaves out the top ~1.6 entries
    w[0, 123] = 1e4
    q, scale = quantize_rows(w, 8, CLIP)
    assert float(scale[0]) < 1e-3  # set by the body of the row, not by the outlier
    assert int(q[0, 123]) == 127  # the outlier saturates
    assert_within_half_step(w, 8)  # every entry within half a step of its clipped value
    clipped = (dequantize_rows(q, scale) - w).abs() > scale.float()[:, None]
    assert int(clipped.sum()) <= 8  # and only a handful are clipped at all


def test_huge_outlier_in_a_short_row_sets_the_scale() -> None:
    w = torch.full((1, 512), 0.01)
    w[0, 0] = 1e4  # with 512 entries the percentile interpolates next to the max: the outlier is kept
    q, scale = quantize_rows(w, 8, CLIP)
    assert int(q[0, 0]) == 127
    assert_within_half_step(w, 8)


@pytest.mark.parametrize("shape", [(1, 1), (1, 7), (7, 1), (0, 5), (5, 0), (0, 0)])
def test_tiny_and_empty_matrices(shape: tuple[int, int]) -> None:
    w = torch.randn(shape)
    q, scale = quantize_rows(w, 5, CLIP)
    assert q.shape == shape and scale.shape == (shape[0],)
    if w.numel():
        assert_within_half_step(w, 5)
    if shape[1] == 1:  # a row of length 1 is its own clip: exact up to the fp16 rounding of the scale
        assert torch.allclose(dequantize_rows(q, scale), w, rtol=2 ** -10, atol=0)


@pytest.mark.parametrize("shape", [(), (1,), (0,), (5,), (3, 4, 5)])
def test_per_tensor_quantization(shape: tuple[int, ...]) -> None:
    torch.manual_seed(3)
    w = torch.randn(shape)
    q, scale = quantize_tensor(w, 6, CLIP)
    assert q.shape == w.shape and scale.shape == () and q.dtype == torch.int8
    out = dequantize_tensor(q, scale)
    assert out.shape == w.shape
    if w.numel():
        clip = torch.quantile(w.abs().flatten(), CLIP / 100)
        assert float((w.clamp(-clip, clip) - out).abs().max()) <= float(scale) * (0.5 + SLACK)


def test_non_contiguous_input_matches_contiguous() -> None:
    torch.manual_seed(4)
    base = torch.randn(300, 200)
    view = base.t()
    assert not view.is_contiguous()
    q1, s1 = quantize_rows(view, 6, CLIP)
    q2, s2 = quantize_rows(view.contiguous(), 6, CLIP)
    assert torch.equal(q1, q2) and torch.equal(s1, s2)
    assert torch.equal(quantize_tensor(base[:, ::3], 8, CLIP)[0], quantize_tensor(base[:, ::3].clone(), 8, CLIP)[0])


def test_above_torch_quantile_size_limit() -> None:
    # torch.quantile refuses more than 2**24 elements; the quantizer works in row blocks and selects, never sorts
    w = torch.randn(4100, 4100) * 0.02
    q, scale = quantize_rows(w, 6, CLIP)
    assert torch.equal(q[:100], quantize_rows(w[:100], 6, CLIP)[0])
    flat = torch.rand(17_000_000)  # uniform: the clip (about 0.9999984) cuts at most 1.6e-6 off the largest
    q, scale16 = quantize_tensor(flat, 8, CLIP)
    scale = float(flat.max()) / 127  # the clip is within 2e-6 of the max
    storage = 127 * abs(scale - float(scale16))  # the fp16 rounding of the scale, times the largest code
    assert float((dequantize_tensor(q, scale16) - flat).abs().max()) <= scale * (0.5 + SLACK) + storage + 2e-6


def test_deterministic() -> None:
    w = torch.randn(64, 64, generator=torch.Generator().manual_seed(5))
    a, b = quantize_rows(w, 5, CLIP), quantize_rows(w.clone(), 5, CLIP)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_fake_quantize_is_the_round_trip_in_the_input_dtype() -> None:
    w = torch.randn(32, 48, generator=torch.Generator().manual_seed(6), requires_grad=True)
    fq = fake_quantize_rows(w, 6, CLIP)
    assert fq.dtype == w.dtype and not fq.requires_grad
    assert torch.equal(fq, dequantize_rows(*quantize_rows(w.detach(), 6, CLIP)))
    assert fake_quantize_rows(w.detach().bfloat16(), 8, CLIP).dtype == torch.bfloat16


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="2..8 bits"):
        quantize_rows(torch.ones(2, 2), 9, CLIP)
    with pytest.raises(ValueError, match="clip_percentile"):
        quantize_rows(torch.ones(2, 2), 8, 0.0)
    with pytest.raises(ValueError, match="2-D"):
        quantize_rows(torch.ones(2), 8, CLIP)


@pytest.mark.parametrize("frac", [0.0, 0.1, 0.25, 0.5, 1.0])
def test_prune_fraction_is_exact(frac: float) -> None:
    w = torch.randn(40, 25, generator=torch.Generator().manual_seed(7))
    pruned = prune_smallest(w, frac)
    changed = pruned != w
    assert int(changed.sum()) == round(frac * w.numel())
    assert torch.all(pruned[changed] == 0)
    if 0 < frac < 1:
        assert float(w[changed].abs().max()) <= float(w[~changed].abs().min())


def test_prune_ties_are_deterministic() -> None:
    w = torch.tensor([[1.0, -1.0, 1.0], [1.0, 2.0, -1.0]])
    assert torch.equal(prune_smallest(w, 0.5), torch.tensor([[0.0, 0.0, 0.0], [1.0, 2.0, -1.0]]))
    assert torch.equal(w, torch.tensor([[1.0, -1.0, 1.0], [1.0, 2.0, -1.0]]))  # the input is untouched


@pytest.mark.parametrize("name, category", [
    ("tok_emb.weight", "embed"), ("lm_head.weight", "embed"),
    ("blocks.0.attn.c_q.weight", "attn"), ("blocks.11.attn.c_k.weight", "attn"), ("blocks.3.attn.c_v.weight", "attn"),
    ("blocks.3.attn.proj.weight", "attn"), ("blocks.2.mlp.fc.weight", "mlp"), ("blocks.2.mlp.proj.weight", "mlp"),
    ("blocks.0.attn.q_gain", "other"), ("blocks.0.attn_scale", "other"), ("blocks.0.mlp_scale", "other"),
    ("blocks.0.resid_mix", "other"), ("skip_weights", "other"), ("bigram.weight", "other"),
])
def test_categories(name: str, category: str) -> None:
    assert category_of(name) == category


def int8_challenge_config() -> QuantConfig:
    return QuantConfig(name="int8_zlib", bits=QuantBits(embed=8, attn=8, mlp=8, other=32))


def test_plan_for_every_baseline_parameter() -> None:
    with torch.device("meta"):
        model = GPT(BASELINE, 1024)
    cfg = int8_challenge_config()
    plans = {name: plan_encoding(name, p, cfg) for name, p in model.named_parameters()}
    for name, plan in plans.items():
        if name.endswith(("q_gain", "attn_scale", "mlp_scale", "resid_mix")) or name == "skip_weights":
            assert plan.kind == "fp32", name  # control tensors
        else:  # every matrix of the baseline has more than 65,536 elements
            assert (plan.kind, plan.bits, plan.per_row) == ("int", 8, True), name
    six = QuantConfig(bits=QuantBits(embed=16, attn=6, mlp=5, other=32))
    assert plan_encoding("tok_emb.weight", model.tok_emb.weight, six).kind == "fp16"
    assert plan_encoding("blocks.0.attn.c_k.weight", model.blocks[0].attn.c_k.weight, six).bits == 6
    assert plan_encoding("blocks.0.mlp.fc.weight", model.blocks[0].mlp.fc.weight, six).bits == 5


def test_plan_small_and_special_tensors() -> None:
    cfg = int8_challenge_config()
    small = torch.zeros(128, 128)  # 16,384 <= 65,536: kept in float
    assert plan_encoding("blocks.0.attn.c_q.weight", small, cfg).kind == "fp16"
    assert plan_encoding("blocks.0.resid_mix", small, cfg).kind == "fp32"  # control: fp32
    assert plan_encoding("blocks.0.attn.c_q.weight", small, QuantConfig()).kind == "fp32"  # a 32-bit category
    big_vector = torch.zeros(70_000)
    plan = plan_encoding("bigram.scale", big_vector, QuantConfig(bits=QuantBits(other=6)))
    assert (plan.kind, plan.per_row) == ("int", False)
    assert plan_encoding("step", torch.tensor(3), cfg).kind == "fp32"  # non-float: exact in fp32
    assert plan_encoding("blocks.0.attn.c_q.weight", small, QuantConfig(passthrough_numel=0,
                                                                        bits=QuantBits(attn=16))).kind == "fp16"


def test_clip_floor_gives_small_rows_the_challenges_fixed_grid() -> None:
    torch.manual_seed(5)
    w = torch.randn(6, 4096) * 0.02
    w[3:] *= 100  # rows 3..5 have clips above 1: the floor does not touch them
    q, scale = quantize_rows(w, 8, CLIP, clip_floor=1.0)
    q0, scale0 = quantize_rows(w, 8, CLIP, clip_floor=0.0)
    assert torch.all(scale[:3] == torch.tensor(1 / 127).half())
    assert torch.equal(scale[3:], scale0[3:]) and torch.equal(q[3:], q0[3:])
    assert int(q[:3].abs().max()) < 20  # |w| ~ 0.08 at most, on steps of 1/127
    # the challenge's arithmetic, written out: fp32 scale max(clip / 127, 1 / 127), codes from it, scale stored fp16
    clip = torch.quantile(w.abs(), CLIP / 100, dim=1)
    ref_scale = (clip / 127.0).clamp_min(1.0 / 127.0)
    ref_q = torch.clamp(torch.round(torch.clamp(w, -clip[:, None], clip[:, None]) / ref_scale[:, None]), -127, 127)
    assert torch.equal(q, ref_q.to(torch.int8)) and torch.equal(scale, ref_scale.half())
    assert torch.equal(dequantize_rows(q, scale), ref_q * ref_scale.half().float()[:, None])
