"""golf's LQER (golf/quant/lqer.py) against the T3 record's own functions (2026-04-27: _lqer_pack_asym, _lqer_pack,
gptq_mixed_quantize with LQER_ENABLED=1, dequantize_mixed): on the same weights and the same quantized weights, the
factors' codes and scales are equal, the same tensors are chosen, and the corrected weights agree within 1e-6."""

from __future__ import annotations

import collections
import re
import types

import pytest
import torch

from golf.quant import lqer
from golf.quant.config import LQERConfig

from script_parts import load_parts

pytestmark = pytest.mark.parity

T3 = "2026-04-27"
TOLERANCE = 1e-6  # the bound on the corrected weights; measured: 0 (the same float operations in order)


@pytest.fixture(scope="module")
def t3(record_dir):
    names = ("_lqer_pack", "_lqer_pack_asym", "gptq_mixed_quantize", "gptq_quantize_weight", "dequantize_mixed",
             "_quantize_gate_int8_row")
    return load_parts(record_dir(T3), names, extra={"collections": collections, "re": re, "log": lambda *_: None})


def t3_settings(**lqer_keys) -> types.SimpleNamespace:
    """T3's Hyperparameters as gptq_mixed_quantize reads them (its defaults: LQER rank 4, top 3, asymmetric, group
    64, factor bits 4)."""
    settings = dict(embed_clip_sigmas=14.0, mlp_clip_sigmas=11.5, attn_clip_sigmas=13.0, matrix_clip_sigmas=12.85,
                    embed_bits=7, matrix_bits=6, gated_attn_quant_gate=True, lqer_enabled=True, lqer_rank=4,
                    lqer_top_k=3, lqer_factor_bits=4, lqer_asym_enabled=True, lqer_asym_group=64)
    return types.SimpleNamespace(**{**settings, **lqer_keys})


def golf_lqer(h: types.SimpleNamespace) -> LQERConfig:
    return LQERConfig(enabled=h.lqer_enabled, rank=h.lqer_rank, top_k=h.lqer_top_k, factor_bits=h.lqer_factor_bits,
                      asym=h.lqer_asym_enabled, group=h.lqer_asym_group)


