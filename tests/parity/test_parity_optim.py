"""The frontier's optimizers and schedules against the records' own functions: T1 (2026-03-23), T2 (2026-04-09) and
T3 (2026-04-27). Newton-Schulz and Muon's update give bitwise equal results for equal inputs (matrices and parameter
banks, fp32 and bf16, several steps with the lr and momentum changing between them); the lr multiplier equals the
scripts' lr_mul over the whole run; Polar Express's tuples are T3's; and golf's optim presets hold the values each
script runs with (its Hyperparameters under its README's run command), group by group as its Optimizers builds them.

The scripts' definitions are taken out one by one (script_parts.py): T3 needs triton as a whole, T2 needs Python
3.12 to parse, and the schedules are closures inside their training functions.
"""

from __future__ import annotations

import functools
import types
import uuid
from pathlib import Path

import pytest
import torch
from torch import nn

from golf.cli import compose
from golf.config import to_golf_config
from golf.model.gpt import GPT, ModelConfig
from golf.optim.build import build_optimizers
from golf.optim.muon import POLAR_EXPRESS, Muon, ns_coefficients, zeropower_via_newton_schulz
from golf.optim.schedule import lr_scale
from script_parts import load_nested, load_parts, run_command_env

pytestmark = pytest.mark.parity

T1, T2, T3 = "2026-03-23", "2026-04-09", "2026-04-27"
PRESETS = {T1: "record_0323", T2: "record_0409", T3: "record_0427"}
RUN_COMMAND = {T1: "## Run Command", T2: "## Reproduction", T3: "## Reproducing"}
MUON_PARTS = {T1: ["zeropower_via_newtonschulz5", "Muon"], T2: ["zeropower_via_newtonschulz5", "Muon"],
              T3: ["_PE_COEFFS", "zeropower_via_newtonschulz5", "Muon"]}


@functools.lru_cache(maxsize=None)
def golf_optim(date: str):
    return to_golf_config(compose([f"optim={PRESETS[date]}"])).optim


def golf_muon(params, date: str, lr: float, momentum: float, weight_decay: float) -> Muon:
    """golf's Muon with the record's preset's Muon keys."""
    o = golf_optim(date)
    return Muon(params, lr=lr, momentum=momentum, backend_steps=o.muon_backend_steps, weight_decay=weight_decay,
                row_normalize=o.muon_row_normalize, ns_coefficients=o.muon_ns_coefficients,
                arithmetic=o.muon_arithmetic)


def script_muon(m: types.SimpleNamespace, params, date: str, lr: float, momentum: float, weight_decay: float):
    """The script's Muon as its optimizer split builds it (row normalization as its Hyperparameters say)."""
    extra = {} if date == T1 else {"row_normalize": script_hparams(date).muon_row_normalize}
    return m.Muon(params, lr=lr, momentum=momentum, backend_steps=5, weight_decay=weight_decay, **extra)


_HPARAMS: dict[str, object] = {}


def script_hparams(date: str):
    return _HPARAMS[date]


@pytest.fixture(scope="module", autouse=True)
def hparams(record_dir):
    """Each record's Hyperparameters under its README's run command."""
    for date in (T1, T2, T3):
        env = run_command_env(record_dir(date), RUN_COMMAND[date])
        _HPARAMS[date] = load_parts(record_dir(date), ["Hyperparameters"], env=env, extra={"uuid": uuid}).Hyperparameters()
    yield _HPARAMS


# --- Newton-Schulz and Muon --------------------------------------------------------------------------------------------

def test_polar_express_tuples_are_t3s(record_dir):
    assert load_parts(record_dir(T3), ["_PE_COEFFS"])._PE_COEFFS == POLAR_EXPRESS
    assert ns_coefficients("polar_express", script_hparams(T3).muon_backend_steps) == POLAR_EXPRESS


