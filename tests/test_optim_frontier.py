"""The frontier's optimizer and schedule options, against their formulas: Polar Express and MuonEq-R in Newton-Schulz
and Muon, the banked arithmetic's dtypes, AdamW decay and beta2 per group, the warm-down by fraction and its floor,
the trainer's wiring of all of them, and the checks of the new keys. tests/parity/test_parity_optim.py compares the
same functions with the records' own."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
import torch

from golf.cli import USER_ERRORS, compose, describe
from golf.config import to_golf_config
from golf.data.loader import DistributedTokenLoader
from golf.data.shards import write_shard
from golf.model.gpt import GPT, ModelConfig
from golf.optim.build import OptimConfig, build_optimizers
from golf.optim.config import ARITHMETICS, NS_SCHEDULES, POLAR_EXPRESS_STEPS
from golf.optim.muon import (NS_COEFFICIENTS, POLAR_EXPRESS, Muon, ns_coefficients, row_normalize,
                             zeropower_via_newton_schulz)
from golf.optim.schedule import lr_scale, training_fraction, warmdown_scale
from golf.trainer import Trainer, TrainConfig

VOCAB = 64


def polynomial_path(x: float, schedule) -> float:
    """What Newton-Schulz does to one singular value (already divided by the Frobenius norm)."""
    for a, b, c in schedule:
        x = a * x + b * x ** 3 + c * x ** 5
    return x


def svd_expected(G: torch.Tensor, schedule) -> torch.Tensor:
    U, S, Vh = torch.linalg.svd(G, full_matrices=False)
    scaled = S / (G.norm() + 1e-7)
    values = torch.tensor([polynomial_path(float(s), schedule) for s in scaled], dtype=G.dtype)
    return U @ torch.diag(values) @ Vh


# --- Newton-Schulz's coefficients --------------------------------------------------------------------------------------

def test_the_schedules_config_names_are_the_ones_muon_knows():
    assert len(POLAR_EXPRESS) == POLAR_EXPRESS_STEPS
    for name in NS_SCHEDULES:
        assert len(ns_coefficients(name, 3)) == 3
    assert ns_coefficients("quintic", 4) == (NS_COEFFICIENTS,) * 4
    assert ns_coefficients("polar_express", 5) == POLAR_EXPRESS
    assert ns_coefficients("polar_express", 2) == POLAR_EXPRESS[:2]  # the first steps' tuples, as the record slices
    with pytest.raises(ValueError, match="5 coefficient tuples"):
        ns_coefficients("polar_express", 6)
    with pytest.raises(ValueError, match="quintic"):
        ns_coefficients("cubic", 5)


@pytest.mark.parametrize("shape", [(48, 24), (24, 48)])
@pytest.mark.parametrize("banked", [False, True])
def test_polar_express_acts_on_singular_values_one_tuple_per_step(shape, banked):
    """In float64 the result is U f5(f4(...f1(S/|G|))) V^T with step i's own (a, b, c), in either arithmetic."""
    G = torch.randn(*shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    out = zeropower_via_newton_schulz(G, dtype=torch.float64, coefficients=POLAR_EXPRESS, banked=banked)
    assert out.shape == G.shape
    torch.testing.assert_close(out, svd_expected(G, POLAR_EXPRESS), atol=1e-9, rtol=1e-9)


def test_polar_express_orthogonalizes_closer_than_the_quintic():
    """Its point: five steps send every singular value in [0.001, 1] into a narrow equal-ripple band around 1
    ([0.8589, 1.1411]), where the quintic leaves [0.47, 1.21]; a Gaussian matrix's singular values land there."""
    xs = [0.001 + 0.999 * i / 10_000 for i in range(10_001)]
    pe = [polynomial_path(x, POLAR_EXPRESS) for x in xs]
    quintic = [polynomial_path(x, (NS_COEFFICIENTS,) * 5) for x in xs]
    assert 0.858 < min(pe) and max(pe) < 1.142
    assert min(quintic) < 0.5 and max(quintic) > 1.2
    G = torch.randn(64, 32, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    s = torch.linalg.svdvals(zeropower_via_newton_schulz(G, dtype=torch.float64, coefficients=POLAR_EXPRESS))
    assert 0.858 < s.min() and s.max() < 1.142


def test_the_banked_order_is_the_same_function_but_rounds_differently_in_bf16():
    G = torch.randn(64, 32, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(zeropower_via_newton_schulz(G.double(), dtype=torch.float64, banked=True),
                               zeropower_via_newton_schulz(G.double(), dtype=torch.float64), atol=1e-12, rtol=1e-12)
    assert not torch.equal(zeropower_via_newton_schulz(G, banked=True), zeropower_via_newton_schulz(G))


# --- MuonEq-R ----------------------------------------------------------------------------------------------------------

def test_row_normalize_gives_unit_rows_and_keeps_zero_rows():
    u = torch.randn(5, 7, generator=torch.Generator().manual_seed(3))
    u[2] = 0.0
    out = row_normalize(u)
    norms = out.norm(dim=-1)
    torch.testing.assert_close(norms[[0, 1, 3, 4]], torch.ones(4))
    assert torch.equal(out[2], torch.zeros(7))
    torch.testing.assert_close(out, u / u.norm(dim=-1, keepdim=True).clamp_min(1e-7))
    assert row_normalize(u.bfloat16()).dtype == torch.bfloat16  # divided in the update's dtype


def test_muon_with_row_normalization_is_the_formula():
    """One step from zero momentum: p1 = p0 (1 - lr wd) - lr * scale * NS(rownorm(g + m g)), in fp32."""
    gen = torch.Generator().manual_seed(4)
    p0, g = torch.randn(48, 16, generator=gen), torch.randn(48, 16, generator=gen)
    lr, m, wd = 0.02, 0.9, 0.1
    p = torch.nn.Parameter(p0.clone())
    opt = Muon([p], lr=lr, momentum=m, backend_steps=5, ns_dtype=torch.float32, weight_decay=wd, row_normalize=True,
               ns_coefficients="polar_express")
    p.grad = g.clone()
    opt.step()
    nesterov = g + m * g  # the buffer after one step is g
    update = zeropower_via_newton_schulz(row_normalize(nesterov), dtype=torch.float32, coefficients=POLAR_EXPRESS)
    expected = p0 * (1 - lr * wd) - lr * 3 ** 0.5 * update  # 48 / 16 rows per column: scale sqrt(3)
    torch.testing.assert_close(p.detach(), expected, atol=1e-6, rtol=1e-6)


def test_row_normalization_changes_the_update_of_uneven_rows():
    g = torch.randn(16, 16, generator=torch.Generator().manual_seed(5)) * torch.linspace(0.1, 10, 16)[:, None]
    updates = []
    for flag in (False, True):
        p = torch.nn.Parameter(torch.zeros(16, 16))
        opt = Muon([p], lr=1.0, momentum=0.0, backend_steps=5, ns_dtype=torch.float32, row_normalize=flag)
        p.grad = g.clone()
        opt.step()
        updates.append(p.detach().clone())
    assert (updates[0] - updates[1]).abs().max() > 1e-2


# --- the banked arithmetic ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("arithmetic,dtype", [("baseline", torch.float32), ("banked", torch.bfloat16)])
def test_the_momentum_buffer_dtype_follows_the_arithmetic(arithmetic, dtype):
    p = torch.nn.Parameter(torch.randn(8, 4))
    opt = Muon([p], lr=0.01, momentum=0.9, backend_steps=2, arithmetic=arithmetic)
    p.grad = torch.randn(8, 4)
    opt.step()
    assert opt.state[p]["momentum_buffer"].dtype == dtype and p.dtype == torch.float32


def test_banked_muon_is_the_formula():
    """bf16 momentum and Nesterov sum, NS in the banked order, then p -= lr * scale * update in fp32."""
    gen = torch.Generator().manual_seed(6)
    p0, grads = torch.randn(32, 16, generator=gen), [torch.randn(32, 16, generator=gen) for _ in range(2)]
    lr, m = 0.03, 0.95
    p = torch.nn.Parameter(p0.clone())
    opt = Muon([p], lr=lr, momentum=m, backend_steps=5, arithmetic="banked")
    expected, buf = p0.clone(), torch.zeros(32, 16, dtype=torch.bfloat16)
    for g in grads:
        p.grad = g.clone()
        opt.step()
        g16 = g.bfloat16()
        buf = buf * m + g16  # each product and sum rounded to bf16
        update = zeropower_via_newton_schulz(g16.add(buf, alpha=m), banked=True)  # g + m*buf, rounded once
        expected = expected - lr * 2 ** 0.5 * update.float()
    torch.testing.assert_close(p.detach(), expected, atol=1e-5, rtol=1e-5)


def test_muon_refuses_unknown_settings():
    p = torch.nn.Parameter(torch.randn(4, 4))
    with pytest.raises(ValueError, match="arithmetic"):
        Muon([p], lr=0.1, momentum=0.9, backend_steps=5, arithmetic="fast")
    with pytest.raises(ValueError, match="coefficient tuples"):
        Muon([p], lr=0.1, momentum=0.9, backend_steps=6, ns_coefficients="polar_express")
    assert ARITHMETICS == ("baseline", "banked")


# --- the Adam groups: AdamW decay and beta2 ----------------------------------------------------------------------------

def tiny_model(**model) -> GPT:
    torch.manual_seed(0)
    return GPT(ModelConfig(num_layers=2, model_dim=32, num_heads=2, num_kv_heads=1, **model), VOCAB)


def by_name(optimizers) -> dict[str, torch.optim.Optimizer]:
    return {opt.param_groups[0]["name"]: opt for opt in optimizers}


def test_the_defaults_keep_plain_adam_without_decay():
    opts = by_name(build_optimizers(tiny_model(tie_embeddings=False), OptimConfig()))
    for name in ("embed", "scalar", "head"):
        assert type(opts[name]) is torch.optim.Adam and opts[name].param_groups[0]["weight_decay"] == 0.0
        assert opts[name].param_groups[0]["betas"] == (0.9, 0.95)


def test_decay_and_beta2_per_group():
    cfg = OptimConfig(embed_wd=0.085, scalar_wd=0.02, beta2=0.95, embed_beta2=0.99, head_beta2=0.999)
    opts = by_name(build_optimizers(tiny_model(tie_embeddings=False), cfg))
    assert type(opts["embed"]) is torch.optim.AdamW and opts["embed"].param_groups[0]["weight_decay"] == 0.085
    assert type(opts["scalar"]) is torch.optim.AdamW and opts["scalar"].param_groups[0]["weight_decay"] == 0.02
    assert type(opts["head"]) is torch.optim.Adam and opts["head"].param_groups[0]["weight_decay"] == 0.0
    assert [opts[n].param_groups[0]["betas"] for n in ("embed", "scalar", "head")] == [
        (0.9, 0.99), (0.9, 0.95), (0.9, 0.999)]


def test_adamw_decay_is_decoupled_at_the_current_lr():
    """A zero gradient leaves Adam's step at 0, so what remains is p *= 1 - lr * wd with the warm-down's lr."""
    model = tiny_model()
    opts = by_name(build_optimizers(model, OptimConfig(embed_wd=0.5)))
    emb = model.tok_emb.weight
    before = emb.detach().clone()
    group = opts["embed"].param_groups[0]
    group["lr"] = group["base_lr"] * 0.5
    emb.grad = torch.zeros_like(emb)
    opts["embed"].step()
    torch.testing.assert_close(emb.detach(), before * (1 - group["lr"] * 0.5))


def test_the_muon_keys_reach_muon():
    cfg = OptimConfig(muon_row_normalize=True, muon_ns_coefficients="polar_express", muon_arithmetic="banked")
    muon = by_name(build_optimizers(tiny_model(), cfg))["matrix"]
    group = muon.param_groups[0]
    assert (group["row_normalize"], group["ns_coefficients"], group["arithmetic"]) == (True, "polar_express", "banked")


# --- the schedule ------------------------------------------------------------------------------------------------------

def test_warmdown_by_fraction_of_steps():
    """(1 - f) / frac once f = step / iterations reaches 1 - frac; 1 before; warmdown_steps unused."""
    for step in range(0, 101, 5):
        f = step / 100
        expected = (1 - f) / 0.72 if f >= 1 - 0.72 else 1.0
        assert warmdown_scale(step, 0.0, 100, 9999, 0.0, warmdown_frac=0.72) == pytest.approx(expected)
    assert warmdown_scale(100, 0.0, 100, 0, 0.0, warmdown_frac=0.72) == 0.0
    assert warmdown_scale(10, 0.0, 100, 0, 0.0, warmdown_frac=1.0) == pytest.approx(0.9)  # all of training


def test_warmdown_by_fraction_follows_the_clock_under_a_cap():
    """600 s cap, 20,000 iterations never reached: the fraction is elapsed / cap."""
    assert training_fraction(1000, 300.0, 20_000, 600.0) == 0.5
    assert warmdown_scale(1000, 300.0, 20_000, 0, 600.0, warmdown_frac=0.85) == pytest.approx(0.5 / 0.85)
    assert warmdown_scale(1000, 60.0, 20_000, 0, 600.0, warmdown_frac=0.85) == 1.0  # f = 0.1 < 0.15
    assert warmdown_scale(1000, 660.0, 20_000, 0, 600.0, warmdown_frac=0.85) == 0.0  # over time
    # the iterations run out first: the step fraction binds, so the lr still reaches 0 at the last step
    assert warmdown_scale(100, 1.0, 100, 0, 600.0, warmdown_frac=0.5) == 0.0


def test_min_lr_floors_the_lr_not_the_warmdown():
    assert lr_scale(100, 0.0, 100, 20, 0.0, min_lr=0.1) == 0.1
    assert lr_scale(90, 0.0, 100, 20, 0.0, min_lr=0.1) == pytest.approx(0.5)  # above the floor: unchanged
    assert lr_scale(99, 0.0, 100, 0, 0.0, warmdown_frac=0.85, min_lr=0.1) == 0.1
    assert lr_scale(10, 0.0, 100, 0, 0.0, warmdown_frac=0.85, min_lr=0.1) == 1.0
    assert lr_scale(100, 0.0, 100, 20, 0.0) == 0.0  # the default: to 0


class Recorder:
    """The hooks' view: the warm-down progress after each step, and the lr each step ran with."""

    def __init__(self, optimizers):
        self.optimizers = optimizers
        self.calls: list[tuple[int, float, float]] = []

    def update(self, model, step, warmdown_progress):
        group = self.optimizers[0].param_groups[0]
        self.calls.append((step, warmdown_progress, group["lr"] / group["base_lr"]))


def test_the_trainer_runs_the_warmdown_fraction_and_floor(tmp_path):
    shard = tmp_path / "fineweb_train_000000.bin"
    write_shard(shard, np.random.default_rng(0).integers(0, VOCAB, size=20_000))
    model = tiny_model()
    optim = OptimConfig(muon_ns_dtype="float32", min_lr=0.3)
    optimizers = build_optimizers(model, optim)
    recorder = Recorder(optimizers)
    cfg = TrainConfig(iterations=8, warmdown_steps=1, warmdown_frac=0.5, batch_tokens=128, seq_len=32,
                      max_wallclock_s=0, priming_steps=1)
    trainer = Trainer(model, optimizers, DistributedTokenLoader([shard], 0, 1), cfg, optim, torch.device("cpu"),
                      contextlib.nullcontext, log=lambda _: None, hooks=(recorder,), show_progress=False)
    trainer.fit()
    for step, progress, scale in recorder.calls:
        ran = step - 1  # the step's own index; its lr was set before it
        assert scale == pytest.approx(max(min((1 - ran / 8) / 0.5, 1.0), 0.3))
        assert progress == pytest.approx(1 - min((1 - step / 8) / 0.5, 1.0))  # unfloored: reaches 1
    assert [c[0] for c in recorder.calls] == list(range(1, 9)) and recorder.calls[-1][1] == pytest.approx(1.0)


# --- the checks --------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("override,key", [
    ("optim.min_lr=1.5", "optim.min_lr"),
    ("optim.muon_ns_coefficients=cubic", "optim.muon_ns_coefficients"),
    ("optim.muon_arithmetic=fast", "optim.muon_arithmetic"),
    ("optim.embed_wd=-0.1", "optim.embed_wd"),
    ("optim.scalar_wd=-0.1", "optim.scalar_wd"),
    ("optim.embed_beta2=1.0", "optim.embed_beta2"),
    ("optim.head_beta2=-0.5", "optim.head_beta2"),
    ("train.warmdown_frac=1.5", "train.warmdown_frac"),
    ("train.warmdown_frac=-0.1", "train.warmdown_frac"),
])
def test_bad_values_are_refused_naming_the_key(override, key):
    with pytest.raises(USER_ERRORS) as info:
        to_golf_config(compose([override]))
    message = describe(info.value)
    assert key in message and "Traceback" not in message, message


def test_polar_express_refuses_more_steps_than_it_has_tuples():
    with pytest.raises(USER_ERRORS) as info:
        to_golf_config(compose(["optim.muon_ns_coefficients=polar_express", "optim.muon_backend_steps=6"]))
    assert "optim.muon_backend_steps" in describe(info.value)
    assert to_golf_config(compose(["optim=record_0427", "optim.muon_backend_steps=4"])).optim.muon_backend_steps == 4


def test_the_defaults_are_today_s_behaviour():
    cfg = to_golf_config(compose([]))
    o, t = cfg.optim, cfg.train
    assert (o.muon_ns_coefficients, o.muon_row_normalize, o.muon_arithmetic) == ("quintic", False, "baseline")
    assert (o.embed_wd, o.scalar_wd, o.min_lr, t.warmdown_frac) == (0.0, 0.0, 0.0, 0.0)
    assert (o.embed_beta2, o.scalar_beta2, o.head_beta2) == (None, None, None)


@pytest.mark.parametrize("preset,expected", [
    ("record_0323", dict(matrix_lr=0.025, muon_arithmetic="banked", muon_ns_coefficients="quintic",
                         muon_row_normalize=False, muon_wd=0.04, embed_wd=0.04, scalar_wd=0.04, min_lr=0.0)),
    ("record_0409", dict(matrix_lr=0.022, muon_arithmetic="baseline", muon_ns_coefficients="quintic",
                         muon_row_normalize=True, muon_wd=0.095, embed_wd=0.085, scalar_wd=0.02, min_lr=0.0)),
    ("record_0427", dict(matrix_lr=0.026, muon_arithmetic="banked", muon_ns_coefficients="polar_express",
                         muon_row_normalize=True, muon_wd=0.095, embed_wd=0.085, scalar_wd=0.02, min_lr=0.1,
                         beta2=0.99, muon_momentum=0.97)),
])
def test_the_record_presets_build(preset, expected):
    """Each preset composes, and its optimizers build on a model (the values against the records' own scripts are
    tests/parity/test_parity_optim.py's)."""
    cfg = to_golf_config(compose([f"optim={preset}"]))
    assert {k: getattr(cfg.optim, k) for k in expected} == expected
    opts = by_name(build_optimizers(tiny_model(), cfg.optim))
    assert type(opts["embed"]) is torch.optim.AdamW and isinstance(opts["matrix"], Muon)