def matrices() -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Weights above T3's 65,536-element passthrough with their Hessians; different scales so that the errors rank
    clearly, and one (300 columns: B has 1,200 values, not a multiple of 64) that takes the symmetric fallback."""
    shapes = {"blocks.0.attn.c_q.weight": ((272, 256), 0.02), "blocks.0.mlp.fc.weight": ((512, 256), 0.05),
              "blocks.0.mlp.proj.weight": ((256, 512), 0.03), "blocks.1.attn.proj.weight": ((256, 300), 0.08),
              "blocks.1.mlp.fc.weight": ((384, 256), 0.01)}
    state, hessians = {}, {}
    for i, (name, ((rows, cols), std)) in enumerate(shapes.items()):
        g = torch.Generator().manual_seed(i)
        x = torch.randn(2 * cols, cols, generator=g) * torch.linspace(0.2, 2.0, cols)
        state[name] = torch.randn(rows, cols, generator=g) * std
        hessians[name] = x.T @ x / cols
    return state, hessians


@pytest.mark.parametrize("shape", [(64, 128), (512, 256), (3, 1024)])
def test_the_factor_codes_and_scales_are_t3s(t3, shape):
    g = torch.Generator().manual_seed(shape[0])
    a, b = torch.randn(shape[0], 4, generator=g) * 0.3, torch.randn(4, shape[1], generator=g) * 0.7
    ours = lqer.pack_asymmetric(a, b, 64)
    q_a, s_a, q_b, s_b = t3._lqer_pack_asym(a, b, 64)
    assert torch.equal(ours.a, q_a) and torch.equal(ours.a_scale, s_a)
    assert torch.equal(ours.b, q_b) and torch.equal(ours.b_scale, s_b)
    ours = lqer.pack_symmetric(a, b, 4)
    q_a, s_a, q_b, s_b = t3._lqer_pack(a, b, 4)
    assert torch.equal(ours.a, q_a) and torch.equal(ours.a_scale, s_a)
    assert torch.equal(ours.b, q_b) and torch.equal(ours.b_scale, s_b)


@pytest.mark.parametrize("keys", [{}, {"lqer_top_k": 5, "lqer_rank": 2}, {"lqer_asym_enabled": False}])
def test_the_corrected_weights_are_t3s(t3, keys):
    state, hessians = matrices()
    h = t3_settings(**keys)
    result, meta = t3.gptq_mixed_quantize(state, hessians, h)
    reference = t3.dequantize_mixed(result, meta, state)
    # golf's LQER on the record's own quantized weights: the error is W - q * scale per row
    dequantized = {name: result[name + ".q"].float() * result[name + ".scale"].float().view(-1, 1) for name in state}
    factors = lqer.correct_largest(((name, state[name].float() - dequantized[name]) for name in state), golf_lqer(h))
    corrected_by_t3 = {name for name, how in meta.items() if "+lqer" in how}
    assert set(factors) == corrected_by_t3 and len(factors) == min(h.lqer_top_k, len(state))
    for name, f in factors.items():
        assert f.asym == meta[name].endswith("+lqer_asym"), name
    worst = 0.0
    for name in state:
        ours = dequantized[name] + factors[name].correction() if name in factors else dequantized[name]
        worst = max(worst, (ours - reference[name]).abs().max().item())
    print(f"T3 LQER {keys or 'defaults'}: corrected {sorted(factors)}; largest difference {worst:.2e}")
    assert worst <= TOLERANCE
    # both of T3's forms are compared: the 300-column matrix is among the chosen and takes the symmetric fallback
    assert {f.asym for f in factors.values()} == ({True, False} if h.lqer_asym_enabled else {False})


def test_a_golf_artifact_with_lqer_decodes_to_t3s_corrected_weights(t3):
    """The whole path: golf's GPTQ export with quant.lqer on T3's settings, decoded, against T3's
    gptq_mixed_quantize + dequantize_mixed on the same weights and Hessians."""
    from dataclasses import asdict

    from golf.model.gpt import GPT, ModelConfig
    from golf.quant.artifact import decode_artifact, export_artifact
    from golf.quant.calibration import collect_hessians, hessian_targets
    from golf.quant.config import ClipSigmas, QuantBits, QuantConfig
    from golf.quant.encoders import ExportContext

    torch.manual_seed(0)
    cfg = ModelConfig(name="parity", num_layers=2, model_dim=288, num_heads=4, num_kv_heads=2)
    model = GPT(cfg, 512)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    quant = QuantConfig(name="record_0427", encoder="gptq", bits=QuantBits(7, 6, 6, 6),
                        sdclip=ClipSigmas(14.0, 13.0, 11.5, 12.85), gates_int8=True, compressor="brotli", level=5,
                        lqer=LQERConfig(enabled=True))
    batches = [torch.randint(0, 512, (2, 64), generator=torch.Generator().manual_seed(i)) for i in range(3)]
    hessians = collect_hessians(model, batches, hessian_targets(model, quant))
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    h = t3_settings()
    result, meta = t3.gptq_mixed_quantize(state, hessians, h)
    reference = t3.dequantize_mixed(result, meta, state)
    loaded = decode_artifact(export_artifact(state, asdict(cfg), 512, quant, ExportContext(hessians)).data)
    corrected = [e["name"] for e in loaded.header["tensors"] if e.get("lqer")]
    assert sorted(corrected) == sorted(n for n, how in meta.items() if "+lqer" in how) and len(corrected) == 3
    worst = max((loaded.state_dict[n] - reference[n]).abs().max().item() for n, how in meta.items()
                if how.startswith("gptq"))
    print(f"golf artifact vs T3 with LQER: corrected {corrected}; largest difference {worst:.2e}")
    assert worst <= TOLERANCE