@pytest.mark.parametrize("date", [T1, T2, T3])
@pytest.mark.parametrize("shape", [(96, 32), (32, 96), (48, 48)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_newton_schulz_equals_the_scripts(record_dir, date, shape, dtype):
    m = load_parts(record_dir(date), MUON_PARTS[date])
    o = golf_optim(date)
    G = torch.randn(*shape, generator=torch.Generator().manual_seed(sum(shape))).to(dtype)
    ours = zeropower_via_newton_schulz(G, coefficients=ns_coefficients(o.muon_ns_coefficients, o.muon_backend_steps),
                                       banked=o.muon_arithmetic == "banked")
    theirs = m.zeropower_via_newtonschulz5(G, steps=o.muon_backend_steps)
    assert ours.dtype == theirs.dtype and torch.equal(ours, theirs)


def run_both(script_opt, golf_opt, script_params, golf_params, grads_per_step, to_golf) -> list[list[tuple]]:
    """Steps both optimizers with the same gradients, the lr decaying and the momentum rising between steps as the
    schedules do; after every step, the pairs (the script's weight in golf's layout, golf's weight)."""
    steps = []
    for step, grads in enumerate(grads_per_step):
        for opt in (script_opt, golf_opt):
            for group in opt.param_groups:
                group["lr"] = 0.02 * (1 - step / 8)
                group["momentum"] = 0.92 + 0.01 * step
        for p, g in zip(script_params, grads):
            p.grad = g.clone()
        for p, g in zip(golf_params, to_golf(grads)):
            p.grad = g.clone()
        script_opt.step()
        golf_opt.step()
        theirs = to_golf([p.detach().clone() for p in script_params])
        steps.append(list(zip(theirs, [p.detach().clone() for p in golf_params])))
    return steps


def unequal(steps: list[list[tuple]]) -> list[str]:
    """Where the two optimizers' weights differ (empty when they are equal bit for bit after every step)."""
    return [f"step {i}, matrix {j}: max difference {(a - b).abs().max().item()}"
            for i, pairs in enumerate(steps) for j, (a, b) in enumerate(pairs) if not torch.equal(a, b)]


@pytest.mark.parametrize("date", [T1, T2, T3])
def test_muon_updates_equal_the_scripts(record_dir, date):
    """Tall, wide and square matrices, 4 steps, with the record's decay: equal weights bit for bit."""
    m = load_parts(record_dir(date), MUON_PARTS[date])
    wd = script_hparams(date).muon_wd
    gen = torch.Generator().manual_seed(7)
    shapes = [(96, 32), (32, 96), (48, 48)]
    init = [torch.randn(*s, generator=gen) for s in shapes]
    theirs = [nn.Parameter(t.clone()) for t in init]
    ours = [nn.Parameter(t.clone()) for t in init]
    grads = [[torch.randn(*s, generator=gen) for s in shapes] for _ in range(4)]
    steps = run_both(script_muon(m, theirs, date, 0.02, 0.92, wd), golf_muon(ours, date, 0.02, 0.92, wd), theirs,
                     ours, grads, lambda ts: list(ts))
    assert len(steps) == 4 and unequal(steps) == []
    assert all(not torch.equal(p, start) for p, start in zip(ours, init))  # the weights did move


@pytest.mark.parametrize("date", [T1, T3])
def test_muon_on_a_parameter_bank_equals_golfs_per_matrix_muon(record_dir, date):
    """T1 and T3 keep a layer's matrices in one 3-D bank and orthogonalize the bank as a batch; golf's matrices are
    separate. Same weights, bit for bit."""
    m = load_parts(record_dir(date), MUON_PARTS[date])
    wd = script_hparams(date).muon_wd
    gen = torch.Generator().manual_seed(8)
    bank = torch.randn(4, 64, 16, generator=gen)
    theirs = [nn.Parameter(bank.clone())]
    ours = [nn.Parameter(bank[i].clone()) for i in range(4)]
    grads = [[torch.randn(4, 64, 16, generator=gen)] for _ in range(3)]
    steps = run_both(script_muon(m, theirs, date, 0.02, 0.92, wd), golf_muon(ours, date, 0.02, 0.92, wd), theirs,
                     ours, grads, lambda ts: list(ts[0].unbind(0)))
    assert len(steps) == 3 and all(len(pairs) == 4 for pairs in steps) and unequal(steps) == []
    assert all(not torch.equal(p, bank[i]) for i, p in enumerate(ours))  # the weights did move


def test_the_arithmetic_matters(record_dir):
    """Guard against a vacuous pass: T3's Muon with golf's baseline arithmetic is not T3's."""
    m = load_parts(record_dir(T3), MUON_PARTS[T3])
    G = torch.randn(48, 32, generator=torch.Generator().manual_seed(9))
    theirs = m.zeropower_via_newtonschulz5(G, steps=5)
    assert not torch.equal(zeropower_via_newton_schulz(G, coefficients=POLAR_EXPRESS), theirs)
    assert not torch.equal(zeropower_via_newton_schulz(G, banked=True), theirs)


# --- the schedule ------------------------------------------------------------------------------------------------------

def fraction_lr_mul(record: Path, outer: str, warmdown_frac: float, min_lr: float, iterations: int,
                    max_wallclock_s: float):
    """T2's and T3's lr multiplier: lr_mul(training_frac(step, elapsed_ms))."""
    h = types.SimpleNamespace(iterations=iterations, warmdown_frac=warmdown_frac, min_lr=min_lr)
    cap_ms = 1e3 * max_wallclock_s if max_wallclock_s > 0 else None
    f = load_nested(record, outer, ["training_frac", "lr_mul"], {"h": h, "max_wallclock_ms": cap_ms})
    return lambda step, elapsed_s: f.lr_mul(f.training_frac(step, 1e3 * elapsed_s))


@pytest.mark.parametrize("date", [T2, T3])
@pytest.mark.parametrize("capped", [False, True])
def test_the_warmdown_fraction_and_floor_equal_the_scripts(record_dir, date, capped):
    """Over a whole run (steps alone, or a 600 s clock that ends it before its iterations): golf's lr_scale with the
    record's warm-down fraction and floor equals the script's lr_mul: exactly by steps; under the clock to rounding
    (the script divides milliseconds, golf seconds)."""
    h = script_hparams(date)
    iterations, cap = (5000, 0.0) if not capped else (20_000, 600.0)
    theirs = fraction_lr_mul(record_dir(date), "train_model", h.warmdown_frac, h.min_lr, iterations, cap)
    min_lr = golf_optim(date).min_lr
    assert min_lr == h.min_lr
    for step in range(0, 5001, 25):
        elapsed = step * 0.1213  # 121.3 ms a step: 4946 steps in 600 s, as T3's log
        ours = lr_scale(step, elapsed, iterations, 0, cap, warmdown_frac=h.warmdown_frac, min_lr=min_lr)
        if capped:
            assert ours == pytest.approx(theirs(step, elapsed), rel=1e-12, abs=1e-12), (step, elapsed)
        else:
            assert ours == theirs(step, elapsed), step


@pytest.mark.parametrize("capped", [False, True])
def test_the_warmdown_by_steps_equals_t1s(record_dir, capped):
    """T1's lr_mul: the last WARMDOWN_ITERS steps, or their estimated duration under the clock. The clock's branch
    works in milliseconds where golf works in seconds, so they agree to rounding."""
    h = script_hparams(T1)
    iterations, cap = (9000, 0.0) if not capped else (20_000, 600.0)
    args = types.SimpleNamespace(iterations=iterations, warmdown_iters=h.warmdown_iters)
    f = load_nested(record_dir(T1), "main", ["lr_mul"], {"args": args, "max_wallclock_ms": 1e3 * cap or None})
    min_lr = golf_optim(T1).min_lr
    for step in range(1, 9000, 20):
        elapsed = step * 0.0835  # 83.5 ms a step: about 7,180 steps in 600 s
        ours = lr_scale(step, elapsed, iterations, h.warmdown_iters, cap, min_lr=min_lr)
        assert ours == pytest.approx(f.lr_mul(step, 1e3 * elapsed), rel=1e-12, abs=1e-12), step


# --- the presets against the scripts' settings --------------------------------------------------------------------------

# golf's optim key -> the record's Hyperparameters attribute (T1 names its Adam decay adam_wd for both groups)
COMMON = dict(matrix_lr="matrix_lr", scalar_lr="scalar_lr", tied_embed_lr="tied_embed_lr", embed_lr="embed_lr",
              muon_momentum="muon_momentum", muon_momentum_warmup_start="muon_momentum_warmup_start",
              muon_momentum_warmup_steps="muon_momentum_warmup_steps", muon_backend_steps="muon_backend_steps",
              beta1="beta1", beta2="beta2", adam_eps="adam_eps", grad_clip_norm="grad_clip_norm", muon_wd="muon_wd")
KEYS = {
    T1: dict(COMMON, head_lr="head_lr", embed_wd="adam_wd", scalar_wd="adam_wd"),
    T2: dict(COMMON, head_lr="head_lr", embed_wd="embed_wd", scalar_wd="adam_wd", min_lr="min_lr",
             muon_row_normalize="muon_row_normalize"),
    T3: dict(COMMON, embed_wd="embed_wd", scalar_wd="adam_wd", min_lr="min_lr",
             muon_row_normalize="muon_row_normalize", ema_decay="ema_decay"),
}


@pytest.mark.parametrize("date", [T1, T2, T3])
def test_the_presets_hold_the_records_settings(date):
    o, h = golf_optim(date), script_hparams(date)
    ours = {key: (o.ema.decay if key == "ema_decay" else getattr(o, key)) for key in KEYS[date]}
    theirs = {key: getattr(h, attr) for key, attr in KEYS[date].items()}
    assert ours == theirs
    if date != T1:
        assert o.ema.decay == h.ema_decay
    else:
        assert o.ema.decay == 0.997  # T1's main() hard-codes it
    assert o.muon_ns_coefficients == ("polar_express" if date == T3 else "quintic")
    assert o.embed_beta2 is o.scalar_beta2 is o.head_beta2 is None  # the records use one beta2 for every Adam


class T2Stand(nn.Module):
    """The attributes T2's Optimizers reads, with one block's worth of parameters of each kind."""

    def __init__(self):
        super().__init__()
        block = nn.Module()
        block.attn = nn.Module()
        block.attn.c_q = nn.Linear(16, 16, bias=False)
        block.attn_scale = nn.Parameter(torch.ones(16))
        self.blocks = nn.ModuleList([block])
        self.skip_weights = nn.Parameter(torch.ones(1, 16))
        self.skip_gates = nn.Parameter(torch.zeros(1, 16))
        self.tok_emb = nn.Embedding(32, 16)
        self.lm_head = None


class T3Stand(T2Stand):
    def __init__(self):
        super().__init__()
        self.qo_bank = nn.Parameter(torch.zeros(2, 16, 16))
        self.kv_bank = nn.Parameter(torch.zeros(2, 8, 16))
        self.mlp_up_bank = nn.Parameter(torch.zeros(1, 64, 16))
        self.mlp_down_bank = nn.Parameter(torch.zeros(1, 16, 64))
        self.parallel_post_lambdas = None
        self.parallel_resid_lambdas = None
        self.smear_gate_enabled = False


class CpuTorch(types.ModuleType):
    """torch, except that torch.cuda.Stream (which T3's Optimizers makes for its overlap) is a stand-in."""

    def __init__(self):
        super().__init__("torch")
        self.cuda = types.SimpleNamespace(Stream=lambda: None)

    def __getattr__(self, name):
        return getattr(torch, name)


def settings(opt: torch.optim.Optimizer) -> tuple:
    group = opt.param_groups[0]
    if isinstance(opt, torch.optim.Adam) or isinstance(opt, torch.optim.AdamW):
        return type(opt).__name__, group["lr"], group["betas"], group["eps"], group["weight_decay"]
    return "Muon", group["lr"], group["momentum"], group["weight_decay"], group.get("row_normalize", False)


@pytest.mark.parametrize("date", [T2, T3])
def test_each_group_is_built_as_the_scripts_optimizers_build_it(record_dir, date):
    """The script's Optimizers (on a stand-in with each kind of parameter) and golf's build_optimizers with the
    preset: per role (token embedding, matrices, scalars) the same optimizer class, lr, betas, eps and decay."""
    names = ["Hyperparameters", "Muon", "CONTROL_TENSOR_NAME_PATTERNS", "Optimizers"]
    if date == T3:
        names.append("PACKED_REPLICATED_GRAD_MAX_NUMEL")
    extra = {"uuid": uuid, "torch": CpuTorch()} if date == T3 else {"uuid": uuid}
    m = load_parts(record_dir(date), names, env=run_command_env(record_dir(date), RUN_COMMAND[date]), extra=extra)
    theirs = m.Optimizers(m.Hyperparameters(), T3Stand() if date == T3 else T2Stand())
    o = golf_optim(date)
    ours = {opt.param_groups[0]["name"]: opt
            for opt in build_optimizers(GPT(ModelConfig(num_layers=2, model_dim=32, num_heads=2, num_kv_heads=1), 64), o)}
    assert theirs.optimizer_head is None if date == T2 else not hasattr(theirs, "optimizer_head")
    assert settings(ours["embed"]) == settings(theirs.optimizer_tok)
    assert settings(ours["scalar"]) == settings(theirs.optimizer_scalar)
    assert settings(ours["matrix"]) == settings(theirs.optimizer_muon)
