"""One training, assembled: the model (seeded init, precision policy, the same weights on every rank), its Muon/Adam
optimizers, this rank's loader, the Trainer and its step hooks. golf.train's job (golf/job/train.py) and golf.bench
(golf/benchmark/run.py) both build here, so the loop the bench times is the loop a run trains with."""

from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

import torch

from golf.checkpoint import Checkpointer
from golf.collectives import broadcast_parameters, rank_world
from golf.config import GolfConfig
from golf.data.loader import build_loader
from golf.hardware import apply_precision_policy, grad_accum_per_rank
from golf.model.gpt import GPT
from golf.optim.build import build_optimizers
from golf.trainer import Trainer
from golf.trainer_config import TrainConfig
from golf.training_hooks import TrainingBatches, TrainingHooks, build_hooks


@dataclass
class Training:
    model: GPT
    trainer: Trainer
    hooks: Optional[TrainingHooks]  # None when built without hooks (the bench times the bare loop of steps)


def build_model(cfg: GolfConfig, device: torch.device) -> GPT:
    """The initial weights depend on the seed alone (not on what data preparation drew), and rank 0's are every
    rank's."""
    torch.manual_seed(cfg.seed)
    model = apply_precision_policy(GPT(cfg.model, cfg.data.vocab_size).to(device), cfg.hardware)
    broadcast_parameters(model)
    return model


def grad_accum_steps(cfg: GolfConfig) -> int:
    """Micro-batches per step on each rank, so that the global batch is train.batch_tokens whatever the world size."""
    return grad_accum_per_rank(cfg.train.batch_tokens, cfg.train.seq_len, cfg.train.grad_accum_steps, cfg.hardware)


def build_training(cfg: GolfConfig, model: GPT, train_files: Sequence[Any], device: torch.device,
                   autocast: Callable[[], contextlib.AbstractContextManager], log: Callable[[str], None], *,
                   train: Optional[TrainConfig] = None, hooks: bool = True,
                   log_metrics: Callable[[dict[str, Any]], None] = lambda record: None,
                   validate: Optional[Callable[[int], dict[str, Any]]] = None, show_progress: bool = False,
                   checkpointer: Optional[Checkpointer] = None) -> Training:
    """The trainer of `model` on this rank's share of `train_files`. `train` replaces cfg.train (the bench turns
    priming, validation and the clock off); `hooks` adds the step hooks the config asks for (golf/training_hooks.py)."""
    rank, world = rank_world()
    accum = grad_accum_steps(cfg)
    train_cfg = dataclasses.replace(train or cfg.train, grad_accum_steps=accum)
    trainer = Trainer(model, build_optimizers(model, cfg.optim, device.type),
                      build_loader(cfg.data.loader, train_files, rank, world, train_cfg.seq_len), train_cfg,
                      cfg.optim, device, autocast,
                      log=log, log_metrics=log_metrics, validate=validate, show_progress=show_progress,
                      compile_model=cfg.hardware.compile, checkpointer=checkpointer)
    if not hooks:
        return Training(model, trainer, None)
    step_hooks = build_hooks(
        cfg, model, trainer.fraction_done, autocast=autocast, log=log,
        reptile_batches=lambda: TrainingBatches(train_files, rank, world, cfg.train.batch_tokens, cfg.train.seq_len,
                                                accum, device))
    trainer.hooks = step_hooks.all()
    return Training(model, trainer, step_hooks)


def leave_export_weights(model: GPT, hooks: TrainingHooks) -> Optional[Any]:
    """After fit: the weights the artifact stores and every score sees. QAT's fake quantization detached (the plain
    weights), the model's whole layer plan on, and the averaged weights loaded when averaging; golf.train
    (golf/job/train.py) and a submission's train_gpt.py (golf/submit/standalone_main.py) both call this. Returns the
    averager whose weights were loaded (None without averaging), for the caller's log line."""
    hooks.qat.detach(model)
    model.set_loop_active(True)
    if hooks.averager is not None:
        model.load_state_dict(hooks.averager.averaged_state_dict())
    return hooks.averager
