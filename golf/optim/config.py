"""The optimizers' settings (optim.*: the Muon/Adam split, EMA/SWA averaging, Reptile) and their checks. No torch
here; golf/optim/build.py, averaging.py and reptile.py implement them."""

import math
from dataclasses import dataclass, field
from typing import Any, Optional

from golf.problems import Problems

# Muon's choices (golf/optim/muon.py implements them; they live here so that checking a config needs no torch)
NS_SCHEDULES = ("quintic", "polar_express")  # optim.muon_ns_coefficients
POLAR_EXPRESS_STEPS = 5  # Polar Express's coefficient tuples, one per Newton-Schulz step
ARITHMETICS = ("baseline", "banked")  # optim.muon_arithmetic

@dataclass
class EMAConfig:
    decay: float = 0.0  # 0 = off; e.g. 0.997. After every step: shadow = decay * shadow + (1 - decay) * weights


@dataclass
class SWAConfig:
    enabled: bool = False
    start: float = 0.5  # snapshots once this fraction of the warm-down has passed (0 = from the first step)
    every: int = 10  # steps between snapshots


REPTILE_PARAMS = ("all", "attn", "mlp", "norms")


@dataclass
class ReptileConfig:
    enabled: bool = False
    params: str = "norms"  # all | attn | mlp | norms (as ttt.params)
    inner_steps: int = 3
    inner_lr: float = 0.01
    outer_lr: float = 0.5
    every: int = 50  # run after every `every` optimizer steps
    start: float = 0.0  # ... once warmdown_progress >= start (0: from the start of training)


def reptile_problems(cfg: ReptileConfig) -> list[tuple[str, object, str]]:
    """(key, value, allowed) for each invalid setting; empty when all is well."""
    problems = []
    if cfg.params not in REPTILE_PARAMS:
        problems.append(("optim.reptile.params", cfg.params, "one of " + ", ".join(REPTILE_PARAMS)))
    if cfg.inner_steps < 1:
        problems.append(("optim.reptile.inner_steps", cfg.inner_steps, "an integer >= 1"))
    if cfg.inner_lr < 0:
        problems.append(("optim.reptile.inner_lr", cfg.inner_lr, "a number >= 0"))
    if not 0.0 <= cfg.outer_lr <= 1.0:
        problems.append(("optim.reptile.outer_lr", cfg.outer_lr, "a number in [0, 1]"))
    if cfg.every < 1:
        problems.append(("optim.reptile.every", cfg.every, "an integer >= 1"))
    if not 0.0 <= cfg.start <= 1.0:
        problems.append(("optim.reptile.start", cfg.start, "a fraction of the warm-down in [0, 1]"))
    return problems


@dataclass
class OptimConfig:
    name: str = "muon_adam"
    matrix_lr: float = 0.04
    scalar_lr: float = 0.04
    tied_embed_lr: float = 0.05
    embed_lr: float = 0.6
    head_lr: float = 0.008
    muon_momentum: float = 0.95
    muon_momentum_warmup_start: float = 0.85
    muon_momentum_warmup_steps: int = 500
    muon_backend_steps: int = 5
    muon_ns_dtype: str = "bfloat16"
    # the records' Muon variants (golf/optim/muon.py); the defaults are the challenge's baseline
    muon_ns_coefficients: str = "quintic"  # quintic (one (a,b,c) every step) | polar_express (5 per-step tuples)
    muon_row_normalize: bool = False  # MuonEq-R: each row of the update divided by its norm before Newton-Schulz
    muon_arithmetic: str = "baseline"  # baseline | banked (the 03-23/04-27 records' bf16 momentum and op order)
    beta1: float = 0.9
    beta2: float = 0.95
    # beta2 of one Adam group; null = beta2
    embed_beta2: Optional[float] = None
    scalar_beta2: Optional[float] = None
    head_beta2: Optional[float] = None
    adam_eps: float = 1e-8
    grad_clip_norm: float = 0.0
    muon_wd: float = 0.0  # decoupled weight decay on the Muon matrices; smaller weights compress better
    # decoupled weight decay of the Adam groups (> 0 makes that group AdamW): the token tables, the scalars/controls
    embed_wd: float = 0.0
    scalar_wd: float = 0.0
    min_lr: float = 0.0  # the warm-down's floor, a fraction of each group's lr (the 04-27 record: 0.1)
    ema: EMAConfig = field(default_factory=EMAConfig)  # weight averaging before export: EMA or SWA, not both
    swa: SWAConfig = field(default_factory=SWAConfig)
    reptile: ReptileConfig = field(default_factory=ReptileConfig)  # meta-learning hook (golf/optim/reptile.py)


def optim_problems(optim: OptimConfig) -> list[tuple[str, Any, str]]:
    p = Problems("optim.")
    for key in ("matrix_lr", "scalar_lr", "tied_embed_lr", "embed_lr", "head_lr", "grad_clip_norm"):
        p.at_least(key, getattr(optim, key), 0.0)
    for key in ("muon_momentum", "muon_momentum_warmup_start", "beta1", "beta2"):
        value = getattr(optim, key)
        p.need(0.0 <= value < 1.0, key, value, "a number in [0, 1)")
    p.at_least("muon_momentum_warmup_steps", optim.muon_momentum_warmup_steps, 0)
    for key in ("embed_beta2", "scalar_beta2", "head_beta2"):
        value = getattr(optim, key)
        p.need(value is None or 0.0 <= value < 1.0, key, value, "a number in [0, 1), or null for optim.beta2")
    p.at_least("muon_backend_steps", optim.muon_backend_steps, 1)
    p.choice("muon_ns_dtype", optim.muon_ns_dtype, ("bfloat16", "float32"))
    p.choice("muon_ns_coefficients", optim.muon_ns_coefficients, NS_SCHEDULES)
    p.need(optim.muon_ns_coefficients != "polar_express" or optim.muon_backend_steps <= POLAR_EXPRESS_STEPS,
           "muon_backend_steps", optim.muon_backend_steps,
           f"at most {POLAR_EXPRESS_STEPS} with optim.muon_ns_coefficients=polar_express (it has "
           f"{POLAR_EXPRESS_STEPS} coefficient tuples, one per step)")
    p.choice("muon_arithmetic", optim.muon_arithmetic, ARITHMETICS)
    p.need(optim.adam_eps > 0, "adam_eps", optim.adam_eps, "a number > 0")
    for key in ("muon_wd", "embed_wd", "scalar_wd"):
        p.at_least(key, getattr(optim, key), 0.0)
    p.need(math.isfinite(optim.min_lr) and 0.0 <= optim.min_lr <= 1.0, "min_lr", optim.min_lr,
           "a fraction of the lr in [0, 1] (0: the warm-down ends at 0)")
    p.need(0.0 <= optim.ema.decay < 1.0, "ema.decay", optim.ema.decay, "a number in [0, 1) (0 turns EMA off)")
    p.need(0.0 <= optim.swa.start <= 1.0, "swa.start", optim.swa.start, "a fraction of the warm-down in [0, 1]")
    p.at_least("swa.every", optim.swa.every, 1)
    p.need(not (optim.swa.enabled and optim.ema.decay > 0), "swa.enabled", optim.swa.enabled,
           f"false while optim.ema.decay={optim.ema.decay} is on: EMA and SWA are alternatives, pick one")
    return p + reptile_problems(optim.reptile)
