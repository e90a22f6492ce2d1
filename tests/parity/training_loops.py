"""The two training loops the parity tests compare: the challenge's baseline main() loop, written out step for step
(its main() needs CUDA and a launcher) and driving the script's own GPT, Muon and DistributedTokenLoader; and
golf's Trainer. Both return the mean training loss of every step.

One deliberate difference on a CPU: the script's Adams are fused (fused=True). golf fuses them on CUDA as well,
but on a CPU torch's fused Adam rounds differently from its foreach Adam (by an ulp), and golf on CPU uses the
foreach one; so the script's loop fuses exactly where golf does (on CUDA).
"""

from __future__ import annotations

import contextlib
import dataclasses
import types
from pathlib import Path
from typing import Callable

import torch
import yaml

from golf import CONF_DIR
from golf.data.loader import DistributedTokenLoader
from golf.model.gpt import GPT
from golf.optim.build import OptimConfig, build_optimizers
from golf.trainer import TrainConfig, Trainer


@dataclasses.dataclass
class Schedule:
    steps: int
    warmdown: int
    momentum_warmup: int
    accum: int
    batch_tokens: int
    seq_len: int


def golf_optim_config(**overrides) -> OptimConfig:
    """conf/optim/muon_adam.yaml as golf's OptimConfig (the baseline averages nothing)."""
    values = yaml.safe_load((CONF_DIR / "optim" / "muon_adam.yaml").read_text(encoding="utf-8"))
    nested = {k: values.pop(k) for k in ("ema", "swa", "reptile") if k in values}
    assert not any(v.get("decay") or v.get("enabled") for v in nested.values()), "the baseline averages nothing"
    return dataclasses.replace(OptimConfig(**values), **overrides)


def script_env_for(s: Schedule, data_path: Path) -> dict[str, object]:
    return dict(ITERATIONS=s.steps, WARMDOWN_ITERS=s.warmdown, MUON_MOMENTUM_WARMUP_STEPS=s.momentum_warmup,
                TRAIN_BATCH_TOKENS=s.batch_tokens, TRAIN_SEQ_LEN=s.seq_len, MAX_WALLCLOCK_SECONDS=0,
                DATA_PATH=data_path)


def script_training(m: types.ModuleType, model: torch.nn.Module, s: Schedule, device: torch.device,
                    autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext) -> list[float]:
    """The baseline script's main() loop, one process, no compile: the losses a step."""
    a = m.Hyperparameters()
    grad_scale = 1.0 / s.accum
    block_params = list(model.blocks.named_parameters())
    control = m.CONTROL_TENSOR_NAME_PATTERNS
    matrices = [p for n, p in block_params if p.ndim == 2 and not any(c in n for c in control)]
    scalars = [p for n, p in block_params if p.ndim < 2 or any(c in n for c in control)]
    scalars.append(model.skip_weights)

    def adam(params, lr):
        return torch.optim.Adam([{"params": params, "lr": lr, "base_lr": lr}], betas=(a.beta1, a.beta2),
                                eps=a.adam_eps, fused=device.type == "cuda")

    muon = m.Muon(matrices, lr=a.matrix_lr, momentum=a.muon_momentum, backend_steps=a.muon_backend_steps)
    for group in muon.param_groups:
        group["base_lr"] = a.matrix_lr
    optimizers = [adam([model.tok_emb.weight], a.tied_embed_lr), muon, adam(scalars, a.scalar_lr)]
    loader = m.DistributedTokenLoader(a.train_files, 0, 1, device)

    def lr_mul(step: int) -> float:  # max_wallclock_seconds = 0: the warm-down by steps
        start = max(a.iterations - a.warmdown_iters, 0)
        return max((a.iterations - step) / max(a.warmdown_iters, 1), 0.0) if start <= step < a.iterations else 1.0

    losses = []
    model.train()
    for step in range(a.iterations):
        scale = lr_mul(step)
        for opt in optimizers:
            opt.zero_grad(set_to_none=True)
        train_loss = torch.zeros((), device=device)
        for _ in range(s.accum):
            x, y = loader.next_batch(a.train_batch_tokens, a.train_seq_len, s.accum)
            with autocast():
                loss = model(x, y)
            train_loss += loss.detach()
            (loss * grad_scale).backward()
        train_loss /= s.accum
        frac = min(step / a.muon_momentum_warmup_steps, 1.0)
        for group in muon.param_groups:
            group["momentum"] = (1 - frac) * a.muon_momentum_warmup_start + frac * a.muon_momentum
        for opt in optimizers:
            for group in opt.param_groups:
                group["lr"] = group["base_lr"] * scale
        for opt in optimizers:
            opt.step()
        losses.append(float(train_loss))
    return losses


def golf_training(model: GPT, files: list, s: Schedule, device: torch.device,
                  autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext) -> list[float]:
    """golf's Trainer with optim=muon_adam and the schedule's settings: the losses a step."""
    losses: list[float] = []
    train = TrainConfig(iterations=s.steps, max_wallclock_s=0.0, batch_tokens=s.batch_tokens, seq_len=s.seq_len,
                        grad_accum_steps=s.accum, warmdown_steps=s.warmdown, priming_steps=0, log_every=1)
    optim = golf_optim_config(muon_momentum_warmup_steps=s.momentum_warmup)
    trainer = Trainer(model, build_optimizers(model, optim, device.type),
                      DistributedTokenLoader(files, 0, 1, pin_memory=False), train, optim, device, autocast,
                      log=lambda line: None, show_progress=False,
                      log_metrics=lambda r: losses.append(r["train_loss"]) if "train_loss" in r else None)
    result = trainer.fit()
    assert result.status == "ok" and result.steps == s.steps
    return losses
