"""GPTQ, SDClip, GPTQ-lite and the int8 gates: their arithmetic, the export's use of calibration Hessians, and the
calibration collector's forward hooks."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from golf.model.gpt import GPT, ModelConfig
from golf.quant import encoders
from golf.quant.artifact import ArtifactError, decode_artifact, export_artifact
from golf.quant.calibration import collect_hessians, generated_batches, hessian_targets
from golf.quant.config import GPTQConfig, QuantBits, QuantConfig, quant_problems
from golf.quant.encoders import ExportContext
from golf.quant.gptq import gptq_codes, prepare_hessian
from golf.quant.gptq_lite import gptq_lite_rows
from golf.quant.quantize import plan_encoding, quantize_rows
from golf.quant.sdclip import round_to_scales, sdclip_clip, stored_scales

from testkit import one_torch_thread

one_thread = pytest.fixture(autouse=True)(one_torch_thread)

MLP = "blocks.0.mlp.fc.weight"


def correlated_inputs(n: int, cols: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    mix = torch.randn(cols, cols, generator=g) / cols ** 0.5 + torch.eye(cols)
    return torch.randn(n, cols, generator=g) @ mix * torch.linspace(0.2, 3.0, cols)


def weight(rows: int, cols: int, seed: int = 1) -> torch.Tensor:
    return torch.randn(rows, cols, generator=torch.Generator().manual_seed(seed)) * 0.05


def gptq_cfg(**kw) -> QuantConfig:
    settings = dict(encoder="gptq", bits=QuantBits(embed=8, attn=6, mlp=6, other=6), compressor="none",
                    passthrough_numel=0)
    return QuantConfig(**{**settings, **kw})


def test_sdclip_scales_are_k_std_over_qmax_in_fp16_and_codes_round_on_them():
    w = weight(40, 300)
    q, s = encoders.get("sdclip").quantize_rows(MLP, w, 6, QuantConfig(), ExportContext())
    expected = (12.85 * w.std(dim=1) / 31).to(torch.float16)
    assert torch.equal(s, expected)
    assert torch.equal(q, torch.clamp(torch.round(w / s.float()[:, None]), -31, 31).to(torch.int8))
    wide = encoders.get("sdclip").quantize_rows(MLP, w, 6, dataclasses.replace(
        QuantConfig(), sdclip=dataclasses.replace(QuantConfig().sdclip, mlp=20.0)), ExportContext())[1]
    assert (wide.float() > s.float()).all()  # a larger k is a wider grid


def test_gptq_with_an_identity_hessian_is_rounding_on_the_sdclip_scales():
    w = weight(24, 200)
    s = stored_scales(sdclip_clip(w, 12.85), 31)
    codes = gptq_codes(w, prepare_hessian(torch.eye(200), 0.01), s, 31, block_size=64)
    assert torch.equal(codes, round_to_scales(w, s, 31))


def test_gptq_moves_the_layer_output_less_than_rounding_on_the_same_scales():
    x, w = correlated_inputs(2048, 256), weight(64, 256)
    h = x.T @ x
    s = stored_scales(sdclip_clip(w, 12.85), 31)
    gptq = gptq_codes(w, prepare_hessian(h, 0.01), s, 31).float() * s.float()[:, None]
    rtn = round_to_scales(w, s, 31).float() * s.float()[:, None]
    out_err = lambda wq: (x @ (w - wq).T).square().sum().item()  # noqa: E731
    assert out_err(gptq) < 0.8 * out_err(rtn)


def test_gptq_zeroes_dead_inputs_and_keeps_codes_in_range():
    x, w = correlated_inputs(512, 128), weight(32, 128)
    x[:, [3, 77]] = 0  # inputs no calibration token ever reached
    s = stored_scales(sdclip_clip(w, 4.0), 7)  # a narrow int4 grid: many codes saturate
    codes = gptq_codes(w, prepare_hessian(x.T @ x, 0.01), s, 7, block_size=32)
    assert (codes[:, [3, 77]] == 0).all() and codes.abs().max() <= 7 and codes.dtype == torch.int8
    with pytest.raises(ValueError, match="needs \\(128, 128\\)"):
        gptq_codes(w, prepare_hessian(torch.eye(64), 0.01), s, 7)


def test_hessian_aware_sdclip_widens_rows_that_meet_high_energy_inputs():
    x, w = correlated_inputs(1024, 128), weight(16, 128)
    h = x.T @ x
    w[0, torch.argsort(torch.diag(h), descending=True)[:16]] *= 8  # row 0: its large weights on the busiest inputs
    cfg = gptq_cfg()
    plain = encoders.get("gptq").quantize_rows(MLP, w, 6, cfg, ExportContext({MLP: h}))[1]
    aware_cfg = dataclasses.replace(cfg, gptq=GPTQConfig(hessian_clip_lambda=0.3))
    aware = encoders.get("gptq").quantize_rows(MLP, w, 6, aware_cfg, ExportContext({MLP: h}))[1]
    ratio = aware.float() / plain.float()
    assert ratio[0] > 1.1 and (ratio[1:] < 1.0).all()


def test_gptq_lite_keeps_per_row_the_least_error_of_its_percentiles():
    w = weight(50, 400)
    w[::7, 0] = 2.0  # outliers: some rows want a tight clip, others the maximum
    percentiles = [99.0, 99.9, 100.0]
    q, s = gptq_lite_rows(w, 6, percentiles, clip_floor=0.0)
    err = (w - q.float() * s.float()[:, None]).square().sum(dim=1)
    for p in percentiles:
        qp, sp = gptq_lite_rows(w, 6, [p], clip_floor=0.0)
        assert (err <= (w - qp.float() * sp.float()[:, None]).square().sum(dim=1)).all()
    single = gptq_lite_rows(w, 6, [99.0], 0.0)
    assert not torch.equal(single[1], s)  # the search chose something else for some row


def test_int8_gates_replace_float_passthrough_only_when_asked():
    gate = torch.randn(4, 96) * 0.3
    assert plan_encoding("skip_gates", gate, QuantConfig()).kind == "fp32"
    cfg = QuantConfig(gates_int8=True, compressor="none")
    assert plan_encoding("skip_gates", gate, cfg).encoder == "absmax"
    assert plan_encoding("blocks.0.mlp.gate.weight", torch.randn(8, 8), cfg).kind != "int"  # SwiGLU's matrix
    loaded = decode_artifact(export_artifact({"skip_gates": gate}, {}, 64, cfg).data)
    entry = loaded.header["tensors"][0]
    assert (entry["encoding"], entry["bits"], entry["per_row"]) == ("int", 8, True)
    step = (gate.abs().amax(dim=1) / 127)[:, None]
    assert ((loaded.state_dict["skip_gates"] - gate).abs() <= step * 0.5 + 1e-3 * step).all()


def test_gptq_export_without_hessians_is_refused_naming_the_key():
    with pytest.raises(ArtifactError, match="quant.encoder=gptq"):
        export_artifact({MLP: weight(8, 8)}, {}, 64, gptq_cfg())


def test_gptq_export_uses_the_given_hessians_and_notes_tensors_without_one():
    x = correlated_inputs(512, 96)
    state = {MLP: weight(48, 96), "bigram.table.weight": weight(40, 96, seed=5)}
    ctx = ExportContext({MLP: x.T @ x})
    result = export_artifact(state, {}, 64, gptq_cfg(), ctx)
    loaded = decode_artifact(result.data)
    s = stored_scales(sdclip_clip(state[MLP], 12.85), 31)
    expected = gptq_codes(state[MLP], prepare_hessian(x.T @ x, 0.01), s, 31).float() * s.float()[:, None]
    assert torch.equal(loaded.state_dict[MLP], expected)
    assert len(result.notes) == 1 and "bigram.table.weight" in result.notes[0]
    table = state["bigram.table.weight"]
    s8 = stored_scales(sdclip_clip(table, 20.0), 127)
    assert torch.equal(loaded.state_dict["bigram.table.weight"], round_to_scales(table, s8, 127).float() * s8[:, None])


def test_new_quant_keys_are_checked():
    bad = dataclasses.replace(QuantConfig(), lite_percentiles=[], gptq=GPTQConfig(block_size=0, damp=0.0),
                              sdclip=dataclasses.replace(QuantConfig().sdclip, attn=-1.0))
    keys = {key for key, _, _ in quant_problems(bad)}
    assert {"quant.lite_percentiles", "quant.gptq.block_size", "quant.gptq.damp", "quant.sdclip.attn"} <= keys
    assert quant_problems(gptq_cfg(compressor="brotli", level=11)) == []


# --- calibration --------------------------------------------------------------------------------------------------

def tiny_model(tie: bool = True, seed: int = 0) -> GPT:
    torch.manual_seed(seed)
    model = GPT(ModelConfig(name="micro", num_layers=2, model_dim=32, num_heads=2, num_kv_heads=1,
                            tie_embeddings=tie), 96)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return model


def batches(n: int, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(0, 96, (2, 16), generator=g) for _ in range(n)]


def test_collected_hessians_are_the_mean_gram_of_each_linear_input():
    model = tiny_model()
    data = batches(3)
    captured = []
    handle = model.blocks[1].mlp.proj.register_forward_hook(
        lambda _m, i, _o: captured.append(i[0].reshape(-1, i[0].size(-1))))
    hessians = collect_hessians(model, data)
    handle.remove()
    x = torch.cat(captured)
    assert torch.allclose(hessians["blocks.1.mlp.proj.weight"], x.T @ x / 3, rtol=1e-5, atol=1e-5)
    assert "tok_emb.weight" in hessians and hessians["tok_emb.weight"].shape == (32, 32)
    assert model.training  # the mode is restored


def test_the_heads_hessian_is_the_gram_of_the_final_norms_output():
    # an untied head holding c * I on its first rows makes logits[..., :dim] = softcap * tanh(c x / softcap), from
    # which the head's input x is recovered independently of the collector's hooks
    model, dim, c = tiny_model(tie=False), 32, 0.5
    with torch.no_grad():
        model.lm_head.weight.zero_()
        model.lm_head.weight[:dim] = c * torch.eye(dim)
    data = batches(2)
    softcap = model.cfg.logit_softcap
    with torch.no_grad():
        xs = [(softcap * torch.atanh(model(ids)[..., :dim] / softcap) / c).reshape(-1, dim) for ids in data]
    x = torch.cat(xs).double()
    h = collect_hessians(model, data)["lm_head.weight"].double()
    assert torch.allclose(h, x.T @ x / 2, rtol=1e-4, atol=1e-4)
    tied = collect_hessians(tiny_model(tie=True), data)
    assert "tok_emb.weight" in tied and "lm_head.weight" not in tied


def test_hessian_targets_are_the_row_encoded_matrices():
    model = tiny_model()
    names = hessian_targets(model, dataclasses.replace(gptq_cfg(), passthrough_numel=2000, gates_int8=True))
    assert "blocks.0.mlp.fc.weight" in names and "tok_emb.weight" in names
    assert not any("scale" in n or "resid_mix" in n for n in names)


def test_generated_calibration_starts_at_bos_and_repeats_with_its_seed():
    model = tiny_model()
    a = generated_batches(model, 2, batch_size=2, seq_len=8, temperature=1.0, bos_id=1, seed=3)
    b = generated_batches(model, 2, batch_size=2, seq_len=8, temperature=1.0, bos_id=1, seed=3)
    assert [t.shape for t in a] == [(2, 8), (2, 8)] and all((t[:, 0] == 1).all() for t in a)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert collect_hessians(model, a)["blocks.0.attn.c_q.weight"].shape == (32, 32)


def test_rtn_is_unchanged_by_the_new_encoders():
    w = weight(30, 300)
    q, s = encoders.get("rtn").quantize_rows(MLP, w, 6, QuantConfig(), ExportContext())
    q2, s2 = quantize_rows(w, 6, QuantConfig().clip_percentile, QuantConfig().clip_floor)
    assert torch.equal(q, q2) and torch.equal(s, s2)
