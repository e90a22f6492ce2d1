"""Quantization-aware training: the fake quantizer is the exporter's round trip, gradients pass straight through."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from golf.model.gpt import GPT, CastedLinear, ModelConfig
from golf.quant.artifact import decode_artifact, export_artifact
from golf.quant.config import QATConfig, QuantBits, QuantConfig
from golf.quant.qat import (
    FakeQuantizer, attach_qat, detach_qat, qat_active, qat_touches_nothing, set_qat_temperature, soft_round,
    soft_round_alpha,
)

CLIP = 99.99984
VOCAB = 256
TINY = ModelConfig(num_layers=2, model_dim=64, num_heads=4, num_kv_heads=2)


def int_config(bits: int) -> QuantConfig:
    # small passthrough so that the tiny model's matrices are quantized; embed and other tensors stay exact
    return QuantConfig(bits=QuantBits(embed=32, attn=bits, mlp=bits, other=32), passthrough_numel=256)


def trained_looking_model(seed: int = 0) -> GPT:
    torch.manual_seed(seed)
    model = GPT(TINY, VOCAB)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, CastedLinear) and module.zero_init:
                module.weight.normal_(0.0, 0.05)
    return model


@pytest.mark.parametrize("clip_floor", [0.0, 1.0])
@pytest.mark.parametrize("bits", [8, 6, 5])
def test_forward_is_the_exporters_dequantized_weight_bit_for_bit(bits: int, clip_floor: float) -> None:
    w = torch.randn(96, 64, generator=torch.Generator().manual_seed(bits)) * 0.04
    name = "blocks.0.mlp.fc.weight"
    cfg = dataclasses.replace(int_config(bits), clip_floor=clip_floor)
    loaded = decode_artifact(export_artifact({name: w}, {}, VOCAB, cfg).data).state_dict[name]
    assert torch.equal(FakeQuantizer(bits, CLIP, clip_floor=clip_floor)(w), loaded)


def test_gradient_passes_straight_through() -> None:
    w = torch.randn(32, 16, requires_grad=True)
    out = FakeQuantizer(6, CLIP)(w)
    assert out.requires_grad
    out.sum().backward()
    assert torch.equal(w.grad, torch.ones_like(w))


def test_soft_round_tends_to_hard_round_and_is_differentiable() -> None:
    x = torch.linspace(-3.9, 3.9, 157, dtype=torch.float64)
    x = x[(x - torch.floor(x) - 0.5).abs() > 0.04]  # at half-integers s(x) stays halfway for every alpha
    gaps = [float((soft_round(x, alpha) - torch.round(x)).abs().max()) for alpha in (1.0, 5.0, 20.0, 1000.0)]
    assert gaps == sorted(gaps, reverse=True) and gaps[-1] < 1e-6
    assert torch.allclose(soft_round(x, 1e-4), x, atol=1e-6)  # alpha -> 0: the identity
    ints = torch.arange(-3.0, 4.0, dtype=torch.float64)
    assert torch.allclose(soft_round(ints, 3.0), ints)  # continuous across integers
    xg = x.clone().requires_grad_(True)
    soft_round(xg, 4.0).sum().backward()
    alpha = 4.0
    frac = x - torch.floor(x)
    expected = alpha / torch.cosh(alpha * (frac - 0.5)) ** 2 / (2 * math.tanh(alpha / 2))
    assert torch.allclose(xg.grad, expected)


def test_soft_quantizer_approaches_the_hard_one() -> None:
    w = torch.randn(24, 40, generator=torch.Generator().manual_seed(1)) * 0.03
    hard = FakeQuantizer(6, CLIP)(w)
    soft = FakeQuantizer(6, CLIP, soft=True, alpha=1.0)
    w_soft = w.clone().requires_grad_(True)
    errors = []
    for alpha in (1.0, 10.0, 1000.0):
        soft.set_temperature(alpha)
        errors.append((soft(w) - hard).abs())
    means = [float(e.mean()) for e in errors]
    assert means == sorted(means, reverse=True)
    # pointwise convergence, except for the few values that sit within ~10/alpha of a half step
    assert float((errors[-1] < 1e-7).float().mean()) > 0.95
    soft.set_temperature(3.0)
    soft(w_soft).square().sum().backward()
    assert w_soft.grad is not None and torch.isfinite(w_soft.grad).all() and w_soft.grad.abs().sum() > 0
    with pytest.raises(ValueError):
        soft.set_temperature(0.0)


def test_attach_covers_exactly_the_int_encoded_linears() -> None:
    model = trained_looking_model()
    cfg = int_config(6)
    attached = attach_qat(model, cfg)
    expected = {f"blocks.{i}.{part}.weight" for i in range(TINY.num_layers)
                for part in ("attn.c_q", "attn.c_k", "attn.c_v", "attn.proj", "mlp.fc", "mlp.proj")}
    assert set(attached) == expected and len(attached) == len(expected)
    assert qat_active(model)
    modules = dict(model.named_modules())
    assert all(modules[name.removesuffix(".weight")].weight_transform.bits == 6 for name in attached)
    detach_qat(model)
    assert not qat_active(model)
    assert attach_qat(model, QuantConfig()) == [] and not qat_active(model)  # fp32 everywhere


def test_attach_sees_the_passthrough_rule_and_untied_heads() -> None:
    model = GPT(dataclasses.replace(TINY, tie_embeddings=False), VOCAB)
    cfg = QuantConfig(bits=QuantBits(embed=8, attn=6, mlp=6, other=32))  # default passthrough 65,536
    assert attach_qat(model, cfg) == []  # every matrix of this tiny model is small enough to stay fp16
    cfg.passthrough_numel = 64 * 64
    attached = attach_qat(model, cfg)
    assert "lm_head.weight" in attached and "blocks.0.mlp.fc.weight" in attached
    assert "blocks.0.attn.c_k.weight" not in attached  # 32 x 64 = 2,048 elements


def test_qat_forward_equals_the_reloaded_export() -> None:
    model = trained_looking_model(seed=3)
    cfg = int_config(5)
    tokens = torch.randint(0, VOCAB, (2, 33), generator=torch.Generator().manual_seed(0))
    loaded = decode_artifact(export_artifact(model.state_dict(), dataclasses.asdict(TINY), VOCAB, cfg).data)
    reloaded = GPT(TINY, VOCAB)
    reloaded.load_state_dict(loaded.state_dict)
    attach_qat(model, cfg)
    with torch.no_grad():
        assert torch.equal(model(tokens), reloaded(tokens))
        detach_qat(model)
        assert not torch.equal(model(tokens), reloaded(tokens))  # the quantization does change the logits


def test_temperature_schedule() -> None:
    qat = QATConfig(soft_round=True, temperature_start=1.0, temperature_end=16.0)
    assert soft_round_alpha(0.0, qat) == pytest.approx(1.0)
    assert soft_round_alpha(0.5, qat) == pytest.approx(4.0)  # geometric: the midpoint is sqrt(1 * 16)
    assert soft_round_alpha(1.0, qat) == pytest.approx(16.0)
    assert soft_round_alpha(2.0, qat) == pytest.approx(16.0) and soft_round_alpha(-1.0, qat) == pytest.approx(1.0)
    model = GPT(TINY, VOCAB)
    attach_qat(model, dataclasses.replace(int_config(6), qat=qat))
    set_qat_temperature(model, 7.0)
    transforms = [m.weight_transform for m in model.modules() if isinstance(m, CastedLinear)]
    assert all(t.soft and t.alpha == 7.0 for t in transforms)


def test_qat_that_would_touch_nothing_is_warned_about_with_a_setting_that_fixes_it() -> None:
    model = GPT(TINY, VOCAB)
    on = QuantConfig(bits=QuantBits(embed=8, attn=6, mlp=6, other=32), qat=QATConfig(enabled=True))
    warning = qat_touches_nothing(model, on)  # default passthrough 65,536: every matrix of this model stays float
    assert warning is not None and "0 matrices" in warning and "quant.passthrough_numel" in warning
    suggested = int(warning.rsplit("(e.g. ", 1)[1].split(")")[0].replace(",", ""))
    assert attach_qat(model, dataclasses.replace(on, passthrough_numel=suggested))  # the suggestion does something
    assert qat_touches_nothing(model, dataclasses.replace(on, passthrough_numel=suggested)) is None
    assert qat_touches_nothing(model, dataclasses.replace(on, qat=QATConfig(enabled=False))) is None
