"""Muon (Newton-Schulz, the update rule, the distributed share-out), the optimizer split, and the schedules."""

from __future__ import annotations

import datetime
import math
import socket
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import golf.optim.muon as muon_module
from golf.model.gpt import GPT, ModelConfig
from golf.model.names import CONTROL_PARAM_PATTERNS
from golf.optim.build import OptimConfig, build_optimizers, set_lr_scale, set_muon_momentum
from golf.optim.muon import NS_COEFFICIENTS, Muon, zeropower_via_newton_schulz
from golf.optim.schedule import lr_scale, muon_momentum


def quintic_5(x: float, steps: int = 5) -> float:
    """What Newton-Schulz does to one singular value (already divided by the Frobenius norm)."""
    a, b, c = NS_COEFFICIENTS
    for _ in range(steps):
        x = a * x + b * x ** 3 + c * x ** 5
    return x


# --- Newton-Schulz ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(64, 32), (32, 64)])
def test_newton_schulz_acts_on_singular_values_only(shape: tuple[int, int]) -> None:
    """In float64 the result is exactly U f(S / (|G|_F + eps)) V^T, f = the quintic applied 5 times."""
    G = torch.randn(*shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    U, S, Vh = torch.linalg.svd(G, full_matrices=False)
    scaled = S / (G.norm() + 1e-7)
    expected = U @ torch.diag(torch.tensor([quintic_5(float(s)) for s in scaled], dtype=torch.float64)) @ Vh
    out = zeropower_via_newton_schulz(G, dtype=torch.float64)
    assert out.shape == G.shape and out.dtype == torch.float64
    torch.testing.assert_close(out, expected, atol=1e-10, rtol=1e-10)


def test_newton_schulz_is_near_orthogonal() -> None:
    """A random 64x32 Gaussian has singular values about 8 +- sqrt(32), so divided by |G|_F = sqrt(64*32) the
    smallest is about 0.05. Five quintic steps send every value in [0.005, 1] into [0.68, 1.21] (see quintic_5), so:
    fp32 within [0.6, 1.3]; bf16 (8-bit mantissa, rounding in every product) within the looser [0.5, 1.5]."""
    G = torch.randn(64, 32, generator=torch.Generator().manual_seed(1))
    assert min(quintic_5(x / 1000) for x in range(5, 1001)) > 0.68 and max(quintic_5(x / 1000) for x in range(1001)) < 1.21
    s32 = torch.linalg.svdvals(zeropower_via_newton_schulz(G, dtype=torch.float32))
    assert 0.6 < s32.min() and s32.max() < 1.3
    out16 = zeropower_via_newton_schulz(G)  # default: bf16
    assert out16.dtype == torch.bfloat16
    s16 = torch.linalg.svdvals(out16.float())
    assert 0.5 < s16.min() and s16.max() < 1.5


def test_newton_schulz_transposes_tall_matrices() -> None:
    G = torch.randn(64, 32, generator=torch.Generator().manual_seed(2))
    tall = zeropower_via_newton_schulz(G, dtype=torch.float32)
    wide = zeropower_via_newton_schulz(G.T, dtype=torch.float32)
    assert tall.shape == (64, 32) and wide.shape == (32, 64)
    torch.testing.assert_close(tall, wide.T, atol=1e-6, rtol=1e-6)


def test_zero_gradient_gives_zero_update() -> None:
    assert torch.count_nonzero(zeropower_via_newton_schulz(torch.zeros(8, 4))) == 0


# --- the Muon update -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(4, 2), (2, 4)])
@pytest.mark.parametrize("nesterov", [True, False])
def test_muon_two_steps_by_hand(shape: tuple[int, int], nesterov: bool) -> None:
    """Gradients 3*E00 then 2*E11: every update is a*E00 + b*E11, whose singular values are |a| and |b| along
    separate directions, so Newton-Schulz maps a -> f(a / F), b -> f(b / F) with F = sqrt(a^2 + b^2) + eps."""
    lr, m = 0.1, 0.9
    scale = max(1.0, shape[0] / shape[1]) ** 0.5
    p0 = torch.randn(*shape, generator=torch.Generator().manual_seed(3))
    p = torch.nn.Parameter(p0.clone())
    opt = Muon([p], lr=lr, momentum=m, backend_steps=5, nesterov=nesterov, ns_dtype=torch.float32)

    def ns_of(a: float, b: float) -> torch.Tensor:
        F = math.hypot(a, b) + 1e-7
        out = torch.zeros(shape)
        out[0, 0], out[1, 1] = (quintic_5(a / F) if a else 0.0), (quintic_5(b / F) if b else 0.0)
        return out

    p.grad = torch.zeros(shape)
    p.grad[0, 0] = 3.0  # 3*E00
    opt.step()
    first = (1 + m) * 3.0 if nesterov else 3.0  # buf = g; nesterov: g + m*buf
    expected = p0 - lr * scale * ns_of(first, 0.0)
    torch.testing.assert_close(p.detach(), expected, atol=1e-6, rtol=1e-6)

    p.grad = torch.zeros(shape)
    p.grad[1, 1] = 2.0  # 2*E11; buf = m*3*E00 + 2*E11
    opt.step()
    a, b = (m * m * 3.0, (1 + m) * 2.0) if nesterov else (m * 3.0, 2.0)
    expected = expected - lr * scale * ns_of(a, b)
    torch.testing.assert_close(p.detach(), expected, atol=1e-6, rtol=1e-6)


def test_muon_weight_decay_alone() -> None:
    """A zero gradient orthogonalizes to a zero update (no NaN), so the step only decays: p = p0 * (1 - lr * wd), with
    the group's current lr (as set_lr_scale leaves it during the warm-down)."""
    wd = 0.5
    p0 = torch.randn(6, 4, generator=torch.Generator().manual_seed(5))
    p = torch.nn.Parameter(p0.clone())
    opt = Muon([{"params": [p], "lr": 0.1, "base_lr": 0.1}], lr=0.1, momentum=0.9, backend_steps=5, weight_decay=wd)
    set_lr_scale([opt], 0.5)
    p.grad = torch.zeros_like(p)
    opt.step()
    assert torch.isfinite(p).all()
    torch.testing.assert_close(p.detach(), p0 * (1 - 0.05 * wd), atol=0, rtol=0)


def test_muon_weight_decay_with_an_update_by_hand() -> None:
    """Gradient 3*E00 on a 4x2 matrix: the update is f(3 / (3 + eps)) * E00 scaled by sqrt(2); decay comes first."""
    lr, m, wd = 0.1, 0.9, 0.2
    p0 = torch.randn(4, 2, generator=torch.Generator().manual_seed(6))
    p = torch.nn.Parameter(p0.clone())
    opt = Muon([p], lr=lr, momentum=m, backend_steps=5, ns_dtype=torch.float32, weight_decay=wd)
    p.grad = torch.zeros(4, 2)
    p.grad[0, 0] = 3.0
    opt.step()
    first = (1 + m) * 3.0  # nesterov: g + m * buf with buf = g
    update = torch.zeros(4, 2)
    update[0, 0] = quintic_5(first / (first + 1e-7)) * 2 ** 0.5
    torch.testing.assert_close(p.detach(), p0 * (1 - lr * wd) - lr * update, atol=1e-6, rtol=1e-6)


def test_muon_rejects_negative_weight_decay() -> None:
    with pytest.raises(ValueError, match="weight_decay"):
        Muon([torch.nn.Parameter(torch.zeros(4, 4))], lr=0.1, momentum=0.9, backend_steps=5, weight_decay=-0.1)


def test_muon_rejects_vectors() -> None:
    with pytest.raises(ValueError, match="matrices"):
        Muon([torch.nn.Parameter(torch.zeros(4))], lr=0.1, momentum=0.9, backend_steps=5)


# --- distributed share-out (2 processes, gloo) -----------------------------------------------------------------------

SHAPES = [(16, 8), (8, 16), (12, 12), (24, 8), (8, 8)]


def _muon_problem() -> tuple[list[torch.nn.Parameter], list[list[torch.Tensor]]]:
    gen = torch.Generator().manual_seed(4)
    params = [torch.nn.Parameter(torch.randn(*s, generator=gen)) for s in SHAPES]
    grads = [[torch.randn(*s, generator=gen) for s in SHAPES] for _ in range(2)]  # two steps
    return params, grads


def _run_muon(params: list[torch.nn.Parameter], grads: list[list[torch.Tensor]]) -> None:
    # two groups, so the share-out index must run across groups
    opt = Muon([{"params": params[:2], "lr": 0.05}, {"params": params[2:]}], lr=0.02, momentum=0.9, backend_steps=5,
               ns_dtype=torch.float32)
    for step_grads in grads:
        for p, g in zip(params, step_grads):
            p.grad = g.clone()
        opt.step()


def _distributed_worker(rank: int, world_size: int, port: int, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world_size,
                            timeout=datetime.timedelta(seconds=60))
    try:
        calls = []
        original = muon_module.zeropower_via_newton_schulz
        muon_module.zeropower_via_newton_schulz = lambda G, **kw: (calls.append(tuple(G.shape)), original(G, **kw))[1]
        params, grads = _muon_problem()
        _run_muon(params, grads)
        torch.save({"params": [p.detach() for p in params], "calls": calls}, Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_distributed_muon_matches_single_process(tmp_path: Path) -> None:
    """Each rank orthogonalizes its share (parameters i % 2 == rank) and one all_reduce adds the rest as zeros, so
    the result should equal the single-process step bit for bit; 1e-6 leaves room for BLAS choosing another
    blocking in a process with a different thread count."""
    params, grads = _muon_problem()
    _run_muon(params, grads)
    mp.spawn(_distributed_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    results = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    for result in results:
        for got, want in zip(result["params"], params):
            torch.testing.assert_close(got, want.detach(), atol=1e-6, rtol=1e-6)
    # each step, rank 0 orthogonalized parameters 0, 2, 4 and rank 1 parameters 1, 3
    assert results[0]["calls"] == [SHAPES[0], SHAPES[2], SHAPES[4]] * 2
    assert results[1]["calls"] == [SHAPES[1], SHAPES[3]] * 2


# --- the optimizer split ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("tie", [True, False])
def test_every_parameter_in_exactly_one_group(tie: bool) -> None:
    model = GPT(ModelConfig(num_layers=3, tie_embeddings=tie), 64)
    cfg = OptimConfig()
    optimizers = build_optimizers(model, cfg)
    placed: dict[int, tuple[str, float, torch.optim.Optimizer]] = {}
    for opt in optimizers:
        for group in opt.param_groups:
            assert group["base_lr"] == group["lr"]
            for p in group["params"]:
                assert id(p) not in placed, "a parameter in two groups"
                placed[id(p)] = (group["name"], group["lr"], opt)
    names = dict(model.named_parameters())
    assert set(placed) == {id(p) for p in names.values()}

    def role(name: str) -> str:
        return placed[id(names[name])][0]

    for name, p in names.items():
        group, lr, opt = placed[id(p)]
        if name == "tok_emb.weight":
            assert group == "embed" and lr == (cfg.tied_embed_lr if tie else cfg.embed_lr)
        elif name == "lm_head.weight":
            assert group == "head" and lr == cfg.head_lr and not tie
        elif name.startswith("blocks.") and p.ndim == 2 and not any(pat in name for pat in CONTROL_PARAM_PATTERNS):
            assert group == "matrix" and lr == cfg.matrix_lr and isinstance(opt, Muon)
        else:
            assert group == "scalar" and lr == cfg.scalar_lr and isinstance(opt, torch.optim.Adam)
    assert role("blocks.0.resid_mix") == "scalar" and role("skip_weights") == "scalar"  # 2-D, yet control tensors
    assert sum(1 for g, _, _ in placed.values() if g == "matrix") == 6 * 3
    for opt in optimizers:
        if isinstance(opt, torch.optim.Adam):
            group = opt.param_groups[0]
            assert group["betas"] == (cfg.beta1, cfg.beta2) and group["eps"] == cfg.adam_eps
            assert group["weight_decay"] == 0.0 and not group["fused"]
        else:
            assert opt.param_groups[0]["ns_dtype"] == torch.bfloat16
            assert opt.param_groups[0]["momentum"] == cfg.muon_momentum


def test_lr_scale_and_momentum_setters() -> None:
    optimizers = build_optimizers(GPT(ModelConfig(num_layers=2), 32), OptimConfig())
    set_lr_scale(optimizers, 0.25)
    set_muon_momentum(optimizers, 0.5)
    for opt in optimizers:
        for group in opt.param_groups:
            assert group["lr"] == pytest.approx(0.25 * group["base_lr"])
            if isinstance(opt, Muon):
                assert group["momentum"] == 0.5


def test_optim_config_defaults_keep_the_baseline() -> None:
    """No Muon weight decay, no EMA, no SWA: the baseline's optimizers and its last weights exported."""
    cfg = OptimConfig()
    assert cfg.muon_wd == 0.0 and cfg.ema.decay == 0.0 and not cfg.swa.enabled
    muons = [opt for opt in build_optimizers(GPT(ModelConfig(num_layers=2), 32), cfg) if isinstance(opt, Muon)]
    assert [g["weight_decay"] for opt in muons for g in opt.param_groups] == [0.0]


def test_muon_wd_reaches_the_muon_groups() -> None:
    optimizers = build_optimizers(GPT(ModelConfig(num_layers=2), 32), OptimConfig(muon_wd=0.04))
    for opt in optimizers:
        for group in opt.param_groups:
            assert group["weight_decay"] == (0.04 if isinstance(opt, Muon) else 0.0)


def test_unknown_ns_dtype_raises() -> None:
    with pytest.raises(ValueError, match="muon_ns_dtype"):
        build_optimizers(GPT(ModelConfig(num_layers=2), 32), OptimConfig(muon_ns_dtype="float16"))


# --- schedules -------------------------------------------------------------------------------------------------------

def test_lr_scale_by_steps() -> None:
    assert lr_scale(0, 0.0, 100, 20, 0.0) == 1.0
    assert lr_scale(80, 0.0, 100, 20, 0.0) == 1.0  # warm-down starts here
    assert lr_scale(90, 0.0, 100, 20, 0.0) == pytest.approx(0.5)
    assert lr_scale(100, 0.0, 100, 20, 0.0) == 0.0
    assert lr_scale(0, 0.0, 10, 20, 0.0) == pytest.approx(0.5)  # fewer iterations than warm-down steps
    assert lr_scale(50, 0.0, 100, 0, 0.0) == 1.0  # no warm-down


def test_lr_scale_wall_clock_binds() -> None:
    # 1000 steps in 595 s: 0.595 s a step, a 100-step warm-down lasts 59.5 s, 5 s remain
    assert lr_scale(1000, 595.0, 100_000, 100, 600.0) == pytest.approx(5.0 / 59.5)
    assert lr_scale(1000, 500.0, 100_000, 100, 600.0) == 1.0  # 100 s left > 50 s of warm-down
    assert lr_scale(1000, 650.0, 100_000, 100, 600.0) == 0.0  # over time
    assert lr_scale(0, 0.0, 100_000, 100, 600.0) == 1.0  # no step time measured yet


def test_lr_scale_iterations_bind_under_a_clock() -> None:
    # 950 fast steps in 10 s: the clock is far from its warm-down, the iterations are halfway through theirs
    assert lr_scale(950, 10.0, 1000, 100, 600.0) == pytest.approx(0.5)


def test_muon_momentum_warmup() -> None:
    assert muon_momentum(0, 0.85, 0.95, 500) == pytest.approx(0.85)
    assert muon_momentum(250, 0.85, 0.95, 500) == pytest.approx(0.90)
    assert muon_momentum(500, 0.85, 0.95, 500) == pytest.approx(0.95)
    assert muon_momentum(10_000, 0.85, 0.95, 500) == pytest.approx(0.95)
    assert muon_momentum(0, 0.85, 0.95, 0) == 0.95


# --- end to end ------------------------------------------------------------------------------------------------------

def test_tiny_model_learns_a_repeating_pattern() -> None:
    """Sequences cut from a repeated random 16-token cycle: each token determines the next, so the loss should fall
    from ln 64 = 4.16 to well under 1 within 30 steps (it reaches about 0.001 here)."""
    torch.manual_seed(0)
    vocab, period, batch, seq = 64, 16, 8, 64
    cycle = torch.randperm(vocab)[:period]
    model = GPT(ModelConfig(), vocab)
    optimizers = build_optimizers(model, OptimConfig())
    losses = []
    for _ in range(30):
        starts = torch.randint(0, period, (batch, 1))
        tokens = cycle[(starts + torch.arange(seq + 1)) % period]
        loss = model(tokens[:, :-1], tokens[:, 1:])
        loss.backward()
        for opt in optimizers:
            opt.step()
            opt.zero_grad(set_to_none=True)
        losses.append(loss.item())
    assert losses[0] > 3.5
    assert max(losses[-3:]) < 1.0
